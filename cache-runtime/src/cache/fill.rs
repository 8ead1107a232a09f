//! Starting a fill on Redis: generations that exist before the body runs, and a fill lease
//! (see [`crate::backend::lease`]; held in a `LeaseGuard`, `lease_guard.rs`), or a wait for
//! another process's fill; and the recompute lease of a refresh or stale recomputation.

use std::time::Duration;

use super::lease_guard::LeaseGuard;
use super::resil::StaleCopy;
use super::*;
use crate::backend::lease::{Acquired, LeaseToken, Take};
use crate::fill_notice::{Notice, Waiting};
use crate::namespace::Gens;
use crate::stats::Counters;

/// How many times a fill adopts generations another process created meanwhile before it
/// gives up and runs uncached.
const MAX_ADOPTIONS: u32 = 3;

/// The first poll interval while another process fills a key; it doubles up to the maximum.
/// The holder's fill notice (see [`crate::fill_notice`]) usually ends the wait sooner.
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

/// How long a recompute lease (a refresh, or an expired entry's recomputation under `stale`)
/// is renewed while its body runs, in lease terms: a body that hangs longer is taken to have
/// stalled, its lease lapses, and another process may recompute the entry (a fill lease is
/// renewed as long as its body runs: its waiters stop waiting after one term anyway, and a
/// slow body's value must still be storable).
const RECOMPUTE_HOLD_TERMS: u32 = 2;

/// How a recomputation of an existing entry (a refresh, or an expired entry's recomputation
/// under `stale`) goes on.
pub(crate) enum Recompute {
    /// This process recomputes it, holding the recompute lease.
    Leased(LeaseGuard),
    /// Another process recomputes it, or its source failed a moment ago.
    Held,
    /// No lease to take (memory backend) or Redis cannot be asked: recompute in this process.
    Alone,
}

/// The key of the lease a recomputation of `key` holds: a key of its own, so the entry stays
/// readable (and servable as stale) while the body runs.
fn recompute_key(key: &str) -> String {
    format!("{key}\u{0}refresh")
}

/// A miss waiting on another process's fill, until the lease term has passed: woken by the
/// holder's fill notice or, failing that, by the next poll of the entry.
struct HolderWait<'a> {
    waiting: Option<Waiting<'a>>,
    poll: Duration,
    deadline: tokio::time::Instant,
}

impl<'a> HolderWait<'a> {
    fn new(term: Duration) -> Self {
        Self {
            waiting: None,
            poll: WAIT_POLL_START,
            deadline: tokio::time::Instant::now() + term,
        }
    }

    /// Waits for the holder's notice or the next poll (at most `left`, the holder's lease);
    /// `false` once the term has passed (then run the body without waiting any longer).
    async fn next(
        &mut self,
        cache: &'a Cache,
        ns: &crate::namespace::Namespace,
        key: &str,
        left: Duration,
    ) -> bool {
        let now = tokio::time::Instant::now();
        if now >= self.deadline {
            return false;
        }
        let nap = tokio::time::sleep(self.poll.min(left).min(self.deadline - now));
        let notice = self.waiting.get_or_insert_with(|| {
            Counters::bump(&ns.stats.coalesced);
            cache.wait_for_fill(key)
        });
        tokio::select! {
            () = nap => {}
            () = notice.filled() => {}
        }
        self.poll = (self.poll * 2).min(WAIT_POLL_MAX);
        true
    }
}

impl Cache {
    /// Starts waiting for the end of another process's fill of `key`, and tells the holder.
    fn wait_for_fill(&self, key: &str) -> Waiting<'_> {
        let waiting = self.inner.notices.wait(key);
        let (cache, wait) = (self.clone(), Notice::Wait(key.to_owned()));
        crate::background::spawn(async move { cache.publish_notice(wait).await });
        waiting
    }
}

/// What a leader over a stale entry holds: the bytes it replaces (none for a plain fill) and
/// the recompute lease (none when it is alone).
pub(super) type Claimed = (Option<Vec<u8>>, Option<LeaseGuard>);

impl Cache {
    /// Over a stale entry on Redis (its bytes read): the recompute lease, once in the cluster.
    /// `Err` when another process recomputes it (or its source failed a moment ago): the stale
    /// value now, unless it was invalidated meanwhile (then a plain fill).
    pub(super) async fn claim_recompute<M, O>(
        &self,
        ctx: &Ctx<'_>,
        key: &str,
        stale: Option<&StaleCopy<M::Value>>,
    ) -> Result<Claimed, Answer<O>>
    where
        M: Mode<O>,
    {
        let bytes = stale.and_then(|s| s.bytes.clone());
        if bytes.is_none() {
            return Ok((None, None));
        }
        match self.begin_recompute(ctx.namespace, key).await {
            Recompute::Leased(guard) => Ok((bytes, Some(guard))),
            Recompute::Alone => Ok((bytes, None)),
            Recompute::Held => {
                if let Some(copy) = stale
                    && let Some(served) = self.serve_stale::<M, O>(ctx, key, copy).await
                {
                    // This process does not try either for the back-off: its followers, and
                    // the callers meanwhile, get the stale (or the new) value too.
                    self.inner.resil.failed(key);
                    return Err(served);
                }
                Ok((None, None))
            }
        }
    }

