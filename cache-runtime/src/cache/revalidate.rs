//! A refresh the client asked for (HTTP `no-cache`, `max-age=0`): [`Cache::refresh`] runs the
//! source and stores its value over the entry; under `stale`, [`Cache::revalidate`] keeps the
//! stored entry in place until a value replaces it, so a failing source is answered with the
//! stored entry (fail-safe), as a plain request past `expire` is.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use super::fill::FillStart;
use super::refresh::Read;
use super::resil::{FillOptions, StaleCopy, keep_for};
use super::*;
use crate::stats::Counters;

/// What [`Cache::revalidate`] answered with.
pub(crate) enum Revalidated<O> {
    /// The source's output (stored when cacheable and the entry was not replaced meanwhile).
    Source(O, Option<EntryMeta>),
    /// The source failed (or is backing off after a failure): the stored entry, fresh or
    /// within its `stale` window.
    Stored(O, Option<EntryMeta>),
}

impl Cache {
    /// Runs `fut` for `key` and stores its value over the entry it read (an invalidation
    /// meanwhile wins: the value is then returned, not stored). When `fut` fails ([`Mode::failed`],
    /// or a panic) and an entry, fresh or stale, was there and still is, the entry is served
    /// and the source is not asked again for [`super::resil::BACKOFF`]. Without an entry it is
    /// [`Cache::refresh`].
    pub(crate) async fn revalidate<M, O, Fut>(
        &self,
        ctx: &Ctx<'_>,
        opts: &FillOptions,
        key: &str,
        fut: Fut,
    ) -> Revalidated<O>
    where
        M: Mode<O>,
        Fut: Future<Output = O>,
    {
        let seen = self.lookup_full::<M::Value>(ctx, key).await;
        let copy = match seen.lookup {
            Lookup::Hit(value, meta) => Some(StaleCopy {
                value,
                meta,
                bytes: seen.bytes,
            }),
            _ => seen.stale,
        };
        let Some(copy) = copy else {
            let (out, meta) = self.refresh::<M, O, Fut>(ctx, key, fut).await;
            return Revalidated::Source(out, meta);
        };
        if self.inner.resil.backing_off(key)
            && let Some((out, meta, _)) = self.serve_stale::<M, O>(ctx, key, &copy).await
        {
            return Revalidated::Stored(out, meta);
        }
        Counters::bump(&ctx.namespace.stats.misses);
        let ticket = self.inner.state.key_epochs.ticket(key);
        let out = AssertUnwindSafe(fut).catch_unwind().await;
        if let Some(value) = out.as_ref().ok().and_then(M::cacheable) {
            let read = Read::new(copy.meta, copy.bytes.clone());
            let mut meta = None;
            if let Some((gens, bytes)) = self.unchanged::<M::Value>(ctx, key, &read).await {
                let keep = keep_for(ctx.ttl, opts.stale);
                let over = bytes.as_deref();
                meta = self
                    .store_fill(ctx, key, value, None, gens, ticket, None, over, keep)
                    .await;
            }
            let out = out.unwrap_or_else(|_| unreachable!("a cacheable output"));
            return Revalidated::Source(out, meta);
        }
        if out.as_ref().map_or(true, M::failed) {
            self.inner.resil.failed(key);
            if let Some((out, meta, _)) = self.serve_stale::<M, O>(ctx, key, &copy).await {
                return Revalidated::Stored(out, meta);
            }
        }
        match out {
            Ok(out) => Revalidated::Source(out, None),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Runs `fut` without looking `key` up and stores its value over the entry (an HTTP client's
    /// `Cache-Control: no-cache`). On a backend failure the value is returned, not stored.
    pub(crate) async fn refresh<M, O, Fut>(
        &self,
        ctx: &Ctx<'_>,
        key: &str,
        fut: Fut,
    ) -> (O, Option<EntryMeta>)
    where
        M: Mode<O>,
        Fut: Future<Output = O>,
    {
        Counters::bump(&ctx.namespace.stats.misses);
        let ticket = self.inner.state.key_epochs.ticket(key);
        let gens = match self
            .current_gens_with(ctx.namespace, ctx.path.map(|p| &**p))
            .await
        {
            Ok(gens) => gens,
            Err(_) => return (fut.await, None),
        };
        let (gens, lease) = match self.inner.remote {
            None => (gens, None),
            Some(_) => match self.begin_fill::<M::Value>(ctx, key, gens, true).await {
                FillStart::Leased(lease, gens) => (gens, Some(lease)),
                _ => return (fut.await, None),
            },
        };
        let out = fut.await;
        let Some(value) = M::cacheable(&out) else {
            return (out, None);
        };
        let meta = self
            .store_fill(ctx, key, value, None, gens, ticket, lease, None, ctx.ttl)
            .await;
        (out, meta)
    }
}
