//! The tiered cache: an in-process L1 over Redis, and the invalidation bus that keeps every
//! process's L1 consistent.
//!
//! Enable it with [`crate::Config::with_l1`] on a Redis or Redis Cluster config.
//!
//! # Reads and writes
//! A lookup tries the L1 (a typed value, no decoding), then Redis; a Redis hit fills the L1 for
//! at most the L1 TTL and never past the Redis entry's own expiry. A miss runs the body once per
//! process (single-flight) and writes Redis, then the L1. A fill that overlapped an
//! invalidation of its key, or a loss of the bus, is dropped (the next lookup reads Redis).
//!
//! # The bus
//! Every write, exact invalidation, namespace invalidation and clear publishes a small message
//! on the Redis channel `{prefix}:__bus` (Redis Cluster forwards `PUBLISH` to every node):
//!
//! ```text
//! cr1|<source id, 16 hex>|<unix ms>|K|<key>        a key was written or deleted
//! cr1|<source id>|<unix ms>|N|<namespace>           a namespace was invalidated
//! cr1|<source id>|<unix ms>|A|                      the whole cache was invalidated
//! cr1|<source id>|<monotonic ms>|H|<sequence>       heartbeat (the sender's own clock)
//! ```
//!
//! Every process drops the affected L1 entries (and forgets the namespace's generation, which it
//! re-reads from Redis on next use). A cache instance ignores its own messages: it applied them
//! itself, before *and* after the Redis operation, so a lookup that overlapped the operation
//! cannot leave the old value behind. A message of an unknown version or kind (a newer release
//! during a rolling upgrade, garbage) flushes the L1: it may have invalidated something.
//!
//! # Not trusting the bus
//! Each instance publishes a heartbeat every [`crate::Config::bus_heartbeat`] (500 ms) and
//! watches for its own heartbeats to come back through its subscription. The L1 is used only
//! while they do. Because Redis delivers messages of one channel in order, a heartbeat cannot
//! overtake an invalidation published before it, so a late invalidation also means late
//! heartbeats. With the *silence bound* `S = 2 × bus_heartbeat + timeout + bus_heartbeat / 5`
//! (1.15 s by default; [`crate::Cache::staleness_bound`]):
//!
//! | state | staleness bound of an L1 read |
//! |---|---|
//! | bus up | the delivery delay of one pub/sub message: well under a millisecond on loopback (see `BENCHMARKS.md`); never more than `S` |
//! | subscription dropped (Redis killed, connection reset) | none once the drop is seen: the L1 is flushed at once and bypassed, reads go to Redis |
//! | bus silent without a drop (Redis paused, network black hole) | at most `S` after the last message that got through; then the L1 is flushed and bypassed, and the subscription is rebuilt on a new connection |
//! | bus back (resubscribed automatically) | the L1 is flushed once more (messages may have been missed), then used again |
//!
//! # Writes and invalidations that cannot reach Redis
//! If Redis does not answer an invalidation (down, paused, breaker open) the call fails open:
//! it returns an error, the invalidation is kept as *pending*, and this instance bypasses the
//! cache for the affected key or namespace (the body runs), so **it** never serves the old
//! value. A [`crate::Cache::set`] that fails becomes a pending invalidation of its key: the
//! value it replaces must not survive in Redis. A background task re-applies pending
//! invalidations (and publishes them) as soon as Redis answers again: within the circuit
//! breaker's cooldown plus 25 ms, or at once when the bus shows Redis is back. An old value
//! therefore cannot come back from Redis once that is done, and other processes drop it from
//! their L1 when the message arrives. Until then, *another* process that reads Redis can see
//! the value the pending invalidation is about to delete: that window is the recovery delay
//! above. At most 1,024 invalidations are kept; beyond that they collapse into one
//! invalidation of the whole cache.
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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;

use crate::Error;
use crate::backend::redis::Target;
use crate::cache::{Cache, Inner};
use crate::stats::Counters;
use crate::warn::{mono_ms, now_ms, warn_limited};

