//! Fail-open under Redis faults, with real servers: killed, restarted, paused (SIGSTOP),
//! unreachable at start, a cluster node down; the circuit breaker; malformed URLs.
//!
//! Every call must return the body's value, and none may take longer than the configured
//! timeout plus the body, give or take [`SLACK`] for scheduling on a busy machine. The connect
//! timeout is set far above that bound, so a call that waits for a connection attempt fails
//! the test. Recovery is checked by polling the hit counter with a deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Config, Error, cached};
use cache_tests::{RedisCluster, RedisServer, free_port, within};

/// The per-call Redis timeout configured in these tests.
const TIMEOUT: Duration = Duration::from_millis(100);
/// How long each body takes.
const BODY: Duration = Duration::from_millis(10);
/// Allowance for scheduling and debug builds on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(250);
/// Far above `TIMEOUT + BODY + SLACK`: waiting on a connection attempt would show.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn bound() -> Duration {
    TIMEOUT + BODY + SLACK
}

fn config(url: String) -> Config {
    Config::redis(url)
        .timeout(TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
}

/// One cached call of key `k` (value `k * 2`), checked for its value and its latency.
async fn checked_call(cache: &Cache, k: u64) {
    let start = Instant::now();
    let v = cache
        .get_or_insert_with("faults", &k, Some(Duration::from_secs(600)), async move {
            tokio::time::sleep(BODY).await;
            k * 2
        })
        .await;
    let took = start.elapsed();
    assert_eq!(v, k * 2, "the right value for {k}");
    assert!(
        took <= bound(),
        "a call for {k} took {took:?}, more than timeout + body ({:?}) + slack",
        TIMEOUT + BODY
    );
}

async fn hits(cache: &Cache) -> u64 {
    cache.stats().total.hits
}

/// Calls keys `0..10` in a loop until `cond` holds; fails after `secs` seconds.
async fn call_until(cache: &Cache, secs: u64, what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut k = 0;
    while !cond().await {
        assert!(Instant::now() < deadline, "not in time: {what}");
        checked_call(cache, k % 10).await;
        k += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn killed_mid_run_serves_every_call_and_recovers_after_restart() {
    within(Duration::from_secs(60), async {
        let mut server = RedisServer::start();
        let cache = Cache::new(config(server.url())).await.unwrap();
        call_until(&cache, 10, "warm hits", async || hits(&cache).await >= 10).await;

        server.kill();
        let errors = cache.stats().total.errors;
        for k in 0..60 {
            checked_call(&cache, k % 10).await;
        }
        let stats = cache.stats().total;
        assert!(stats.errors > errors, "failures are counted: {stats:?}");

        server.restart();
        let before = hits(&cache).await;
        call_until(&cache, 10, "hits again after the restart", async || {
            hits(&cache).await > before + 5
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn paused_server_fails_open_after_the_timeout_and_recovers() {
    within(Duration::from_secs(60), async {
        let server = RedisServer::start();
        let cache = Cache::new(config(server.url()).circuit_breaker(3, Duration::from_millis(500)))
            .await
            .unwrap();
        call_until(&cache, 10, "warm hits", async || hits(&cache).await >= 10).await;

        server.pause();
        let (hits_paused, errors) = (hits(&cache).await, cache.stats().total.errors);
        for k in 0..30 {
            checked_call(&cache, k % 10).await;
        }
        let stats = cache.stats().total;
        assert_eq!(
            stats.hits, hits_paused,
            "nothing is served from a frozen Redis"
        );
        assert!(stats.errors >= errors + 3, "{stats:?}");

        server.resume();
        call_until(&cache, 10, "hits again after SIGCONT", async || {
            hits(&cache).await > hits_paused + 5
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn circuit_breaker_stops_calling_redis_then_recovers() {
    within(Duration::from_secs(60), async {
        let mut server = RedisServer::start();
        let cooldown = Duration::from_secs(4);
        let cache = Cache::new(config(server.url()).circuit_breaker(3, cooldown))
            .await
            .unwrap();
        call_until(&cache, 10, "warm hits", async || hits(&cache).await >= 5).await;
        assert!(!cache.circuit_open());

        server.kill();
        call_until(&cache, 10, "the breaker opens", async || {
            cache.circuit_open()
        })
        .await;

        // A fresh server (empty command statistics) while the breaker is open: the calls do not
        // reach it.
        server.restart();
        let errors = cache.stats().total.errors;
        for k in 0..20 {
            checked_call(&cache, k % 10).await;
        }
        assert!(
            cache.circuit_open(),
            "still within the cooldown; make it longer if this machine is that slow"
        );
        assert_eq!(
            (
                server.command_calls("mget").await,
                server.command_calls("set").await
            ),
            (0, 0),
            "no lookup or store reached Redis while the breaker was open"
        );
        assert!(cache.stats().total.errors >= errors + 20);

        // After the cooldown a probe goes through and the cache is used again.
        let before = hits(&cache).await;
        call_until(
            &cache,
            15,
            "the breaker closes and hits resume",
            async || !cache.circuit_open() && hits(&cache).await > before + 5,
        )
        .await;
        assert!(server.command_calls("mget").await > 0);
    })
    .await;
}

#[tokio::test]
async fn cluster_node_down_fails_open_and_recovers() {
    within(Duration::from_secs(60), async {
        let mut cluster = RedisCluster::start();
        let cache = Cache::new(
            Config::redis_cluster(cluster.urls())
                .timeout(TIMEOUT)
                .connect_timeout(CONNECT_TIMEOUT),
        )
        .await
        .unwrap();
        call_until(&cache, 15, "warm hits", async || hits(&cache).await >= 10).await;

        cluster.nodes[0].kill();
        for k in 0..40 {
            checked_call(&cache, k % 10).await;
        }
        assert!(cache.stats().total.errors > 0);

        cluster.nodes[0].restart();
        let before = hits(&cache).await;
        call_until(
            &cache,
            30,
            "hits again after the node is back",
            async || hits(&cache).await > before + 10,
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn malformed_urls_are_invalid_url_errors() {
    within(Duration::from_secs(60), async {
        let port = free_port();
        for url in [
            "not a url".to_owned(),
            "http://x".to_owned(),
            "redis://:99999999".to_owned(),
            "redis://127.0.0.1:99999999".to_owned(),
            "".to_owned(),
            format!("redis://127.0.0.1:{port}/not-a-db"),
            format!("redis://127.0.0.1:{port}/-1"),
            "redis://[::1".to_owned(),
        ] {
            let single = Cache::new(Config::redis(url.clone())).await;
            assert!(
                matches!(&single, Err(Error::InvalidUrl { url: u, .. }) if *u == url),
                "{url:?}: {single:?}"
            );
            let good = format!("redis://127.0.0.1:{port}");
            let cluster = Cache::new(Config::redis_cluster([good, url.clone()])).await;
            assert!(
                matches!(&cluster, Err(Error::InvalidUrl { .. })),
                "{url:?}: {cluster:?}"
            );
        }
        let message = Cache::new(Config::redis("http://x"))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("http://x") && message.contains("redis://"),
            "{message}"
        );
        assert!(matches!(
            Cache::new(Config::redis_cluster(Vec::<String>::new())).await,
            Err(Error::InvalidConfig(_))
        ));
    })
    .await;
}

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(expire = 600, namespace = "boot")]
async fn slow_square(x: u64) -> u64 {
    CALLS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(BODY).await;
    x * x
}

/// The only test of this binary that sets the process-global cache.
#[tokio::test]
async fn init_with_an_unreachable_server_succeeds_and_connects_later() {
    within(Duration::from_secs(60), async {
        let mut server = RedisServer::start();
        server.kill();
        cache_runtime::init(config(server.url())).await.unwrap();

        let started = Instant::now();
        for x in 0..20 {
            let call = Instant::now();
            assert_eq!(slow_square(x % 5).await, (x % 5) * (x % 5));
            assert!(
                call.elapsed() <= bound(),
                "call {x} took {:?}",
                call.elapsed()
            );
        }
        assert_eq!(
            CALLS.load(Ordering::SeqCst),
            20,
            "nothing cached while down"
        );
        assert!(started.elapsed() <= bound() * 20);
        let stats = cache_runtime::stats().namespace("boot");
        assert!(stats.errors > 0 && stats.hits == 0, "{stats:?}");

        server.restart();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut x = 0;
        while cache_runtime::stats().namespace("boot").hits < 5 {
            assert!(
                Instant::now() < deadline,
                "the global cache is not used again"
            );
            assert_eq!(slow_square(x % 5).await, (x % 5) * (x % 5));
            x += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}
