//! What one cache instance holds in this process and trusts only while the invalidation bus
//! says it may: the L1 (or the memory backend's store), the remembered generations, the
//! per-key invalidation epochs and the fence. The bus ([`crate::tiered`]) acts on this type
//! alone: it never sees the rest of the cache.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use crate::backend::memory::MemoryStore;
use crate::epoch::KeyEpochs;
use crate::namespace::{Generation, Registry};

/// The in-process state of one cache.
pub(crate) struct LocalState {
    /// The memory backend, or the L1 of a tiered cache.
    pub(crate) l1: Option<MemoryStore>,
    pub(crate) namespaces: Registry,
    /// The generation of the whole cache.
    pub(crate) all_gen: Generation,
    /// Per-key invalidation epochs (see [`crate::epoch`]).
    pub(crate) key_epochs: KeyEpochs,
    /// Bumped whenever the L1 stops being trustworthy: a fill whose read began before must
    /// not land.
    fence: AtomicU64,
}

impl LocalState {
    /// The state of a new cache; `memory_only`: no Redis, so the cache generation is known.
    pub(crate) fn new(l1: Option<MemoryStore>, memory_only: bool) -> Self {
        Self {
            l1,
            namespaces: Registry::default(),
            all_gen: if memory_only {
                Generation::known(0)
            } else {
                Generation::default()
            },
            key_epochs: KeyEpochs::default(),
            fence: AtomicU64::new(0),
        }
    }

    /// Take before reading Redis; an L1 fill may land only while it is unchanged.
    pub(crate) fn fence(&self) -> u64 {
        self.fence.load(SeqCst)
    }

    /// An invalidation of `key`: retires fills and flights of it begun before, drops its L1
    /// entry.
    pub(crate) async fn drop_key(&self, key: &str) {
        self.key_epochs.bump(key);
        if let Some(l1) = &self.l1 {
            l1.remove(key).await;
        }
    }

    /// An invalidation of namespace `name`: its generation is re-read on next use.
    pub(crate) fn drop_namespace(&self, name: &str) {
        if let Some(ns) = self.namespaces.find(name) {
            ns.generation.forget();
        }
    }

    /// An invalidation of everything: no L1 fill begun before lands, the cache generation is
    /// re-read, the L1 is emptied.
    pub(crate) fn drop_all(&self) {
        self.distrust_generations();
        if let Some(l1) = &self.l1 {
            l1.clear();
        }
    }

    /// Retires everything this process holds for the whole cache (an invalidation of
    /// everything starting here): no L1 fill begun before lands, and the cache generation is
    /// re-read.
    pub(crate) fn distrust_generations(&self) {
        self.fence.fetch_add(1, SeqCst);
        self.all_gen.forget();
    }

    /// Flushes the L1 and forgets every remembered generation: nothing in it can be trusted
    /// any more (the bus was lost, the server restarted or failed over).
    pub(crate) fn distrust(&self) {
        self.drop_all();
        for ns in self.namespaces.all() {
            ns.generation.forget();
        }
    }
}
