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
        let inner = &*self.inner;
        let ns = ctx.namespace;
        let created_ms = now_ms();
        let meta = EntryMeta {
            created_ms,
            expires_ms: ctx
                .ttl
                .map(|t| created_ms.saturating_add(t.as_millis().min(u64::MAX.into()) as u64)),
        };
        if inner.bus.has_pending()
            && (inner.bus.pending_covers(&ns.name, key)
                || ctx
                    .path
                    .is_some_and(|p| inner.bus.pending_covers(&p.name, key)))
        {
            return Err(Error::InvalidationPending);
        }
        if let Some(remote) = &inner.remote {
            let gens = if gens.namespace == 0 || gens.all == 0 || ctx.missing_path_gen(gens) {
                let path = ctx.path.map(|p| &*p.name);
                let created = remote.create_generations(&ns.name, path, gens).await;
                // Whatever happened, generations remembered as 0 are outdated now.
                ctx.forget_generations(&inner.state.all_gen);
                match created {
                    Ok(Some(created)) => created,
                    Ok(None) => return Err(Error::Superseded),
                    Err(e) => {
                        self.backend_failed(ns, "store", &e);
                        return Err(e);
                    }
                }
            } else {
                gens
            };
            let mut bytes = envelope::start(
                inner.config.codec.id(),
                ctx.type_tag,
                gens,
                created_ms,
                meta.expires_ms.unwrap_or(0),
                64,
            );
            if let Err(e) = inner.config.codec.encode_into(value, &mut bytes) {
                Counters::bump(&ns.stats.errors);
                warn_limited!(key, error = %e, "value cannot be encoded; not cached");
                return Err(e);
            }
            if bytes.len() > inner.config.max_value_bytes {
                return Err(self.oversized(ns, key, bytes.len()));
            }
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
            if inner.state.l1.is_some() {
                if shared.is_none() {
                    // A manual write replaces what concurrent lookups of this process may have
                    // read from Redis just before: their L1 fills must not land after ours.
                    inner.state.key_epochs.bump(key);
                }
                // A manual write (or a refresh) replaces a value other processes may hold: it
                // returns once they dropped it, and completes even if its caller is dropped.
                let (cache, op, wait) =
                    (self.clone(), Pending::Key(key.to_owned()), shared.is_none());
                let announce = async move { crate::tiered::announce(&cache.inner, op, wait).await };
                let _ = crate::background::spawn(announce).await;
                if self.local_usable() {
                    // The ticket from before the store: an invalidation that reached this
                    // process after the store (and deleted it from Redis) must win.
                    let ticket = ticket.unwrap_or_else(|| inner.state.key_epochs.ticket(key));
                    self.fill_local(ctx, key, value, gens, meta, ticket).await;
                }
            }
            return Ok(meta);
        }
        if let Some(local) = &inner.state.l1 {
            let size = match inner.config.codec.encoded_size(value) {
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
                value: shared.unwrap_or_else(|| Arc::new(value.clone())),
                gens,
                ticket: ticket.unwrap_or_else(|| inner.state.key_epochs.ticket(key)),
                namespace: ns.clone(),
                ttl: keep,
                expires_at: crate::backend::memory::deadline(ctx.ttl),
                weight: local.weight(key.len() + size),
                created_ms,
                expires_ms: meta.expires_ms.unwrap_or(0),
                created_at: tokio::time::Instant::now(),
            };
            local.insert(key.to_owned(), entry).await;
            Counters::bump(&ns.stats.inserts);
        }
        Ok(meta)
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
