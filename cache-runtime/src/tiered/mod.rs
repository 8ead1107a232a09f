//! The tiered cache: an in-process L1 over Redis, and the invalidation bus that keeps every
//! process's L1 consistent.
//!
//! Enable it with [`crate::Config::with_l1`] on a Redis or Redis Cluster config.
//!
//! # Reads and writes
//! A lookup tries the L1 (a typed value, no decoding), then Redis; a Redis hit fills the L1 for
//! at most the L1 TTL and never past the Redis entry's own expiry. A miss runs the body once per
//! key in the whole cluster (a fill lease, see [`crate::Config::fill_lease`]) and writes Redis,
//! then the L1. A fill that overlapped an invalidation of its key, or a loss of the bus, is
//! dropped (the next lookup reads Redis).
//!
//! # The guarantee
//! Once an invalidation (`f_invalidate`, [`crate::Cache::delete`], [`crate::Cache::set`],
//! [`crate::Cache::invalidate_namespace`], [`crate::Cache::invalidate_all`],
//! `http::invalidate_path`) has returned `Ok` in any process, no call that starts afterwards,
//! in any process, returns a value computed from data read before it. Two mechanisms make it
//! hold without trusting delivery times:
//!
//! - **L1 validity leases** (Gray and Cheriton, SOSP 1989). Each instance publishes a heartbeat
//!   every [`crate::Config::bus_heartbeat`] (500 ms) and serves from its L1 only while one of
//!   its own heartbeats has come back within the term `T = 2 × bus_heartbeat + timeout`
//!   (1.05 s by default, [`crate::Cache::staleness_bound`]) of being sent, on the monotonic
//!   clock. Redis delivers a channel's messages in order, so an echo proves that every earlier
//!   invalidation was delivered first. A process that is paused, partitioned or whose
//!   subscription died stops using its L1 by itself when the term runs out (every L1 read
//!   checks it), and flushes it before using it again. Its watchdog looks every
//!   `bus_heartbeat / 5`: a lapsed lease frees the L1's memory within that period (counted
//!   in [`crate::StatsSnapshot`]'s `errors` and logged), even while the subscription itself
//!   stays open.
//! - **Acknowledgements.** An invalidation is applied to Redis and published in one round
//!   trip, then waits until every live instance (heard on the bus within `T`) has acknowledged
//!   that it dropped its copy, or until `T` has passed since Redis applied it, by when any
//!   instance that did not answer has stopped trusting its L1. Normally that costs one more
//!   pub/sub round trip to the slowest process; with a silent process, up to `T`. Every
//!   Redis-backed instance is a member, with or without an L1: a plain Redis instance has no
//!   copies to drop, but its single-flights must not outlive an invalidation either (a
//!   process whose bus is down joins no flight that has begun: its callers queue behind it).
//!
//! The argument rests on one total order of bus messages per subscriber: on Redis Cluster,
//! every process subscribes through the first reachable URL of its list, so give every process
//! the same list.
//!
//! Fills cannot undo an invalidation either: a miss stores its value only over its fill lease,
//! which every invalidation of the key voids, and under the generations read before its body
//! ran, which every namespace or cache invalidation retires. An invalidation runs to completion
//! in a task of its own, so a caller dropped mid-invalidation (a client disconnect, a timeout
//! layer) does not cut it short.
//!
//! # The bus
//! Every write and invalidation publishes a small message on the Redis channel
//! `{prefix}:__bus` (Redis Cluster forwards `PUBLISH` to every node); the protocol is in
//! `message.rs` (`cr2|...`, typed and property-tested). Every process drops the affected L1
//! entries (and forgets the namespace's generation, which it re-reads from Redis on next use)
//! and acknowledges. A message it cannot read (a newer release during a rolling upgrade,
//! garbage) flushes its L1: it may have invalidated something. A subscription that stays
//! silent (no own heartbeat for `T`) is rebuilt; a reconnection that fails is retried after
//! 50 ms, then after twice as long each time, up to 1 s.
//!
//! # Invalidations that cannot reach Redis
//! If Redis does not answer an invalidation (down, paused, breaker open) the call returns an
//! error: the guarantee above is only given for `Ok`. The invalidation is kept as *pending*
//! and this instance bypasses the cache for the affected key or namespace (the body runs), so
//! **it** never serves the old value. A [`crate::Cache::set`] that fails becomes a pending
//! invalidation of its key. A background task re-applies pending invalidations (and publishes
//! them) as soon as Redis answers again: within the circuit breaker's cooldown plus 25 ms, or
//! at once when the bus shows Redis is back; [`crate::Cache::flush_pending`] waits for that
//! (call it on a graceful shutdown). Until then, *another* process that reads Redis can see
//! the value the pending invalidation is about to delete. At most 1,024 invalidations are
//! kept; beyond that they collapse into one invalidation of the whole cache.
//!
//! # Why not Redis `CLIENT TRACKING`
//! Server-assisted client-side caching was considered as a second invalidation source and
//! left out (not implemented, so not measured). Cache entries are written only by this
//! library, which already announces every write and invalidation on the bus, so tracking
//! would report nothing the bus does not. It would cost a tracking table on the server per
//! connection (or a broadcast prefix that notifies every process of every write), a RESP3
//! or redirect connection per process, and on a Cluster one per node. It would not remove the
//! need for heartbeats either: a tracking connection fails as silently as a subscription. The
//! bus's propagation is already well under a millisecond on loopback (`BENCHMARKS.md`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use crate::backend::redis::{RedisStore, Target};
use crate::fill_notice::FillNotices;
use crate::local_state::LocalState;
use crate::stats::Counters;
use crate::warn::warn_limited;
use crate::{Config, Error};

