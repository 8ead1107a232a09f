//! The in-process store: a moka cache of typed values.
//!
//! Entries hold the value itself (`Arc<dyn Any>`), so a hit is a moka lookup, a generation check
//! and a clone, with no decoding. The store is bounded by bytes and by entry count at once: each
//! entry weighs `max(key + encoded value bytes, max_bytes / max_entries)` against a capacity of
//! `max_bytes`. Each entry expires after its own TTL (moka's `Expiry`).

use std::sync::Arc;
use std::time::Duration;

use moka::Expiry;
use moka::notification::RemovalCause;

use crate::flight::Shared;
use crate::namespace::{Gens, Namespace};
use crate::stats::Counters;

/// One stored value with what is needed to validate it.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) value: Shared,
    pub(crate) gens: Gens,
    pub(crate) namespace: Arc<Namespace>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) weight: u32,
    /// Unix ms when the value was computed.
    pub(crate) created_ms: u64,
    /// Unix ms when it expires, 0 = never.
    pub(crate) expires_ms: u64,
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Entry,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        value.ttl
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        value.ttl
    }
}

/// A moka cache of [`Entry`].
pub(crate) struct MemoryStore {
    cache: moka::future::Cache<String, Entry>,
    min_weight: u64,
}

impl MemoryStore {
    /// A store of at most `max_entries` entries and about `max_bytes` bytes.
    pub(crate) fn new(max_entries: u64, max_bytes: u64) -> Self {
        let min_weight = max_bytes.div_ceil(max_entries).max(1);
        let cache = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key: &String, entry: &Entry| entry.weight)
            .expire_after(PerEntryTtl)
            .eviction_listener(|_key, entry: Entry, cause| {
                if matches!(cause, RemovalCause::Expired | RemovalCause::Size) {
                    Counters::bump(&entry.namespace.stats.evictions);
                }
            })
            .build();
        Self { cache, min_weight }
    }

    /// The weight of an entry whose key and encoded value take `bytes`.
    pub(crate) fn weight(&self, bytes: usize) -> u32 {
        (bytes as u64).max(self.min_weight).min(u32::MAX as u64) as u32
    }

    pub(crate) async fn get(&self, key: &str) -> Option<Entry> {
        self.cache.get(key).await
    }

    pub(crate) async fn insert(&self, key: String, entry: Entry) {
        self.cache.insert(key, entry).await;
    }

    pub(crate) async fn remove(&self, key: &str) {
        self.cache.invalidate(key).await;
    }

    pub(crate) fn clear(&self) {
        self.cache.invalidate_all();
    }

    /// Runs pending maintenance (evictions, listener calls); for tests and stats.
    pub(crate) async fn sync(&self) {
        self.cache.run_pending_tasks().await;
    }

    /// Entries currently held (approximate until [`MemoryStore::sync`]).
    pub(crate) fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }
}
