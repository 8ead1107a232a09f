//! Cancel safety at the resilience paths: a caller dropped while waiting for a detached body
//! (`timeout`) or for a stale entry's recomputation leaves the key usable, and a panicking
//! refresh leaves it refreshable.

use super::*;

/// A caller dropped before its `timeout` (body still running): the body goes on and stores its
/// value (as documented); later callers are not wedged behind it.
pub async fn a_caller_dropped_before_the_timeout_leaves_nothing_wedged(kind: Kind) {
    let (a, b, _servers) = setup(kind).await;
    let ns = "p_cancel_t";
    assert_eq!(call(&a, ns, 1, opts(), ok(1)).await, Ok(1));
    expire().await;
    let slow = Gated::new();
    let long = opts().timeout(Duration::from_secs(2));
    let dropped = b.get_or_try_insert_with_options(ns, &1u64, long, slow.body(2));
    let cut = tokio::time::timeout(Duration::from_millis(50), dropped).await;
    assert!(cut.is_err(), "the caller is cut before its timeout");
    slow.wait_started().await;
    // While the detached body runs, a caller with a short timeout gets the stale value.
    let short = opts().timeout(Duration::from_millis(100));
    assert_eq!(call(&b, ns, 1, short, ok(9)).await, Ok(1));
    slow.release();
    for cache in [&b, &a] {
        wait_until("the detached value", Duration::from_secs(5), async || {
            call(cache, ns, 1, opts(), down()).await == Ok(2)
        })
        .await;
    }
    // Past expiry again, the key recomputes normally.
    expire().await;
    wait_until("a new recomputation", Duration::from_secs(5), async || {
        call(&b, ns, 1, short, ok(3)).await == Ok(3)
    })
    .await;
}

/// A caller dropped while it recomputes an expired entry (no `timeout`): the recomputation
/// (and, on Redis, its recompute lease) is given back; both instances go on at once, and the
/// key recomputes within the back-off.
pub async fn a_caller_dropped_during_a_stale_recompute_leaves_nothing_wedged(kind: Kind) {
    let (a, b, _servers) = setup(kind).await;
    let ns = "p_cancel_r";
    assert_eq!(call(&a, ns, 1, opts(), ok(1)).await, Ok(1));
    expire().await;
    let slow = Gated::new();
    let held = b.get_or_try_insert_with_options(ns, &1u64, opts(), slow.body(2));
    let cut = tokio::time::timeout(Duration::from_millis(50), held).await;
    assert!(cut.is_err(), "the caller is cut mid-body");
    slow.wait_started().await;
    // Nobody waits for the dropped recomputation: each instance answers at once, with the
    // stale value or a new one, and within the back-off (plus slack) the new one is stored.
    for cache in [&a, &b] {
        let started = Instant::now();
        let got = call(cache, ns, 1, opts(), ok(5)).await;
        assert!(got == Ok(1) || got == Ok(5), "{kind:?}: {got:?}");
        assert!(started.elapsed() < Duration::from_millis(500), "waited");
    }
    for cache in [&a, &b] {
        wait_until("recomputed", Duration::from_secs(5), async || {
            call(cache, ns, 1, opts(), ok(5)).await == Ok(5)
        })
        .await;
    }
    slow.release();
}

/// A refresh whose body panics keeps the entry (counted in `refresh_failures`); after the
/// back-off a later hit refreshes it.
pub async fn a_panicking_refresh_keeps_the_entry_and_refreshes_later(kind: Kind) {
    let (a, b, _servers) = setup(kind).await;
    let ns = "p_rf_panic";
    let refresh = FillOptions::new()
        .ttl(Duration::from_secs(30))
        .refresh_after(Duration::from_millis(200));
    assert_eq!(call(&a, ns, 1, refresh, ok(1)).await, Ok(1));
    pass(Duration::from_millis(300)).await;
    let panics = async { panic!("the refresh panicked") };
    assert_eq!(call(&b, ns, 1, refresh, panics).await, Ok(1));
    wait_until("the failure counted", Duration::from_secs(5), async || {
        b.stats().namespace(ns).refresh_failures == 1
    })
    .await;
    assert_eq!(call(&b, ns, 1, refresh, ok(7)).await, Ok(1), "kept");
    wait_until("a later refresh", Duration::from_secs(5), async || {
        call(&b, ns, 1, refresh, ok(2)).await == Ok(2)
    })
    .await;
    wait_until(
        "the refreshed value everywhere",
        Duration::from_secs(5),
        async || call(&a, ns, 1, refresh, down()).await == Ok(2),
    )
    .await;
}
