//! The cached call: lookup, single-flight on a miss, store.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;

use super::fill::FillStart;
use super::lease_guard::LeaseGuard;
use super::resil::{FillOptions, Seen, StaleCopy, keep_for};
use super::store::Write;
use super::*;
use crate::Error;
use crate::epoch::KeyTicket;
use crate::flight::Leader;
use crate::flight::{Follower, Outcome, Role, Shared};
use crate::namespace::Gens;
use crate::stats::Counters;

/// The leader of a miss that cannot use the cache (Redis failing, another process's fill
/// outlasted the wait, an invalidation pending): runs the body without storing its value, and
/// shares a cacheable value with the followers, so the body still runs once per process.
async fn lead_uncached<M, O, Fut>(
    ns: &crate::namespace::Namespace,
    fut: Fut,
    leader: Leader<'_>,
) -> Answer<O>
where
    M: Mode<O>,
    Fut: Future<Output = O>,
{
    Counters::bump(&ns.stats.misses);
    let out = fut.await;
    let shared = M::cacheable(&out).map(|value| Arc::new(value.clone()) as Shared);
    leader.finish(shared);
    (out, None, false)
}

/// A leader that found the value after all: its followers and its caller get it.
fn share_hit<M, O>(
    ns: &crate::namespace::Namespace,
    leader: Leader<'_>,
    value: M::Value,
    meta: EntryMeta,
) -> Answer<O>
where
    M: Mode<O>,
{
    leader.finish(Some(Arc::new(value.clone()) as Shared));
    Counters::bump(&ns.stats.hits);
    (M::from_value(value), Some(meta), true)
}

