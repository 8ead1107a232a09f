//! `stale`, `timeout`, `refresh_after` and cross-process single-flight against a real Redis
//! (real time, sub-second TTLs through the manual API's [`FillOptions`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_runtime::{Cache, Config, FillOptions};
use cache_tests::{RedisServer, within};

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

async fn expired(cache: &Cache) {
    eventually("the entry expires", async || {
        call(cache, Some(999)).await == Ok(999) || cache.stats().namespace("price").stale_served > 0
    })
    .await;
}

#[tokio::test]
async fn a_failing_source_serves_the_stale_value_and_recovers() {
    within(Duration::from_secs(60), async {
        let server = RedisServer::start();
        let a = cache(&server).await;
        let b = cache(&server).await;
        assert_eq!(call(&a, Some(1)).await, Ok(1));
        // Past expiry another process, whose source fails, gets the stale value.
        let until = std::time::Instant::now() + Duration::from_millis(400);
        eventually("expiry", async || std::time::Instant::now() >= until).await;
        assert_eq!(call(&b, None).await, Ok(1), "stale");
        assert_eq!(b.stats().namespace("price").stale_served, 1);
        // The source recovers: after the back-off the new value is stored.
        eventually("recovery", async || call(&b, Some(2)).await == Ok(2)).await;
        assert_eq!(
            call(&a, None).await,
            Ok(2),
            "the recovered value is stored in Redis"
        );
        let _ = expired;
    })
    .await;
}

#[tokio::test]
async fn after_an_invalidation_a_failing_source_returns_its_error() {
    within(Duration::from_secs(60), async {
        let server = RedisServer::start();
        let a = cache(&server).await;
        let b = cache(&server).await;
        assert_eq!(call(&a, Some(1)).await, Ok(1));
        let until = std::time::Instant::now() + Duration::from_millis(400);
        eventually("expiry", async || std::time::Instant::now() >= until).await;
        a.delete::<u64>("price", &1).await.unwrap();
        assert_eq!(
            call(&b, None).await,
            Err("down".into()),
            "exact invalidation"
        );
        assert_eq!(call(&a, Some(3)).await, Ok(3));
        let until = std::time::Instant::now() + Duration::from_millis(400);
        eventually("expiry", async || std::time::Instant::now() >= until).await;
        a.invalidate_namespace("price").await.unwrap();
        assert_eq!(
            call(&b, None).await,
            Err("down".into()),
            "namespace invalidation"
        );
    })
    .await;
}

#[tokio::test]
async fn hits_past_refresh_after_refresh_once_across_processes() {
    within(Duration::from_secs(60), async {
        let server = RedisServer::start();
        let caches = [cache(&server).await, cache(&server).await];
        let runs = Arc::new(AtomicUsize::new(0));
        let o = FillOptions::new()
            .ttl(Duration::from_secs(30))
            .refresh_after(Duration::from_millis(200));
        let get = |c: &Cache| {
            let (c, runs) = (c.clone(), runs.clone());
            async move {
                c.get_or_insert_with_options("hot", &1, o, async move { runs.fetch_add(1, SeqCst) })
                    .await
            }
        };
        assert_eq!(get(&caches[0]).await, 0);
        let until = std::time::Instant::now() + Duration::from_millis(250);
        eventually("age", async || std::time::Instant::now() >= until).await;
        let calls: Vec<_> = (0..50).map(|i| tokio::spawn(get(&caches[i % 2]))).collect();
        for call in calls {
            assert!(
                call.await.unwrap() <= 1,
                "a hit: the old value or the refreshed one"
            );
        }
        eventually("the refresh", async || get(&caches[1]).await == 1).await;
        assert_eq!(runs.load(SeqCst), 2, "the body ran exactly once more");
        let refreshes = caches[0].stats().total.refreshes + caches[1].stats().total.refreshes;
        assert_eq!(refreshes, 1);
    })
    .await;
}