mod acks;
pub(crate) mod message;
mod recovery;
mod subscriber;
mod validity;

use message::Message;
pub(crate) use message::Pending;
pub(crate) use recovery::{PendingSet, flush_pending};

/// What the bus sees of a cache (as tokio's task module sees its scheduler through
/// `Schedule`): its settings, its Redis, its counters, its bus state and the in-process state
/// the bus acts on. Nothing else: the bus never reaches into the cache's lookups or fills.
pub(crate) trait Host: Send + Sync + 'static {
    /// The cache's settings.
    fn config(&self) -> &Config;
    /// Its Redis (`None`: the memory backend, which has no bus).
    fn remote(&self) -> Option<&RedisStore>;
    /// Its counters (bus failures count as errors).
    fn counters(&self) -> &Counters;
    /// Its bus state.
    fn bus(&self) -> &Bus;
    /// Its L1, generations, key epochs and fence.
    fn local(&self) -> &LocalState;
    /// Its fill notices (heard on their own channel, see `fill_notice.rs`).
    fn notices(&self) -> &FillNotices;
}

/// Bus state of one cache.
pub(crate) struct Bus {
    source: u64,
    /// Whether the L1 was in use at the last check (for transitions: logs, flushes).
    healthy: AtomicBool,
    subscribed: AtomicBool,
    validity: validity::Validity,
    acks: acks::Acks,
    heartbeat_seq: AtomicU64,
    pending: PendingSet,
}

impl Bus {
    pub(crate) fn new() -> Self {
        use std::hash::{BuildHasher, RandomState};
        Self {
            source: RandomState::new().hash_one(std::process::id()),
            healthy: AtomicBool::new(false),
            subscribed: AtomicBool::new(false),
            validity: validity::Validity::default(),
            acks: acks::Acks::default(),
            heartbeat_seq: AtomicU64::new(0),
            pending: PendingSet::default(),
        }
    }

    /// Whether the L1 may be trusted now: subscribed, and the validity lease is fresh.
    pub(crate) fn healthy(&self) -> bool {
        self.subscribed.load(SeqCst) && self.validity.fresh()
    }

    pub(crate) fn has_pending(&self) -> bool {
        self.pending.any()
    }

    /// How many invalidations are pending.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Whether a pending invalidation covers this key.
    pub(crate) fn pending_covers(&self, namespace: &str, key: &str) -> bool {
        self.pending.covers(namespace, key)
    }
}