    /// Takes the recompute lease of `key` (one recomputation per key in the cluster at a time),
    /// see [`Recompute`].
    pub(crate) async fn begin_recompute(
        &self,
        ns: &crate::namespace::Namespace,
        key: &str,
    ) -> Recompute {
        let Some(remote) = &self.inner.remote else {
            return Recompute::Alone;
        };
        let (lease_key, token) = (recompute_key(key), LeaseToken::new());
        let term = self.inner.config.fill_lease;
        match remote
            .acquire_lease(&lease_key, &token, term, Take::Free, &[])
            .await
        {
            Ok(Acquired::Granted) => {
                let hold = term.saturating_mul(RECOMPUTE_HOLD_TERMS);
                Recompute::Leased(LeaseGuard::new(self, &lease_key, token, Some(hold)))
            }
            Ok(_) if !self.inner.config.cross_process_single_flight => Recompute::Alone,
            Ok(_) => Recompute::Held,
            Err(e) => {
                self.backend_failed(ns, "lease", &e);
                Recompute::Alone
            }
        }
    }

    /// The generations a fill stores under: `gens`, or, where one does not exist in Redis yet
    /// (0), created now. Another process's creation meanwhile is adopted (the body has not run
    /// yet, so storing under the current generations is safe), a few times at most if
    /// invalidations keep racing. `None`: Redis failed or kept racing; run uncached.
    async fn fill_generations(
        &self,
        ctx: &Ctx<'_>,
        remote: &RedisStore,
        mut gens: Gens,
        creations: &mut u32,
    ) -> Option<Gens> {
        let ns = ctx.namespace;
        loop {
            if gens.namespace != 0 && gens.all != 0 && !ctx.missing_path_gen(gens) {
                return Some(gens);
            }
            let path = ctx.path.map(|p| &*p.name);
            let created = remote.create_generations(&ns.name, path, gens).await;
            // Whatever happened, generations remembered as 0 are outdated now.
            ctx.forget_generations(&self.inner.state.all_gen);
            match created {
                Ok(Some(created)) => return Some(created),
                Ok(None) if *creations < MAX_ADOPTIONS => {
                    *creations += 1;
                    let path_key = ctx.path.map(|p| remote.gen_key(&p.name));
                    let ns_key = remote.gen_key(&ns.name);
                    match remote.read_gens(&ns_key, path_key.as_deref()).await {
                        Ok(now) => gens = now,
                        Err(e) => {
                            self.backend_failed(ns, "store", &e);
                            return None;
                        }
                    }
                }
                Ok(None) => return None,
                Err(e) => {
                    self.backend_failed(ns, "store", &e);
                    return None;
                }
            }
        }
    }

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
        let mut creations = 0;
        let mut recognise = true;
        let term = inner.config.fill_lease;
        let token = LeaseToken::new();
        let mut wait = HolderWait::new(term);
        let mut take = if force { Take::Always } else { Take::Free };
        'generations: loop {
            let Some(current) = self
                .fill_generations(ctx, remote, gens, &mut creations)
                .await
            else {
                return FillStart::Uncached;
            };
            gens = current;
            loop {
                let identity =
                    crate::envelope::identity(inner.config.codec.id(), ctx.type_tag, gens);
                let valid: &[u8] = if recognise { &identity } else { &[] };
                match remote.acquire_lease(key, &token, term, take, valid).await {
                    Ok(Acquired::Granted) => {
                        if wait.waiting.is_some() {
                            Counters::bump(&ns.stats.lease_takeovers);
                        }
                        let lease = LeaseGuard::new(self, key, token, None);
                        return FillStart::Leased(lease, gens);
                    }
                    // Stored since we looked: serve it if it decodes, else (a corrupt entry that
                    // only looks valid) take the lease over it.
                    Ok(Acquired::Filled(bytes)) => match self.open::<T>(ctx, &bytes, gens) {
                        Ok(Some((value, meta))) => return FillStart::Hit(value, meta),
                        _ => {
                            recognise = false;
                            continue;
                        }
                    },
                    Ok(Acquired::Held(left)) => {
                        if !inner.config.cross_process_single_flight || take != Take::Free {
                            return FillStart::Uncached;
                        }
                        if !wait.next(self, ns, key, left).await {
                            // The holder outlasted a whole term (its body hangs, or is just
                            // slow): take the key over from it.
                            take = Take::FromHolder;
                            continue;
                        }
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
