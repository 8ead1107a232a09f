//! Invalidation of one key, a namespace or everything, in every process.
//!
//! Each runs to completion in a task of its own: a caller dropped mid-invalidation (a client
//! disconnect, a timeout layer) does not leave it half done; with Redis it is still applied,
//! announced and acknowledged (see [`crate::tiered`]), or kept pending.

use std::sync::Arc;

use super::*;
use crate::Error;
use crate::namespace::Namespace;
use crate::stats::Counters;
use crate::tiered::Pending;

impl Cache {
    pub(crate) async fn invalidate_key_in(
        &self,
        ns: &Arc<Namespace>,
        key: &str,
    ) -> Result<(), Error> {
        Counters::bump(&ns.stats.invalidations);
        self.detached(Pending::Key(key.to_owned())).await
    }

    /// Drops every entry of `namespace`, in every process, in O(1). Returns once no process
    /// can serve them any more (see the guarantee in [`crate::tiered`]); an error means Redis
    /// could not be reached: the invalidation is kept and re-applied when it answers.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// let cache = cache_runtime::Cache::new(cache_runtime::Config::memory()).await?;
    /// cache.set("user", &1, &"Ada".to_string(), None).await?;
    /// cache.invalidate_namespace("user").await?;
    /// assert_eq!(cache.get::<String>("user", &1).await, None);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    /// Cancel safe: at its first poll the namespace's entries stop being served in this
    /// process (no fill or single-flight of this process that began before stores or is
    /// joined); the invalidation then runs in a task of its own and completes (applied to
    /// Redis, announced and acknowledged, or kept pending and re-applied when Redis answers)
    /// even if this future is dropped. Dropped before its first poll, it does nothing.
    pub async fn invalidate_namespace(&self, namespace: &str) -> Result<(), Error> {
        self.invalidate_namespace_counted(namespace, namespace)
            .await
    }

    /// [`Cache::invalidate_namespace`] of `namespace`, counted on `counted` (an HTTP path
    /// namespace counts on its handler's namespace).
    pub(crate) async fn invalidate_namespace_counted(
        &self,
        namespace: &str,
        counted: &str,
    ) -> Result<(), Error> {
        Counters::bump(&self.namespace(counted).stats.invalidations);
        self.detached(Pending::Namespace(namespace.to_owned()))
            .await
    }

    /// Drops every entry of this cache, in every process.
    ///
    /// # Cancel safety
    /// Cancel safe, as [`Cache::invalidate_namespace`].
    pub async fn invalidate_all(&self) -> Result<(), Error> {
        Counters::bump(&self.inner.counters.invalidations);
        self.detached(Pending::All).await
    }

    /// Runs the invalidation in a task of its own and waits for it. Its effect in this process
    /// (epochs, generations) is immediate, before the first `await`.
    async fn detached(&self, op: Pending) -> Result<(), Error> {
        self.retire_locally(&op);
        let cache = self.clone();
        let task = async move { cache.invalidate_now(op).await };
        crate::background::spawn(task)
            .await
            .unwrap_or(Err(Error::InvalidationPending))
    }

    /// The synchronous part of an invalidation in this process: entries of the key, namespace
    /// or cache stop being served at once (memory: for good; tiered: until Redis is re-read).
    fn retire_locally(&self, op: &Pending) {
        let inner = &*self.inner;
        match op {
            Pending::Key(key) => inner.state.key_epochs.bump(key),
            Pending::Namespace(name) if inner.remote.is_none() => {
                self.namespace(name).generation.bump();
            }
            Pending::Namespace(name) => self.namespace(name).generation.forget(),
            Pending::All if inner.remote.is_none() => {
                inner.state.all_gen.bump();
            }
            Pending::All => inner.state.distrust_generations(),
        }
    }

    async fn invalidate_now(&self, op: Pending) -> Result<(), Error> {
        let inner = &*self.inner;
        if inner.remote.is_none() {
            // Already retired (`retire_locally`); free the memory of a removed key.
            if let (Pending::Key(key), Some(local)) = (&op, &inner.state.l1) {
                local.remove(key).await;
            }
            return Ok(());
        }
        crate::tiered::drop_local(&inner.state, &op).await;
        let result = crate::tiered::apply(&self.inner, op.clone()).await;
        // Reads that overlapped may have seen (or learnt) the old state: retire them too.
        crate::tiered::drop_local(&inner.state, &op).await;
        result
    }
}
