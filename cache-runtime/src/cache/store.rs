//! Stores: writing a computed value to Redis (in its envelope) and/or the in-process store.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::Error;
use crate::backend::lease::LeaseToken;
use crate::backend::memory::Entry;
use crate::envelope;
use crate::epoch::KeyTicket;
use crate::flight::Shared;
use crate::namespace::{Gens, Namespace};
use crate::stats::Counters;
use crate::tiered::Pending;
use crate::warn::{now_ms, warn_limited};

/// How a value is written to Redis.
#[derive(Clone, Copy)]
pub(crate) enum Write<'a> {
    /// Only over this fill lease (a miss).
    Leased(&'a LeaseToken),
    /// Only over these exact bytes (a refresh or a stale entry's recomputation: any
    /// invalidation meanwhile deleted or replaced them).
    Replacing(&'a [u8]),
    /// Unconditionally (a manual write).
    Always,
}

/// Room reserved after the envelope's header for the encoded value (grown as needed).
const PAYLOAD_HINT: usize = 64;

/// What a store writes besides the value: where it comes from and how it was read.
struct Stored<'a, T> {
    key: &'a str,
    value: &'a T,
    /// The value already shared with the flight's followers (a miss), if any.
    shared: Option<Shared>,
    gens: Gens,
    ticket: Option<KeyTicket>,
    meta: EntryMeta,
}

