//! Contract lines checked with a body that never finishes during the check, so "never waits"
//! and "runs once" are proven rather than sampled: hits past `refresh_after`, the throttle of
//! a failing source, and `timeout` without a stale value.

use std::sync::atomic::AtomicUsize;

use super::*;

/// A body that counts its runs, then waits for `gate` and gives `value`.
fn counted(
    runs: &Arc<AtomicUsize>,
    gate: &Arc<tokio::sync::Notify>,
    value: Res,
) -> impl Future<Output = Res> + Send + 'static {
    let (runs, gate) = (runs.clone(), gate.clone());
    async move {
        runs.fetch_add(1, SeqCst);
        gate.notified().await;
        value
    }
}

/// 50 hits past `refresh_after` (25 per instance, concurrent) all answer while the refresh's
/// body is still blocked: nobody waits for it; the body ran once (in the cluster); its value
/// is then served.
pub async fn fifty_hits_past_refresh_after_never_wait(kind: Kind) {
    let (a, b, _servers) = setup(kind).await;
    let ns = "p_fifty";
    let refresh = FillOptions::new()
        .ttl(Duration::from_secs(30))
        .refresh_after(Duration::from_millis(200));
    assert_eq!(call(&a, ns, 1, refresh, ok(1)).await, Ok(1));
    pass(Duration::from_millis(300)).await;
    let (runs, gate) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(tokio::sync::Notify::new()),
    );
    let hits: Vec<_> = (0..50)
        .map(|i| {
            let cache = if i % 2 == 0 { a.clone() } else { b.clone() };
            let body = counted(&runs, &gate, Ok(2));
            tokio::spawn(async move { call(&cache, ns, 1, refresh, body).await })
        })
        .collect();
    for hit in hits {
        assert_eq!(hit.await.unwrap(), Ok(1), "{kind:?}: a hit, at once");
    }
    wait_until("the refresh runs", Duration::from_secs(5), async || {
        runs.load(SeqCst) >= 1
    })
    .await;
    gate.notify_waiters();
    for cache in [&a, &b] {
        wait_until("the refreshed value", Duration::from_secs(5), async || {
            call(cache, ns, 1, refresh, down()).await == Ok(2)
        })
        .await;
    }
    assert_eq!(runs.load(SeqCst), 1, "{kind:?}: refreshed once");
}

/// Past expiry with the source down, calls from both instances for half a second (under
/// [`cache_runtime::BACKOFF`]) try the source once and all get the stale value.
pub async fn a_failing_source_is_tried_once_per_backoff(kind: Kind) {
    let (a, b, _servers) = setup(kind).await;
    let ns = "p_throttle";
    assert_eq!(call(&a, ns, 1, opts(), ok(1)).await, Ok(1));
    expire().await;
    let runs = Arc::new(AtomicUsize::new(0));
    let failing = || {
        let runs = runs.clone();
        async move {
            runs.fetch_add(1, SeqCst);
            Err::<u64, _>("down".to_owned())
        }
    };
    let until = Instant::now() + Duration::from_millis(500);
    let mut calls = 0;
    while Instant::now() < until {
        let cache = if calls % 2 == 0 { &a } else { &b };
        assert_eq!(
            call(cache, ns, 1, opts(), failing()).await,
            Ok(1),
            "{kind:?}"
        );
        calls += 1;
    }
    assert!(calls >= 4, "only {calls} calls");
    assert_eq!(runs.load(SeqCst), 1, "{kind:?}: {calls} calls");
}

/// `timeout` without a stale value: the caller waits for the body (it is not cut off).
pub async fn without_a_stale_value_the_caller_waits(kind: Kind) {
    let (a, _b, _servers) = setup(kind).await;
    let (runs, gate) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(tokio::sync::Notify::new()),
    );
    let timeout = opts().timeout(Duration::from_millis(50));
    let cold =
        a.get_or_try_insert_with_options("p_cold", &1u64, timeout, counted(&runs, &gate, Ok(7)));
    tokio::pin!(cold);
    let early = tokio::time::timeout(Duration::from_millis(300), &mut cold).await;
    assert!(
        early.is_err(),
        "{kind:?}: answered {early:?} without a value"
    );
    gate.notify_one();
    assert_eq!(cold.await, Ok(7));
    assert_eq!(runs.load(SeqCst), 1);
}
