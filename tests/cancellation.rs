//! Cancellation: every public async operation has its future dropped after 1, 2, ... polls and
//! at random moments, with Redis healthy, stalled (SIGSTOP) and killed, on the memory backend,
//! Redis, Redis Cluster (every node stalled or killed at once) and tiered, where `#[cached]`
//! calls and requests to a `#[cached(http)]` axum handler are dropped too. (`backends.rs` runs
//! the same harness, Redis healthy, on every backend including tiered on Cluster.) Afterwards the cache must serve hits again within the breaker's cooldown
//! plus [`RECOVERY_BOUND`], and must never return a value whose invalidation was started (its
//! future polled at least once), neither to this instance nor, once its pending invalidations
//! are re-applied, to another process reading Redis.
//!
//! Each violation is listed (operation, number of polls or `None` for a random moment, who read
//! what) before the test fails, so one run shows every lost invalidation.
//!
//! Also the regression test of a cancelled circuit-breaker probe, which used to keep the breaker
//! open for good.

use std::time::Duration;

use cache_runtime::{Cache, Config, L1};
use cache_tests::{RedisCluster, RedisServer, wait_until};

#[path = "cancellation/harness.rs"]
mod harness;

use harness::{Fault, Harness, Op, Servers, poll_then_drop};

/// The per-call Redis timeout.
const TIMEOUT: Duration = Duration::from_millis(100);
/// The circuit breaker's cooldown.
const COOLDOWN: Duration = Duration::from_millis(200);
/// How long after a fault ends (and the cooldown has passed) the cache must serve hits again
/// and have re-applied its pending invalidations: a reconnect (redis-rs backs off up to 500 ms)
/// plus a few round trips, with room for a loaded 2-core machine running debug builds.
const RECOVERY_BOUND: Duration = Duration::from_secs(3);
/// The most polls before a future is dropped.
const MAX_POLLS: usize = 10;
/// Drops at a random moment, per operation and round.
const RANDOM_DROPS: usize = 6;
/// Random moments are drawn up to this (beyond [`TIMEOUT`]: some calls time out first).
const RANDOM_WITHIN_US: u64 = 150_000;

/// Runs `body` under an outer timeout, so a hang fails the test instead of stalling the suite.
async fn within(limit: Duration, body: impl Future<Output = ()>) {
    tokio::time::timeout(limit, body)
        .await
        .unwrap_or_else(|_| panic!("the test did not finish within {limit:?}"));
}

fn redis_config(url: String) -> Config {
    Config::redis(url)
        .prefix("cancel")
        .timeout(TIMEOUT)
        .connect_timeout(Duration::from_secs(1))
        .circuit_breaker(1, COOLDOWN)
}

/// The regression test of Task A: a probe whose caller gives up must not keep Redis disabled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_probe_does_not_disable_redis() {
    within(Duration::from_secs(30), async {
        let server = RedisServer::start();
        let cache = Cache::new(redis_config(server.url())).await.unwrap();
        let value = "v".to_owned();
        wait_until("a first hit", Duration::from_secs(5), async || {
            let _ = cache.set("probe", &1, &value, None).await;
            cache.get::<String>("probe", &1).await.as_ref() == Some(&value)
        })
        .await;

        server.pause();
        wait_until(
            "a read times out and opens the breaker",
            Duration::from_secs(5),
            async || {
                assert_eq!(cache.get::<String>("probe", &1).await, None);
                cache.circuit_open()
            },
        )
        .await;
        // While the breaker refuses, a read finishes within its first poll; the first read
        // after the cooldown is the probe, which waits for the stalled Redis: drop it then.
        let mut probe_dropped = false;
        wait_until("the probe is sent and dropped", COOLDOWN * 10, async || {
            probe_dropped = poll_then_drop(cache.get::<String>("probe", &1), 1)
                .await
                .is_none();
            probe_dropped
        })
        .await;
        assert!(cache.circuit_open(), "the dropped probe did not close it");
        server.resume();

        wait_until(
            "hits again after the dropped probe",
            COOLDOWN + RECOVERY_BOUND,
            async || cache.get::<String>("probe", &1).await.as_ref() == Some(&value),
        )
        .await;
        assert!(!cache.circuit_open());
    })
    .await;
}

const MANUAL_OPS: [Op; 5] = [
    Op::Get,
    Op::Set,
    Op::Delete,
    Op::GetOrInsert,
    Op::InvalidateNamespace,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_backend_survives_dropped_futures() {
    within(Duration::from_secs(40), async {
        let cache = Cache::new(Config::memory()).await.unwrap();
        let harness = Harness::new("memory", cache, Servers::None);
        harness.run(&[Fault::Healthy], &MANUAL_OPS).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_survives_dropped_futures_healthy_stalled_and_killed() {
    within(Duration::from_secs(50), async {
        let server = RedisServer::start();
        let harness = Harness::new(
            "redis",
            Cache::new(redis_config(server.url())).await.unwrap(),
            Servers::Single(server),
        );
        let faults = [Fault::Healthy, Fault::Stalled, Fault::Killed];
        harness.run(&faults, &MANUAL_OPS).await;
    })
    .await;
}

/// Redis Cluster: every node stalled, or killed and restarted (empty, same layout), at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_survives_dropped_futures_healthy_stalled_and_killed() {
    within(Duration::from_secs(60), async {
        let cluster = RedisCluster::start();
        let config = Config::redis_cluster(cluster.urls())
            .prefix("cancel")
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(1))
            .circuit_breaker(1, COOLDOWN);
        let harness = Harness::new(
            "cluster",
            Cache::new(config).await.unwrap(),
            Servers::Cluster(cluster),
        );
        let faults = [Fault::Healthy, Fault::Stalled, Fault::Killed];
        harness.run(&faults, &MANUAL_OPS).await;
    })
    .await;
}

/// Tiered, through the global cache so `#[cached]` calls and a cached handler are covered too
/// (the global can be set once per test binary: the other backends run the same miss path
/// through `get_or_insert_with`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiered_survives_dropped_futures_healthy_stalled_and_killed() {
    within(Duration::from_secs(50), async {
        let server = RedisServer::start();
        let config = redis_config(server.url()).with_l1(L1::new(1000, Duration::from_secs(30)));
        cache_runtime::init(config).await.unwrap();
        let cache = cache_runtime::cache().unwrap().clone();
        wait_until("bus up", Duration::from_secs(5), async || {
            cache.bus_healthy()
        })
        .await;
        let harness = Harness::new("tiered", cache, Servers::Single(server));
        let mut ops = MANUAL_OPS.to_vec();
        ops.extend([
            Op::Cached,
            Op::CachedInvalidate,
            Op::Handler,
            Op::HandlerInvalidate,
        ]);
        let faults = [Fault::Healthy, Fault::Stalled, Fault::Killed];
        harness.run(&faults, &ops).await;
    })
    .await;
}