impl Cache {
    /// Stores `value`, kept for `keep` (`ttl` plus the `stale` window; the entry still expires
    /// after `ctx.ttl`), written on Redis as `write` says (a lost lease or changed bytes give
    /// [`Error::Superseded`]). A tiered cache then fills its L1 unless the key was invalidated
    /// here since `ticket` was taken.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn store_with<T: CacheValue>(
        &self,
        ctx: &Ctx<'_>,
        key: &str,
        value: &T,
        shared: Option<Shared>,
        gens: Gens,
        ticket: Option<KeyTicket>,
        write: Write<'_>,
        keep: Option<Duration>,
    ) -> Result<EntryMeta, Error> {
        let created_ms = now_ms();
        let meta = EntryMeta {
            created_ms,
            expires_ms: ctx
                .ttl
                .map(|t| created_ms.saturating_add(t.as_millis().min(u64::MAX.into()) as u64)),
        };
        if self.pending_covers(ctx, key) {
            return Err(Error::InvalidationPending);
        }
        let stored = Stored {
            key,
            value,
            shared,
            gens,
            ticket,
            meta,
        };
        if let Some(remote) = &self.inner.remote {
            return self.store_remote(remote, ctx, stored, write, keep).await;
        }
        if let Some(local) = &self.inner.state.l1 {
            self.store_local(local, ctx, stored, keep).await?;
        }
        Ok(meta)
    }

    /// Whether a pending invalidation covers `key` (or its HTTP path): nothing is stored then.
    fn pending_covers(&self, ctx: &Ctx<'_>, key: &str) -> bool {
        let bus = &self.inner.bus;
        bus.has_pending()
            && (bus.pending_covers(&ctx.namespace.name, key)
                || ctx.path.is_some_and(|p| bus.pending_covers(&p.name, key)))
    }

    /// Redis (and a tiered cache's L1): the value in its envelope, under existing generations.
    async fn store_remote<T: CacheValue>(
        &self,
        remote: &RedisStore,
        ctx: &Ctx<'_>,
        mut stored: Stored<'_, T>,
        write: Write<'_>,
        keep: Option<Duration>,
    ) -> Result<EntryMeta, Error> {
        let (ns, key) = (ctx.namespace, stored.key);
        // Taken before Redis is written: the L1 fill after it lands only while unchanged.
        let bus_fence = self.inner.state.fence();
        stored.gens = self.existing_generations(remote, ctx, stored.gens).await?;
        let bytes = self.envelope(ctx, &stored)?;
        let written = match write {
            Write::Leased(token) => remote.store_leased(key, token, &bytes, keep).await,
            Write::Replacing(old) => remote.store_replacing(key, old, &bytes, keep).await,
            Write::Always => remote.write(key, &bytes, keep).await.map(|()| true),
        };
        match written {
            Ok(true) => {}
            Ok(false) => return Err(Error::Superseded),
            Err(e) => {
                self.backend_failed(ns, "store", &e);
                return Err(e);
            }
        }
        Counters::bump(&ns.stats.inserts);
        let replacing = matches!(write, Write::Replacing(_));
        self.after_remote_store(ctx, &stored, replacing, bus_fence)
            .await;
        Ok(stored.meta)
    }

    /// The generations to store under: `gens`, or, where one does not exist in Redis yet (0),
    /// created now ([`Error::Superseded`] if another process's invalidation got there first).
    async fn existing_generations(
        &self,
        remote: &RedisStore,
        ctx: &Ctx<'_>,
        gens: Gens,
    ) -> Result<Gens, Error> {
        if gens.namespace != 0 && gens.all != 0 && !ctx.missing_path_gen(gens) {
            return Ok(gens);
        }
        let path = ctx.path.map(|p| &*p.name);
        let created = remote
            .create_generations(&ctx.namespace.name, path, gens)
            .await;
        // Whatever happened, generations remembered as 0 are outdated now.
        ctx.forget_generations(&self.inner.state.all_gen);
        match created {
            Ok(Some(created)) => Ok(created),
            Ok(None) => Err(Error::Superseded),
            Err(e) => {
                self.backend_failed(ctx.namespace, "store", &e);
                Err(e)
            }
        }
    }

    /// The stored bytes: the envelope's header and the encoded value, within the size limit.
    fn envelope<T: CacheValue>(
        &self,
        ctx: &Ctx<'_>,
        stored: &Stored<'_, T>,
    ) -> Result<Vec<u8>, Error> {
        let config = &self.inner.config;
        let mut bytes = envelope::start(
            config.codec.id(),
            ctx.type_tag,
            stored.gens,
            stored.meta.created_ms,
            stored.meta.expires_ms.unwrap_or(0),
            PAYLOAD_HINT,
        );
        if let Err(e) = config.codec.encode_into(stored.value, &mut bytes) {
            Counters::bump(&ctx.namespace.stats.errors);
            warn_limited!(key = stored.key, error = %e, "value cannot be encoded; not cached");
            return Err(e);
        }
        if bytes.len() > config.max_value_bytes {
            return Err(self.oversized(ctx.namespace, stored.key, bytes.len()));
        }
        Ok(bytes)
    }

    /// After a Redis store: announce it on the bus, then fill the L1 (tiered). A manual
    /// write (no flight) replaces a value other processes' L1s may hold, so every Redis
    /// instance announces it, with or without an L1 of its own, and returns once they dropped
    /// it; it completes even if its caller is dropped. A tiered fill or refresh is announced
    /// without waiting. The L1 is filled only if the bus was trusted throughout (`bus_fence`,
    /// taken before the write, unchanged): a message missed meanwhile, flushed by the bus's
    /// recovery, could concern this very key.
    async fn after_remote_store<T: CacheValue>(
        &self,
        ctx: &Ctx<'_>,
        stored: &Stored<'_, T>,
        replacing: bool,
        bus_fence: u64,
    ) {
        let (inner, key) = (&*self.inner, stored.key);
        let manual = stored.shared.is_none();
        let tiered = inner.state.l1.is_some();
        if (manual || replacing) && tiered {
            // A manual write, a refresh or a stale entry's recomputation replaces what
            // concurrent lookups of this process may have read from Redis just before: their
            // L1 fills must not land after ours. (A recomputation's own fill is then skipped
            // too: its ticket is older; the next lookup reads Redis.)
            inner.state.key_epochs.bump(key);
        }
        if manual || tiered {
            let (cache, op) = (self.clone(), Pending::Key(key.to_owned()));
            let announce = async move { crate::tiered::announce(&cache.inner, op, manual).await };
            let _ = crate::background::spawn(announce).await;
        }
        if let Some(local) = &inner.state.l1
            && self.local_usable()
            && inner.state.fence() == bus_fence
        {
            // The ticket from before the store: an invalidation that reached this
            // process after the store (and deleted it from Redis) must win.
            let ticket = stored
                .ticket
                .unwrap_or_else(|| inner.state.key_epochs.ticket(key));
            self.fill_local(ctx, key, stored.value, stored.gens, stored.meta, ticket)
                .await;
            if inner.state.fence() != bus_fence {
                local.remove(key).await;
            }
        }
    }

    /// The memory backend: the typed value, weighed by its encoded size.
    async fn store_local<T: CacheValue>(
        &self,
        local: &MemoryStore,
        ctx: &Ctx<'_>,
        stored: Stored<'_, T>,
        keep: Option<Duration>,
    ) -> Result<(), Error> {
        let (inner, ns, key) = (&*self.inner, ctx.namespace, stored.key);
        let size = match inner.config.codec.encoded_size(stored.value) {
            Ok(size) => size,
            Err(e) => {
                Counters::bump(&ns.stats.errors);
                warn_limited!(key, error = %e, "value cannot be encoded; not cached");
                return Err(e);
            }
        };
        if size > inner.config.max_value_bytes {
            return Err(self.oversized(ns, key, size));
        }
        let entry = Entry {
            value: stored
                .shared
                .unwrap_or_else(|| Arc::new(stored.value.clone())),
            gens: stored.gens,
            ticket: stored
                .ticket
                .unwrap_or_else(|| inner.state.key_epochs.ticket(key)),
            namespace: ns.clone(),
            ttl: keep,
            expires_at: crate::backend::memory::deadline(ctx.ttl),
            weight: local.weight(key.len() + size),
            created_ms: stored.meta.created_ms,
            expires_ms: stored.meta.expires_ms.unwrap_or(0),
            created_at: tokio::time::Instant::now(),
        };
        local.insert(key.to_owned(), entry).await;
        Counters::bump(&ns.stats.inserts);
        Ok(())
    }

    fn oversized(&self, ns: &Namespace, key: &str, size: usize) -> Error {
        let limit = self.inner.config.max_value_bytes;
        Counters::bump(&ns.stats.oversized);
        warn_limited!(key, size, limit, "value over max_value_bytes; not cached");
        Error::TooLarge {
            what: "value",
            size,
            limit,
        }
    }

    pub(crate) fn backend_failed(&self, ns: &Namespace, op: &'static str, e: &Error) {
        Counters::bump(&ns.stats.errors);
        warn_limited!(op, namespace = %ns.name, error = %e, "cache backend failed; serving without the cache");
    }
}
