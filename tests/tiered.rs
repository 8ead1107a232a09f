//! The tiered cache with the invalidation bus up: two `Cache` instances share one real Redis,
//! each with its own L1. A write or invalidation through one is never answered with the old
//! value by the other after the call returned, except within the bus delay, which is bounded
//! by `Cache::staleness_bound()` (the silence bound documented in `cache_runtime::tiered`).

use std::time::Duration;

use cache_runtime::{Cache, Config, L1};
use cache_tests::{Db, RedisServer, bus_up_pair, wait_until};
use tokio::time::Instant;

/// Scheduling allowance on top of documented bounds: the test machine has 2 shared cores.
const SLACK: Duration = Duration::from_millis(250);

fn tiered(server: &RedisServer) -> Config {
    Config::redis(server.url())
        .prefix("t")
        .with_l1(L1::new(1_000, Duration::from_secs(30)))
        .bus_heartbeat(Duration::from_millis(100))
}

async fn pair(server: &RedisServer) -> (Cache, Cache) {
    bus_up_pair(|| tiered(server)).await
}

async fn load(cache: &Cache, db: &Db, ns: &str, id: u64) -> String {
    cache
        .get_or_insert_with(ns, &id, None, async { db.get(id) })
        .await
}

/// Polls `read` until it gives `new`; fails if it gives anything but `old`/`new`, or still
/// `old` after `bound`. Then checks the old value does not come back. Returns the delay.
async fn converges(
    what: &str,
    bound: Duration,
    old: &str,
    new: &str,
    mut read: impl AsyncFnMut() -> String,
) -> Duration {
    let start = Instant::now();
    loop {
        let seen = read().await;
        if seen == new {
            break;
        }
        assert_eq!(seen, old, "{what}: neither the old nor the new value");
        assert!(
            start.elapsed() <= bound + SLACK,
            "{what}: old value still served {:?} after the call returned (bound {bound:?})",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let delay = start.elapsed();
    for _ in 0..50 {
        assert_eq!(read().await, new, "{what}: the old value came back");
    }
    delay
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_in_one_instance_replaces_the_value_in_the_others_l1() {
    let server = RedisServer::start();
    let (a, b) = pair(&server).await;
    for round in 0..20u32 {
        let old = format!("old {round}");
        let new = format!("new {round}");
        a.set("item", &round, &old, None).await.unwrap();
        assert_eq!(b.get::<String>("item", &round).await, Some(old.clone()));
        assert_eq!(b.get::<String>("item", &round).await, Some(old.clone())); // from b's L1
        a.set("item", &round, &new, None).await.unwrap();
        converges("set", b.staleness_bound(), &old, &new, async || {
            b.get::<String>("item", &round).await.unwrap_or_default()
        })
        .await;
    }
    b.run_pending_tasks().await;
    assert!(b.local_entry_count() > 0, "b's L1 was used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_invalidation_then_recompute_reaches_the_other_instance() {
    let server = RedisServer::start();
    let (a, b) = pair(&server).await;
    let db = Db::default();
    for id in 0..20u64 {
        db.put(id, "old");
        assert_eq!(load(&a, &db, "item", id).await, "old");
        assert_eq!(load(&b, &db, "item", id).await, "old");
        db.put(id, "new");
        // Served from the caches until invalidated: the update is not seen yet.
        assert_eq!(load(&b, &db, "item", id).await, "old");
        a.delete::<String>("item", &id).await.unwrap();
        converges("delete", b.staleness_bound(), "old", "new", async || {
            load(&b, &db, "item", id).await
        })
        .await;
        // a recomputes and stores; b keeps the new value.
        assert_eq!(load(&a, &db, "item", id).await, "new");
        assert_eq!(load(&b, &db, "item", id).await, "new");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_invalidation_reaches_the_other_instance() {
    let server = RedisServer::start();
    let (a, b) = pair(&server).await;
    let db = Db::default();
    for round in 0..5 {
        let (old, new) = (format!("old {round}"), format!("new {round}"));
        let ids = round * 100..round * 100 + 20;
        for id in ids.clone() {
            db.put(id, &old);
            load(&a, &db, "item", id).await;
            assert_eq!(load(&b, &db, "item", id).await, old);
            // Another namespace, untouched by the invalidation.
            load(&b, &db, "other", id).await;
        }
        for id in ids.clone() {
            db.put(id, &new);
        }
        a.invalidate_namespace("item").await.unwrap();
        for id in ids.clone() {
            converges("namespace", b.staleness_bound(), &old, &new, async || {
                load(&b, &db, "item", id).await
            })
            .await;
        }
        // "other" still answers from the cache (the old value).
        assert_eq!(load(&b, &db, "other", ids.start).await, old);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_all_reaches_the_other_instance() {
    let server = RedisServer::start();
    let (a, b) = pair(&server).await;
    let db = Db::default();
    for round in 0..5 {
        let (old, new) = (format!("old {round}"), format!("new {round}"));
        let ids = round * 100..round * 100 + 10;
        for id in ids.clone() {
            db.put(id, &old);
            for ns in ["x", "y"] {
                load(&a, &db, ns, id).await;
                assert_eq!(load(&b, &db, ns, id).await, old);
            }
        }
        for id in ids.clone() {
            db.put(id, &new);
        }
        a.invalidate_all().await.unwrap();
        for id in ids.clone() {
            for ns in ["x", "y"] {
                converges(
                    "invalidate_all",
                    b.staleness_bound(),
                    &old,
                    &new,
                    async || load(&b, &db, ns, id).await,
                )
                .await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_hits_make_no_redis_round_trip() {
    let server = RedisServer::start();
    let (a, b) = pair(&server).await;
    a.set("item", &1, &"v".to_string(), None).await.unwrap();
    assert_eq!(b.get::<String>("item", &1).await.as_deref(), Some("v")); // fills b's L1
    let before = server.command_calls("mget").await;
    for _ in 0..1_000 {
        assert_eq!(b.get::<String>("item", &1).await.as_deref(), Some("v"));
    }
    let l1_reads = server.command_calls("mget").await - before;
    // The same with a plain Redis cache: every read is a round trip. (Shows the count works.)
    let plain = Cache::new(Config::redis(server.url()).prefix("t"))
        .await
        .unwrap();
    let before = server.command_calls("mget").await;
    for _ in 0..100 {
        assert_eq!(plain.get::<String>("item", &1).await.as_deref(), Some("v"));
    }
    let plain_reads = server.command_calls("mget").await - before;
    assert_eq!(plain_reads, 100);
    // The bus may have gone unhealthy for a moment on a loaded machine (then reads go to
    // Redis); nearly all must have been L1 hits.
    assert!(
        l1_reads < 50,
        "{l1_reads} of 1000 reads went to Redis despite the L1"
    );
    assert!(b.bus_healthy());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_l1_entry_never_outlives_its_redis_entry() {
    let server = RedisServer::start();
    let (a, b) = pair(&server).await;
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for id in 0..5u32 {
        // Redis keeps it 400 ms; the L1 TTL is 30 s.
        let ns = format!("short{id}");
        a.set(&ns, &id, &"v".to_string(), Some(Duration::from_millis(400)))
            .await
            .unwrap();
        assert_eq!(b.get::<String>(&ns, &id).await.as_deref(), Some("v"));
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("t:manual:{ns}:*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        let [key] = &keys[..] else {
            panic!("one entry expected, got {keys:?}")
        };
        // Wait until Redis dropped it (EXISTS expires lazily, exactly at the TTL)...
        wait_until("redis expiry", Duration::from_secs(3), async || {
            let exists: bool = redis::cmd("EXISTS")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap();
            !exists
        })
        .await;
        // ...then the L1 must not answer with it.
        assert_eq!(b.get::<String>(&ns, &id).await, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_never_keep_a_value_that_was_replaced() {
    // Readers in b race with writers in a: once a's set returned and the bus delay passed, b
    // must not hold the old value in its L1 (a fill that overlapped the message is dropped).
    let server = RedisServer::start();
    let (a, b) = pair(&server).await;
    for round in 0..30u32 {
        let (old, new) = (format!("old {round}"), format!("new {round}"));
        a.set("race", &0, &old, None).await.unwrap();
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                tokio::spawn(async move {
                    for _ in 0..20 {
                        let _ = b.get::<String>("race", &0).await;
                    }
                })
            })
            .collect();
        a.set("race", &0, &new, None).await.unwrap();
        for r in readers {
            r.await.unwrap();
        }
        converges("race", b.staleness_bound(), &old, &new, async || {
            b.get::<String>("race", &0).await.unwrap_or_default()
        })
        .await;
    }
}