impl Cache {
    /// Looks `key` up; on a miss runs `fut` once per key (single-flight) and stores its value.
    pub(crate) async fn run<M, O, Fut>(&self, ctx: &Ctx<'_>, key: &str, fut: Fut) -> Answer<O>
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
    ) -> Answer<O>
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
            // `None`: the cache cannot be used for this key now (backend failing, invalidation
            // pending). The body still runs once per process: concurrent callers share its
            // value, which is not stored.
            let mut gens = match seen.lookup {
                Lookup::Hit(value, meta) => {
                    Counters::bump(&ns.stats.hits);
                    return (M::from_value(value), Some(meta), true);
                }
                Lookup::Miss(gens) => Some(gens),
                Lookup::Bypass => None,
            };
            if let Some(copy) = &stale
                && self.inner.resil.backing_off(key)
                && let Some(served) = self.serve_stale::<M, O>(ctx, key, copy).await
            {
                return served;
            }
            match self.inner.flights.join(key, self.stamp(ctx, key)) {
                Role::Leader(mut leader) => {
                    if leader.begin().await {
                        // Queued behind another flight: it may have stored the value, and an
                        // invalidation may have passed since this caller looked. Look again,
                        // now that every caller of this flight has arrived.
                        let seen = self.lookup_full::<M::Value>(ctx, key).await;
                        stale = seen.stale.filter(|_| opts.stale.is_some());
                        gens = match seen.lookup {
                            Lookup::Hit(value, meta) => {
                                return share_hit::<M, O>(ns, leader, value, meta);
                            }
                            Lookup::Miss(gens) => Some(gens),
                            Lookup::Bypass => None,
                        };
                    }
                    let body = fut.take().expect("body runs once");
                    let Some(gens) = gens else {
                        return lead_uncached::<M, O, Fut>(ns, body, leader).await;
                    };
                    return self
                        .lead::<M, O, Fut>(ctx, opts, key, body, gens, leader, stale)
                        .await;
                }
                Role::Follower(follower) => {
                    let stale = stale.as_ref();
                    if let Some(answer) = self
                        .follow::<M, O, Fut>(ctx, key, follower, &mut fut, stale)
                        .await
                    {
                        return answer;
                    }
                }
            }
        }
    }

    /// A follower of another caller's flight: the leader's value, or after the leader's source
    /// failed the stale value, or else its own body's output. `None`: the leader was dropped
    /// before it finished, look again.
    async fn follow<M, O, Fut>(
        &self,
        ctx: &Ctx<'_>,
        key: &str,
        follower: Follower,
        fut: &mut Option<Fut>,
        stale: Option<&StaleCopy<M::Value>>,
    ) -> Option<Answer<O>>
    where
        M: Mode<O>,
        Fut: Future<Output = O>,
    {
        let ns = ctx.namespace;
        match follower.outcome().await {
            Outcome::Value(shared) => {
                if let Some(value) = shared.downcast_ref::<M::Value>() {
                    Counters::bump(&ns.stats.hits);
                    return Some((M::from_value(value.clone()), None, true));
                }
                Counters::bump(&ns.stats.misses);
                Some((fut.take().expect("body runs once").await, None, false))
            }
            Outcome::Failed => {
                // The leader's source failed (it recorded the failure before telling us): the
                // stale value. Any other uncacheable output: our own body.
                if let Some(copy) = stale
                    && self.inner.resil.backing_off(key)
                    && let Some(served) = self.serve_stale::<M, O>(ctx, key, copy).await
                {
                    return Some(served);
                }
                Counters::bump(&ns.stats.misses);
                Some((fut.take().expect("body runs once").await, None, false))
            }
            Outcome::Abandoned => None,
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
    ) -> Answer<O>
    where
        M: Mode<O>,
        Fut: Future<Output = O>,
    {
        let ns = ctx.namespace;
        let gens = match self.relook::<M, O>(ctx, key, gens, &leader).await {
            Ok(gens) => gens,
            Err(hit) => return hit,
        };
        // An invalidation of this key while the body runs means the body may have read old
        // data: its result is returned but not stored.
        let ticket = self.inner.state.key_epochs.ticket(key);
        let claim = self.claim_recompute::<M, O>(ctx, key, stale.as_ref()).await;
        let (replacing, recompute) = match claim {
            Ok(claimed) => claimed,
            Err(served) => {
                leader.finish(None);
                return served;
            }
        };
        let (gens, lease) = match (&self.inner.remote, &replacing) {
            (None, _) | (Some(_), Some(_)) => (gens, None),
            (Some(_), None) => match self.begin_fill::<M::Value>(ctx, key, gens, false).await {
                FillStart::Leased(lease, gens) => (gens, Some(lease)),
                FillStart::Hit(value, meta) => {
                    leader.share(Arc::new(value.clone()));
                    Counters::bump(&ns.stats.hits);
                    return (M::from_value(value), Some(meta), true);
                }
                FillStart::Uncached => return lead_uncached::<M, O, Fut>(ns, fut, leader).await,
            },
        };
        Counters::bump(&ns.stats.misses);
        // With a stale copy to fall back on, a panic is a failure like an error.
        let out = match &stale {
            None => Ok(fut.await),
            Some(_) => AssertUnwindSafe(fut).catch_unwind().await,
        };
        let Some(value) = out.as_ref().ok().and_then(M::cacheable) else {
            let stale = stale.as_ref();
            return self
                .fail_fill::<M, O>(ctx, key, out, stale, leader, lease, recompute)
                .await;
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
        if let Some(recompute) = recompute {
            recompute.release().await;
        }
        let Ok(out) = out else {
            unreachable!("a value was computed")
        };
        (out, meta, false)
    }

    /// In process, look again: a caller that missed just before the previous flight stored its
    /// value finds it now instead of running the body again (`Err`: that hit, shared with the
    /// followers). On Redis the fill lease does this: `gens` as they are.
    async fn relook<M, O>(
        &self,
        ctx: &Ctx<'_>,
        key: &str,
        gens: Gens,
        leader: &Leader<'_>,
    ) -> Result<Gens, Answer<O>>
    where
        M: Mode<O>,
    {
        match self.inner.remote {
            None => match self.lookup::<M::Value>(ctx, key).await {
                Lookup::Hit(value, meta) => {
                    leader.share(Arc::new(value.clone()));
                    Counters::bump(&ctx.namespace.stats.hits);
                    Err((M::from_value(value), Some(meta), true))
                }
                Lookup::Miss(gens) => Ok(gens),
                Lookup::Bypass => Ok(gens),
            },
            Some(_) => Ok(gens),
        }
    }

    /// A leader whose body gave nothing to cache: the flight ends with nothing shared, the
    /// leases are given back (the recompute lease kept for the back-off after a failure), and
    /// a failure with a stale copy at hand serves the copy.
    #[allow(clippy::too_many_arguments)]
    async fn fail_fill<M, O>(
        &self,
        ctx: &Ctx<'_>,
        key: &str,
        out: std::thread::Result<O>,
        stale: Option<&StaleCopy<M::Value>>,
        leader: Leader<'_>,
        lease: Option<LeaseGuard>,
        recompute: Option<LeaseGuard>,
    ) -> Answer<O>
    where
        M: Mode<O>,
    {
        // A failure (not merely an uncacheable output, such as an HTTP 404) serves the
        // stale copy, and the source is not tried again for a moment, here (recorded
        // before the followers are told) and, on Redis, anywhere (the recompute lease).
        let failed = out.as_ref().map_or(true, M::failed) && stale.is_some();
        if failed {
            self.inner.resil.failed(key);
        }
        leader.finish(None);
        if let Some(lease) = lease {
            lease.release().await;
        }
        match recompute {
            Some(recompute) if failed => recompute.hold_for(super::resil::BACKOFF).await,
            Some(recompute) => recompute.release().await,
            None => {}
        }
        if failed
            && let Some(copy) = stale
            && let Some(served) = self.serve_stale::<M, O>(ctx, key, copy).await
        {
            return served;
        }
        match out {
            Ok(out) => (out, None, false),
            Err(panic) => std::panic::resume_unwind(panic),
        }
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
}
