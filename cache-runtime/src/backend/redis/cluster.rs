//! The Cluster connection, replaced when it stops answering altogether.
//!
//! redis-rs' async cluster client (1.8) can wedge for good after a failover: its driver task
//! starts a slot refresh that waits for the lock on its connection map while a request future
//! that it no longer polls holds (or is queued for) that lock, so the refresh never completes
//! and every later request waits behind it. The cache would then fail open forever on every
//! slot. Nothing outside the client can unstick it, so the connection is replaced: when no
//! request has succeeded for [`STALL`] and one just failed, a new connection is made from the
//! seed URLs (it reads the current topology), at most once per [`STALL`]; callers pick up the
//! new one on their next request, and the old one's driver ends when its last clone is dropped.
//!
//! A cluster that answers some requests keeps its connection: slots that stay unreachable are
//! a topology matter the client handles itself (`MOVED`, fallbacks to the shard's replica).

use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;

/// How long without a single successful request (while requests fail) before the connection
/// is replaced. Above a failover's usual request failures, well below anything an operator
/// would wait for.
pub(super) const STALL: Duration = Duration::from_secs(1);

/// See the module docs.
pub(super) struct ClusterLink {
    client: ClusterClient,
    config: ClusterConfig,
    current: RwLock<ClusterConnection>,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last success.
    last_ok: AtomicU64,
    /// Milliseconds since `epoch` of the last replacement.
    last_rebuild: AtomicU64,
}

impl ClusterLink {
    /// A link whose connection is made in the background.
    pub(super) fn new(client: ClusterClient, config: ClusterConfig) -> Self {
        let current = RwLock::new(open(&client, &config));
        Self {
            client,
            config,
            current,
            epoch: Instant::now(),
            last_ok: AtomicU64::new(0),
            last_rebuild: AtomicU64::new(0),
        }
    }

    /// The current connection (a cheap clone of a handle to its driver).
    pub(super) fn connection(&self) -> ClusterConnection {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records a request's outcome: `alive` when the cluster answered (a value or a server
    /// error), else a transport failure or a timeout, which may replace the connection.
    pub(super) fn observe(&self, alive: bool) {
        let now = self.now_ms();
        if alive {
            self.last_ok.fetch_max(now, Ordering::Relaxed);
            return;
        }
        let stall = STALL.as_millis() as u64;
        let last_ok = self.last_ok.load(Ordering::Relaxed);
        let last_rebuild = self.last_rebuild.load(Ordering::Relaxed);
        if now.saturating_sub(last_ok) < stall || now.saturating_sub(last_rebuild) < stall {
            return;
        }
        // One replacement per stall period, whoever sees the failure first.
        if self
            .last_rebuild
            .compare_exchange(last_rebuild, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        tracing::warn!(
            "the redis cluster connection answered nothing for {STALL:?}; reconnecting from the seed nodes"
        );
        let fresh = open(&self.client, &self.config);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A connection made and driven on the background runtime (its driver task must not live on
/// the caller's runtime).
fn open(client: &ClusterClient, config: &ClusterConfig) -> ClusterConnection {
    crate::background::enter(|| client.get_pending_async_connection_with_config(config.clone()))
}
