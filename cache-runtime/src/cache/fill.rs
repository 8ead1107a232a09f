//! Starting a fill on Redis: generations that exist before the body runs, and a fill lease
//! (see [`crate::backend::lease`]) held in a guard that gives it back if the fill is dropped.

use std::time::Duration;

use super::*;
use crate::backend::lease::{Acquired, LeaseToken};
use crate::namespace::Gens;
use crate::stats::Counters;

/// The first poll interval while another process fills a key; it doubles up to the maximum.
const WAIT_POLL_START: Duration = Duration::from_millis(2);
const WAIT_POLL_MAX: Duration = Duration::from_millis(50);

/// How a miss on Redis goes on.
pub(crate) enum FillStart<T> {
    /// Run the body and store under these generations with this lease.
    Leased(LeaseGuard, Gens),
    /// Another process filled the key meanwhile.
    Hit(T, EntryMeta),
    /// Run the body without storing (Redis failing, or another fill outlasted the wait).
    Uncached,
}

/// A fill lease held by this process. Dropped before [`LeaseGuard::settled`] (the caller was
/// cancelled, the body panicked or produced nothing to store), it gives the lease back at
/// once so other processes waiting for the key go on; it renews the lease while it lives.
pub(crate) struct LeaseGuard {
    cache: Cache,
    key: String,
    token: LeaseToken,
    renewal: tokio::task::AbortHandle,
    settled: bool,
}

impl LeaseGuard {
    fn new(cache: &Cache, key: &str, token: LeaseToken) -> Self {
        let term = cache.inner.config.fill_lease;
        let renewal = {
            let (cache, key, token) = (cache.clone(), key.to_owned(), token.clone());
            crate::background::spawn(async move {
                let mut every = tokio::time::interval(term / 2);
                every.tick().await;
                loop {
                    every.tick().await;
                    let Some(remote) = &cache.inner.remote else {
                        return;
                    };
                    if !matches!(remote.renew_lease(&key, &token, term).await, Ok(true)) {
                        return;
                    }
                }
            })
            .abort_handle()
        };
        Self {
            cache: cache.clone(),
            key: key.to_owned(),
            token,
            renewal,
            settled: false,
        }
    }

    pub(crate) fn token(&self) -> &LeaseToken {
        &self.token
    }

    /// Gives the lease back now (the fill stored nothing), so waiting processes go on.
    pub(crate) async fn release(mut self) {
        self.settled = true;
        if let Some(remote) = &self.cache.inner.remote {
            let _ = remote.release_lease(&self.key, &self.token).await;
        }
    }

    /// The store used the lease (it replaced the marker, or found it gone): nothing to give back.
    pub(crate) fn settled(mut self) {
        self.settled = true;
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.renewal.abort();
        if self.settled {
            return;
        }
        let (cache, key, token) = (
            self.cache.clone(),
            std::mem::take(&mut self.key),
            self.token.clone(),
        );
        crate::background::spawn(async move {
            if let Some(remote) = &cache.inner.remote {
                let _ = remote.release_lease(&key, &token).await;
            }
        });
    }
}

impl Cache {
    /// Prepares a fill of `key` on Redis: makes sure the generations it stores under exist
    /// (so an invalidation during the body retires the value), then takes the fill lease, or
    /// waits for another process's fill of the same key (at most the lease term).
    /// `force`: take the lease even from another fill (a refresh the client asked for).
    pub(crate) async fn begin_fill<T: CacheValue>(
        &self,
        ctx: &Ctx<'_>,
        key: &str,
        gens: Gens,
        force: bool,
    ) -> FillStart<T> {
        let inner = &*self.inner;
        let Some(remote) = &inner.remote else {
            return FillStart::Uncached;
        };
        let ns = ctx.namespace;
        let mut gens = gens;
        let mut waited = false;
        let term = inner.config.fill_lease;
        let token = LeaseToken::new();
        let deadline = tokio::time::Instant::now() + term;
        let mut poll = WAIT_POLL_START;
        'generations: loop {
            if gens.namespace == 0 || gens.all == 0 || ctx.missing_path_gen(gens) {
                let path = ctx.path.map(|p| &*p.name);
                let created = remote.create_generations(&ns.name, path, gens).await;
                // Whatever happened, generations remembered as 0 are outdated now.
                ctx.forget_generations(&inner.all_gen);
                gens = match created {
                    Ok(Some(created)) => created,
                    Ok(None) => return FillStart::Uncached,
                    Err(e) => {
                        self.backend_failed(ns, "store", &e);
                        return FillStart::Uncached;
                    }
                };
            }
            loop {
                match remote.acquire_lease(key, &token, term, force).await {
                    Ok(Acquired::Granted) => {
                        return FillStart::Leased(LeaseGuard::new(self, key, token), gens);
                    }
                    Ok(Acquired::Held(left)) => {
                        let now = tokio::time::Instant::now();
                        if now >= deadline {
                            return FillStart::Uncached;
                        }
                        if !std::mem::replace(&mut waited, true) {
                            Counters::bump(&ns.stats.coalesced);
                        }
                        tokio::time::sleep(poll.min(left).min(deadline - now)).await;
                        poll = (poll * 2).min(WAIT_POLL_MAX);
                        match self.lookup::<T>(ctx, key).await {
                            Lookup::Hit(value, meta) => return FillStart::Hit(value, meta),
                            // Invalidated meanwhile: fill under the new generations.
                            Lookup::Miss(now) if now != gens => {
                                gens = now;
                                continue 'generations;
                            }
                            Lookup::Miss(_) => {}
                            Lookup::Bypass => return FillStart::Uncached,
                        }
                    }
                    Err(e) => {
                        self.backend_failed(ns, "lease", &e);
                        return FillStart::Uncached;
                    }
                }
            }
        }
    }
}
