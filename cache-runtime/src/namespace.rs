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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use crate::stats::Counters;

/// The generations an entry was written under: its namespace's and the whole cache's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Gens {
    pub(crate) namespace: u64,
    pub(crate) all: u64,
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

/// All namespaces this process has used.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    map: Mutex<HashMap<Arc<str>, Arc<Namespace>>>,
}

impl Registry {
    /// The namespace named `name`, created on first use. `local` says whether generations are
    /// owned by this process (memory backend) and so known from the start.
    pub(crate) fn get(&self, name: &str, local: bool) -> Arc<Namespace> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ns) = map.get(name) {
            return ns.clone();
        }
        let name: Arc<str> = Arc::from(name);
        let generation = if local {
            Generation::known(0)
        } else {
            Generation::default()
        };
        let ns = Arc::new(Namespace {
            name: name.clone(),
            generation,
            stats: Counters::default(),
        });
        map.insert(name, ns.clone());
        ns
    }

    /// The namespace named `name` if it was used.
    pub(crate) fn find(&self, name: &str) -> Option<Arc<Namespace>> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Every namespace used so far.
    pub(crate) fn all(&self) -> Vec<Arc<Namespace>> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}
