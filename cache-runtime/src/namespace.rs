//! Namespaces: a group of entries that can be invalidated together in O(1).
//!
//! Each namespace has a *generation*. Every stored entry records the generation of its
//! namespace (and of the whole cache) as seen when its lookup started; a lookup only accepts an
//! entry whose generations equal the current ones. Invalidating a namespace replaces its
//! generation, which retires every entry at once without walking the keyspace, and also
//! rejects a value computed from old data that is stored after the invalidation.
//!
//! In memory the generation is a counter. With Redis it lives in Redis (a random 64-bit value
//! under `{prefix}:__gen:{namespace}`) so every process sees a change at once.
//!
//! # A bounded registry
//! A cache keeps one [`Namespace`] per name it has seen, including names only ever looked up
//! (e.g. [`crate::Cache::get`] with names from requests). When it holds more than
//! [`SWEEP_ABOVE`] (4,096) namespaces, it drops those nothing else references: no `#[cached]`
//! or HTTP site (those hold theirs for good), no stored in-process entry (every memory or L1
//! entry holds its namespace) and no running call. The next sweep comes when the registry has
//! doubled from what was left, so it holds at most `max(4,096, 2 × namespaces in use) + 1`
//! and sweeping costs O(1) per new name on average.
//!
//! Dropping is safe because a namespace with no entry left has nothing to protect: for the
//! memory backend, whose generations this process owns, a namespace that still has entries
//! (even ones it invalidated) is never dropped, so its generation never goes back and an
//! invalidated entry never revives; with Redis a re-created namespace re-reads its generation.
//! The dropped namespaces' counters are folded into the totals of [`crate::Cache::stats`];
//! their own line in [`crate::Stats::namespaces`] goes (and starts from zero if the name is
//! used again).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use crate::stats::Counters;

/// The generations an entry was written under: its namespace's and the whole cache's, and for
/// an HTTP response its path's (0 for every other entry; see [`crate::http::invalidate_path`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Gens {
    pub(crate) namespace: u64,
    pub(crate) all: u64,
    pub(crate) path: u64,
}

impl Gens {
    /// The two values an envelope holds: the path generation is folded into the namespace's
    /// (a bijective mix, 0 for no path, so entries without a path keep their format).
    pub(crate) fn stored(self) -> Gens {
        let mixed = self
            .path
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
        Gens {
            namespace: self.namespace ^ mixed,
            all: self.all,
            path: 0,
        }
    }
}

/// A generation as known to this process: a value plus whether it is trustworthy.
#[derive(Debug, Default)]
pub(crate) struct Generation {
    value: AtomicU64,
    known: AtomicBool,
    epoch: AtomicU64,
    learning: Mutex<()>,
}

impl Generation {
    pub(crate) fn known(value: u64) -> Self {
        Self {
            value: AtomicU64::new(value),
            known: AtomicBool::new(true),
            epoch: AtomicU64::new(0),
            learning: Mutex::new(()),
        }
    }

    /// The value, if known.
    pub(crate) fn get(&self) -> Option<u64> {
        self.known.load(SeqCst).then(|| self.value.load(SeqCst))
    }

    /// Starts a fetch from the authority: returns a ticket for [`Generation::learn`].
    pub(crate) fn ticket(&self) -> u64 {
        self.epoch.load(SeqCst)
    }

    /// Records a value fetched with `ticket`, unless it was forgotten meanwhile.
    pub(crate) fn learn(&self, ticket: u64, value: u64) {
        // The common case, already known as this value: nothing to change, no lock to take.
        if self.epoch.load(SeqCst) == ticket && self.get() == Some(value) {
            return;
        }
        // Two learners must not interleave: a stale one's value could otherwise end up marked
        // known by a fresh one's check. `forget` needs no lock (it only ever clears `known`).
        let _one_at_a_time = self.learning.lock().unwrap_or_else(|e| e.into_inner());
        if self.epoch.load(SeqCst) != ticket {
            return;
        }
        self.value.store(value, SeqCst);
        self.known.store(true, SeqCst);
        if self.epoch.load(SeqCst) != ticket {
            self.known.store(false, SeqCst);
        }
    }

    /// Marks the value unknown: the next lookup asks the authority again.
    pub(crate) fn forget(&self) {
        self.epoch.fetch_add(1, SeqCst);
        self.known.store(false, SeqCst);
    }

    /// Advances a locally owned generation (memory backend).
    pub(crate) fn bump(&self) -> u64 {
        self.epoch.fetch_add(1, SeqCst);
        self.value.fetch_add(1, SeqCst) + 1
    }
}

