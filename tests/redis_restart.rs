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

async fn restart_scenario(config: fn(&str) -> Config) {
    let mut server = RedisServer::start();
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
    server.restart();
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
    tokio::time::timeout(Duration::from_secs(60), restart_scenario(plain))
        .await
        .expect("within 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiered_restarted_from_rdb_revives_nothing() {
    tokio::time::timeout(Duration::from_secs(60), restart_scenario(tiered))
        .await
        .expect("within 60 s");
}
