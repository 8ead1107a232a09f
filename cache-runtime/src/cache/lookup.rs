//! Lookups: the in-process hit path, then Redis, with decoding and L1 fills.

use std::sync::Arc;
use std::time::Duration;

use super::resil::Seen;
use super::*;
use crate::Error;
use crate::backend::memory::Entry;
use crate::envelope;
use crate::epoch::KeyTicket;
use crate::namespace::Gens;
use crate::stats::Counters;
use crate::warn::{now_ms, warn_limited};

impl Cache {
    /// The hit path for in-process entries (the memory backend, or a trusted L1 with no
    /// invalidation pending), kept small so a hit does not pay for the miss path's state.
    /// Counts the hit; `None` means "go through [`Cache::run`]".
    pub(crate) async fn local_hit<T: CacheValue>(&self, ctx: &Ctx<'_>, key: &str) -> Option<T> {
        self.local_hit_with_meta(ctx, key)
            .await
            .map(|(value, _)| value)
    }

    /// [`Cache::local_hit`] with the entry's age and expiry (for HTTP `Age` and `max-age`).
    pub(crate) async fn local_hit_with_meta<T: CacheValue>(
        &self,
        ctx: &Ctx<'_>,
        key: &str,
    ) -> Option<(T, EntryMeta)> {
        let inner = &*self.inner;
        let local = inner.state.l1.as_ref()?;
        if inner.bus.has_pending() || !self.local_usable() {
            return None;
        }
        let ns = ctx.namespace;
        let gens = Gens {
            namespace: ns.generation.get()?,
            all: inner.state.all_gen.get()?,
            path: match ctx.path {
                Some(p) => p.generation.get()?,
                None => 0,
            },
        };
        let entry = local.get(key).await?;
        if entry.gens != gens || !inner.state.key_epochs.is_current(entry.ticket) {
            return None;
        }
        let value = entry.value.downcast_ref::<T>()?.clone();
        Counters::bump(&ns.stats.hits);
        let meta = EntryMeta {
            created_ms: entry.created_ms,
            expires_ms: (entry.expires_ms != 0).then_some(entry.expires_ms),
        };
        Some((value, meta))
    }

    pub(crate) async fn lookup<T: CacheValue>(&self, ctx: &Ctx<'_>, key: &str) -> Lookup<T> {
        self.lookup_full(ctx, key).await.lookup
    }

    /// [`Cache::lookup`] with what resilience needs: an expired entry still within its `stale`
    /// window (the lookup itself is then a miss), the entry's age and its stored bytes.
    pub(crate) async fn lookup_full<T: CacheValue>(&self, ctx: &Ctx<'_>, key: &str) -> Seen<T> {
        let inner = &*self.inner;
        if inner.bus.has_pending() && inner.bus.pending_covers(&ctx.namespace.name, key) {
            return Seen::plain(Lookup::Bypass);
        }
        let ns = ctx.namespace;
        // In-process first: the memory backend, or a trusted L1.
        if let Some(seen) = self.lookup_in_process(ctx, key).await {
            return seen;
        }
        let Some(remote) = &inner.remote else {
            // Memory backend whose generation is always known: unreachable in practice.
            return Seen::plain(Lookup::Bypass);
        };
        let key_ticket = inner.state.key_epochs.ticket(key);
        let bus_fence = inner.state.fence();
        let ns_ticket = ns.generation.ticket();
        let all_ticket = inner.state.all_gen.ticket();
        let path_ticket = ctx.path.map(|p| p.generation.ticket());
        let read = match remote.read(key, &ns.name, ctx.path.map(|p| &*p.name)).await {
            Ok(read) => read,
            Err(e) => {
                self.backend_failed(ns, "lookup", &e);
                return Seen::plain(Lookup::Bypass);
            }
        };
        // Only an L1 trusts remembered generations; plain Redis reads them with every entry.
        if inner.state.l1.is_some() {
            ns.generation.learn(ns_ticket, read.gens.namespace);
            inner.state.all_gen.learn(all_ticket, read.gens.all);
            if let (Some(p), Some(ticket)) = (ctx.path, path_ticket) {
                p.generation.learn(ticket, read.gens.path);
            }
        }
        let Some(bytes) = read.bytes.filter(|b| !crate::backend::lease::is_marker(b)) else {
            // Absent, or another fill holds its lease: a miss (the fill waits on the lease).
            return Seen::plain(Lookup::Miss(read.gens));
        };
        match self.open::<T>(ctx, &bytes, read.gens) {
            Ok(Some((value, meta))) => {
                let age = Duration::from_millis(now_ms().saturating_sub(meta.created_ms));
                let fresh = meta.expires_ms.is_none_or(|at| now_ms() < at);
                // Tiered: fill the L1 only if the bus was trusted throughout the read (a message
                // missed meanwhile could concern this very value).
                if fresh
                    && let Some(local) = &inner.state.l1
                    && self.local_usable()
                    && inner.state.fence() == bus_fence
                {
                    self.fill_local(ctx, key, &value, read.gens, meta, key_ticket)
                        .await;
                    if inner.state.fence() != bus_fence {
                        local.remove(key).await;
                    }
                }
                Seen::found(value, meta, read.gens, age, Some(bytes), fresh)
            }
            Ok(None) => Seen::plain(Lookup::Miss(read.gens)),
            Err(e) => {
                Counters::bump(&ns.stats.decode_errors);
                warn_limited!(key, error = %e, "undecodable cache entry; recomputing and overwriting it");
                Seen::plain(Lookup::Miss(read.gens))
            }
        }
    }

