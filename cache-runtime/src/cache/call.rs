//! The cached call: lookup, single-flight on a miss, store.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;

use super::fill::{FillStart, LeaseGuard};
use super::resil::{FillOptions, Seen, StaleCopy, keep_for};
use super::store::Write;
use super::*;
use crate::Error;
use crate::epoch::KeyTicket;
use crate::flight::Leader;
use crate::flight::{Outcome, Role, Shared};
use crate::namespace::Gens;
use crate::stats::Counters;

impl Cache {
    /// Looks `key` up; on a miss runs `fut` once per key (single-flight) and stores its value.
    pub(crate) async fn run<M, O, Fut>(
        &self,
        ctx: &Ctx<'_>,
        key: &str,
        fut: Fut,
    ) -> (O, Option<EntryMeta>, bool)
    where
        M: Mode<O>,
        Fut: Future<Output = O>,
    {
        let opts = FillOptions::default();
        self.run_from::<M, O, Fut>(ctx, &opts, key, fut, None).await
    }

    /// [`Cache::run`] under `opts` (`stale`), continuing from a `first` lookup the caller
    /// already made: `#[cached]` answers hits itself and only enters (and boxes) this miss
    /// path on a miss.
    pub(crate) async fn run_from<M, O, Fut>(
        &self,
        ctx: &Ctx<'_>,
        opts: &FillOptions,
        key: &str,
        fut: Fut,
        mut first: Option<Seen<M::Value>>,
    ) -> (O, Option<EntryMeta>, bool)
    where
        M: Mode<O>,
        Fut: Future<Output = O>,
    {
        let ns = ctx.namespace;
        let mut fut = Some(fut);
        let mut stale = None;
        loop {
            let seen = match first.take() {
                Some(seen) => seen,
                None => self.lookup_full::<M::Value>(ctx, key).await,
            };
            if seen.stale.is_some() && opts.stale.is_some() {
                stale = seen.stale;
            }
            let gens = match seen.lookup {
                Lookup::Hit(value, meta) => {
                    Counters::bump(&ns.stats.hits);
                    return (M::from_value(value), Some(meta), true);
                }
                Lookup::Miss(gens) => gens,
                Lookup::Bypass => {
                    Counters::bump(&ns.stats.misses);
                    let out = fut.take().expect("body runs once").await;
                    return (out, None, false);
                }
            };
            if let Some(copy) = &stale
                && self.inner.resil.backing_off(key)
                && let Some(served) = self.serve_stale::<M, O>(ctx, key, copy).await
            {
                return served;
            }
            match self.inner.flights.join(key, self.stamp(ctx, key)) {
                Role::Leader(leader) => {
                    let body = fut.take().expect("body runs once");
                    return self
                        .lead::<M, O, Fut>(ctx, opts, key, body, gens, leader, stale)
                        .await;
                }
                Role::Follower(follower) => match follower.outcome().await {
                    Outcome::Value(shared) => {
                        if let Some(value) = shared.downcast_ref::<M::Value>() {
                            Counters::bump(&ns.stats.hits);
                            return (M::from_value(value.clone()), None, true);
                        }
                        Counters::bump(&ns.stats.misses);
                        return (fut.take().expect("body runs once").await, None, false);
                    }
                    Outcome::Failed => {
                        if let Some(copy) = &stale
                            && let Some(served) = self.serve_stale::<M, O>(ctx, key, copy).await
                        {
                            return served;
                        }
                        Counters::bump(&ns.stats.misses);
                        return (fut.take().expect("body runs once").await, None, false);
                    }
                    Outcome::Abandoned => continue,
                },
            }
        }
    }

