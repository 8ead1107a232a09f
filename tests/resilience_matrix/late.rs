//! `timeout` and `refresh_after`: the late body's (or the refresh's) value replaces the entry,
//! unless an invalidation came while it ran (then it is never served, by any instance).

use super::*;

/// The stale value at the timeout; once the body ends its value is the entry, everywhere.
pub async fn a_late_body_replaces_the_entry(kind: Kind) {
    let (a, b, _servers) = setup(kind).await;
    let ns = "p_late";
    assert_eq!(call(&a, ns, 1, opts(), ok(1)).await, Ok(1));
    expire().await;
    let slow = Gated::new();
    let timeout = opts().timeout(Duration::from_millis(100));
    assert_eq!(call(&b, ns, 1, timeout, slow.body(2)).await, Ok(1));
    slow.release();
    for cache in [&a, &b] {
        wait_until("the late value", Duration::from_secs(5), async || {
            call(cache, ns, 1, opts(), down()).await == Ok(2)
        })
        .await;
    }
}

/// A body that read the source before an invalidation (`delete`, `invalidate_namespace`,
/// `invalidate_all`) and ends after it: its value is never served afterwards, nor is the
/// stale copy.
pub async fn an_invalidation_during_the_late_body_wins(kind: Kind) {
    let (a, b, _servers) = setup(kind).await;
    let cases = [
        (Op::Delete, "p_lt_del"),
        (Op::Namespace, "p_lt_ns"),
        (Op::All, "p_lt_all"),
    ];
    for (op, ns) in cases {
        assert_eq!(call(&a, ns, 1, opts(), ok(1)).await, Ok(1));
        expire().await;
        let slow = Gated::new();
        let timeout = opts().timeout(Duration::from_millis(100));
        assert_eq!(call(&b, ns, 1, timeout, slow.body(2)).await, Ok(1));
        slow.wait_started().await;
        let before = settled(&b, ns);
        invalidate(&a, op, ns, 1).await;
        slow.release();
        wait_until("the late body ends", Duration::from_secs(5), async || {
            settled(&b, ns) > before
        })
        .await;
        for (who, cache) in [("b", &b), ("a", &a)] {
            assert_eq!(
                call(cache, ns, 1, opts(), down()).await,
                Err("down".to_owned()),
                "{kind:?} {op:?}: {who} served a value read before the invalidation"
            );
        }
    }
}

/// A refresh whose body read the source before an invalidation: its value is never served.
pub async fn an_invalidation_during_a_refresh_wins(kind: Kind) {
    let (a, b, _servers) = setup(kind).await;
    let refresh = FillOptions::new()
        .ttl(Duration::from_secs(30))
        .refresh_after(Duration::from_millis(200));
    let cases = [
        (Op::Delete, "p_rf_del"),
        (Op::Namespace, "p_rf_ns"),
        (Op::All, "p_rf_all"),
    ];
    for (op, ns) in cases {
        assert_eq!(call(&a, ns, 1, refresh, ok(1)).await, Ok(1));
        pass(Duration::from_millis(300)).await;
        let slow = Gated::new();
        assert_eq!(call(&b, ns, 1, refresh, slow.body(2)).await, Ok(1), "a hit");
        slow.wait_started().await;
        let before = settled(&b, ns);
        invalidate(&a, op, ns, 1).await;
        slow.release();
        wait_until("the refresh ends", Duration::from_secs(5), async || {
            settled(&b, ns) > before
        })
        .await;
        for (who, cache) in [("b", &b), ("a", &a)] {
            let plain = FillOptions::new().ttl(Duration::from_secs(30));
            assert_eq!(
                call(cache, ns, 1, plain, ok(3)).await,
                Ok(3),
                "{kind:?} {op:?}: {who} served a refresh that read before the invalidation"
            );
        }
    }
}
