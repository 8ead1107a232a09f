//! A Redis restarted from its persisted data (RDB here) must not bring invalidated entries
//! back: store, snapshot, invalidate, kill -9, restart from the same directory. The entry is
//! back in Redis (checked), yet no lookup returns it, neither from the caches that saw the old
//! server nor from one started afterwards; plain Redis and tiered.

use std::time::{Duration, Instant};

use cache_runtime::{Cache, Config, L1};
use cache_tests::RedisServer;

const OLD: &str = "before the invalidation";

fn plain(url: &str) -> Config {
    Config::redis(url)
        .prefix("restart")
        .timeout(Duration::from_millis(200))
}

fn tiered(url: &str) -> Config {
    plain(url).with_l1(L1::new(1000, Duration::from_secs(60)))
}

fn probing(url: &str) -> Config {
    plain(url).circuit_breaker(1, Duration::from_millis(20))
}

async fn fill(cache: &Cache, k: u64) -> String {
    cache
        .get_or_insert_with("restart", &k, None, async { OLD.to_owned() })
        .await
}

/// Reads key `k` (and a key invalidated by namespace) until `cache` uses Redis again, failing
/// if the old value ever comes back.
async fn never_old(cache: &Cache, server: &RedisServer, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for (ns, k) in [("restart", 1u64), ("restart_ns", 2)] {
            let v = cache.get::<String>(ns, &k).await;
            assert_ne!(v.as_deref(), Some(OLD), "{what}: {ns}/{k} came back");
        }
        // Redis is in use again once a fresh value round-trips through it.
        let mgets = server.command_calls("mget").await;
        cache
            .set("restart", &99u64, &"new".to_owned(), None)
            .await
            .ok();
        // (Tiered: the value may come from the L1 the write filled; a healthy bus has then
        // round-tripped Redis.)
        if cache.get::<String>("restart", &99u64).await.as_deref() == Some("new")
            && (server.command_calls("mget").await > mgets || cache.bus_healthy())
        {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: redis not used again");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn restart_scenario(config: fn(&str) -> Config, mut server: RedisServer) {
    let url = server.url();
    let a = Cache::new(config(&url)).await.unwrap();
    let b = Cache::new(config(&url)).await.unwrap();
    for cache in [&a, &b] {
        assert_eq!(fill(cache, 1).await, OLD);
        let v = cache
            .get_or_insert_with("restart_ns", &2u64, None, async { OLD.to_owned() })
            .await;
        assert_eq!(v, OLD);
    }
    let mut raw = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let () = redis::cmd("SAVE").query_async(&mut raw).await.unwrap();
    a.delete::<String>("restart", &1u64).await.unwrap();
    a.invalidate_namespace("restart_ns").await.unwrap();
    for cache in [&a, &b] {
        cache_tests::wait_until(
            "invalidated everywhere",
            Duration::from_secs(5),
            async || {
                cache.get::<String>("restart", &1u64).await.is_none()
                    && cache.get::<String>("restart_ns", &2u64).await.is_none()
            },
        )
        .await;
    }
    let key = a.key_for::<String>("restart", &1u64).unwrap();
    server.kill();
    // Reads while it restarts: a connection (and its incarnation check) is made as soon as
    // the server accepts one, possibly while it is still loading its snapshot.
    let reader = tokio::spawn({
        let a = a.clone();
        async move {
            loop {
                let _ = a.get::<String>("restart", &3u64).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    server.restart();
    reader.abort();
    let mut raw = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let revived: Option<Vec<u8>> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(
        revived.is_some(),
        "the snapshot brought the deleted entry back"
    );
    never_old(&a, &server, "cache a").await;
    never_old(&b, &server, "cache b").await;
    let c = Cache::new(config(&url)).await.unwrap();
    never_old(&c, &server, "a cache started after the restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_redis_restarted_from_rdb_revives_nothing() {
    tokio::time::timeout(
        Duration::from_secs(60),
        restart_scenario(plain, RedisServer::start()),
    )
    .await
    .expect("within 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiered_restarted_from_rdb_revives_nothing() {
    tokio::time::timeout(
        Duration::from_secs(60),
        restart_scenario(tiered, RedisServer::start()),
    )
    .await
    .expect("within 60 s");
}

/// The same while the restarted server is still loading its snapshot: it answers `LOADING`
/// for about two seconds (20,000 padding keys loaded 100 µs each, answering between every
/// kilobyte), while the circuit breaker lets a probe through every 20 ms. The incarnation
/// check of a connection made meanwhile fails with `LOADING`: it is retried once the data is
/// loaded, never skipped (a skipped check would let the revived entries be served).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_redis_still_loading_its_snapshot_revives_nothing() {
    let server = RedisServer::start_with(&[
        "--key-load-delay",
        "100",
        "--loading-process-events-interval-bytes",
        "1024",
    ]);
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for chunk in 0..20 {
        let pairs: Vec<(String, u8)> = (0..1_000)
            .map(|i| (format!("pad:{chunk}:{i}"), 0))
            .collect();
        let () = redis::cmd("MSET")
            .arg(&pairs)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    tokio::time::timeout(Duration::from_secs(60), restart_scenario(probing, server))
        .await
        .expect("within 60 s");
}
