//! The detached parts of resilience, for bodies that are `Send + 'static`: answering within
//! `timeout` with a stale value while the body goes on in the background, and background
//! refreshes of entries older than `refresh_after`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use super::resil::{FillOptions, Refreshing};
use super::*;
use crate::backend::lease::{Acquired, LeaseToken};
use crate::namespace::{Gens, Namespace};
use crate::stats::Counters;

/// What a detached task needs to rebuild a [`Ctx`].
#[derive(Clone)]
pub(crate) struct Site {
    pub(crate) namespace: Arc<Namespace>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) type_tag: [u8; 4],
}

impl Site {
    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            namespace: &self.namespace,
            ttl: self.ttl,
            type_tag: self.type_tag,
            // Detached calls are `#[cached]` functions and the manual API, never HTTP paths.
            path: None,
        }
    }
}

/// The entry a refresh was started from.
pub(crate) struct Read {
    meta: EntryMeta,
    gens: Gens,
    bytes: Option<Vec<u8>>,
}

impl Cache {
    /// A cached call whose body may be detached: hits older than `refresh_after` start a
    /// background refresh; with a stale value and a `timeout`, the caller gets the stale value
    /// once the timeout passes and the body goes on in the background, storing its value.
    pub(crate) async fn run_detachable<M, O, Fut>(
        &self,
        site: Site,
        opts: FillOptions,
        key: String,
        fut: Fut,
    ) -> O
    where
        M: Mode<O>,
        O: Send + 'static,
        Fut: Future<Output = O> + Send + 'static,
    {
        let ctx = site.ctx();
        if let Some(value) = self.local_hit_young::<M::Value>(&ctx, &key, &opts).await {
            return M::from_value(value);
        }
        let seen = self.lookup_full::<M::Value>(&ctx, &key).await;
        if let Lookup::Hit(value, meta) = seen.lookup {
            Counters::bump(&ctx.namespace.stats.hits);
            if opts.refresh_after.is_some_and(|after| seen.age >= after) {
                let read = Read {
                    meta,
                    gens: seen.gens,
                    bytes: seen.bytes,
                };
                self.start_refresh::<M, O, Fut>(site.clone(), opts, key, fut, read);
            }
            return M::from_value(value);
        }
        let (Some(timeout), Some(copy), Some(_)) = (opts.timeout, seen.stale.clone(), opts.stale)
        else {
            return Box::pin(self.run_from::<M, O, Fut>(&ctx, &opts, &key, fut, Some(seen)))
                .await
                .0;
        };
        let (cache, task_key, task_site) = (self.clone(), key.clone(), site.clone());
        let task = async move {
            let ctx = task_site.ctx();
            let run = cache.run_from::<M, O, Fut>(&ctx, &opts, &task_key, fut, Some(seen));
            run.await.0
        };
        let mut handle = crate::background::spawn(task);
        match tokio::time::timeout(timeout, &mut handle).await {
            Ok(Ok(out)) => return out,
            Ok(Err(e)) => std::panic::resume_unwind(e.into_panic()),
            Err(_elapsed) => {}
        }
        if let Some(served) = self.serve_stale::<M, O>(&ctx, &key, &copy).await {
            return served.0;
        }
        // Invalidated meanwhile: the stale value must not be served; wait for the body.
        match handle.await {
            Ok(out) => out,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// An in-process hit that needs no refresh (the fast path); counts the hit.
    async fn local_hit_young<T: CacheValue>(
        &self,
        ctx: &Ctx<'_>,
        key: &str,
        opts: &FillOptions,
    ) -> Option<T> {
        if opts.refresh_after.is_some() {
            return None;
        }
        self.local_hit::<T>(ctx, key).await
    }

    /// Starts a background refresh of `key` (a hit older than `refresh_after`) unless one is
    /// running: in this process (a per-key set) or, on Redis, anywhere (a refresh lease on a
    /// key of its own, so the entry stays readable meanwhile). The new value is stored over
    /// exactly the bytes that were read (Redis) or under the key's current ticket (memory), so
    /// an invalidation meanwhile wins. Callers never wait for it.
    pub(crate) fn start_refresh<M, O, Fut>(
        &self,
        site: Site,
        opts: FillOptions,
        key: String,
        fut: Fut,
        read: Read,
    ) where
        M: Mode<O>,
        O: Send + 'static,
        Fut: Future<Output = O> + Send + 'static,
    {
        // On Redis a refresh stores only over the exact bytes it started from; a hit answered
        // by the L1 has none, so it starts no refresh (a later Redis read will).
        if self.inner.remote.is_some() && read.bytes.is_none() {
            return;
        }
        let Some(claim) = Refreshing::claim(self, &key) else {
            return;
        };
        let cache = self.clone();
        crate::background::spawn(async move {
            let _claim = claim;
            let lease_key = format!("{key}\u{0}refresh");
            let token = LeaseToken::new();
            if let Some(remote) = &cache.inner.remote {
                let term = cache.inner.config.fill_lease;
                match remote
                    .acquire_lease(&lease_key, &token, term, false, &[])
                    .await
                {
                    Ok(Acquired::Granted) => {}
                    _ => return,
                }
            }
            let ctx = site.ctx();
            // Refreshed meanwhile (by a refresh that ended just before ours began) or
            // invalidated: nothing to do.
            let again = cache.lookup_full::<M::Value>(&ctx, &key).await;
            let unchanged = matches!(again.lookup, Lookup::Hit(_, meta) if meta == read.meta)
                && again.bytes == read.bytes;
            if !unchanged {
                if let Some(remote) = &cache.inner.remote {
                    let _ = remote.release_lease(&lease_key, &token).await;
                }
                return;
            }
            let Read { gens, bytes, .. } = read;
            Counters::bump(&ctx.namespace.stats.refreshes);
            let ticket = cache.inner.state.key_epochs.ticket(&key);
            let out = AssertUnwindSafe(fut).catch_unwind().await;
            match out.as_ref().ok().and_then(M::cacheable) {
                Some(value) => {
                    let keep = super::resil::keep_for(ctx.ttl, opts.stale);
                    let shared = Some(Arc::new(value.clone()) as crate::flight::Shared);
                    cache
                        .store_fill(
                            &ctx,
                            &key,
                            value,
                            shared,
                            gens,
                            ticket,
                            None,
                            bytes.as_deref(),
                            keep,
                        )
                        .await;
                }
                None => {
                    Counters::bump(&ctx.namespace.stats.refresh_failures);
                    crate::warn::warn_limited!(key, namespace = %ctx.namespace.name, "background refresh failed; the entry is kept");
                }
            }
            if let Some(remote) = &cache.inner.remote {
                let _ = remote.release_lease(&lease_key, &token).await;
            }
        });
    }
}

impl Cache {
    /// [`Cache::get_or_insert_with`] with resilience options: `ttl`, `stale`, `timeout`,
    /// `refresh_after` (see [`FillOptions`](crate::FillOptions) and the options table in the
    /// crate docs). The computation may go on, or start, in the background after the caller
    /// has its answer, so it must be `Send + 'static`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_runtime::{Cache, Config, FillOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// let cache = Cache::new(Config::memory()).await?;
    /// let opts = FillOptions::new().ttl(Duration::from_secs(60)).stale(Duration::from_secs(600));
    /// let price = cache.get_or_insert_with_options("price", &7, opts, async { 42u64 }).await;
    /// assert_eq!(price, 42);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    /// Cancel safe, as [`Cache::get_or_insert_with`], with one difference: the parts that
    /// run in a task of their own are not stopped by a dropped caller. With `timeout` and a
    /// stale value, the body runs in such a task, finishes and stores its value (over its
    /// lease: an invalidation meanwhile wins); a background refresh started by a hit
    /// (`refresh_after`) never depended on its caller.
    pub async fn get_or_insert_with_options<T, Fut>(
        &self,
        namespace: &str,
        key: &(impl serde::Serialize + ?Sized),
        opts: FillOptions,
        compute: Fut,
    ) -> T
    where
        T: CacheValue,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.run_with_options::<crate::__private::ValueMode, T, Fut>(namespace, key, opts, compute)
            .await
    }

    /// [`Cache::get_or_try_insert_with`] with resilience options: only `Ok` is stored, and
    /// with `stale` an `Err` (or a panic, or `timeout`) past expiry returns the stale value.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_runtime::{Cache, Config, FillOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// let cache = Cache::new(Config::memory()).await?;
    /// let opts = FillOptions::new().ttl(Duration::from_secs(60)).stale(Duration::from_secs(600));
    /// let got: Result<u64, String> =
    ///     cache.get_or_try_insert_with_options("price", &7, opts, async { Ok(42) }).await;
    /// assert_eq!(got, Ok(42));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    /// Cancel safe, as [`Cache::get_or_insert_with_options`].
    pub async fn get_or_try_insert_with_options<T, E, Fut>(
        &self,
        namespace: &str,
        key: &(impl serde::Serialize + ?Sized),
        opts: FillOptions,
        compute: Fut,
    ) -> Result<T, E>
    where
        T: CacheValue,
        E: Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.run_with_options::<crate::__private::ResultMode, Result<T, E>, Fut>(
            namespace, key, opts, compute,
        )
        .await
    }

    async fn run_with_options<M, O, Fut>(
        &self,
        namespace: &str,
        key: &(impl serde::Serialize + ?Sized),
        opts: FillOptions,
        compute: Fut,
    ) -> O
    where
        M: Mode<O>,
        O: Send + 'static,
        Fut: Future<Output = O> + Send + 'static,
    {
        let ns = self.namespace(namespace);
        let Ok(full_key) = self.key_for::<M::Value>(namespace, key) else {
            Counters::bump(&ns.stats.misses);
            return compute.await;
        };
        let site = Site {
            namespace: ns,
            ttl: opts.ttl,
            type_tag: type_tag_bytes::<M::Value>(),
        };
        self.run_detachable::<M, O, Fut>(site, opts, full_key, compute)
            .await
    }
}
