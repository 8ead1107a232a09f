//! The tiered cache with the invalidation bus up: two `Cache` instances share one real Redis,
//! each with its own L1. A write or invalidation through one is never answered with the old
//! value by the other once the call returned, not even once: the call waits for the other
//! instance's acknowledgement (or for the validity term `T = 2 × bus_heartbeat + timeout`
//! documented in `cache_runtime::tiered`, after which an unconfirmed L1 is not trusted).
//! Before each round, the test proves the other instance's L1 holds the old value (a read
//! answered with no `GET`/`MGET` on Redis), so a round cannot pass without the bus acting.

use std::time::Duration;

use cache_runtime::{Cache, Config, L1};
use cache_tests::{Db, RedisServer, answered_by_l1, bus_up_pair, wait_until};

const HEARTBEAT: Duration = Duration::from_millis(100);
const TIMEOUT: Duration = Duration::from_millis(50);

fn tiered(server: &RedisServer) -> Config {
    Config::redis(server.url())
        .prefix("t")
        .with_l1(L1::new(1_000, Duration::from_secs(30)))
        .bus_heartbeat(HEARTBEAT)
        .timeout(TIMEOUT)
}

/// Reads Redis ran (`GET` and `MGET`, from `INFO commandstats`).
async fn redis_reads(server: &RedisServer) -> u64 {
    server.command_calls("get").await + server.command_calls("mget").await
}

/// Proves the precondition of a round: `read` gives `expected` from the L1 (Redis ran no read
/// meanwhile). Polls: the L1 is bypassed for a moment whenever a heartbeat is late on a loaded
/// machine.
async fn l1_holds(server: &RedisServer, expected: &str, mut read: impl AsyncFnMut() -> String) {
    wait_until(
        "the L1 holds the old value",
        Duration::from_secs(5),
        async || {
            let before = redis_reads(server).await;
            let seen = read().await;
            assert_eq!(seen, expected, "the old value before the invalidation");
            redis_reads(server).await == before
        },
    )
    .await;
}

async fn pair(server: &RedisServer) -> (Cache, Cache) {
    bus_up_pair(|| tiered(server)).await
}

async fn load(cache: &Cache, db: &Db, ns: &str, id: u64) -> String {
    cache
        .get_or_insert_with(ns, &id, None, async { db.get(id) })
        .await
}

