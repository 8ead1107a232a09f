//! `stale` through the manual API: every kind of failure serves the expired value (counted,
//! recovered from), every kind of invalidation removes the stale copies, and a call without
//! `stale` is not served one.

use super::*;

/// Past expiry an `Err`, a panic and a body slower than `timeout` each get the stale value
/// (as `Ok`), counted in `stale_served`; the source recovers and its value is stored.
pub async fn stale_on_every_kind_of_failure(kind: Kind) {
    let (a, b, _servers) = setup(kind).await;
    let ns = "p_fail";
    for id in 1..=3 {
        assert_eq!(call(&a, ns, id, opts(), ok(id)).await, Ok(id));
    }
    expire().await;
    assert_eq!(call(&b, ns, 1, opts(), down()).await, Ok(1), "Err: stale");
    let panics = async { panic!("the source panicked") };
    assert_eq!(call(&b, ns, 2, opts(), panics).await, Ok(2), "panic: stale");
    let slow = Gated::new();
    let started = Instant::now();
    let timeout = opts().timeout(Duration::from_millis(100));
    assert_eq!(
        call(&b, ns, 3, timeout, slow.body(30)).await,
        Ok(3),
        "slow: stale"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered at the timeout, not after {:?}",
        started.elapsed()
    );
    assert_eq!(b.stats().namespace(ns).stale_served, 3, "{kind:?}");
    slow.release();
    // Recovery: after the back-off the body runs again and its value is stored for everyone.
    wait_until("recovery", Duration::from_secs(5), async || {
        call(&b, ns, 1, opts(), ok(11)).await == Ok(11)
    })
    .await;
    assert_eq!(call(&a, ns, 1, opts(), down()).await, Ok(11), "stored");
}

/// Past expiry, `delete`, `invalidate_namespace` and `invalidate_all` in one instance each
/// remove the stale copy: a failing source in the other instance gets its error.
pub async fn every_invalidation_removes_stale_copies(kind: Kind) {
    let (a, b, _servers) = setup(kind).await;
    let cases = [
        (Op::Delete, "p_inv_del"),
        (Op::Namespace, "p_inv_ns"),
        (Op::All, "p_inv_all"),
    ];
    for (op, ns) in cases {
        assert_eq!(call(&b, ns, 1, opts(), ok(1)).await, Ok(1));
        // b read it too (tiered: its L1 holds it).
        assert_eq!(call(&b, ns, 1, opts(), down()).await, Ok(1));
        expire().await;
        invalidate(&a, op, ns, 1).await;
        assert_eq!(
            call(&b, ns, 1, opts(), down()).await,
            Err("down".to_owned()),
            "{kind:?} {op:?}: an invalidated value served stale"
        );
        assert_eq!(
            call(&a, ns, 1, opts(), down()).await,
            Err("down".to_owned()),
            "{kind:?} {op:?}: an invalidated value served stale by the invalidator"
        );
        assert_eq!(b.stats().namespace(ns).stale_served, 0);
    }
}

/// `stale` is an option of each call: past expiry, while the entry is still served stale to
/// calls that have it, a call without it gets its body's error. Fails if the stale copy a
/// lookup found were used whatever the call's options.
pub async fn a_call_without_stale_gets_its_own_failure(kind: Kind) {
    let (a, b, _servers) = setup(kind).await;
    let ns = "p_no_stale";
    assert_eq!(call(&a, ns, 1, opts(), ok(1)).await, Ok(1));
    expire().await;
    assert_eq!(
        call(&a, ns, 1, opts(), down()).await,
        Ok(1),
        "{kind:?}: kept for `stale`"
    );
    let plain = FillOptions::new().ttl(Duration::from_millis(300));
    let served = b.stats().namespace(ns).stale_served;
    assert_eq!(
        call(&b, ns, 1, plain, down()).await,
        Err("down".to_owned()),
        "{kind:?}: served stale to a call without `stale`"
    );
    assert_eq!(b.stats().namespace(ns).stale_served, served, "{kind:?}");
}