/// One namespace's state in this process.
#[derive(Debug)]
pub(crate) struct Namespace {
    pub(crate) name: Arc<str>,
    pub(crate) generation: Generation,
    pub(crate) stats: Counters,
}

/// The registry holds at most this many namespaces before it drops unreferenced ones (see the
/// module docs).
pub(crate) const SWEEP_ABOVE: usize = 4096;

/// All namespaces this process uses or used recently.
#[derive(Debug)]
pub(crate) struct Registry {
    map: Mutex<Map>,
    /// The counters of dropped namespaces, for the totals.
    retired: Counters,
}

#[derive(Debug)]
struct Map {
    names: HashMap<Arc<str>, Arc<Namespace>>,
    /// Sweep when `names` grows beyond this.
    sweep_above: usize,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            map: Mutex::new(Map {
                names: HashMap::new(),
                sweep_above: SWEEP_ABOVE,
            }),
            retired: Counters::default(),
        }
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Map> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The namespace named `name`, created on first use. `local` says whether generations are
    /// owned by this process (memory backend) and so known from the start.
    pub(crate) fn get(&self, name: &str, local: bool) -> Arc<Namespace> {
        let mut map = self.lock();
        if let Some(ns) = map.names.get(name) {
            return ns.clone();
        }
        if map.names.len() >= map.sweep_above {
            self.sweep(&mut map);
        }
        let name: Arc<str> = Arc::from(name);
        let generation = if local {
            // A fresh range per creation: a namespace dropped by a sweep and created again
            // never reuses a generation its entries (e.g. HTTP path generations, which no
            // entry holds) were written under.
            static NEXT: AtomicU64 = AtomicU64::new(1 << 32);
            Generation::known(NEXT.fetch_add(1 << 32, SeqCst))
        } else {
            Generation::default()
        };
        let ns = Arc::new(Namespace {
            name: name.clone(),
            generation,
            stats: Counters::default(),
        });
        map.names.insert(name, ns.clone());
        ns
    }

    /// Drops the namespaces only the registry holds, keeping their counts. New references are
    /// only ever cloned from the map under its lock, so one held by the map alone stays so.
    fn sweep(&self, map: &mut Map) {
        map.names.retain(|_, ns| {
            let used = Arc::strong_count(ns) > 1;
            if !used {
                self.retired.absorb(&ns.stats);
            }
            used
        });
        map.sweep_above = SWEEP_ABOVE.max(map.names.len() * 2);
    }

    /// The counters of the namespaces dropped so far.
    pub(crate) fn retired(&self) -> &Counters {
        &self.retired
    }

    /// How many namespaces are held now.
    pub(crate) fn len(&self) -> usize {
        self.lock().names.len()
    }

    /// The namespace named `name` if it was used.
    pub(crate) fn find(&self, name: &str) -> Option<Arc<Namespace>> {
        self.lock().names.get(name).cloned()
    }

    /// Every namespace used so far.
    pub(crate) fn all(&self) -> Vec<Arc<Namespace>> {
        self.lock().names.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use super::*;
    use crate::{Cache, Config};

    #[test]
    fn a_path_generation_changes_the_stored_namespace_generation_whatever_its_value() {
        for namespace in [0, 1, 0x5555_5555_5555_5555, u64::MAX] {
            let stored = |path| {
                Gens {
                    namespace,
                    all: 7,
                    path,
                }
                .stored()
            };
            assert_eq!(
                stored(0).namespace,
                namespace,
                "no path: the format is kept"
            );
            let seen: std::collections::HashSet<u64> =
                (0..64).map(|path| stored(path).namespace).collect();
            assert_eq!(seen.len(), 64, "namespace generation {namespace:#x}");
        }
    }

    #[test]
    fn a_value_learnt_with_a_current_ticket_is_known() {
        let g = Generation::default();
        assert_eq!(g.get(), None);
        g.learn(g.ticket(), 5);
        assert_eq!(g.get(), Some(5));
        // A changed value read with a current ticket replaces the known one.
        g.learn(g.ticket(), 6);
        assert_eq!(g.get(), Some(6));
    }

    #[test]
    fn forget_makes_the_value_unknown_and_retires_earlier_tickets() {
        let g = Generation::known(5);
        let before = g.ticket();
        g.forget();
        assert_eq!(g.get(), None, "forgotten");
        g.learn(before, 5);
        assert_eq!(
            g.get(),
            None,
            "a value read before the forget is not learnt"
        );
        g.learn(g.ticket(), 6);
        assert_eq!(g.get(), Some(6), "a value read after it is");
    }

    #[test]
    fn bump_returns_the_new_current_generation() {
        let g = Generation::known(7);
        let bumped = g.bump();
        assert_eq!(Some(bumped), g.get());
        assert_ne!(bumped, 7);
        assert_eq!(g.bump(), g.get().unwrap());
    }

    #[test]
    fn unreferenced_namespaces_are_kept_below_the_limit_and_counted() {
        let registry = Registry::default();
        drop(registry.get("first", true));
        for i in 0..10 {
            registry.get(&format!("n{i}"), true);
        }
        assert!(registry.find("first").is_some());
        assert_eq!(registry.len(), 11);
    }

    #[test]
    fn a_namespace_created_again_after_a_sweep_never_reuses_a_generation() {
        let registry = Registry::default();
        let first = registry.get("p", true);
        let old = [first.generation.get().unwrap(), first.generation.bump()];
        let other = registry.get("q", true).generation.get().unwrap();
        assert!(!old.contains(&other), "two names, two ranges");
        drop(first);
        registry.sweep(&mut registry.lock());
        assert!(registry.find("p").is_none(), "swept");
        let again = registry.get("p", true).generation.get().unwrap();
        assert!(!old.contains(&again), "{again:#x} reused from {old:x?}");
    }

    #[test]
    fn after_a_sweep_the_next_waits_until_the_registry_doubled() {
        let registry = Registry::default();
        let held: Vec<_> = (0..SWEEP_ABOVE * 3 / 4)
            .map(|i| registry.get(&format!("held{i}"), true))
            .collect();
        // Fill up with unreferenced names: the next creation sweeps them.
        for i in held.len()..=SWEEP_ABOVE {
            registry.get(&format!("u{i}"), true);
        }
        assert_eq!(registry.len(), held.len() + 1, "swept down to those in use");
        // No sweep until the registry is twice what was left.
        for i in 0..held.len() - 1 {
            registry.get(&format!("v{i}"), true);
        }
        assert_eq!(registry.len(), 2 * held.len());
    }

    #[test]
    fn unreferenced_namespaces_are_dropped_beyond_the_limit_and_their_counts_kept() {
        let registry = Registry::default();
        let held = registry.get("held", true);
        for i in 0..100_000 {
            let ns = registry.get(&format!("n{i}"), true);
            Counters::bump(&ns.stats.misses);
        }
        assert!(registry.len() <= SWEEP_ABOVE + 1, "{}", registry.len());
        assert!(Arc::ptr_eq(&registry.find("held").unwrap(), &held));
        let listed: u64 = registry
            .all()
            .iter()
            .map(|ns| ns.stats.misses.load(Relaxed))
            .sum();
        assert_eq!(registry.retired().snapshot().misses + listed, 100_000);
    }

    #[tokio::test]
    async fn arbitrary_names_through_get_keep_the_registry_bounded_and_totals_right() {
        let cache = Cache::new(Config::memory()).await.unwrap();
        for i in 0..100_000u32 {
            assert_eq!(cache.get::<String>(&format!("ns-{i}"), &i).await, None);
        }
        assert!(
            cache.namespace_count() <= SWEEP_ABOVE + 1,
            "{} namespaces held",
            cache.namespace_count()
        );
        let stats = cache.stats();
        assert_eq!(
            stats.total.misses, 100_000,
            "dropped namespaces still count"
        );
        assert!(stats.namespaces.len() <= SWEEP_ABOVE + 1);
    }

    #[tokio::test]
    async fn an_invalidated_namespace_never_revives_after_churn() {
        let cache = Cache::new(Config::memory()).await.unwrap();
        let old = "old".to_owned();
        cache.set("victim", &1, &old, None).await.unwrap();
        cache.get::<String>("looked-up-only", &1).await;
        cache.invalidate_namespace("victim").await.unwrap();
        assert_eq!(cache.get::<String>("victim", &1).await, None);
        // Churn: many namespaces looked up, some written (their entries keep them).
        for i in 0..(4 * SWEEP_ABOVE) as u32 {
            let name = format!("churn-{i}");
            if i % 100 == 0 {
                cache.set(&name, &i, &i, None).await.unwrap();
            } else {
                cache.get::<u32>(&name, &i).await;
            }
        }
        assert_eq!(
            cache.get::<String>("victim", &1).await,
            None,
            "never revived"
        );
        assert!(cache.namespace_count() <= SWEEP_ABOVE + 1);
        let registry = &cache.inner.state.namespaces;
        assert!(
            registry.find("looked-up-only").is_none(),
            "an unused namespace was dropped"
        );
        assert!(
            registry.find("victim").is_some(),
            "the invalidated entry still stored holds its namespace, and so its generation"
        );
        assert!(
            registry.find("churn-100").is_some(),
            "a written namespace is kept"
        );
        assert_eq!(cache.get::<u32>("churn-100", &100).await, Some(100));
    }
}
