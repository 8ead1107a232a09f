//! The in-process store: a moka cache of typed values.
//!
//! Entries hold the value itself (`Arc<dyn Any>`), so a hit is a moka lookup, a generation check
//! and a clone, with no decoding. The store is bounded by bytes and by entry count at once: each
//! entry weighs `max(key + encoded value bytes, max_bytes / max_entries)` against a capacity of
//! `max_bytes`. Each entry expires after its own TTL.
//!
//! Expiry is checked twice: on every read against [`tokio::time::Instant`] (so an expired entry
//! is never served, and tests can drive TTLs with `tokio::time::pause` / `advance`), and by
//! moka's `Expiry`, which frees the memory of expired entries in the background.

use std::sync::Arc;
use std::time::Duration;

use moka::Expiry;
use moka::notification::RemovalCause;
use tokio::time::Instant;

use crate::epoch::KeyTicket;
use crate::flight::Shared;
use crate::namespace::{Gens, Namespace};
use crate::stats::Counters;

/// One stored value with what is needed to validate it.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) value: Shared,
    pub(crate) gens: Gens,
    /// The key's invalidation epoch when the value was read or computed: the entry is served
    /// only while it is current, so an invalidation takes effect the moment it bumps the
    /// epoch, whatever happens to the removal that follows (see [`crate::epoch`]).
    pub(crate) ticket: KeyTicket,
    pub(crate) namespace: Arc<Namespace>,
    pub(crate) ttl: Option<Duration>,
    /// When the entry stops being served, on tokio's clock; `None` = never. See [`deadline`].
    pub(crate) expires_at: Option<Instant>,
    pub(crate) weight: u32,
    /// Unix ms when the value was computed.
    pub(crate) created_ms: u64,
    /// Unix ms when it expires, 0 = never.
    pub(crate) expires_ms: u64,
    /// When it was computed, on tokio's clock (its age for `refresh_after`). The entry is kept
    /// until `created_at + ttl`, which is past `expires_at` by the `stale` window.
    pub(crate) created_at: Instant,
}

/// The instant, on tokio's clock, at which an entry stored now for `ttl` expires (`None` for
/// no TTL, or a TTL so long that it never comes).
pub(crate) fn deadline(ttl: Option<Duration>) -> Option<Instant> {
    ttl.and_then(|ttl| Instant::now().checked_add(ttl))
}

struct PerEntryTtl;

impl Expiry<String, Arc<Entry>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Entry>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        value.ttl
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<Entry>,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        value.ttl
    }
}

/// A moka cache of [`Entry`].
///
/// Entries are kept behind an `Arc`: moka clones the stored value on every read, and one
/// reference count is cheaper than cloning the entry's own two `Arc`s.
pub(crate) struct MemoryStore {
    cache: moka::future::Cache<String, Arc<Entry>>,
    min_weight: u64,
}

impl MemoryStore {
    /// A store of at most `max_entries` entries and about `max_bytes` bytes.
    pub(crate) fn new(max_entries: u64, max_bytes: u64) -> Self {
        let min_weight = max_bytes.div_ceil(max_entries).max(1);
        let cache = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key: &String, entry: &Arc<Entry>| entry.weight)
            .expire_after(PerEntryTtl)
            .eviction_listener(|_key, entry: Arc<Entry>, cause| {
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

    /// The entry under `key`, unless it has expired.
    pub(crate) async fn get(&self, key: &str) -> Option<Arc<Entry>> {
        let entry = self.cache.get(key).await?;
        match entry.expires_at {
            Some(at) if at <= Instant::now() => None,
            _ => Some(entry),
        }
    }

    /// The entry under `key` and whether it is fresh: an expired entry is returned (as not
    /// fresh) while it is within its `stale` window (kept until `created_at + ttl`).
    pub(crate) async fn get_any(&self, key: &str) -> Option<(Arc<Entry>, bool)> {
        let entry = self.cache.get(key).await?;
        let now = Instant::now();
        match entry.expires_at {
            Some(at) if at <= now => {
                let kept = entry.ttl.and_then(|ttl| entry.created_at.checked_add(ttl));
                kept.is_some_and(|until| until > now)
                    .then_some((entry, false))
            }
            _ => Some((entry, true)),
        }
    }

    pub(crate) async fn insert(&self, key: String, entry: Entry) {
        self.cache.insert(key, Arc::new(entry)).await;
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
