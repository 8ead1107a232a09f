//! The tiered cache: an in-process L1 over Redis, and the invalidation bus that keeps every
//! process's L1 consistent.
//!
//! Enable it with [`crate::Config::with_l1`] on a Redis or Redis Cluster config.
//!
//! # Reads and writes
//! A lookup tries the L1 (a typed value, no decoding), then Redis; a Redis hit fills the L1 for
//! at most the L1 TTL and never past the Redis entry's own expiry. A miss runs the body once per
//! process (single-flight) and writes Redis, then the L1.
//!
//! # The bus
//! Every write, exact invalidation, namespace invalidation and clear publishes a small message
//! on the Redis channel `{prefix}:__bus` (Redis Cluster forwards `PUBLISH` to every node):
//!
//! ```text
//! cr1|<source id, 16 hex>|<unix ms>|K|<key>        a key was written or deleted
//! cr1|<source id>|<unix ms>|N|<namespace>           a namespace was invalidated
//! cr1|<source id>|<unix ms>|A|                      the whole cache was invalidated
//! cr1|<source id>|<unix ms>|H|<sequence>            heartbeat
//! ```
//!
//! Every process drops the affected L1 entries (and forgets the namespace's generation, which it
//! re-reads from Redis on next use). A process ignores its own messages: it already applied
//! them before publishing.
//!
//! # Not trusting the bus
//! Each process publishes a heartbeat every [`crate::Config::bus_heartbeat`] (500 ms) and
//! watches for its own heartbeats to come back through its subscription. The L1 is used only
//! while they do:
//!
//! | state | staleness bound of an L1 read |
//! |---|---|
//! | bus up | the delivery delay of one pub/sub message (about a millisecond on a LAN) |
//! | subscription dropped (Redis killed, connection reset) | none: the L1 is flushed at once and bypassed, reads go to Redis |
//! | bus silent without a drop (Redis paused, network black hole) | at most 2 heartbeat intervals + one Redis timeout (about 1.05 s by default); then the L1 is flushed and bypassed |
//! | bus back | the L1 is flushed once more (messages may have been missed) and used again |
//!
//! # Invalidations that cannot reach Redis
//! If Redis does not answer an invalidation (down, paused, breaker open) the call fails open:
//! it returns an error, the invalidation is kept as *pending*, and this process bypasses the
//! cache for the affected key or namespace. A background task re-applies pending invalidations
//! (and publishes them) as soon as Redis answers again, so an old value cannot come back from
//! Redis, and other processes drop it from their L1 when the message arrives.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::StreamExt;

use crate::Error;
use crate::cache::{Cache, Inner};
use crate::stats::Counters;
use crate::warn::{now_ms, warn_limited};

const VERSION: &str = "cr1";

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
    last_echo_ms: AtomicU64,
    heartbeat_seq: AtomicU64,
    pending: Mutex<Vec<Pending>>,
    has_pending: AtomicBool,
    recovering: AtomicBool,
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
            pending: Mutex::new(Vec::new()),
            has_pending: AtomicBool::new(false),
            recovering: AtomicBool::new(false),
        }
    }

    /// Whether the L1 may be trusted now.
    pub(crate) fn healthy(&self) -> bool {
        self.healthy.load(SeqCst)
    }

    pub(crate) fn has_pending(&self) -> bool {
        self.has_pending.load(SeqCst)
    }

    /// Whether a pending invalidation covers this key.
    pub(crate) fn pending_covers(&self, namespace: &str, key: &str) -> bool {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.iter().any(|p| match p {
            Pending::Key(k) => k == key,
            Pending::Namespace(n) => n == namespace,
            Pending::All => true,
        })
    }

    fn add_pending(&self, op: Pending) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if !pending.contains(&op) {
            pending.push(op);
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
        self.inner
            .bus
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

fn channel(inner: &Inner) -> String {
    format!("{}:__bus", inner.config.prefix)
}

async fn perform(inner: &Inner, op: &Pending) -> Result<(), Error> {
    let remote = inner.remote.as_ref().ok_or(Error::NotConnected)?;
    match op {
        Pending::Key(key) => remote.delete(key).await?,
        Pending::Namespace(ns) => {
            remote.new_generation(Some(ns)).await?;
        }
        Pending::All => {
            remote.new_generation(None).await?;
        }
    }
    if inner.bus.tiered {
        remote
            .publish(&channel(inner), &inner.bus.message(op))
            .await?;
    }
    Ok(())
}

/// Applies an invalidation to Redis and announces it; keeps it pending if Redis fails.
pub(crate) async fn apply(cache: &Cache, op: Pending) -> Result<(), Error> {
    let inner = &*cache.inner;
    match perform(inner, &op).await {
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
    let weak = Arc::downgrade(&cache.inner);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let Some(inner) = weak.upgrade() else { return };
            let ops = inner
                .bus
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            for op in ops {
                if perform(&inner, &op).await.is_err() {
                    break;
                }
                let mut pending = inner.bus.pending.lock().unwrap_or_else(|e| e.into_inner());
                pending.retain(|p| p != &op);
                if pending.is_empty() {
                    inner.bus.has_pending.store(false, SeqCst);
                }
            }
            let pending = inner.bus.pending.lock().unwrap_or_else(|e| e.into_inner());
            if pending.is_empty() {
                inner.bus.has_pending.store(false, SeqCst);
                inner.bus.recovering.store(false, SeqCst);
                tracing::info!("pending invalidations re-applied");
                return;
            }
        }
    });
}