const VERSION: &str = "cr1";
/// How often the recovery task retries at most (it is also woken by the bus).
const RECOVERY_RETRY: Duration = Duration::from_millis(25);
/// Pending invalidations kept before they collapse into [`Pending::All`].
const MAX_PENDING: usize = 1024;

/// An invalidation to apply to Redis and announce on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pending {
    Key(String),
    Namespace(String),
    All,
}

/// Bus and recovery state of one cache.
pub(crate) struct Bus {
    tiered: bool,
    source: u64,
    healthy: AtomicBool,
    subscribed: AtomicBool,
    /// Send time ([`mono_ms`]) of the latest own heartbeat that came back.
    last_echo_ms: AtomicU64,
    heartbeat_seq: AtomicU64,
    /// Bumped whenever the L1 stops being trustworthy: a fill whose read began before must
    /// not land.
    fence: AtomicU64,
    /// Pending invalidations, each with the sequence number of its latest request.
    pending: Mutex<Vec<(Pending, u64)>>,
    pending_seq: AtomicU64,
    has_pending: AtomicBool,
    recovering: AtomicBool,
    wake_recovery: Notify,
}

impl Bus {
    pub(crate) fn new(tiered: bool) -> Self {
        use std::hash::{BuildHasher, RandomState};
        Self {
            tiered,
            source: RandomState::new().hash_one(std::process::id()),
            healthy: AtomicBool::new(false),
            subscribed: AtomicBool::new(false),
            last_echo_ms: AtomicU64::new(0),
            heartbeat_seq: AtomicU64::new(0),
            fence: AtomicU64::new(0),
            pending: Mutex::new(Vec::new()),
            pending_seq: AtomicU64::new(0),
            has_pending: AtomicBool::new(false),
            recovering: AtomicBool::new(false),
            wake_recovery: Notify::new(),
        }
    }

    /// Whether the L1 may be trusted now.
    pub(crate) fn healthy(&self) -> bool {
        self.healthy.load(SeqCst)
    }

    /// Take before reading Redis; an L1 fill may land only while it is unchanged.
    pub(crate) fn fence(&self) -> u64 {
        self.fence.load(SeqCst)
    }

    pub(crate) fn has_pending(&self) -> bool {
        self.has_pending.load(SeqCst)
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Vec<(Pending, u64)>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a pending invalidation covers this key.
    pub(crate) fn pending_covers(&self, namespace: &str, key: &str) -> bool {
        self.lock_pending().iter().any(|(p, _)| match p {
            Pending::Key(k) => k == key,
            Pending::Namespace(n) => n == namespace,
            Pending::All => true,
        })
    }

    fn add_pending(&self, op: Pending) {
        let seq = self.pending_seq.fetch_add(1, SeqCst) + 1;
        let mut pending = self.lock_pending();
        if let Some(entry) = pending.iter_mut().find(|(p, _)| *p == op) {
            // Requested again: the recovery must apply it after this request.
            entry.1 = seq;
        } else if pending.len() >= MAX_PENDING {
            pending.clear();
            pending.push((Pending::All, seq));
        } else {
            pending.push((op, seq));
        }
        self.has_pending.store(true, SeqCst);
    }

    fn message(&self, op: &Pending) -> Vec<u8> {
        let (kind, body) = match op {
            Pending::Key(k) => ('K', k.as_str()),
            Pending::Namespace(n) => ('N', n.as_str()),
            Pending::All => ('A', ""),
        };
        format!("{VERSION}|{:016x}|{}|{kind}|{body}", self.source, now_ms()).into_bytes()
    }
}

impl Cache {
    /// Tiered caches: whether the invalidation bus is up and the L1 in use. Always `false` for
    /// the other backends.
    pub fn bus_healthy(&self) -> bool {
        self.inner.bus.tiered && self.inner.bus.healthy()
    }

    /// Invalidations that could not reach Redis yet and will be re-applied.
    pub fn pending_invalidations(&self) -> usize {
        self.inner.bus.lock_pending().len()
    }