/// Three cache instances (three "processes") with 100 concurrent callers each on one cold key
/// run the body once in the whole cluster through the options path, whichever options it has.
/// `opts`: `None` for the plain `get_or_insert_with`.
async fn stampede(config: impl Fn() -> Config, opts: Option<FillOptions>) -> (usize, u64) {
    let mut caches = Vec::new();
    for _ in 0..3 {
        let cache = Cache::new(config()).await.unwrap();
        eventually("connected", async || {
            cache.set("warm", &0, &0u8, None).await.is_ok() && cache.bus_healthy()
        })
        .await;
        caches.push(cache);
    }
    let runs = burst(&caches, opts, Duration::from_millis(50)).await;
    let mut coalesced = 0;
    for c in &caches {
        coalesced += c.stats().namespace("cold").coalesced;
    }
    (runs, coalesced)
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

fn all_options() -> FillOptions {
    FillOptions::new()
        .ttl(Duration::from_secs(30))
        .stale(Duration::from_secs(60))
        .timeout(Duration::from_millis(20))
        .refresh_after(Duration::from_secs(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_times_100_callers_on_a_cold_key_run_the_body_once_redis() {
    for opts in [
        None,
        Some(FillOptions::new().ttl(Duration::from_secs(30))),
        Some(all_options()),
    ] {
        let server = RedisServer::start();
        let url = server.url();
        let config = || {
            Config::redis(url.clone())
                .prefix("st")
                .timeout(SLOW_MACHINE)
        };
        let (runs, coalesced) = stampede(config, opts).await;
        assert_eq!(runs, 1, "{opts:?}");
        assert!(
            coalesced >= 2,
            "the other instances waited on the lease: {coalesced}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_times_100_callers_on_a_cold_key_run_the_body_once_tiered() {
    for opts in [
        None,
        Some(FillOptions::new().ttl(Duration::from_secs(30))),
        Some(all_options()),
    ] {
        let server = RedisServer::start();
        let url = server.url();
        let config = || {
            Config::redis(url.clone())
                .prefix("st")
                .timeout(SLOW_MACHINE)
                .with_l1(cache_runtime::L1::new(1000, Duration::from_secs(30)))
        };
        let (runs, coalesced) = stampede(config, opts).await;
        assert_eq!(runs, 1, "{opts:?}");
        assert!(
            coalesced >= 2,
            "the other instances waited on the lease: {coalesced}"
        );
    }
}

/// A fill lease holder that stalls past the term is taken over: another process's callers stop
/// waiting after the term, run the body once for that process (not once per caller) and store
/// its value; the holder's late value, read earlier, is then not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_a_stalled_lease_the_waiters_take_the_key_over_once_per_process() {
    let server = RedisServer::start();
    let config = || {
        Config::redis(server.url())
            .prefix("stall")
            .timeout(SLOW_MACHINE)
            .fill_lease(Duration::from_millis(200))
    };
    let (a, b) = cache_tests::bus_up_pair(config).await;
    let (release, holder) = hold_cold_lease(&a).await;
    let runs = burst(std::slice::from_ref(&b), None, Duration::ZERO).await;
    assert_eq!(runs, 1, "one body run in the waiting process");
    let stats = b.stats().namespace("cold");
    assert!(
        stats.coalesced >= 1 && stats.lease_takeovers >= 1,
        "{stats:?}"
    );
    release.notify_one();
    assert_eq!(
        holder.await.unwrap(),
        1,
        "the holder's caller gets its own value"
    );
    assert_eq!(
        b.get::<u64>("cold", &1).await,
        Some(7),
        "the taker's value is stored, not the stalled holder's"
    );
}

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

/// An expired entry within its stale window is recomputed once in the cluster: the other
/// processes serve the stale value meanwhile; when the source fails, no process retries it
/// within the back-off. Failed before the fix: one run per process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_entry_is_recomputed_once_in_the_cluster() {
    for l1 in [false, true] {
        let server = RedisServer::start();
        let caches = three(&server, l1).await;
        let o = opts();
        let first =
            caches[0].get_or_try_insert_with_options("exp", &1, o, async { Ok::<u64, String>(0) });
        assert_eq!(first.await, Ok(0));
        for (round, fails) in [(1u64, false), (2, true)] {
            pass(Duration::from_millis(400)).await;
            let runs = Arc::new(AtomicUsize::new(0));
            let calls: Vec<_> = (0..300)
                .map(|i| {
                    let (c, runs) = (caches[i % 3].clone(), runs.clone());
                    tokio::spawn(async move {
                        let body = async move {
                            runs.fetch_add(1, SeqCst);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            if fails {
                                Err("down".to_string())
                            } else {
                                Ok(round)
                            }
                        };
                        c.get_or_try_insert_with_options("exp", &1, o, body).await
                    })
                })
                .collect();
            for call in calls {
                let got = call.await.unwrap();
                assert!(
                    got == Ok(0) || got == Ok(1),
                    "l1 {l1}, round {round}: {got:?}"
                );
            }
            assert_eq!(
                runs.load(SeqCst),
                1,
                "l1 {l1}, round {round}: one run in the cluster"
            );
        }
        let mut stale_served = 0;
        for c in &caches {
            stale_served += c.stats().namespace("exp").stale_served;
        }
        assert!(stale_served > 0);
    }
}

/// A tiered hit answered by the L1 past `refresh_after` refreshes the entry, once in the
/// cluster. Failed before the fix: L1 hits started no refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiered_hits_past_refresh_after_refresh_once_across_processes() {
    let server = RedisServer::start();
    let caches = three(&server, true).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let o = FillOptions::new()
        .ttl(Duration::from_secs(30))
        .refresh_after(Duration::from_millis(200));
    let get = |c: &Cache| {
        let (c, runs) = (c.clone(), runs.clone());
        async move {
            c.get_or_insert_with_options("hot", &1, o, async move { runs.fetch_add(1, SeqCst) })
                .await
        }
    };
    for c in &caches {
        assert_eq!(get(c).await, 0, "filled once, then in each L1");
    }
    pass(Duration::from_millis(250)).await;
    let calls: Vec<_> = (0..60).map(|i| tokio::spawn(get(&caches[i % 3]))).collect();
    for call in calls {
        assert!(
            call.await.unwrap() <= 1,
            "a hit: the old value or the refreshed one"
        );
    }
    for c in &caches {
        eventually("the refresh", async || get(c).await == 1).await;
    }
    assert_eq!(runs.load(SeqCst), 2, "the body ran exactly once more");
    let mut refreshes = 0;
    for c in &caches {
        refreshes += c.stats().total.refreshes;
    }
    assert_eq!(refreshes, 1);
}

/// `lease_takeovers`: a lease holder that is cancelled gives its lease back at once, and the
/// process waiting on it (`coalesced`) takes the key over and fills it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_holder_is_taken_over_and_counted() {
    let server = RedisServer::start();
    let a = cache(&server).await;
    let b = cache(&server).await;
    let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let holder = {
        let (a, started) = (a.clone(), started.clone());
        tokio::spawn(async move {
            a.get_or_insert_with("take", &1, None, async move {
                started.store(true, SeqCst);
                std::future::pending::<u64>().await
            })
            .await
        })
    };
    eventually("the holder runs", async || started.load(SeqCst)).await;
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { b.get_or_insert_with("take", &1, None, async { 2u64 }).await })
    };
    eventually("b waits on the lease", async || {
        b.stats().namespace("take").coalesced == 1
    })
    .await;
    holder.abort();
    assert_eq!(waiter.await.unwrap(), 2, "b took the key over");
    let stats = b.stats().namespace("take");
    assert_eq!(
        (stats.coalesced, stats.lease_takeovers),
        (1, 1),
        "{stats:?}"
    );
    assert_eq!(
        a.get::<u64>("take", &1).await,
        Some(2),
        "b's value is stored"
    );
}

