//! `stale`, `timeout`, `refresh_after` and cross-process single-flight against a real Redis
//! (real time, sub-second TTLs through the manual API's [`FillOptions`]).
//!
//! This root holds the shared helpers; the tests are grouped by topic in `resilience_redis/`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_runtime::{Cache, Config, FillOptions};
use cache_tests::{RedisServer, within};

#[path = "resilience_redis/cluster.rs"]
mod cluster;
#[path = "resilience_redis/counters.rs"]
mod counters;
#[path = "resilience_redis/stale.rs"]
mod stale;
#[path = "resilience_redis/stampede.rs"]
mod stampede;

async fn cache(server: &RedisServer) -> Cache {
    let cache = Cache::new(Config::redis(server.url()).prefix("resil"))
        .await
        .unwrap();
    eventually("connected", async || {
        cache.set("warm", &0, &0u8, None).await.is_ok() && cache.bus_healthy()
    })
    .await;
    cache
}

/// Polls `cond` until it holds, for at most 5 s.
async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !cond().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within 5 s"
        );
        tokio::task::yield_now().await;
    }
}

/// Starts a fill of `("cold", 1)` on `cache` whose body waits for the returned `Notify` (and
/// then gives 1); returns once the body runs, so the fill lease is held.
async fn hold_cold_lease(
    cache: &Cache,
) -> (Arc<tokio::sync::Notify>, tokio::task::JoinHandle<u64>) {
    let release = Arc::new(tokio::sync::Notify::new());
    let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let holder = {
        let (cache, release, started) = (cache.clone(), release.clone(), started.clone());
        tokio::spawn(async move {
            cache
                .get_or_insert_with("cold", &1, None, async move {
                    started.store(true, SeqCst);
                    release.notified().await;
                    1u64
                })
                .await
        })
    };
    eventually("the holder runs", async || started.load(SeqCst)).await;
    (release, holder)
}

fn opts() -> FillOptions {
    FillOptions::new()
        .ttl(Duration::from_millis(300))
        .stale(Duration::from_secs(60))
}

async fn call(cache: &Cache, ok: Option<u64>) -> Result<u64, String> {
    cache
        .get_or_try_insert_with_options(
            "price",
            &1,
            opts(),
            async move { ok.ok_or("down".to_string()) },
        )
        .await
}

/// 100 concurrent callers on each of `caches` on one cold key, with a body that takes `body`:
/// how often the body ran (each run's value is checked to be shared by its callers).
async fn burst(caches: &[Cache], opts: Option<FillOptions>, body: Duration) -> usize {
    let runs = Arc::new(AtomicUsize::new(0));
    let n = caches.len() * 100;
    let gate = Arc::new(tokio::sync::Barrier::new(n));
    let calls: Vec<_> = (0..n)
        .map(|i| {
            let (c, runs, gate) = (caches[i % caches.len()].clone(), runs.clone(), gate.clone());
            tokio::spawn(async move {
                gate.wait().await;
                let body = async move {
                    tokio::time::sleep(body).await;
                    runs.fetch_add(1, SeqCst) as u64 + 7
                };
                match opts {
                    None => {
                        let ttl = Some(Duration::from_secs(30));
                        c.get_or_insert_with("cold", &1, ttl, body).await
                    }
                    Some(opts) => c.get_or_insert_with_options("cold", &1, opts, body).await,
                }
            })
        })
        .collect();
    let mut got = Vec::new();
    for call in calls {
        got.push(call.await.unwrap());
    }
    let runs = runs.load(SeqCst);
    got.sort_unstable();
    got.dedup();
    assert_eq!(
        got.len(),
        runs,
        "each run's value is shared by its callers: {got:?}"
    );
    runs
}

/// A Redis timeout that a burst of 300 calls on a loaded CI machine does not reach: with the
/// default (50 ms) the breaker may open, and each process then falls back to its own
/// single-flight (one body run per process, as documented).
const SLOW_MACHINE: Duration = Duration::from_secs(2);

/// Three caches on `server` (`l1`: tiered), connected, with a Redis timeout a loaded machine
/// does not reach.
async fn three(server: &RedisServer, l1: bool) -> Vec<Cache> {
    let mut caches = Vec::new();
    for _ in 0..3 {
        let mut config = Config::redis(server.url())
            .prefix("resil3")
            .timeout(SLOW_MACHINE);
        if l1 {
            config = config.with_l1(cache_runtime::L1::new(1000, Duration::from_secs(30)));
        }
        let cache = Cache::new(config).await.unwrap();
        eventually("connected", async || {
            cache.set("warm", &0, &0u8, None).await.is_ok() && cache.bus_healthy()
        })
        .await;
        caches.push(cache);
    }
    caches
}

/// Waits `d` of real time (the entries expire on Redis's clock).
async fn pass(d: Duration) {
    let until = std::time::Instant::now() + d;
    eventually("time passes", async || {
        tokio::time::sleep(Duration::from_millis(10)).await;
        std::time::Instant::now() >= until
    })
    .await;
}
