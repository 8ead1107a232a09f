//! The resilience counters and options at the lease: a cancelled holder taken over
//! (`lease_takeovers`), a failed refresh (`refresh_failures`),
//! `cross_process_single_flight(false)`.

use super::*;

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
