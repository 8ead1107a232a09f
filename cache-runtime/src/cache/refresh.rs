//! The detached parts of resilience, for bodies that are `Send + 'static`: answering within
//! `timeout` with a stale value while the body goes on in the background, and background
//! refreshes of entries older than `refresh_after`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use super::fill::Recompute;
use super::resil::{BACKOFF, Detached, FillOptions, Outcome, Refreshing, StaleCopy};
use super::*;
use crate::flight::Shared;
use crate::namespace::{Gens, Namespace};
use crate::stats::Counters;

/// What a detached task needs to rebuild a [`Ctx`].
#[derive(Clone)]
pub(crate) struct Site {
    pub(crate) namespace: Arc<Namespace>,
    /// An HTTP response's path namespace (see [`Ctx::path`]).
    pub(crate) path: Option<Arc<Namespace>>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) type_tag: [u8; 4],
}

impl Site {
    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            namespace: &self.namespace,
            ttl: self.ttl,
            type_tag: self.type_tag,
            path: self.path.as_ref(),
        }
    }
}

/// The entry a refresh was started from: its meta and, when read from Redis, its bytes.
pub(crate) struct Read {
    meta: EntryMeta,
    bytes: Option<Vec<u8>>,
}

impl Read {
    pub(crate) fn new(meta: EntryMeta, bytes: Option<Vec<u8>>) -> Self {
        Self { meta, bytes }
    }
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
                let read = Read::new(meta, seen.bytes);
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
        // One detached body per key in this process: later callers wait on its outcome.
        let outcome = match Detached::claim(self, &key, self.stamp(&ctx, &key)) {
            Detached::Running(outcome) => outcome,
            Detached::Claimed(slot) => {
                let (cache, task_key, task_site) = (self.clone(), key.clone(), site.clone());
                let task = async move {
                    let ctx = task_site.ctx();
                    let run = cache.run_from::<M, O, Fut>(&ctx, &opts, &task_key, fut, Some(seen));
                    let out = run.await.0;
                    let value = M::cacheable(&out).map(|v| Arc::new(v.clone()) as Shared);
                    slot.publish(value);
                    out
                };
                let mut handle = crate::background::spawn_body(task);
                match tokio::time::timeout(timeout, &mut handle).await {
                    Ok(Ok(out)) => return out,
                    Ok(Err(e)) => std::panic::resume_unwind(e.into_panic()),
                    Err(_elapsed) => {}
                }
                if let Some(served) = self.serve_stale::<M, O>(&ctx, &key, &copy).await {
                    return served.0;
                }
                // Invalidated meanwhile: the stale value must not be served; wait for the body.
                return match handle.await {
                    Ok(out) => out,
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                };
            }
        };
        self.await_detached::<M, O, Fut>(&ctx, &opts, &key, fut, timeout, &copy, outcome)
            .await
    }

    /// A caller that found the key's body running detached in this process: its value if it
    /// comes within `timeout`, else the stale value; its own body when neither can be had
    /// (the detached body failed and the stale copy was invalidated).
    #[allow(clippy::too_many_arguments)]
    async fn await_detached<M, O, Fut>(
        &self,
        ctx: &Ctx<'_>,
        opts: &FillOptions,
        key: &str,
        fut: Fut,
        timeout: Duration,
        copy: &StaleCopy<M::Value>,
        mut outcome: Outcome,
    ) -> O
    where
        M: Mode<O>,
        Fut: Future<Output = O>,
    {
        let value = async {
            let done = outcome.wait_for(Option::is_some).await.ok()?;
            let shared = done.as_ref().cloned().flatten()?;
            shared.downcast_ref::<M::Value>().cloned()
        };
        // Past the timeout, or the body failed: the stale value.
        if let Ok(Some(value)) = tokio::time::timeout(timeout, value).await {
            Counters::bump(&ctx.namespace.stats.hits);
            return M::from_value(value);
        }
        if let Some(served) = self.serve_stale::<M, O>(ctx, key, copy).await {
            return served.0;
        }
        Box::pin(self.run_from::<M, O, Fut>(ctx, opts, key, fut, None))
            .await
            .0
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
    /// running: in this process (a per-key set) or, on Redis, anywhere (the recompute lease, on
    /// a key of its own, so the entry stays readable meanwhile). The new value is stored over
    /// exactly the bytes the refresh read from Redis (a tiered hit answered by the L1 reads
    /// them again) or under the key's current ticket (memory), so an invalidation meanwhile
    /// wins. A failed refresh keeps the entry and holds the lease for [`BACKOFF`], so no process
    /// retries the source before then. Callers never wait for it.
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
        let Some(claim) = Refreshing::claim(self, &key) else {
            return;
        };
        let cache = self.clone();
        crate::background::spawn_body(async move {
            let _claim = claim;
            let ctx = site.ctx();
            let lease = match cache.begin_recompute(ctx.namespace, &key).await {
                Recompute::Leased(lease) => Some(lease),
                // Memory, Redis failing (then the entry cannot be read again: no refresh), or
                // `cross_process_single_flight(false)`.
                Recompute::Alone => None,
                Recompute::Held => return,
            };
            // Refreshed meanwhile (by a refresh that ended just before ours began) or
            // invalidated: nothing to do.
            let Some((gens, bytes)) = cache.unchanged::<M::Value>(&ctx, &key, &read).await else {
                if let Some(lease) = lease {
                    lease.release().await;
                }
                return;
            };
            Counters::bump(&ctx.namespace.stats.refreshes);
            let ticket = cache.inner.state.key_epochs.ticket(&key);
            let out = AssertUnwindSafe(fut).catch_unwind().await;
            let Some(value) = out.as_ref().ok().and_then(M::cacheable) else {
                Counters::bump(&ctx.namespace.stats.refresh_failures);
                crate::warn::warn_limited!(key, namespace = %ctx.namespace.name, "background refresh failed; the entry is kept");
                if let Some(lease) = lease {
                    lease.hold_for(BACKOFF).await;
                }
                return;
            };
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
            if let Some(lease) = lease {
                lease.release().await;
            }
        });
    }

    /// The entry a refresh started from, if it is still there unchanged: its generations and,
    /// on Redis, its stored bytes (read from Redis itself: a tiered hit came from the L1).
    pub(super) async fn unchanged<T: CacheValue>(
        &self,
        ctx: &Ctx<'_>,
        key: &str,
        read: &Read,
    ) -> Option<(Gens, Option<Vec<u8>>)> {
        let Some(remote) = &self.inner.remote else {
            let again = self.lookup_full::<T>(ctx, key).await;
            let same = matches!(again.lookup, Lookup::Hit(_, meta) if meta == read.meta);
            return same.then_some((again.gens, None));
        };
        let path = ctx.path.map(|p| &*p.name);
        let now = remote.read(key, &ctx.namespace.name, path).await.ok()?;
        let bytes = now.bytes?;
        if read.bytes.as_ref().is_some_and(|b| *b != bytes) {
            return None;
        }
        // Valid under the current generations (an invalidation since would have changed them).
        let (_, meta) = self.open::<T>(ctx, &bytes, now.gens).ok()??;
        (meta == read.meta).then_some((now.gens, Some(bytes)))
    }
}

impl Cache {
    /// [`Cache::get_or_insert_with`] with resilience options: `ttl`, `stale`, `timeout`,
    /// `refresh_after` (see [`FillOptions`](crate::FillOptions) and the options table in the
    /// crate docs). The computation may go on, or start, in the background after the caller
    /// has its answer, so it must be `Send + 'static`. Options that do not make sense together
    /// (see [`FillOptions::validate`]) are logged as a warning, and the call still runs.
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
        if let Err(e) = opts.validate() {
            crate::warn::warn_limited!(namespace, "{e}; the options that cannot apply are ignored");
        }
        let Ok(full_key) = self.key_for::<M::Value>(namespace, key) else {
            Counters::bump(&ns.stats.misses);
            return compute.await;
        };
        let site = Site {
            namespace: ns,
            path: None,
            ttl: opts.ttl,
            type_tag: type_tag_bytes::<M::Value>(),
        };
        self.run_detachable::<M, O, Fut>(site, opts, full_key, compute)
            .await
    }
}
