//! The registry of a cache's namespaces: one [`Namespace`] per name, bounded.
//!
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
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use super::{Generation, Namespace};
use crate::stats::Counters;

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