/// Starts the bus tasks of a tiered cache (no-op otherwise).
pub(crate) fn start(cache: &Cache) {
    if !cache.inner.bus.tiered || cache.inner.remote.is_none() {
        return;
    }
    tokio::spawn(subscriber(Arc::downgrade(&cache.inner)));
    tokio::spawn(heartbeat(Arc::downgrade(&cache.inner)));
}

/// Flushes the L1 and forgets cached generations: nothing in it can be trusted any more.
fn distrust(inner: &Inner) {
    if let Some(local) = &inner.local {
        local.clear();
    }
    inner.all_gen.forget();
    for ns in inner.namespaces.all() {
        ns.generation.forget();
    }
}

/// Re-evaluates whether the L1 may be used.
fn evaluate(inner: &Inner) {
    let bus = &inner.bus;
    let window =
        inner.config.bus_heartbeat.as_millis() as u64 * 2 + inner.config.timeout.as_millis() as u64;
    let fresh = now_ms().saturating_sub(bus.last_echo_ms.load(SeqCst)) <= window;
    let up = bus.subscribed.load(SeqCst) && fresh;
    if up && !bus.healthy.load(SeqCst) {
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
    let msg = format!("{VERSION}|{:016x}|{}|H|{seq}", inner.bus.source, now_ms());
    let _ = remote.publish(&channel(inner), msg.as_bytes()).await;
}

async fn heartbeat(weak: Weak<Inner>) {
    loop {
        let interval = {
            let Some(inner) = weak.upgrade() else { return };
            send_heartbeat(&inner).await;
            evaluate(&inner);
            inner.config.bus_heartbeat
        };
        tokio::time::sleep(interval).await;
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
                let mut stream = pubsub.into_on_message();
                while let Some(msg) = stream.next().await {
                    let Some(inner) = weak.upgrade() else { return };
                    handle(&inner, msg.get_payload_bytes()).await;
                }
                let Some(inner) = weak.upgrade() else { return };
                inner.bus.subscribed.store(false, SeqCst);
                evaluate(&inner);
                warn_limited!("invalidation bus subscription dropped; resubscribing");
            }
            None => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

async fn handle(inner: &Inner, payload: &[u8]) {
    let Ok(text) = std::str::from_utf8(payload) else {
        return;
    };
    let mut parts = text.splitn(5, '|');
    let (Some(VERSION), Some(source), Some(_ts), Some(kind), Some(body)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        warn_limited!("ignoring a bus message of an unknown format");
        return;
    };
    let own = u64::from_str_radix(source, 16).ok() == Some(inner.bus.source);
    if kind == "H" {
        if own {
            inner.bus.last_echo_ms.store(now_ms(), SeqCst);
            evaluate(inner);
        }
        return;
    }
    if own {
        return;
    }
    match kind {
        "K" => {
            if let Some(local) = &inner.local {
                local.remove(body).await;
            }
            inner.key_epochs.bump(body);
        }
        "N" => {
            if let Some(ns) = inner.namespaces.find(body) {
                ns.generation.forget();
            }
        }
        "A" => {
            if let Some(local) = &inner.local {
                local.clear();
            }
            inner.all_gen.forget();
        }
        _ => warn_limited!(kind, "ignoring a bus message of an unknown kind"),
    }
}
