//! The cached call: lookup, single-flight on a miss, store.

use std::sync::Arc;

use super::fill::{FillStart, LeaseGuard};
use super::*;
use crate::Error;
use crate::epoch::KeyTicket;
use crate::flight::{Outcome, Role, Shared};
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
        self.run_from::<M, O, Fut>(ctx, key, fut, None).await
    }

    /// [`Cache::run`], continuing from a `first` lookup the caller already made: `#[cached]`
    /// answers Redis hits itself and only enters (and boxes) this miss path on a miss.
    pub(crate) async fn run_from<M, O, Fut>(
        &self,
        ctx: &Ctx<'_>,
        key: &str,
        fut: Fut,
        mut first: Option<Lookup<M::Value>>,
    ) -> (O, Option<EntryMeta>, bool)
    where
        M: Mode<O>,
        Fut: Future<Output = O>,
    {
        let ns = ctx.namespace;
        let mut fut = Some(fut);
        loop {
            let looked = match first.take() {
                Some(looked) => looked,
                None => self.lookup::<M::Value>(ctx, key).await,
            };
            let gens = match looked {
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
            match self.inner.flights.join(key, self.stamp(ctx, key)) {
                Role::Leader(leader) => {
                    // In process, look again: a caller that missed just before the previous
                    // flight stored its value finds it now instead of running the body again.
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
                    // An invalidation of this key while the body runs means the body may have
                    // read old data: its result is returned but not stored.
                    let ticket = self.inner.key_epochs.ticket(key);
                    let (gens, lease) = match self.inner.remote {
                        None => (gens, None),
                        Some(_) => match self.begin_fill::<M::Value>(ctx, key, gens, false).await {
                            FillStart::Leased(lease, gens) => (gens, Some(lease)),
                            FillStart::Hit(value, meta) => {
                                leader.share(Arc::new(value.clone()));
                                Counters::bump(&ns.stats.hits);
                                return (M::from_value(value), Some(meta), true);
                            }
                            FillStart::Uncached => {
                                leader.finish(None);
                                Counters::bump(&ns.stats.misses);
                                let out = fut.take().expect("body runs once").await;
                                return (out, None, false);
                            }
                        },
                    };
                    Counters::bump(&ns.stats.misses);
                    let out = fut.take().expect("body runs once").await;
                    let Some(value) = M::cacheable(&out) else {
                        leader.finish(None);
                        if let Some(lease) = lease {
                            lease.release().await;
                        }
                        return (out, None, false);
                    };
                    let shared: Shared = Arc::new(value.clone());
                    // Followers get the value now; the flight ends when `leader` drops, after
                    // the store, so callers arriving meanwhile do not run the body again.
                    leader.share(shared.clone());
                    let meta = self
                        .store_fill(ctx, key, value, Some(shared), gens, ticket, lease)
                        .await;
                    return (out, meta, false);
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
                        Counters::bump(&ns.stats.misses);
                        return (fut.take().expect("body runs once").await, None, false);
                    }
                    Outcome::Abandoned => continue,
                },
            }
        }
    }

    /// Stores a computed value unless an invalidation overlapped its computation: in this
    /// process (the key's `ticket`) or, on Redis, anywhere (the `lease` was voided).
    #[allow(clippy::too_many_arguments)]
    async fn store_fill<T: CacheValue>(
        &self,
        ctx: &Ctx<'_>,
        key: &str,
        value: &T,
        shared: Option<Shared>,
        gens: crate::namespace::Gens,
        ticket: KeyTicket,
        lease: Option<LeaseGuard>,
    ) -> Option<EntryMeta> {
        if !self.inner.key_epochs.is_current(ticket) {
            Counters::bump(&ctx.namespace.stats.superseded);
            return None;
        }
        let token = lease.as_ref().map(|l| l.token().clone());
        let stored = self
            .store(ctx, key, value, shared, gens, Some(ticket), token.as_ref())
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
        if !self.inner.key_epochs.is_current(ticket)
            && let Some(local) = &self.inner.local
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
        let ticket = self.inner.key_epochs.ticket(key);
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
            .store_fill(ctx, key, value, None, gens, ticket, lease)
            .await;
        (out, meta)
    }
}
