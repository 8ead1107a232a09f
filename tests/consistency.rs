//! The consistency guarantee, case by case, against a real Redis: once an invalidation returned
//! `Ok`, no call that starts afterwards, in any instance, returns a value computed from data read
//! before it (see `cache_runtime::tiered`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use cache_runtime::{Cache, Config, L1};
use cache_tests::{RedisServer, within};
use tokio::sync::Notify;

#[path = "consistency/lease_race.rs"]
mod lease_race;
#[path = "consistency/missed_message.rs"]
mod missed_message;
#[path = "consistency/read_before_write.rs"]
mod read_before_write;

/// A one-row "database": its version, bumped by writes.
#[derive(Default, Clone)]
struct Row(Arc<AtomicU64>);

fn configs(server: &RedisServer) -> [(&'static str, Config); 2] {
    [
        ("redis", Config::redis(server.url())),
        (
            "tiered",
            Config::redis(server.url()).with_l1(L1::new(1000, Duration::from_secs(30))),
        ),
    ]
}

/// Two instances, once both hear the bus (connected, members of the cluster).
async fn instances(config: &Config) -> (Cache, Cache) {
    let a = Cache::new(config.clone()).await.unwrap();
    let b = Cache::new(config.clone()).await.unwrap();
    cache_tests::wait_until("bus up", Duration::from_secs(5), async || {
        a.bus_healthy() && b.bus_healthy()
    })
    .await;
    (a, b)
}

/// A's miss reads the row, then is held until `release`; returns what A's body read.
fn slow_fill(
    a: &Cache,
    row: &Row,
    key: &'static str,
    read: Arc<Notify>,
    release: Arc<Notify>,
) -> tokio::task::JoinHandle<u64> {
    let (a, row) = (a.clone(), row.clone());
    tokio::spawn(async move {
        a.get_or_insert_with("c", &key, None, async move {
            let seen = row.0.load(SeqCst);
            read.notify_one();
            release.notified().await;
            seen
        })
        .await
    })
}

async fn late_fill_case(name: &str, config: &Config, by_namespace: bool) {
    let (a, b) = instances(config).await;
    let row = Row::default();
    let (read, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let fill = slow_fill(&a, &row, "late", read.clone(), release.clone());
    read.notified().await;
    // B writes the row and invalidates while A's body still holds the old version.
    row.0.store(1, SeqCst);
    if by_namespace {
        b.invalidate_namespace("c").await.unwrap();
    } else {
        b.delete::<u64>("c", &"late").await.unwrap();
    }
    release.notify_one();
    assert_eq!(fill.await.unwrap(), 0, "A's caller gets what its body read");
    for (who, cache) in [("a", &a), ("b", &b)] {
        let fresh = row.clone();
        let seen = cache
            .get_or_insert_with("c", &"late", None, async move { fresh.0.load(SeqCst) })
            .await;
        assert_eq!(
            seen, 1,
            "{name}: {who} serves a value read before the invalidation"
        );
    }
    if !by_namespace {
        assert!(
            a.stats().namespace("c").superseded >= 1,
            "{name}: the late store was refused"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_fill_never_undoes_another_instances_invalidation() {
    within(Duration::from_secs(60), async {
        let server = RedisServer::start();
        for (name, config) in configs(&server) {
            late_fill_case(name, &config, false).await;
            server_flush(&server).await;
            late_fill_case(name, &config, true).await;
            server_flush(&server).await;
        }
    })
    .await;
}

async fn server_flush(server: &RedisServer) {
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_after_an_invalidation_never_joins_an_older_flight() {
    within(Duration::from_secs(60), async {
        let server = RedisServer::start();
        let memory = [("memory", Config::memory())];
        for (name, config) in memory.into_iter().chain(configs(&server)) {
            let cache = Cache::new(config).await.unwrap();
            let row = Row::default();
            let (read, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
            let first = slow_fill(&cache, &row, "flight", read.clone(), release.clone());
            read.notified().await;
            row.0.store(1, SeqCst);
            cache.delete::<u64>("c", &"flight").await.unwrap();
            // Starts after the invalidation returned: must not receive the old flight's value.
            let fresh = row.clone();
            let late =
                {
                    let cache = cache.clone();
                    tokio::spawn(async move {
                        cache
                            .get_or_insert_with("c", &"flight", None, async move {
                                fresh.0.load(SeqCst)
                            })
                            .await
                    })
                };
            // (Joining the old flight would wait for its release, which comes after this.)
            let seen = tokio::time::timeout(Duration::from_secs(3), late)
                .await
                .unwrap_or_else(|_| panic!("{name}: the late caller joined the older flight"))
                .unwrap();
            release.notify_one();
            assert_eq!(first.await.unwrap(), 0);
            assert_eq!(
                seen, 1,
                "{name}: a caller that started after the delete got the old value"
            );
            server_flush(&server).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_invalidation_succeeds_when_redis_is_out_of_memory() {
    within(Duration::from_secs(60), async {
        let server =
            RedisServer::start_with(&["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"]);
        let (a, b) = instances(&Config::redis(server.url())).await;
        a.set("oom", &1, &"old".to_string(), None).await.unwrap();
        // Fill Redis up until it refuses writes.
        let mut conn = server
            .client()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let blob = vec![b'x'; 64 << 10];
        let mut refused = false;
        for i in 0..1000 {
            let set: redis::RedisResult<()> = redis::cmd("SET")
                .arg(format!("junk{i}"))
                .arg(&blob)
                .query_async(&mut conn)
                .await;
            if set.is_err_and(|e| e.to_string().contains("OOM")) {
                refused = true;
                break;
            }
        }
        assert!(refused, "Redis must be out of memory for this test");
        assert_eq!(b.get::<String>("oom", &1).await.as_deref(), Some("old"));
        a.invalidate_namespace("oom").await.unwrap();
        assert_eq!(
            b.get::<String>("oom", &1).await,
            None,
            "b reads the old generation"
        );
        assert_eq!(a.pending_invalidations(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_fill_holder_does_not_block_other_instances_past_the_lease() {
    within(Duration::from_secs(60), async {
        let server = RedisServer::start();
        let lease = Duration::from_millis(300);
        let config = Config::redis(server.url()).fill_lease(lease);
        let (a, b) = instances(&config).await;
        let (read, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let holder = slow_fill(&a, &Row::default(), "held", read.clone(), release);
        read.notified().await;
        // B waits on A's lease; A's caller is cancelled: B must go on without waiting the term.
        let started = tokio::time::Instant::now();
        holder.abort();
        let runs = Arc::new(AtomicU64::new(0));
        let counted = runs.clone();
        let v = tokio::time::timeout(
            lease * 4,
            b.get_or_insert_with("c", &"held", None, async move {
                counted.fetch_add(1, SeqCst);
                7u64
            }),
        )
        .await
        .expect("b waited past the lease bound");
        assert_eq!((v, runs.load(SeqCst)), (7, 1));
        assert!(started.elapsed() < lease * 4);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_pending_reapplies_invalidations_made_while_redis_was_unreachable() {
    within(Duration::from_secs(60), async {
        let server = RedisServer::start();
        let config = Config::redis(server.url()).circuit_breaker(1, Duration::from_millis(100));
        let (a, b) = instances(&config).await;
        a.set("c", &"pending", &1u64, None).await.unwrap();
        server.pause();
        assert!(
            a.delete::<u64>("c", &"pending").await.is_err(),
            "Redis is paused"
        );
        assert_eq!(a.pending_invalidations(), 1);
        assert_eq!(
            a.flush_pending(Duration::from_millis(200)).await,
            1,
            "still unreachable"
        );
        server.resume();
        assert_eq!(a.flush_pending(Duration::from_secs(5)).await, 0);
        assert_eq!(
            b.get::<u64>("c", &"pending").await,
            None,
            "re-applied in Redis"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_with_a_hundred_callers_each_run_a_cold_body_once() {
    within(Duration::from_secs(60), async {
        let server = RedisServer::start();
        let runs = Arc::new(AtomicU64::new(0));
        let (a, b) = instances(&Config::redis(server.url())).await;
        let (c, _) = instances(&Config::redis(server.url())).await;
        let caches = [a, b, c];
        let mut calls = Vec::new();
        for cache in &caches {
            for _ in 0..100 {
                let (cache, runs) = (cache.clone(), runs.clone());
                calls.push(tokio::spawn(async move {
                    cache
                        .get_or_insert_with("cold", &1, None, async move {
                            runs.fetch_add(1, SeqCst);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            7u64
                        })
                        .await
                }));
            }
        }
        for call in calls {
            assert_eq!(call.await.unwrap(), 7);
        }
        assert_eq!(
            runs.load(SeqCst),
            1,
            "the body ran once in the whole cluster"
        );
    })
    .await;
}
