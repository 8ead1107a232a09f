//! A cache built on one tokio runtime keeps working after that runtime is dropped, from any
//! other runtime (the shape of a test suite where every `#[tokio::test]` has its own runtime
//! and one of them calls `cache_runtime::init`): every call that should hit hits at once,
//! nothing errors, and the calls really reach Redis.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use cache_runtime::{Cache, Config, L1, cached};
use cache_tests::RedisServer;

static RUNS: AtomicU64 = AtomicU64::new(0);
static MEMORY: OnceLock<Cache> = OnceLock::new();
static REDIS: OnceLock<Cache> = OnceLock::new();

/// Cached through the global cache (tiered, set by `cache_runtime::init`).
#[cached(namespace = "rt_global")]
async fn global_double(x: u64) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    x * 2
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Runs `f` to completion on a fresh runtime, under an outer timeout, then drops the runtime.
fn on_new_runtime<F: Future<Output = ()>>(f: F) {
    let rt = runtime();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), f)
            .await
            .expect("the phase must finish within 30 s")
    });
    drop(rt);
}

async fn manual(cache: &Cache, k: u64) -> u64 {
    cache
        .get_or_insert_with("rt", &k, None, async move {
            RUNS.fetch_add(1, SeqCst);
            k * 3
        })
        .await
}

/// Calls every cache on key `k`, which each must already hold: no body may run.
async fn all_hit(k: u64) {
    let runs = RUNS.load(SeqCst);
    assert_eq!(manual(MEMORY.get().unwrap(), k).await, k * 3);
    assert_eq!(manual(REDIS.get().unwrap(), k).await, k * 3);
    assert_eq!(global_double(k).await, k * 2);
    assert_eq!(RUNS.load(SeqCst), runs, "key {k}: every call is a hit");
}

async fn errors() -> u64 {
    MEMORY.get().unwrap().stats().total.errors
        + REDIS.get().unwrap().stats().total.errors
        + cache_runtime::stats().total.errors
}

#[test]
fn caches_outlive_the_runtime_that_built_them() {
    let server = RedisServer::start();
    let url = server.url();
    on_new_runtime(async {
        MEMORY
            .set(Cache::new(Config::memory()).await.unwrap())
            .unwrap();
        let redis = Cache::new(Config::redis(url.clone()).prefix("rt_plain"))
            .await
            .unwrap();
        REDIS.set(redis).unwrap();
        cache_runtime::init(
            Config::redis(url.clone())
                .prefix("rt_tiered")
                .with_l1(L1::new(1000, Duration::from_secs(60))),
        )
        .await
        .unwrap();
        let tiered = cache_runtime::cache().unwrap();
        cache_tests::wait_until("bus up", Duration::from_secs(10), async || {
            tiered.bus_healthy()
        })
        .await;
        for k in 0..3 {
            manual(MEMORY.get().unwrap(), k).await;
            manual(REDIS.get().unwrap(), k).await;
            global_double(k).await;
        }
        all_hit(1).await;
        assert_eq!(errors().await, 0);
    });

    for phase in 0..2u64 {
        on_new_runtime(async {
            let mgets = server.command_calls("mget").await;
            let sets = server.command_calls("set").await;
            // Keys stored on the first runtime: hits at once, from every cache.
            for k in 0..3 {
                all_hit(k).await;
            }
            assert!(
                cache_runtime::cache().unwrap().bus_healthy(),
                "phase {phase}: the tiered cache's bus stays up across runtimes"
            );
            // New keys: a miss stores (reaching Redis), then a hit.
            let k = 100 + phase;
            let runs = RUNS.load(SeqCst);
            manual(MEMORY.get().unwrap(), k).await;
            manual(REDIS.get().unwrap(), k).await;
            global_double(k).await;
            assert_eq!(
                RUNS.load(SeqCst),
                runs + 3,
                "phase {phase}: one run per miss"
            );
            all_hit(k).await;
            assert_eq!(errors().await, 0, "phase {phase}: no cache errors");
            let plain_hits = REDIS.get().unwrap().stats().total.hits;
            assert!(
                plain_hits == 1 + 4 * (phase + 1),
                "plain redis hits: {plain_hits}"
            );
            assert!(
                server.command_calls("mget").await >= mgets + 5,
                "phase {phase}: the lookups reached redis"
            );
            assert!(
                server.command_calls("set").await >= sets + 2,
                "phase {phase}: the stores reached redis"
            );
        });
    }
}
