//! The manual API for cache-aside code: typed get, set, delete and get-or-insert.

use std::time::Duration;

use serde::Serialize;

use super::store::Write;
use super::*;
use crate::Error;
use crate::key;
use crate::namespace::{Gens, Namespace};
use crate::stats::Counters;

impl Cache {
    /// The full key of a manual entry and its type tag (hashed once per call).
    fn manual_key<T>(
        &self,
        namespace: &str,
        key: &(impl Serialize + ?Sized),
    ) -> Result<(String, [u8; 4]), Error> {
        let tag = type_tag_bytes::<T>();
        let head = key::manual_head(&self.inner.config.prefix, namespace, &key::hex(&tag));
        Ok((key::build(&head, key, self.inner.config.max_key_len)?, tag))
    }

    /// The full backend key of the manual-API entry of type `T` under `(namespace, key)`, as
    /// [`Cache::get`] and [`Cache::set`] use it: handy to inspect an entry in `redis-cli`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// let cache = cache_runtime::Cache::new(cache_runtime::Config::memory()).await?;
    /// let key = cache.key_for::<String>("user", &42)?;
    /// assert_eq!(key, format!("cache:manual:user:{}:42", cache_runtime::key::type_tag::<String>()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn key_for<T>(
        &self,
        namespace: &str,
        key: &(impl Serialize + ?Sized),
    ) -> Result<String, Error> {
        self.manual_key::<T>(namespace, key)
            .map(|(full_key, _)| full_key)
    }

    /// Whether Redis is being skipped after repeated failures (its circuit breaker is open),
    /// e.g. for a health endpoint. Always `false` for the memory backend.
    pub fn circuit_open(&self) -> bool {
        self.inner
            .remote
            .as_ref()
            .is_some_and(|remote| remote.circuit_open())
    }

    /// The value of type `T` stored under `(namespace, key)`, if any. Backend failures count
    /// as a miss (logged and counted, never an error).
    pub async fn get<T: CacheValue>(
        &self,
        namespace: &str,
        key: &(impl Serialize + ?Sized),
    ) -> Option<T> {
        let ns = self.namespace(namespace);
        let Ok((full_key, type_tag)) = self.manual_key::<T>(namespace, key) else {
            Counters::bump(&ns.stats.misses);
            return None;
        };
        let ctx = Ctx {
            namespace: &ns,
            path: None,
            ttl: None,
            type_tag,
        };
        if let Some(value) = self.local_hit::<T>(&ctx, &full_key).await {
            return Some(value);
        }
        match self.lookup::<T>(&ctx, &full_key).await {
            Lookup::Hit(value, _) => {
                Counters::bump(&ns.stats.hits);
                Some(value)
            }
            _ => {
                Counters::bump(&ns.stats.misses);
                None
            }
        }
    }

    /// Stores `value` under `(namespace, key)` for `ttl` (`None`: until evicted or
    /// invalidated). An error means it was not stored, and with Redis the previous value was
    /// deleted instead (or will be, once Redis answers: see [`crate::tiered`]); the caller may
    /// ignore it.
    pub async fn set<T: CacheValue>(
        &self,
        namespace: &str,
        key: &(impl Serialize + ?Sized),
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        let ns = self.namespace(namespace);
        let (full_key, type_tag) = self.manual_key::<T>(namespace, key)?;
        let ctx = Ctx {
            namespace: &ns,
            path: None,
            ttl,
            type_tag,
        };
        let mut stored = Err(Error::Superseded);
        // An explicit value does not depend on what was read before, so a store superseded by
        // a concurrent generation change is simply retried under the new generations.
        for _ in 0..3 {
            stored = match self.current_gens(&ns).await {
                Ok(gens) => {
                    self.store_with(
                        &ctx,
                        &full_key,
                        value,
                        None,
                        gens,
                        None,
                        Write::Always,
                        ctx.ttl,
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            if !matches!(stored, Err(Error::Superseded)) {
                break;
            }
        }
        if let Err(e) = &stored
            && self.inner.remote.is_some()
            && !matches!(e, Error::InvalidationPending)
        {
            // The value this call was to replace must not outlive it: delete it, everywhere
            // (kept pending and re-applied if Redis cannot be reached; see `tiered`).
            let _ = self.invalidate_key_in(&ns, &full_key).await;
        }
        stored.map(|_| ())
    }

    /// Deletes the `T` stored under `(namespace, key)`, in every process.
    pub async fn delete<T: CacheValue>(
        &self,
        namespace: &str,
        key: &(impl Serialize + ?Sized),
    ) -> Result<(), Error> {
        let ns = self.namespace(namespace);
        let (full_key, _) = self.manual_key::<T>(namespace, key)?;
        self.invalidate_key_in(&ns, &full_key).await
    }

    /// Returns the cached `T` under `(namespace, key)`, or runs `compute` once (single-flight),
    /// stores its result for `ttl` and returns it.
    pub async fn get_or_insert_with<T, Fut>(
        &self,
        namespace: &str,
        key: &(impl Serialize + ?Sized),
        ttl: Option<Duration>,
        compute: Fut,
    ) -> T
    where
        T: CacheValue,
        Fut: Future<Output = T>,
    {
        self.get_or_run::<crate::__private::ValueMode, T, Fut>(namespace, key, ttl, compute)
            .await
    }

    /// Like [`Cache::get_or_insert_with`] for fallible computations: only `Ok` is stored.
    pub async fn get_or_try_insert_with<T, E, Fut>(
        &self,
        namespace: &str,
        key: &(impl Serialize + ?Sized),
        ttl: Option<Duration>,
        compute: Fut,
    ) -> Result<T, E>
    where
        T: CacheValue,
        Fut: Future<Output = Result<T, E>>,
    {
        self.get_or_run::<crate::__private::ResultMode, Result<T, E>, Fut>(
            namespace, key, ttl, compute,
        )
        .await
    }

    /// The cached value under `(namespace, key)`, or the output of `compute` run once
    /// (single-flight) and stored when `M` says it is cacheable.
    async fn get_or_run<M, O, Fut>(
        &self,
        namespace: &str,
        key: &(impl Serialize + ?Sized),
        ttl: Option<Duration>,
        compute: Fut,
    ) -> O
    where
        M: Mode<O>,
        Fut: Future<Output = O>,
    {
        let ns = self.namespace(namespace);
        let Ok((full_key, type_tag)) = self.manual_key::<M::Value>(namespace, key) else {
            Counters::bump(&ns.stats.misses);
            return compute.await;
        };
        let ctx = Ctx {
            namespace: &ns,
            path: None,
            ttl,
            type_tag,
        };
        self.run::<M, O, Fut>(&ctx, &full_key, compute).await.0
    }

    /// The generations a value stored now must carry.
    pub(crate) async fn current_gens(&self, ns: &Namespace) -> Result<Gens, Error> {
        self.current_gens_with(ns, None).await
    }

    /// [`Cache::current_gens`] with an HTTP response's path generation.
    pub(crate) async fn current_gens_with(
        &self,
        ns: &Namespace,
        path: Option<&Namespace>,
    ) -> Result<Gens, Error> {
        // Remembered generations are only kept fresh by a working bus (tiered) or owned locally
        // (memory); plain Redis reads them, else a write after another process's
        // invalidation would carry the old generation and be ignored by every reader.
        let trusted = self.inner.remote.is_none() || self.bus_healthy();
        if trusted
            && let (Some(namespace), Some(all)) =
                (ns.generation.get(), self.inner.state.all_gen.get())
            && let Some(path) = path.map_or(Some(0), |p| p.generation.get())
        {
            return Ok(Gens {
                namespace,
                all,
                path,
            });
        }
        let remote = self.inner.remote.as_ref().ok_or(Error::NotConnected)?;
        let (t1, t2) = (ns.generation.ticket(), self.inner.state.all_gen.ticket());
        let t3 = path.map(|p| p.generation.ticket());
        let path_key = path.map(|p| remote.gen_key(&p.name));
        let gens = remote
            .read_gens(&remote.gen_key(&ns.name), path_key.as_deref())
            .await?;
        ns.generation.learn(t1, gens.namespace);
        self.inner.state.all_gen.learn(t2, gens.all);
        if let (Some(p), Some(t3)) = (path, t3) {
            p.generation.learn(t3, gens.path);
        }
        Ok(gens)
    }
}