    /// The leader of a miss: takes the fill lease (or, over a stale entry, replaces exactly the
    /// bytes it read), runs the body, stores its value. With a stale copy, a failing body
    /// (nothing to cache, or a panic) serves the copy instead.
    #[allow(clippy::too_many_arguments)]
    async fn lead<M, O, Fut>(
        &self,
        ctx: &Ctx<'_>,
        opts: &FillOptions,
        key: &str,
        fut: Fut,
        gens: Gens,
        leader: Leader<'_>,
        stale: Option<StaleCopy<M::Value>>,
    ) -> (O, Option<EntryMeta>, bool)
    where
        M: Mode<O>,
        Fut: Future<Output = O>,
    {
        let ns = ctx.namespace;
        // In process, look again: a caller that missed just before the previous flight stored
        // its value finds it now instead of running the body again.
        let gens = match self.inner.remote {
            None => match self.lookup::<M::Value>(ctx, key).await {
                Lookup::Hit(value, meta) => {
                    leader.share(Arc::new(value.clone()));
                    Counters::bump(&ns.stats.hits);
                    return (M::from_value(value), Some(meta), true);
                }
                Lookup::Miss(gens) => gens,
                Lookup::Bypass => gens,
            },
            Some(_) => gens,
        };
        // An invalidation of this key while the body runs means the body may have read old
        // data: its result is returned but not stored.
        let ticket = self.inner.state.key_epochs.ticket(key);
        let replacing = stale.as_ref().and_then(|s| s.bytes.clone());
        let (gens, lease) = match (&self.inner.remote, &replacing) {
            (None, _) | (Some(_), Some(_)) => (gens, None),
            (Some(_), None) => match self.begin_fill::<M::Value>(ctx, key, gens, false).await {
                FillStart::Leased(lease, gens) => (gens, Some(lease)),
                FillStart::Hit(value, meta) => {
                    leader.share(Arc::new(value.clone()));
                    Counters::bump(&ns.stats.hits);
                    return (M::from_value(value), Some(meta), true);
                }
                FillStart::Uncached => {
                    leader.finish(None);
                    Counters::bump(&ns.stats.misses);
                    let out = fut.await;
                    return (out, None, false);
                }
            },
        };
        Counters::bump(&ns.stats.misses);
        // With a stale copy to fall back on, a panic is a failure like an error.
        let out = match &stale {
            None => Ok(fut.await),
            Some(_) => AssertUnwindSafe(fut).catch_unwind().await,
        };
        let Some(value) = out.as_ref().ok().and_then(M::cacheable) else {
            leader.finish(None);
            if let Some(lease) = lease {
                lease.release().await;
            }
            if let Some(copy) = &stale {
                self.inner.resil.failed(key);
                if let Some(served) = self.serve_stale::<M, O>(ctx, key, copy).await {
                    return served;
                }
            }
            return match out {
                Ok(out) => (out, None, false),
                Err(panic) => std::panic::resume_unwind(panic),
            };
        };
        self.inner.resil.recovered(key);
        let shared: Shared = Arc::new(value.clone());
        // Followers get the value now; the flight ends when `leader` drops, after the store, so
        // callers arriving meanwhile do not run the body again.
        leader.share(shared.clone());
        let keep = keep_for(ctx.ttl, opts.stale);
        let meta = self
            .store_fill(
                ctx,
                key,
                value,
                Some(shared),
                gens,
                ticket,
                lease,
                replacing.as_deref(),
                keep,
            )
            .await;
        let Ok(out) = out else {
            unreachable!("a value was computed")
        };
        (out, meta, false)
    }

    /// Stores a computed value unless an invalidation overlapped its computation: in this
    /// process (the key's `ticket`) or, on Redis, anywhere (the `lease` was voided).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn store_fill<T: CacheValue>(
        &self,
        ctx: &Ctx<'_>,
        key: &str,
        value: &T,
        shared: Option<Shared>,
        gens: crate::namespace::Gens,
        ticket: KeyTicket,
        lease: Option<LeaseGuard>,
        replacing: Option<&[u8]>,
        keep: Option<std::time::Duration>,
    ) -> Option<EntryMeta> {
        if !self.inner.state.key_epochs.is_current(ticket) {
            Counters::bump(&ctx.namespace.stats.superseded);
            return None;
        }
        let token = lease.as_ref().map(|l| l.token().clone());
        let write = match (&token, replacing) {
            (Some(token), _) => Write::Leased(token),
            (None, Some(old)) => Write::Replacing(old),
            (None, None) => Write::Always,
        };
        let stored = self
            .store_with(ctx, key, value, shared, gens, Some(ticket), write, keep)
            .await;
        // Stored, or the marker is gone already: nothing to give back. Otherwise (a value over
        // the limits, a backend error) dropping the lease gives it back.
        if let Some(lease) = lease {
            match stored {
                Ok(_) | Err(Error::Superseded) => lease.settled(),
                Err(_) => lease.release().await,
            }
        }
        if matches!(stored, Err(Error::Superseded)) {
            Counters::bump(&ctx.namespace.stats.superseded);
        }
        if !self.inner.state.key_epochs.is_current(ticket)
            && let Some(local) = &self.inner.state.l1
        {
            local.remove(key).await;
        }
        stored.ok()
    }

    /// Runs `fut` without looking `key` up and stores its value over the entry (an HTTP client's
    /// `Cache-Control: no-cache`). On a backend failure the value is returned, not stored.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
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
