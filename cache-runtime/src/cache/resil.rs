//! Resilience: serving a stale value when the source fails (`stale`), answering within
//! `timeout_ms` with it, and refreshing entries before they expire (`refresh_after`).
//!
//! - **stale**: entries are kept `stale` seconds past their expiry (memory: on tokio's clock;
//!   Redis: the key's TTL is `expire + stale`, the envelope's `expires_ms` says when it went
//!   stale). A call past expiry runs the body; if it fails (an `Err`, a `None` that is not
//!   cached, a panic) the stale value is returned instead, counted in `stale_served`. For
//!   [`BACKOFF`] after a failure, calls on that key serve the stale value without running
//!   the body, so a failing source is not hammered: per process, and on Redis in the whole
//!   cluster (the recompute lease below is kept for [`BACKOFF`] after a failure).
//! - On Redis an expired entry is recomputed once in the cluster: the recomputation holds a
//!   *recompute lease* on a key of its own (`<key>\0refresh`, shared with refreshes), and the
//!   other processes answer with the stale value meanwhile instead of running the body.
//! - Invalidation wins: a stale value is served only after checking that its entry is still
//!   there, under the current generations (an exact invalidation deletes it, a namespace
//!   invalidation changes the generation), so nothing invalidated is ever served.
//! - On Redis the recomputation of a stale entry, and a refresh, store over the *exact bytes*
//!   they read ([`Write::Replacing`](super::store::Write)) instead of a fill lease: the stale
//!   value stays readable while the body runs, and any invalidation meanwhile (which deletes
//!   or replaces those bytes) makes Redis refuse the store.
//! - **timeout**: one detached body per key and process ([`Detached`]); the other callers of
//!   that process wait on its outcome, up to the same timeout.
//! - **refresh_after**: see [`Cache::start_refresh`].

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

pub(crate) use super::fill_options::FillOptions;
use super::*;
use crate::namespace::Gens;
use crate::stats::Counters;

/// How long a key whose source just failed serves its stale value without running the body
/// (in the process and, on Redis, in the cluster): retries against a failing source are
/// throttled to about one per key per `BACKOFF`.
///
/// ```
/// // The earliest moment a failing source is tried again for a key that just failed.
/// let next_try = std::time::Instant::now() + cache_runtime::BACKOFF;
/// # let _ = next_try;
/// ```
pub const BACKOFF: Duration = Duration::from_secs(1);

/// Beyond this many failing keys the back-off list is cleared (it only throttles).
const MAX_BACKOFF_KEYS: usize = 10_000;

/// How long an entry is kept: its TTL plus the stale window.
pub(crate) fn keep_for(ttl: Option<Duration>, stale: Option<Duration>) -> Option<Duration> {
    ttl.map(|ttl| ttl.saturating_add(stale.unwrap_or_default()))
}

/// An expired entry within its stale window.
#[derive(Clone)]
pub(crate) struct StaleCopy<T> {
    pub(crate) value: T,
    pub(crate) meta: EntryMeta,
    /// The stored bytes (Redis): a recomputation stores over exactly these.
    pub(crate) bytes: Option<Vec<u8>>,
}

/// A lookup with what resilience needs.
pub(crate) struct Seen<T> {
    pub(crate) lookup: Lookup<T>,
    pub(crate) stale: Option<StaleCopy<T>>,
    /// The entry's age (hits).
    pub(crate) age: Duration,
    /// The generations the entry is under (hits).
    pub(crate) gens: Gens,
    /// The stored bytes of a Redis hit.
    pub(crate) bytes: Option<Vec<u8>>,
}

impl<T> Seen<T> {
    pub(crate) fn plain(lookup: Lookup<T>) -> Self {
        Self {
            lookup,
            stale: None,
            age: Duration::ZERO,
            gens: Gens::default(),
            bytes: None,
        }
    }

    pub(crate) fn found(
        value: T,
        meta: EntryMeta,
        gens: Gens,
        age: Duration,
        bytes: Option<Vec<u8>>,
        fresh: bool,
    ) -> Self {
        if fresh {
            Self {
                lookup: Lookup::Hit(value, meta),
                stale: None,
                age,
                gens,
                bytes,
            }
        } else {
            Self {
                lookup: Lookup::Miss(gens),
                stale: Some(StaleCopy { value, meta, bytes }),
                age,
                gens,
                bytes: None,
            }
        }
    }
}

/// Per-process resilience state of a cache.
#[derive(Default)]
pub(crate) struct State {
    /// Keys whose source failed, and until when their stale value is served without a try.
    backoff: Mutex<HashMap<String, Instant>>,
    /// Keys with a background refresh running in this process.
    refreshing: Mutex<HashSet<String>>,
    /// Keys whose body runs detached in this process (`timeout`): its id, the stamp it was
    /// claimed under, and its outcome.
    detached: Mutex<HashMap<String, (u64, crate::epoch::Stamp, Outcome)>>,
    next_detached: std::sync::atomic::AtomicU64,
}

