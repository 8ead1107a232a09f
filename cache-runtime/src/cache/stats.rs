//! Statistics and sizes of a cache instance.

use super::*;
use crate::stats::Stats;

impl Cache {
    /// Hits, misses, inserts, evictions and errors, in total and per namespace: read from
    /// counters, nothing awaited. Evictions of the in-process store are counted by its
    /// maintenance, which runs in the background: call [`Cache::run_pending_tasks`] first to
    /// count every eviction so far (tests, exact figures).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// let cache = cache_runtime::Cache::new(cache_runtime::Config::memory()).await?;
    /// assert_eq!(cache.get::<String>("user", &1).await, None);
    /// assert_eq!(cache.stats().total.misses, 1);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn stats(&self) -> Stats {
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

    /// Entries held in process memory (the memory backend or the L1), as of the last
    /// maintenance: exact after [`Cache::run_pending_tasks`] (as moka's `entry_count`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// let cache = cache_runtime::Cache::new(cache_runtime::Config::memory()).await?;
    /// cache.set("user", &1, &"Ada".to_string(), None).await?;
    /// cache.run_pending_tasks().await;
    /// assert_eq!(cache.local_entry_count(), 1);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn local_entry_count(&self) -> u64 {
        self.inner
            .state
            .l1
            .as_ref()
            .map_or(0, |l1| l1.entry_count())
    }

    /// Runs the in-process store's pending maintenance now (as moka's `run_pending_tasks`):
    /// evictions are applied and counted, and [`Cache::local_entry_count`] is exact. It runs
    /// in the background anyway; call it before reading exact figures.
    ///
    /// # Cancel safety
    /// Cancel safe: it only runs moka's housekeeping, which a dropped call leaves for the next
    /// one (or the background) to finish; no entry or counter is left half-updated.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// let cache = cache_runtime::Cache::new(cache_runtime::Config::memory()).await?;
    /// cache.run_pending_tasks().await;
    /// assert_eq!(cache.stats().total.evictions, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn run_pending_tasks(&self) {
        if let Some(l1) = &self.inner.state.l1 {
            l1.sync().await;
        }
    }
}
