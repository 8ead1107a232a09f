//! Statistics: hits, misses, inserts, evictions and errors, per namespace and in total.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// Live counters of one namespace (or of the cache as a whole).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) inserts: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) oversized: AtomicU64,
    pub(crate) superseded: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) refresh_failures: AtomicU64,
    pub(crate) lease_takeovers: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Adds `other`'s counts to these (a dropped namespace's, into the registry's).
    pub(crate) fn absorb(&self, other: &Counters) {
        let s = other.snapshot();
        self.hits.fetch_add(s.hits, Relaxed);
        self.misses.fetch_add(s.misses, Relaxed);
        self.inserts.fetch_add(s.inserts, Relaxed);
        self.evictions.fetch_add(s.evictions, Relaxed);
        self.invalidations.fetch_add(s.invalidations, Relaxed);
        self.errors.fetch_add(s.errors, Relaxed);
        self.decode_errors.fetch_add(s.decode_errors, Relaxed);
        self.oversized.fetch_add(s.oversized, Relaxed);
        self.superseded.fetch_add(s.superseded, Relaxed);
        self.coalesced.fetch_add(s.coalesced, Relaxed);
        self.stale_served.fetch_add(s.stale_served, Relaxed);
        self.refreshes.fetch_add(s.refreshes, Relaxed);
        self.refresh_failures.fetch_add(s.refresh_failures, Relaxed);
        self.lease_takeovers.fetch_add(s.lease_takeovers, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            inserts: self.inserts.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            invalidations: self.invalidations.load(Relaxed),
            errors: self.errors.load(Relaxed),
            decode_errors: self.decode_errors.load(Relaxed),
            oversized: self.oversized.load(Relaxed),
            superseded: self.superseded.load(Relaxed),
            coalesced: self.coalesced.load(Relaxed),
            stale_served: self.stale_served.load(Relaxed),
            refreshes: self.refreshes.load(Relaxed),
            refresh_failures: self.refresh_failures.load(Relaxed),
            lease_takeovers: self.lease_takeovers.load(Relaxed),
        }
    }
}

/// Counter values at one moment.
///
/// More counters may come: it is read, never built outside this crate.
///
/// ```compile_fail
/// let s = cache_runtime::StatsSnapshot { hits: 1, ..Default::default() };
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that ran the body (including those whose entry was stale or undecodable).
    pub misses: u64,
    /// Values stored.
    pub inserts: u64,
    /// Entries the in-memory store dropped for capacity or expiry.
    pub evictions: u64,
    /// Exact, namespace or whole-cache invalidations performed.
    pub invalidations: u64,
    /// Backend failures (timeouts, connection errors, open circuit) that the cache failed open on.
    pub errors: u64,
    /// Stored bytes that were foreign, corrupt or of another format (counted as misses too).
    pub decode_errors: u64,
    /// Keys or values over the configured size limits, not cached.
    pub oversized: u64,
    /// Computed values not stored because an invalidation of their key, namespace or cache
    /// overlapped the computation (they were returned to their caller, never stored).
    pub superseded: u64,
    /// Misses that waited for another process's computation of the same key (Redis fill
    /// leases) instead of running the body.
    pub coalesced: u64,
    /// Expired values served because the source failed or was slower than `timeout_ms`
    /// (`stale`).
    pub stale_served: u64,
    /// Background refreshes started (`refresh_after`), one per key at a time.
    pub refreshes: u64,
    /// Background refreshes whose source failed (the entry was left as it was).
    pub refresh_failures: u64,
    /// Misses that waited on another process's fill lease and took the key over when that
    /// lease ran out (its holder died or stalled).
    pub lease_takeovers: u64,
}

impl StatsSnapshot {
    /// `hits / (hits + misses)`, or 0 when nothing was looked up.
    pub fn hit_ratio(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 {
            0.0
        } else {
            self.hits as f64 / lookups as f64
        }
    }

    fn add(&mut self, other: &StatsSnapshot) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.inserts += other.inserts;
        self.evictions += other.evictions;
        self.invalidations += other.invalidations;
        self.errors += other.errors;
        self.decode_errors += other.decode_errors;
        self.oversized += other.oversized;
        self.superseded += other.superseded;
        self.coalesced += other.coalesced;
        self.stale_served += other.stale_served;
        self.refreshes += other.refreshes;
        self.refresh_failures += other.refresh_failures;
        self.lease_takeovers += other.lease_takeovers;
    }
}

/// Statistics of a cache: the total and each namespace's share.
///
/// More fields may come: it is read, never built outside this crate.
///
/// ```compile_fail
/// let s = cache_runtime::Stats { total: Default::default(), ..Default::default() };
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Sums over every namespace, plus failures not tied to one (e.g. the invalidation bus).
    /// Namespaces no longer listed in [`Stats::namespaces`] still count here.
    pub total: StatsSnapshot,
    /// Per namespace, by name. Beyond 4,096 namespaces, those with no entry in process memory,
    /// no `#[cached]` site and no call running are dropped from this list (their counts stay in
    /// [`Stats::total`]), so that arbitrary namespace names do not grow the cache for good.
    pub namespaces: BTreeMap<String, StatsSnapshot>,
}

impl Stats {
    /// The totals are `cache_level` plus `retired` (namespaces no longer listed) plus every
    /// listed namespace.
    pub(crate) fn collect<'a>(
        cache_level: &Counters,
        retired: &Counters,
        namespaces: impl Iterator<Item = (&'a str, &'a Counters)>,
    ) -> Stats {
        let mut total = cache_level.snapshot();
        total.add(&retired.snapshot());
        let namespaces: BTreeMap<String, StatsSnapshot> = namespaces
            .map(|(name, counters)| {
                let snap = counters.snapshot();
                total.add(&snap);
                (name.to_owned(), snap)
            })
            .collect();
        Stats { total, namespaces }
    }

    /// The counters of one namespace (zeros if it was never used).
    pub fn namespace(&self, name: &str) -> StatsSnapshot {
        self.namespaces.get(name).copied().unwrap_or_default()
    }
}