/// What a detached body gives its waiters: `None` while it runs, then its value (`Some(None)`
/// when it produced nothing to cache); a closed channel when it panicked.
pub(crate) type Outcome = tokio::sync::watch::Receiver<Option<Option<crate::flight::Shared>>>;

/// A key's detached body in this process, see [`Detached::claim`].
pub(crate) enum Detached {
    /// This caller runs it: publish its outcome through the slot.
    Claimed(DetachedSlot),
    /// It runs already: wait on its outcome.
    Running(Outcome),
}

/// The claim of a detached body: removed from [`State::detached`] on drop (after the body, or
/// when it panicked or was dropped).
pub(crate) struct DetachedSlot {
    cache: Cache,
    key: String,
    id: u64,
    tx: tokio::sync::watch::Sender<Option<Option<crate::flight::Shared>>>,
}

impl Detached {
    /// Claims `key`'s detached body, or finds the one running in this process, claimed under
    /// the same `stamp`: as with single-flight, a caller never waits on a body claimed before
    /// an invalidation of the key (its value may have been read before it), it claims a new
    /// one, which later callers then find.
    pub(crate) fn claim(cache: &Cache, key: &str, stamp: crate::epoch::Stamp) -> Self {
        let state = &cache.inner.resil;
        let mut map = state.detached.lock().expect("detached lock");
        if let Some((_, claimed, rx)) = map.get(key)
            && *claimed == stamp
        {
            return Detached::Running(rx.clone());
        }
        let id = state
            .next_detached
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = tokio::sync::watch::channel(None);
        map.insert(key.to_owned(), (id, stamp, rx));
        Detached::Claimed(DetachedSlot {
            cache: cache.clone(),
            key: key.to_owned(),
            id,
            tx,
        })
    }
}

impl DetachedSlot {
    /// Hands the body's cacheable value (or `None`) to the waiters.
    pub(crate) fn publish(self, value: Option<crate::flight::Shared>) {
        self.tx.send_replace(Some(value));
    }
}

impl Drop for DetachedSlot {
    fn drop(&mut self) {
        let mut map = self
            .cache
            .inner
            .resil
            .detached
            .lock()
            .expect("detached lock");
        if map.get(&self.key).is_some_and(|(id, _, _)| *id == self.id) {
            map.remove(&self.key);
        }
    }
}

impl State {
    pub(crate) fn backing_off(&self, key: &str) -> bool {
        let map = self.backoff.lock().expect("backoff lock");
        map.get(key).is_some_and(|until| *until > Instant::now())
    }

    pub(crate) fn failed(&self, key: &str) {
        let mut map = self.backoff.lock().expect("backoff lock");
        if map.len() >= MAX_BACKOFF_KEYS {
            map.clear();
        }
        map.insert(key.to_owned(), Instant::now() + BACKOFF);
    }

    pub(crate) fn recovered(&self, key: &str) {
        let mut map = self.backoff.lock().expect("backoff lock");
        if !map.is_empty() {
            map.remove(key);
        }
    }
}

/// A key's place in [`State::refreshing`], given back on drop (the refresh ended or was
/// dropped).
pub(crate) struct Refreshing {
    cache: Cache,
    key: String,
}

impl Refreshing {
    /// Claims `key` for a refresh; `None` when one is running in this process already.
    pub(crate) fn claim(cache: &Cache, key: &str) -> Option<Self> {
        let mut set = cache.inner.resil.refreshing.lock().expect("refresh lock");
        set.insert(key.to_owned()).then(|| Self {
            cache: cache.clone(),
            key: key.to_owned(),
        })
    }
}

impl Drop for Refreshing {
    fn drop(&mut self) {
        let mut set = self
            .cache
            .inner
            .resil
            .refreshing
            .lock()
            .expect("refresh lock");
        set.remove(&self.key);
    }
}

impl Cache {
    /// Serves `copy` if its entry is still there (nothing invalidated it since it was read),
    /// or a fresh value stored meanwhile; `None` when neither: the caller must not serve it.
    pub(crate) async fn serve_stale<M, O>(
        &self,
        ctx: &Ctx<'_>,
        key: &str,
        copy: &StaleCopy<M::Value>,
    ) -> Option<Answer<O>>
    where
        M: Mode<O>,
    {
        let ns = ctx.namespace;
        let seen = self.lookup_full::<M::Value>(ctx, key).await;
        if let Lookup::Hit(value, meta) = seen.lookup {
            Counters::bump(&ns.stats.hits);
            return Some((M::from_value(value), Some(meta), true));
        }
        let now = seen.stale?;
        if now.meta != copy.meta || now.bytes != copy.bytes {
            return None;
        }
        Counters::bump(&ns.stats.stale_served);
        crate::warn::warn_limited!(key, namespace = %ns.name, "source failed; serving a stale value");
        Some((M::from_value(now.value), Some(now.meta), true))
    }
}
