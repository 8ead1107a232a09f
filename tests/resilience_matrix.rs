//! Resilience (`stale`, `timeout_ms`, `refresh_after`) and its cancel safety checked from
//! outside, through the public API only, on memory, Redis, tiered and Redis Cluster (real
//! servers, real time, sub-second TTLs through [`FillOptions`]). Each scenario runs on every
//! backend, with two instances ("processes") sharing the server; on memory both are one cache.
//! `resilience_matrix/regressions.rs` holds the scenarios that found defects (fixed), and
//! `macros.rs` the same through `#[cached]` and handlers (memory).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Config, FillOptions, L1};
use cache_tests::{RedisCluster, RedisServer, wait_until, within};

#[path = "resilience_matrix/cancel.rs"]
mod cancel;
#[path = "resilience_matrix/contract.rs"]
mod contract;
#[path = "resilience_matrix/late.rs"]
mod late;
#[path = "resilience_matrix/macros.rs"]
mod macros;
#[path = "resilience_matrix/manual.rs"]
mod manual;
#[path = "resilience_matrix/regressions.rs"]
mod regressions;

/// The backend a scenario runs on.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Memory,
    Redis,
    Tiered,
    Cluster,
}

/// The servers a scenario runs against, killed on drop.
pub enum Servers {
    None,
    One(RedisServer),
    Cluster(RedisCluster),
}

/// How an entry is invalidated.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    Delete,
    Namespace,
    All,
}

/// Two instances on `kind` sharing its servers (memory: one cache, twice), connected.
pub async fn setup(kind: Kind) -> (Cache, Cache, Servers) {
    setup_with(kind, |c| c).await
}

/// [`setup`] with `tweak` applied to each instance's config.
pub async fn setup_with(kind: Kind, tweak: impl Fn(Config) -> Config) -> (Cache, Cache, Servers) {
    let servers = match kind {
        Kind::Memory => Servers::None,
        Kind::Redis | Kind::Tiered => Servers::One(RedisServer::start()),
        Kind::Cluster => Servers::Cluster(RedisCluster::start()),
    };
    let base = || match &servers {
        Servers::None => Config::memory(),
        // A 1 s Redis timeout (default 50 ms): on a loaded machine a timed-out lookup fails
        // open and runs the (gated) body in the caller, which is not what is probed here.
        Servers::One(server) => {
            let config = Config::redis(server.url())
                .prefix("probe")
                .timeout(Duration::from_secs(1));
            match kind {
                Kind::Tiered => config.with_l1(L1::new(1000, Duration::from_secs(30))),
                _ => config,
            }
        }
        Servers::Cluster(cluster) => Config::redis_cluster(cluster.urls())
            .prefix("probe")
            .timeout(Duration::from_secs(1)),
    };
    let config = || tweak(base());
    if let Kind::Memory = kind {
        let cache = Cache::new(config()).await.unwrap();
        return (cache.clone(), cache, servers);
    }
    let (a, b) = (
        Cache::new(config()).await.unwrap(),
        Cache::new(config()).await.unwrap(),
    );
    for cache in [&a, &b] {
        wait_until("connected", Duration::from_secs(10), async || {
            cache.set("warm", &0, &0u8, None).await.is_ok() && cache.bus_healthy()
        })
        .await;
    }
    (a, b, servers)
}

/// 300 ms to live, kept 60 s more to be served stale.
pub fn opts() -> FillOptions {
    FillOptions::new()
        .ttl(Duration::from_millis(300))
        .stale(Duration::from_secs(60))
}

/// Waits until `d` of real time has passed.
pub async fn pass(d: Duration) {
    let until = Instant::now() + d;
    wait_until("time passes", d * 2 + Duration::from_secs(1), async || {
        Instant::now() >= until
    })
    .await;
}

/// Past the 300 ms TTL of [`opts`].
pub async fn expire() {
    pass(Duration::from_millis(450)).await;
}

pub type Res = Result<u64, String>;

/// One call of the manual API on `(ns, id)` under at most 3 s (a hang fails).
pub async fn call(
    cache: &Cache,
    ns: &str,
    id: u64,
    opts: FillOptions,
    body: impl Future<Output = Res> + Send + 'static,
) -> Res {
    let call = cache.get_or_try_insert_with_options(ns, &id, opts, body);
    tokio::time::timeout(Duration::from_secs(3), call)
        .await
        .unwrap_or_else(|_| panic!("a call on {ns}/{id} hung"))
}

pub async fn ok(v: u64) -> Res {
    Ok(v)
}

pub async fn down() -> Res {
    Err("down".to_owned())
}