/// `refresh_failures`: a background refresh whose source fails keeps the entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_keeps_the_entry_and_is_counted() {
    let server = RedisServer::start();
    let a = cache(&server).await;
    let o = FillOptions::new()
        .ttl(Duration::from_secs(30))
        .refresh_after(Duration::from_millis(100));
    let get = |ok: bool| {
        let a = a.clone();
        async move {
            let body = async move {
                if ok {
                    Ok(1u64)
                } else {
                    Err("down".to_string())
                }
            };
            a.get_or_try_insert_with_options("rf", &1, o, body).await
        }
    };
    assert_eq!(get(true).await, Ok(1));
    pass(Duration::from_millis(150)).await;
    assert_eq!(
        get(false).await,
        Ok(1),
        "a hit; the refresh fails in the background"
    );
    eventually("the failed refresh", async || {
        a.stats().namespace("rf").refresh_failures == 1
    })
    .await;
    let stats = a.stats().namespace("rf");
    assert_eq!(stats.refreshes, 1);
    assert_eq!(get(false).await, Ok(1), "the entry is kept");
}

/// `Config::cross_process_single_flight(false)`: a miss that finds another process filling the
/// key does not wait for it (here the holder is stuck far past the bound below), it runs the
/// body at once, once per process, without storing; the holder's value is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cross_process_single_flight_misses_do_not_wait() {
    let server = RedisServer::start();
    let config = || {
        Config::redis(server.url())
            .prefix("solo")
            .timeout(SLOW_MACHINE)
            .fill_lease(Duration::from_secs(30))
            .cross_process_single_flight(false)
    };
    let (a, b) = cache_tests::bus_up_pair(config).await;
    let (release, holder) = hold_cold_lease(&a).await;
    // The body outlasts the callers' arrival, so they share its flight (this process's
    // single-flight stays); the bound is far below the holder's lease term (30 s).
    let burst = burst(std::slice::from_ref(&b), None, Duration::from_millis(300));
    let runs = tokio::time::timeout(Duration::from_secs(10), burst)
        .await
        .expect("the callers did not wait for the holder's lease");
    assert!(
        (1..=2).contains(&runs),
        "single-flight in the process: {runs} runs"
    );
    assert_eq!(b.stats().namespace("cold").coalesced, 0);
    release.notify_one();
    assert_eq!(holder.await.unwrap(), 1);
    assert_eq!(
        b.get::<u64>("cold", &1).await,
        Some(1),
        "the holder's value"
    );
}