/// The promise: once the write or invalidation returned, `read` never gives `old` again, not
/// even once (the call waited for the other instance's acknowledgement, or for its L1
/// validity lease to lapse).
async fn replaced(what: &str, old: &str, new: &str, mut read: impl AsyncFnMut() -> String) {
    for i in 0..50 {
        let seen = read().await;
        assert_ne!(
            seen, old,
            "{what}: the old value served after the call returned (read {i})"
        );
        assert_eq!(seen, new, "{what}: neither the old nor the new value");
    }
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
        l1_holds(&server, &old, async || {
            b.get::<String>("item", &round).await.unwrap_or_default()
        })
        .await;
        a.set("item", &round, &new, None).await.unwrap();
        replaced("set", &old, &new, async || {
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
        // Served from b's L1 until invalidated: the update is not seen yet.
        l1_holds(&server, "old", async || load(&b, &db, "item", id).await).await;
        a.delete::<String>("item", &id).await.unwrap();
        replaced("delete", "old", "new", async || {
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
            l1_holds(&server, &old, async || load(&b, &db, "item", id).await).await;
        }
        a.invalidate_namespace("item").await.unwrap();
        for id in ids.clone() {
            replaced("namespace", &old, &new, async || {
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
            for ns in ["x", "y"] {
                l1_holds(&server, &old, async || load(&b, &db, ns, id).await).await;
            }
        }
        a.invalidate_all().await.unwrap();
        for id in ids.clone() {
            for ns in ["x", "y"] {
                replaced("invalidate_all", &old, &new, async || {
                    load(&b, &db, ns, id).await
                })
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

/// A miss stores its value in its own L1 too: the next read makes no round trip. (Polls over
/// fresh keys: a read goes to Redis while a heartbeat is late on a loaded machine.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_fills_its_own_l1() {
    let server = RedisServer::start();
    let (a, _b) = pair(&server).await;
    let mut id = 0u64;
    wait_until(
        "a read after a miss answered by the L1",
        Duration::from_secs(5),
        async || {
            id += 1;
            let body = async move { format!("v{id}") };
            let value = a.get_or_insert_with("miss", &id, None, body).await;
            let before = redis_reads(&server).await;
            assert_eq!(a.get::<String>("miss", &id).await, Some(value));
            redis_reads(&server).await == before
        },
    )
    .await;
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
        l1_holds(&server, &old, async || {
            b.get::<String>("race", &0).await.unwrap_or_default()
        })
        .await;
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
        replaced("race", &old, &new, async || {
            b.get::<String>("race", &0).await.unwrap_or_default()
        })
        .await;
    }
}

/// The L1 holds at most `max_entries`: the others are evicted and read from Redis again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_l1_evicts_beyond_its_capacity() {
    let server = RedisServer::start();
    let small = || tiered(&server).with_l1(L1::new(10, Duration::from_secs(30)));
    let (a, b) = bus_up_pair(small).await;
    for id in 0..50u32 {
        a.set("cap", &id, &format!("v{id}"), None).await.unwrap();
    }
    for id in 0..50u32 {
        assert_eq!(b.get::<String>("cap", &id).await, Some(format!("v{id}")));
    }
    b.run_pending_tasks().await;
    let held = b.local_entry_count();
    assert!(held <= 10, "the L1 holds {held} entries, capacity 10");
    // The evicted ones are read from Redis again (at least 40 of 50). The L1 (moka) applies
    // evictions in batches: its pending tasks run before each read keep it at its capacity.
    let before = redis_reads(&server).await;
    for id in 0..50u32 {
        b.run_pending_tasks().await;
        assert_eq!(b.get::<String>("cap", &id).await, Some(format!("v{id}")));
    }
    let reads = redis_reads(&server).await - before;
    assert!(reads >= 40, "{reads} of 50 reads went to Redis");
    // And the L1 is still used for what it holds.
    a.set("cap", &100, &"hot".to_owned(), None).await.unwrap();
    answered_by_l1(&server, async || {
        b.get::<String>("cap", &100).await.as_deref() == Some("hot")
    })
    .await;
}

/// The L1 also holds at most about `max_bytes` (key and encoded value, read from Redis):
/// ~1 KB values fit nine at a time in 10 KB, and those that fit are held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_l1_holds_at_most_max_bytes() {
    let server = RedisServer::start();
    let (a, b) = bus_up_pair(|| tiered(&server).max_bytes(10_000)).await;
    let value = "v".repeat(1_000);
    for id in 0..20u32 {
        a.set("bytes", &id, &value, None).await.unwrap();
    }
    for id in 0..20u32 {
        assert_eq!(b.get::<String>("bytes", &id).await.as_ref(), Some(&value));
    }
    b.run_pending_tasks().await;
    let held = b.local_entry_count();
    assert!(
        (1..=10).contains(&held),
        "{held} KB-sized entries in a 10 KB L1"
    );
}

/// An L1 entry is dropped after the L1 TTL (its Redis entry has none): the next read goes to
/// Redis while the bus is healthy, so not because the L1 was bypassed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_l1_entry_expires_after_the_l1_ttl() {
    let server = RedisServer::start();
    let short = || tiered(&server).with_l1(L1::new(1_000, Duration::from_millis(500)));
    let (a, b) = bus_up_pair(short).await;
    a.set("l1ttl", &1, &"v".to_owned(), None).await.unwrap();
    answered_by_l1(&server, async || {
        b.get::<String>("l1ttl", &1).await.as_deref() == Some("v")
    })
    .await;
    wait_until(
        "a read goes to Redis with the bus up",
        Duration::from_secs(5),
        async || {
            let healthy = b.bus_healthy();
            let before = redis_reads(&server).await;
            assert_eq!(b.get::<String>("l1ttl", &1).await.as_deref(), Some("v"));
            healthy && b.bus_healthy() && redis_reads(&server).await > before
        },
    )
    .await;
}

/// A plain Redis instance (no L1) sharing the prefix with tiered ones is a bus member: its
/// write must reach their L1s like a tiered instance's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_instance_write_reaches_a_tiered_l1() {
    let server = RedisServer::start();
    let tiered_b = Cache::new(tiered(&server)).await.unwrap();
    let plain = Cache::new(Config::redis(server.url()).prefix("t").timeout(TIMEOUT))
        .await
        .unwrap();
    wait_until("bus up", Duration::from_secs(5), async || {
        tiered_b.bus_healthy() && plain.bus_healthy()
    })
    .await;
    plain
        .set("mixed", &1, &"old".to_owned(), None)
        .await
        .unwrap();
    l1_holds(&server, "old", async || {
        tiered_b
            .get::<String>("mixed", &1)
            .await
            .unwrap_or_default()
    })
    .await;
    plain
        .set("mixed", &1, &"new".to_owned(), None)
        .await
        .unwrap();
    replaced("plain set", "old", "new", async || {
        tiered_b
            .get::<String>("mixed", &1)
            .await
            .unwrap_or_default()
    })
    .await;
}

/// A tiered `set` dropped after its first poll still replaces the value in the other
/// instance's L1: the write and its announcement complete in a task of the library's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_set_still_replaces_the_value_in_the_others_l1() {
    let server = RedisServer::start();
    let (a, b) = pair(&server).await;
    for round in 0..10u32 {
        a.set("dropped", &round, &"old".to_owned(), None)
            .await
            .unwrap();
        l1_holds(&server, "old", async || {
            b.get::<String>("dropped", &round).await.unwrap_or_default()
        })
        .await;
        let new = "new".to_owned();
        let set = a.set("dropped", &round, &new, None);
        // Polled once, then dropped.
        let _ = tokio::time::timeout(Duration::ZERO, set).await;
        wait_until(
            "the other instance reads the new value",
            Duration::from_secs(5),
            async || b.get::<String>("dropped", &round).await.as_deref() == Some("new"),
        )
        .await;
        replaced("dropped set", "old", "new", async || {
            b.get::<String>("dropped", &round).await.unwrap_or_default()
        })
        .await;
    }
}