/// Invalidates `(ns, id)` by `op` through `cache`.
pub async fn invalidate(cache: &Cache, op: Op, ns: &str, id: u64) {
    match op {
        Op::Delete => cache.delete::<u64>(ns, &id).await.unwrap(),
        Op::Namespace => cache.invalidate_namespace(ns).await.unwrap(),
        Op::All => cache.invalidate_all().await.unwrap(),
    }
}

/// A body that reads `source` at once (sets `started`), then waits for `gate`: it computes
/// from data read before whatever the test does while it waits.
#[derive(Default)]
pub struct Gated {
    pub gate: Arc<tokio::sync::Notify>,
    pub started: Arc<AtomicBool>,
}

impl Gated {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn body(&self, source: u64) -> impl Future<Output = Res> + Send + 'static {
        let (gate, started) = (self.gate.clone(), self.started.clone());
        async move {
            let read = source;
            started.store(true, SeqCst);
            gate.notified().await;
            Ok(read)
        }
    }

    pub async fn wait_started(&self) {
        let started = self.started.clone();
        wait_until("the body runs", Duration::from_secs(5), async || {
            started.load(SeqCst)
        })
        .await;
    }

    pub fn release(&self) {
        self.gate.notify_one();
    }
}

/// Stores done or refused in `ns` on `cache` (a detached body or a refresh ended).
pub fn settled(cache: &Cache, ns: &str) -> u64 {
    let s = cache.stats().namespace(ns);
    s.inserts + s.superseded
}

/// One test per backend for each scenario `fn(Kind)` (`[Kind, ...]` picks backends; an
/// `ignore` reason marks a probe that shows a defect).
macro_rules! probe {
    ($scenario:path, $($(#[$attr:meta])* $name:ident: $kind:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$attr])*
        async fn $name() {
            within(Duration::from_secs(90), $scenario(Kind::$kind)).await;
        }
    )*};
}

macro_rules! on_every_backend {
    ($($scenario:path => $memory:ident, $redis:ident, $tiered:ident, $cluster:ident;)*) => {$(
        probe!($scenario, $memory: Memory, $redis: Redis, $tiered: Tiered, $cluster: Cluster);
    )*};
}

on_every_backend! {
    manual::stale_on_every_kind_of_failure =>
        stale_failures_memory, stale_failures_redis, stale_failures_tiered, stale_failures_cluster;
    manual::every_invalidation_removes_stale_copies =>
        stale_invalidated_memory, stale_invalidated_redis, stale_invalidated_tiered, stale_invalidated_cluster;
    manual::a_call_without_stale_gets_its_own_failure =>
        no_stale_memory, no_stale_redis, no_stale_tiered, no_stale_cluster;
    late::a_late_body_replaces_the_entry =>
        late_replaces_memory, late_replaces_redis, late_replaces_tiered, late_replaces_cluster;
    late::an_invalidation_during_the_late_body_wins =>
        late_invalidated_memory, late_invalidated_redis, late_invalidated_tiered, late_invalidated_cluster;
    late::an_invalidation_during_a_refresh_wins =>
        refresh_invalidated_memory, refresh_invalidated_redis, refresh_invalidated_tiered, refresh_invalidated_cluster;
    cancel::a_caller_dropped_before_the_timeout_leaves_nothing_wedged =>
        cancel_timeout_memory, cancel_timeout_redis, cancel_timeout_tiered, cancel_timeout_cluster;
    cancel::a_caller_dropped_during_a_stale_recompute_leaves_nothing_wedged =>
        cancel_recompute_memory, cancel_recompute_redis, cancel_recompute_tiered, cancel_recompute_cluster;
    cancel::a_panicking_refresh_keeps_the_entry_and_refreshes_later =>
        refresh_panic_memory, refresh_panic_redis, refresh_panic_tiered, refresh_panic_cluster;
    contract::fifty_hits_past_refresh_after_never_wait =>
        fifty_memory, fifty_redis, fifty_tiered, fifty_cluster;
    contract::a_failing_source_is_tried_once_per_backoff =>
        throttle_memory, throttle_redis, throttle_tiered, throttle_cluster;
    contract::without_a_stale_value_the_caller_waits =>
        cold_wait_memory, cold_wait_redis, cold_wait_tiered, cold_wait_cluster;
}

probe!(
    regressions::a_caller_after_an_invalidation_never_gets_an_older_detached_value,
    follower_memory: Memory,
    follower_redis: Redis,
    follower_tiered: Tiered,
    follower_cluster: Cluster
);

probe!(
    regressions::a_hung_detached_body_does_not_block_recovery_in_other_processes,
    hung_redis: Redis,
    hung_tiered: Tiered,
    hung_cluster: Cluster
);
