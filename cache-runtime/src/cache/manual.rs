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
    ///
    /// # Cancel safety
    /// Cancel safe: a read changes nothing shared. Dropped while Redis is being read, it counts
    /// neither a hit nor a miss and fills no L1. If it was the circuit breaker's probe (the
    /// first call after the cooldown), its slot is freed at once, without counting a failure
    /// or restarting the cooldown: the breaker stays open and the next call is the probe.
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
    ///
    /// # Cancel safety
    /// Cancel safe. Memory: the value is stored or not. Redis (plain or tiered): the write,
    /// its announcement on the bus and the clean-up after a failed write run to completion in
    /// a task of the library's own runtime, so a dropped future leaves the key either holding
    /// the new value, announced to every process, or deleted everywhere (pending and re-applied
    /// if Redis cannot be reached); the new value may then land after the drop.
    pub async fn set<T: CacheValue>(
        &self,
        namespace: &str,
        key: &(impl Serialize + ?Sized),
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        let ns = self.namespace(namespace);
        let (full_key, type_tag) = self.manual_key::<T>(namespace, key)?;
        if self.inner.remote.is_none() {
            return self.write_manual(ns, full_key, type_tag, value, ttl).await;
        }
        let (cache, value) = (self.clone(), value.clone());
        let write = async move {
            cache
                .write_manual(ns, full_key, type_tag, &value, ttl)
                .await
        };
        match crate::background::spawn(write).await {
            Ok(result) => result,
            // A panic of the value's `Serialize` reaches the caller as on the memory backend.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(Error::Superseded),
        }
    }

    /// [`Cache::set`] once its key is built: stores under the current generations (retried
    /// if they change meanwhile) and, on Redis, deletes the old value everywhere if the write
    /// failed.
    async fn write_manual<T: CacheValue>(
        &self,
        ns: Arc<Namespace>,
        full_key: String,
        type_tag: [u8; 4],
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
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
    ///
    /// # Cancel safety
    /// Cancel safe: at its first poll the key's entry stops being served in this process (no
    /// fill or single-flight of this process that began before it stores or is joined), and
    /// the delete runs to completion in a task of its own: applied to Redis, announced and
    /// acknowledged, or kept pending and re-applied when Redis answers (see
    /// [`crate::tiered`]), even if this future is dropped.
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
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future drops `compute` with it, and nothing stays wedged.
    /// - The leader of the key's single-flight abandons it at once: a waiting caller of this
    ///   process becomes the leader and runs its own `compute` once (see [`crate::flight`]).
    ///   A follower simply stops waiting.
    /// - On Redis, the fill lease is given back at once (in a background task), so other
    ///   processes waiting for the key fill it themselves instead of waiting out
    ///   [`crate::Config::fill_lease`].
    /// - Nothing is stored unless the store had begun (on Redis: was sent); a value stored
    ///   so was computed under the fill lease, which any invalidation voids, so it is never
    ///   stale.
    /// - A breaker probe's slot is freed as in [`Cache::get`].
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
    ///
    /// # Cancel safety
    /// Cancel safe, as [`Cache::get_or_insert_with`].
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