/// The L1 validity term `T = 2 × bus_heartbeat + timeout`.
pub(crate) fn term(config: &Config) -> Duration {
    config
        .bus_heartbeat
        .saturating_mul(2)
        .saturating_add(config.timeout)
}

fn channel(config: &Config) -> String {
    format!("{}:__bus", config.prefix)
}

/// Applies `op` to Redis and, on a tiered cache, publishes it with `seq` (0: no acknowledgement
/// wanted), in one round trip.
async fn perform(host: &dyn Host, op: &Pending, seq: u64, probe: bool) -> Result<(), Error> {
    let remote = host.remote().ok_or(Error::NotConnected)?;
    let target = match op {
        Pending::Key(key) => Target::Key(key),
        Pending::Namespace(ns) => Target::Namespace(ns),
        Pending::All => Target::All,
    };
    let channel = channel(host.config());
    let message = Message::Invalidate {
        source: host.bus().source,
        seq,
        op: op.clone(),
    }
    .encode();
    remote
        .invalidate(target, Some((channel.as_str(), message.as_slice())), probe)
        .await
}

/// Applies the local side of an invalidation: the L1 entries and cached generations it
/// affects, retiring fills, flights and generation reads that overlapped it.
pub(crate) async fn drop_local(local: &LocalState, op: &Pending) {
    match op {
        Pending::Key(key) => local.drop_key(key).await,
        Pending::Namespace(name) => local.drop_namespace(name),
        Pending::All => local.drop_all(),
    }
}

/// Applies an invalidation to Redis, announces it and (tiered) waits for every live process to
/// acknowledge it, or for the validity term; keeps it pending if Redis fails.
pub(crate) async fn apply<H: Host>(host: &Arc<H>, op: Pending) -> Result<(), Error> {
    let bus = host.bus();
    let waiting = bus.acks.begin();
    let seq = waiting.seq;
    match perform(&**host, &op, seq, false).await {
        Ok(()) => {
            let deadline = tokio::time::Instant::now() + term(host.config());
            waiting.until(deadline).await;
            Ok(())
        }
        Err(e) => {
            Counters::bump(&host.counters().errors);
            warn_limited!(error = %e, ?op, "invalidation could not reach redis; it is kept and re-applied when redis answers");
            bus.pending.add(op);
            recovery::spawn(host);
            Err(e)
        }
    }
}

/// Announces a write on the bus (tiered only); with `wait`, like an invalidation, returns once
/// every live process dropped its old copy. A failed announcement is kept pending.
pub(crate) async fn announce<H: Host>(host: &Arc<H>, op: Pending, wait: bool) {
    let Some(remote) = host.remote() else { return };
    let bus = host.bus();
    let waiting = wait.then(|| bus.acks.begin());
    let message = Message::Invalidate {
        source: bus.source,
        seq: waiting.as_ref().map_or(0, |w| w.seq),
        op: op.clone(),
    };
    match remote
        .publish(&channel(host.config()), &message.encode())
        .await
    {
        Ok(()) => {
            if let Some(waiting) = waiting {
                let deadline = tokio::time::Instant::now() + term(host.config());
                waiting.until(deadline).await;
            }
        }
        Err(e) => {
            Counters::bump(&host.counters().errors);
            warn_limited!(error = %e, "could not announce a write on the bus; re-applying it later");
            bus.pending.add(op);
            recovery::spawn(host);
        }
    }
}

/// Starts the bus tasks of a Redis-backed cache (no-op for the memory backend). Every Redis
/// instance is a bus member, with or without an L1: it acknowledges other processes'
/// invalidations (which retire its single-flights too) and waits for theirs.
pub(crate) fn start<H: Host>(host: &Arc<H>) {
    if host.remote().is_none() {
        return;
    }
    let weak = Arc::downgrade(host);
    crate::background::spawn(subscriber::subscriber(weak.clone()));
    crate::background::spawn(subscriber::heartbeat(weak.clone()));
    crate::background::spawn(subscriber::watchdog(weak));
}
