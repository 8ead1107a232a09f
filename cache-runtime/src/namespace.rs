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
//! The registry of those namespaces, bounded, is in `registry`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use crate::stats::Counters;

mod registry;

pub(crate) use registry::Registry;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
