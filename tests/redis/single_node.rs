//! Single-node only: `unix://` URLs (plain and tiered) and the password and database taken from the
//! URL.

use super::*;

/// `unix://` URLs: a server listening on a Unix socket only (`--port 0`), plain and tiered
/// (the bus subscribes over the socket too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_urls_work_plain_and_tiered() {
    let server = UnixRedis::start();
    let config = || {
        Config::redis(server.url())
            .timeout(Duration::from_secs(2))
            .connect_timeout(Duration::from_secs(2))
    };
    let plain = Cache::new(config()).await.unwrap();
    let tiered = Cache::new(config().with_l1(L1::new(100, Duration::from_secs(30))))
        .await
        .unwrap();
    wait_until("both buses up", Duration::from_secs(5), async || {
        plain.bus_healthy() && tiered.bus_healthy()
    })
    .await;
    eventually("a first write", async || {
        plain
            .set("unix", &1, &"one".to_string(), None)
            .await
            .is_ok()
    })
    .await;
    assert_eq!(
        tiered.get::<String>("unix", &1).await.as_deref(),
        Some("one")
    );
    tiered.invalidate_namespace("unix").await.unwrap();
    assert_eq!(plain.get::<String>("unix", &1).await, None);
    assert_eq!(tiered.get::<String>("unix", &1).await, None);
    assert!(!plain.circuit_open() && !tiered.circuit_open());
}

#[tokio::test]
async fn auth_and_database_come_from_the_url() {
    let server = RedisServer::start();
    let port = server.port();
    let mut admin = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("s3cret")
        .query_async::<()>(&mut admin)
        .await
        .unwrap();
    let runs = Runs::default();
    for url in [
        format!("redis://:s3cret@127.0.0.1:{port}/3"),
        format!("redis://default:s3cret@127.0.0.1:{port}/3"),
    ] {
        let cache = Cache::new(Config::redis(&url).timeout(Duration::from_secs(2)))
            .await
            .unwrap();
        for _ in 0..2 {
            let v = cache
                .get_or_insert_with("auth", &url, None, runs.body(url.clone()))
                .await;
            assert_eq!(v, url);
        }
        let key = cache.key_for::<String>("auth", &url).unwrap();
        let mut db3 = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let exists: u64 = redis::cmd("EXISTS")
            .arg(&key)
            .arg("cache:__gen:auth")
            .query_async(&mut db3)
            .await
            .unwrap();
        assert_eq!(exists, 2, "entry and generation are in database 3");
        cache.invalidate_namespace("auth").await.unwrap();
    }
    assert_eq!(runs.get(), 2, "each URL: one miss, one hit");
    let mut db0 = redis::Client::open(format!("redis://:s3cret@127.0.0.1:{port}/0"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let in_db0: u64 = redis::cmd("DBSIZE").query_async(&mut db0).await.unwrap();
    assert_eq!(in_db0, 0, "nothing in database 0");

    // A wrong password fails open: right values, errors counted, nothing cached.
    let wrong = Cache::new(
        Config::redis(format!("redis://:wrong@127.0.0.1:{port}/3")).timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    for i in 0..3 {
        let v = wrong
            .get_or_insert_with("auth", &"wrong", None, runs.body(i))
            .await;
        assert_eq!(v, i);
    }
    assert_eq!(runs.get(), 5);
    assert!(wrong.stats().total.errors >= 3);
}