    /// Tiered caches: the longest an L1 read can lag behind a write or invalidation made in
    /// another process while the bus is silent or slow (the *silence bound* of [`crate::tiered`]:
    /// `2 × bus_heartbeat + timeout + bus_heartbeat / 5`, 1.15 s by default). While the bus
    /// works the lag is one message's delivery delay.
    pub fn staleness_bound(&self) -> Duration {
        let config = &self.inner.config;
        silence_window(config) + watchdog_period(config)
    }
}

fn silence_window(config: &crate::Config) -> Duration {
    config.bus_heartbeat * 2 + config.timeout
}

fn watchdog_period(config: &crate::Config) -> Duration {
    config.bus_heartbeat / 5
}

fn channel(inner: &Inner) -> String {
    format!("{}:__bus", inner.config.prefix)
}

async fn perform(inner: &Inner, op: &Pending, probe: bool) -> Result<(), Error> {
    let remote = inner.remote.as_ref().ok_or(Error::NotConnected)?;
    let target = match op {
        Pending::Key(key) => Target::Key(key),
        Pending::Namespace(ns) => Target::Namespace(ns),
        Pending::All => Target::All,
    };
    let channel = channel(inner);
    let message = inner.bus.message(op);
    let announce = inner
        .bus
        .tiered
        .then_some((channel.as_str(), message.as_slice()));
    remote.invalidate(target, announce, probe).await
}

/// Applies the local side of an invalidation: the L1 entries and cached generations it
/// affects, retiring fills and generation reads that overlapped it.
async fn drop_local(inner: &Inner, op: &Pending) {
    match op {
        Pending::Key(key) => {
            inner.key_epochs.bump(key);
            if let Some(local) = &inner.local {
                local.remove(key).await;
            }
        }
        Pending::Namespace(name) => {
            if let Some(ns) = inner.namespaces.find(name) {
                ns.generation.forget();
            }
        }
        Pending::All => {
            inner.bus.fence.fetch_add(1, SeqCst);
            inner.all_gen.forget();
            if let Some(local) = &inner.local {
                local.clear();
            }
        }
    }
}

/// Applies an invalidation to Redis and announces it; keeps it pending if Redis fails.
pub(crate) async fn apply(cache: &Cache, op: Pending) -> Result<(), Error> {
    let inner = &*cache.inner;
    match perform(inner, &op, false).await {
        Ok(()) => Ok(()),
        Err(e) => {
            Counters::bump(&inner.counters.errors);
            warn_limited!(error = %e, ?op, "invalidation could not reach redis; it is kept and re-applied when redis answers");
            inner.bus.add_pending(op);
            spawn_recovery(cache);
            Err(e)
        }
    }
}

/// Announces a write on the bus (tiered only); a failed announcement is kept pending.
pub(crate) async fn announce(cache: &Cache, op: Pending) {
    let inner = &*cache.inner;
    let Some(remote) = &inner.remote else { return };
    if !inner.bus.tiered {
        return;
    }
    if let Err(e) = remote
        .publish(&channel(inner), &inner.bus.message(&op))
        .await
    {
        Counters::bump(&inner.counters.errors);
        warn_limited!(error = %e, "could not announce a write on the bus; re-applying it later");
        inner.bus.add_pending(op);
        spawn_recovery(cache);
    }
}

fn spawn_recovery(cache: &Cache) {
    if cache.inner.bus.recovering.swap(true, SeqCst) {
        return;
    }
    crate::background::spawn(recover(Arc::downgrade(&cache.inner)));
}

/// Re-applies pending invalidations, oldest first, until none is left.
async fn recover(weak: Weak<Inner>) {
    loop {
        {
            let Some(inner) = weak.upgrade() else { return };
            let ops = inner.bus.lock_pending().clone();
            for (op, seq) in ops {
                if perform(&inner, &op, true).await.is_err() {
                    break;
                }
                drop_local(&inner, &op).await;
                let mut pending = inner.bus.lock_pending();
                // Keep it if it was requested again meanwhile: that request came later.
                pending.retain(|(p, s)| !(p == &op && *s == seq));
            }
            let pending = inner.bus.lock_pending();
            if pending.is_empty() {
                inner.bus.has_pending.store(false, SeqCst);
                inner.bus.recovering.store(false, SeqCst);
                tracing::info!("pending invalidations re-applied");
                return;
            }
        }
        let Some(inner) = weak.upgrade() else { return };
        // `notify_one` leaves a permit when nobody waits, so no wake-up is lost here.
        let _ = tokio::time::timeout(RECOVERY_RETRY, inner.bus.wake_recovery.notified()).await;
    }
}

/// Starts the bus tasks of a tiered cache (no-op otherwise).
pub(crate) fn start(cache: &Cache) {
    if !cache.inner.bus.tiered || cache.inner.remote.is_none() {
        return;
    }
    crate::background::spawn(subscriber(Arc::downgrade(&cache.inner)));
    crate::background::spawn(heartbeat(Arc::downgrade(&cache.inner)));
    crate::background::spawn(watchdog(Arc::downgrade(&cache.inner)));
}

/// Flushes the L1 and forgets cached generations: nothing in it can be trusted any more.
pub(crate) fn distrust(inner: &Inner) {
    inner.bus.fence.fetch_add(1, SeqCst);
    if let Some(local) = &inner.local {
        local.clear();
    }
    inner.all_gen.forget();
    for ns in inner.namespaces.all() {
        ns.generation.forget();
    }
}

/// Whether an own heartbeat sent at `echo_ms` and seen back is recent enough at `now_ms`; both
/// are [`mono_ms`] readings of this process (another process's timestamps are never compared).
fn is_fresh(now_ms: u64, echo_ms: u64, window_ms: u64) -> bool {
    echo_ms != 0 && now_ms.saturating_sub(echo_ms) <= window_ms
}

/// Re-evaluates whether the L1 may be used.
fn evaluate(inner: &Inner) {
    let bus = &inner.bus;
    let window = silence_window(&inner.config).as_millis() as u64;
    let fresh = is_fresh(mono_ms(), bus.last_echo_ms.load(SeqCst), window);
    let up = bus.subscribed.load(SeqCst) && fresh;
    if up && !bus.healthy.load(SeqCst) {
        // Flush first: anything read before this point may have missed a message.
        distrust(inner);
        bus.healthy.store(true, SeqCst);
        tracing::info!("invalidation bus up; L1 in use");
    } else if !up && bus.healthy.swap(false, SeqCst) {
        distrust(inner);
        Counters::bump(&inner.counters.errors);
        tracing::warn!("invalidation bus silent or down; L1 flushed and bypassed until it is back");
    }
}

async fn send_heartbeat(inner: &Inner) {
    let Some(remote) = &inner.remote else { return };
    let seq = inner.bus.heartbeat_seq.fetch_add(1, SeqCst);
    let msg = format!("{VERSION}|{:016x}|{}|H|{seq}", inner.bus.source, mono_ms());
    let _ = remote.publish(&channel(inner), msg.as_bytes()).await;
}

async fn heartbeat(weak: Weak<Inner>) {
    loop {
        let interval = {
            let Some(inner) = weak.upgrade() else { return };
            send_heartbeat(&inner).await;
            inner.config.bus_heartbeat
        };
        tokio::time::sleep(interval).await;
    }
}

/// Checks the bus often enough that silence is noticed within the documented bound, however
/// long a heartbeat's `PUBLISH` takes to fail.
async fn watchdog(weak: Weak<Inner>) {
    loop {
        let period = {
            let Some(inner) = weak.upgrade() else { return };
            evaluate(&inner);
            watchdog_period(&inner.config).max(Duration::from_millis(1))
        };
        tokio::time::sleep(period).await;
    }
}

async fn subscriber(weak: Weak<Inner>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let (urls, chan, connect_timeout) = {
            let Some(inner) = weak.upgrade() else { return };
            let Some(remote) = &inner.remote else { return };
            (
                remote.pubsub_urls.clone(),
                channel(&inner),
                inner.config.connect_timeout,
            )
        };
        let mut connected = None;
        for url in &urls {
            let Ok(client) = redis::Client::open(url.as_str()) else {
                continue;
            };
            let attempt = async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(&chan).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            if let Ok(Ok(pubsub)) = tokio::time::timeout(connect_timeout, attempt).await {
                connected = Some(pubsub);
                break;
            }
        }
        match connected {
            Some(pubsub) => {
                backoff = Duration::from_millis(50);
                {
                    let Some(inner) = weak.upgrade() else { return };
                    inner.bus.subscribed.store(true, SeqCst);
                    send_heartbeat(&inner).await;
                }
                if !listen(&weak, pubsub.into_on_message()).await {
                    return;
                }
                let Some(inner) = weak.upgrade() else { return };
                inner.bus.subscribed.store(false, SeqCst);
                evaluate(&inner);
                warn_limited!("invalidation bus subscription dropped or silent; resubscribing");
            }
            None => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Handles messages until the subscription ends or falls silent: none of our own heartbeats
/// came back through it for longer than the silence window (a peer that vanished without a
/// reset, a black-holed route). Returns `false` when the cache is gone.
async fn listen(
    weak: &Weak<Inner>,
    mut stream: impl futures_util::Stream<Item = redis::Msg> + Unpin,
) -> bool {
    let since = mono_ms();
    loop {
        let period = {
            let Some(inner) = weak.upgrade() else {
                return false;
            };
            let window = silence_window(&inner.config).as_millis() as u64;
            let echo = inner.bus.last_echo_ms.load(SeqCst).max(since);
            if !is_fresh(mono_ms(), echo, window) {
                return true;
            }
            watchdog_period(&inner.config).max(Duration::from_millis(1))
        };
        match tokio::time::timeout(period, stream.next()).await {
            Ok(Some(msg)) => {
                let Some(inner) = weak.upgrade() else {
                    return false;
                };
                handle(&inner, msg.get_payload_bytes()).await;
            }
            Ok(None) => return true,
            Err(_) => {}
        }
    }
}

async fn handle(inner: &Inner, payload: &[u8]) {
    let text = std::str::from_utf8(payload).unwrap_or("");
    let mut parts = text.splitn(5, '|');
    let (Some(VERSION), Some(source), Some(ts), Some(kind), Some(body)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        warn_limited!("bus message of an unknown format (another version?); flushing the L1");
        distrust(inner);
        return;
    };
    let own = u64::from_str_radix(source, 16).ok() == Some(inner.bus.source);
    if kind == "H" {
        if own && let Ok(sent_ms) = ts.parse::<u64>() {
            // The send time, not the arrival time: a heartbeat queued behind a slow or paused
            // server must not make the bus look fresh.
            inner.bus.last_echo_ms.fetch_max(sent_ms, SeqCst);
            evaluate(inner);
            if inner.bus.has_pending() {
                inner.bus.wake_recovery.notify_one();
            }
        }
        return;
    }
    if own {
        return;
    }
    match kind {
        "K" => drop_local(inner, &Pending::Key(body.to_owned())).await,
        "N" => drop_local(inner, &Pending::Namespace(body.to_owned())).await,
        "A" => drop_local(inner, &Pending::All).await,
        _ => {
            warn_limited!(kind, "bus message of an unknown kind; flushing the L1");
            distrust(inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_fresh;

    #[test]
    fn freshness_uses_own_monotonic_instants() {
        assert!(!is_fresh(5_000, 0, 1_150), "never echoed: not fresh");
        assert!(is_fresh(5_000, 4_000, 1_150));
        assert!(is_fresh(5_000, 3_850, 1_150), "the bound is inclusive");
        assert!(!is_fresh(5_000, 3_849, 1_150));
        // An echo stamped after `now` (read in the other order by two threads) is fresh.
        assert!(is_fresh(5_000, 5_010, 1_150));
    }
}
