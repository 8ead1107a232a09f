//! The cache's side of the invalidation bus: the crate-private view the bus has of it
//! ([`Host`]), and the health getters users read.

use super::*;
use crate::backend::redis::RedisStore;
use crate::local_state::LocalState;
use crate::tiered::{Bus, Host};

impl Host for Inner {
    fn config(&self) -> &Config {
        &self.config
    }
    fn remote(&self) -> Option<&RedisStore> {
        self.remote.as_ref()
    }
    fn counters(&self) -> &Counters {
        &self.counters
    }
    fn bus(&self) -> &Bus {
        &self.bus
    }
    fn local(&self) -> &LocalState {
        &self.state
    }
    fn notices(&self) -> &crate::fill_notice::FillNotices {
        &self.notices
    }
}

impl Cache {
    /// Redis backends: whether the invalidation bus is up (this process hears other
    /// processes' invalidations within the validity term); on a tiered cache, whether the L1 is
    /// in use. Always `false` for the memory backend.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// let cache = cache_runtime::Cache::new(cache_runtime::Config::memory()).await?;
    /// assert!(!cache.bus_healthy());
    /// # Ok(())
    /// # }
    /// ```
    pub fn bus_healthy(&self) -> bool {
        self.inner.remote.is_some() && self.inner.bus.healthy()
    }

    /// Invalidations that could not reach Redis yet and will be re-applied.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// let cache = cache_runtime::Cache::new(cache_runtime::Config::memory()).await?;
    /// assert_eq!(cache.pending_invalidations(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn pending_invalidations(&self) -> usize {
        self.inner.bus.pending_len()
    }

    /// Tiered caches: the L1 validity term `T = 2 × bus_heartbeat + timeout` (1.05 s by
    /// default). A process that cannot hear the bus stops serving its L1 within `T`, and an
    /// invalidation waits at most `T` for a process that does not acknowledge it (see
    /// [`crate::tiered`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// let cache = cache_runtime::Cache::new(cache_runtime::Config::memory()).await?;
    /// assert!(cache.staleness_bound() > std::time::Duration::ZERO);
    /// # Ok(())
    /// # }
    /// ```
    pub fn staleness_bound(&self) -> Duration {
        crate::tiered::term(&self.inner.config)
    }

    /// Waits until every pending invalidation has been re-applied to Redis (and announced), or
    /// until `limit` has passed; returns how many are still pending. Call it on a graceful
    /// shutdown, so that invalidations made while Redis was unreachable are not lost with the
    /// process.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// let cache = cache_runtime::Cache::new(cache_runtime::Config::memory()).await?;
    /// assert_eq!(cache.flush_pending(std::time::Duration::from_secs(5)).await, 0);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    /// Cancel safe: it only waits; the re-application goes on in the background.
    pub async fn flush_pending(&self, limit: Duration) -> usize {
        crate::tiered::flush_pending(&self.inner, limit).await
    }
}