    /// The in-process part of [`Cache::lookup_full`]: the memory backend's answer, or a fresh
    /// hit of a trusted L1; `None` when Redis must be read (an L1 miss, an expired L1 entry,
    /// generations not known here, a bus not trusted).
    async fn lookup_in_process<T: CacheValue>(&self, ctx: &Ctx<'_>, key: &str) -> Option<Seen<T>> {
        let (inner, ns) = (&*self.inner, ctx.namespace);
        if let Some(local) = &inner.state.l1
            && self.local_usable()
            && let (Some(namespace), Some(all)) = (ns.generation.get(), inner.state.all_gen.get())
            && let Some(path) = ctx.path.map_or(Some(0), |p| p.generation.get())
        {
            let gens = Gens {
                namespace,
                all,
                path,
            };
            if let Some((entry, fresh)) = local.get_any(key).await
                && entry.gens == gens
                && inner.state.key_epochs.is_current(entry.ticket)
                && let Some(value) = entry.value.downcast_ref::<T>()
            {
                let meta = EntryMeta {
                    created_ms: entry.created_ms,
                    expires_ms: (entry.expires_ms != 0).then_some(entry.expires_ms),
                };
                let age = tokio::time::Instant::now().saturating_duration_since(entry.created_at);
                let seen = Seen::found(value.clone(), meta, gens, age, None, fresh);
                if fresh || inner.remote.is_none() {
                    return Some(seen);
                }
            }
            if inner.remote.is_none() {
                return Some(Seen::plain(Lookup::Miss(gens)));
            }
        }
        None
    }

    /// Decodes stored bytes; `Ok(None)` when the entry is valid but outdated.
    pub(super) fn open<T: CacheValue>(
        &self,
        ctx: &Ctx<'_>,
        bytes: &[u8],
        gens: Gens,
    ) -> Result<Option<(T, EntryMeta)>, Error> {
        let env = envelope::open(bytes)?;
        if env.codec != self.inner.config.codec.id() {
            return Err(Error::BadEntry("entry written with another codec"));
        }
        if env.type_tag != ctx.type_tag {
            return Err(Error::BadEntry("entry holds another type"));
        }
        if env.gens != gens.stored() {
            return Ok(None);
        }
        let value = self.inner.config.codec.decode::<T>(env.payload)?;
        let meta = EntryMeta {
            created_ms: env.created_ms,
            expires_ms: (env.expires_ms != 0).then_some(env.expires_ms),
        };
        Ok(Some((value, meta)))
    }

    pub(super) async fn fill_local<T: CacheValue>(
        &self,
        ctx: &Ctx<'_>,
        key: &str,
        value: &T,
        gens: Gens,
        meta: EntryMeta,
        ticket: KeyTicket,
    ) {
        let Some(local) = &self.inner.state.l1 else {
            return;
        };
        // An L1 entry never outlives its L2 entry.
        let l1_ttl = self.inner.config.l1.map(|l1| l1.ttl);
        let remaining = meta
            .expires_ms
            .map(|at| Duration::from_millis(at.saturating_sub(now_ms())));
        let ttl = match (l1_ttl, remaining) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if ttl.is_some_and(|t| t.is_zero()) {
            return;
        }
        let size = self.inner.config.codec.encoded_size(value).unwrap_or(0);
        let entry = Entry {
            value: Arc::new(value.clone()),
            gens,
            ticket,
            namespace: ctx.namespace.clone(),
            ttl,
            expires_at: crate::backend::memory::deadline(ttl),
            weight: local.weight(key.len() + size),
            created_ms: meta.created_ms,
            expires_ms: meta.expires_ms.unwrap_or(0),
            created_at: created_at(meta.created_ms),
        };
        // Skip the fill if the key was invalidated since the value was read: it could
        // resurrect what the invalidation removed.
        if self.inner.state.key_epochs.is_current(ticket) {
            local.insert(key.to_owned(), entry).await;
            if !self.inner.state.key_epochs.is_current(ticket) {
                local.remove(key).await;
            }
        }
    }
}

/// The tokio instant at which a value computed at unix ms `created_ms` was computed.
pub(super) fn created_at(created_ms: u64) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_sub(Duration::from_millis(now_ms().saturating_sub(created_ms)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use crate::{Cache, Config};

    /// A fill that an invalidation of its key overlapped can land in the in-process store just
    /// before it removes it again (`store_fill`, `fill_local`): meanwhile the entry's stale key
    /// ticket alone keeps it from being served, on the hit fast path too.
    #[tokio::test]
    async fn an_entry_whose_key_was_invalidated_after_its_ticket_is_not_served() {
        let cache = Cache::new(Config::memory()).await.unwrap();
        cache.set("ns", &1, &"old".to_owned(), None).await.unwrap();
        assert_eq!(cache.get::<String>("ns", &1).await.as_deref(), Some("old"));
        // An invalidation's first step, the entry not removed (yet).
        let key = cache.key_for::<String>("ns", &1).unwrap();
        cache.inner.state.key_epochs.bump(&key);
        assert_eq!(cache.get::<String>("ns", &1).await, None);
    }
}
