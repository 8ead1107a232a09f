//! Scenarios that found defects (both fixed): a caller that starts after an invalidation must
//! not get a detached body's value read before it, and a hung detached body must not stop
//! other processes from ever trying the source again.

use super::*;

/// A body detached by `timeout` (D1) reads the source, then an invalidation, a fresh fill and
/// its expiry happen while D1 still runs. A caller (C) that starts after all that finds the
/// new stale copy and D1 running under the same key: it must not be handed D1's value (read
/// before the invalidation); the stale copy (3) or its own body's value (4) are fine.
pub async fn a_caller_after_an_invalidation_never_gets_an_older_detached_value(kind: Kind) {
    let (a, b, _servers) = setup(kind).await;
    let ns = "p_follow";
    assert_eq!(call(&a, ns, 1, opts(), ok(1)).await, Ok(1));
    expire().await;
    let d1 = Gated::new();
    let short = opts().timeout(Duration::from_millis(100));
    assert_eq!(call(&b, ns, 1, short, d1.body(2)).await, Ok(1));
    d1.wait_started().await;
    invalidate(&a, Op::Delete, ns, 1).await;
    assert_eq!(
        call(&b, ns, 1, opts(), ok(3)).await,
        Ok(3),
        "a fill after it"
    );
    expire().await;
    let long = opts().timeout(Duration::from_secs(3));
    let c = b.get_or_try_insert_with_options(ns, &1u64, long, ok(4));
    tokio::pin!(c);
    // C either answers at once (it did not wait on D1) or parks on D1's outcome.
    if let Ok(got) = tokio::time::timeout(Duration::from_millis(300), &mut c).await {
        d1.release();
        assert!(got == Ok(3) || got == Ok(4), "{kind:?}: {got:?}");
        return;
    }
    d1.release();
    let got = c.await;
    assert!(
        got == Ok(3) || got == Ok(4),
        "{kind:?}: got {got:?}, a value read before the invalidation (the stale copy is 3)"
    );
}

/// A process whose detached body hangs (a source call without a timeout of its own) keeps the
/// recompute lease renewed. Another process with a healthy source must get a fresh value
/// within about the fill lease term (1 s here), not serve the stale one until `stale` ends.
pub async fn a_hung_detached_body_does_not_block_recovery_in_other_processes(kind: Kind) {
    let (a, b, _servers) = setup_with(kind, |c| c.fill_lease(Duration::from_secs(1))).await;
    let ns = "p_hung";
    assert_eq!(call(&a, ns, 1, opts(), ok(1)).await, Ok(1));
    expire().await;
    let hung = Gated::new();
    let short = opts().timeout(Duration::from_millis(100));
    assert_eq!(call(&a, ns, 1, short, hung.body(2)).await, Ok(1));
    hung.wait_started().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = call(&b, ns, 1, opts(), ok(5)).await;
    while got != Ok(5) && Instant::now() < deadline {
        tokio::task::yield_now().await;
        got = call(&b, ns, 1, opts(), ok(5)).await;
    }
    hung.release();
    assert_eq!(
        got,
        Ok(5),
        "{kind:?}: after 5 s (fill lease 1 s) the other process still serves the stale value \
         and never tries its healthy source"
    );
}
