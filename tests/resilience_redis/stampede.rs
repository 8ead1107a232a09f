//! Cross-process single-flight: three instances with 100 callers each on a cold key run the body
//! once (plain Redis and tiered), and a stalled lease holder is taken over once per process.

use super::*;

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
