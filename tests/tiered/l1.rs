//! The L1 itself: hits without a Redis round trip, a miss filling its own L1, an L1 entry never
//! outliving its Redis entry, eviction by capacity and by bytes, and the L1 TTL.

use super::*;

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
