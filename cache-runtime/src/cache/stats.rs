//! Statistics and sizes of a cache instance.

use super::*;
use crate::stats::Stats;

impl Cache {
    /// Hits, misses, inserts, evictions and errors, in total and per namespace.
    pub async fn stats(&self) -> Stats {
        if let Some(local) = &self.inner.state.l1 {
            local.sync().await;
        }
        // The namespaces listed are held meanwhile, so none of them is retired (counted twice).
        let namespaces = self.inner.state.namespaces.all();
        Stats::collect(
            &self.inner.counters,
            self.inner.state.namespaces.retired(),
            // HTTP path namespaces count nothing of their own (their entries and invalidations
            // count on the handler's namespace): not listed.
            namespaces
                .iter()
                .filter(|ns| !ns.name.starts_with(crate::key::HTTP_PATH_NAMESPACE))
                .map(|ns| (&*ns.name, &ns.stats)),
        )
    }

    /// How many namespaces this cache holds state for (bounded: see [`Stats::namespaces`]).
    #[doc(hidden)]
    pub fn namespace_count(&self) -> usize {
        self.inner.state.namespaces.len()
    }

    /// Entries held in process memory (the memory backend or the L1).
    pub async fn local_entry_count(&self) -> u64 {
        match &self.inner.state.l1 {
            Some(local) => {
                local.sync().await;
                local.entry_count()
            }
            None => 0,
        }
    }
}
