//! Single-flight with the bus down (Redis killed): callers queue behind the running flight
//! (`Leader::begin`). A queued leader dropped while it waits must hand its followers on.

use super::*;

/// Redis is killed, so the bus is down and every stamp is solo. F1 runs (gated); Q misses and
/// queues behind it (its body does not run); R misses and joins Q's queued flight. Q's caller
/// is dropped while Q waits in `begin`. R must not stay parked on the abandoned flight (nor
/// behind F1): it runs its own body, at once, while F1 still runs; later callers are not
/// wedged either. Fails (R hangs) if a dropped queued leader leaves its flight in the map.
pub async fn a_queued_leader_dropped_in_begin_hands_its_followers_on() {
    let mut server = RedisServer::start();
    let cache = Cache::new(config(&server, "queued", Duration::from_secs(5)))
        .await
        .unwrap();
    wait_until("bus up", Duration::from_secs(10), async || {
        cache.bus_healthy()
    })
    .await;
    server.kill();
    wait_until("bus down", Duration::from_secs(10), async || {
        !cache.bus_healthy()
    })
    .await;
    let (f1, first) = hold(&cache, "qd", 1).await;
    let (q_runs, r_runs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    // Boxed, so that `drop(q)` drops the call itself.
    let mut q = Box::pin(cache.get_or_insert_with("qd", &1u64, None, counted(&q_runs, 2)));
    let parked = tokio::time::timeout(Duration::from_millis(300), &mut q).await;
    assert!(parked.is_err(), "Q answered while F1 runs: {parked:?}");
    assert_eq!(q_runs.load(SeqCst), 0, "Q's body began before F1 ended");
    let r = cache.get_or_insert_with("qd", &1u64, None, counted(&r_runs, 3));
    tokio::pin!(r);
    let parked = tokio::time::timeout(Duration::from_millis(300), &mut r).await;
    assert!(parked.is_err(), "R answered while F1 runs: {parked:?}");
    // Q's caller goes away while Q waits for F1.
    drop(q);
    let got = tokio::time::timeout(Duration::from_secs(3), &mut r).await;
    assert_eq!(
        got,
        Ok(3),
        "R stayed parked after its queued leader was dropped"
    );
    assert_eq!(r_runs.load(SeqCst), 1);
    assert!(!first.is_finished(), "F1 still runs");
    f1.release();
    assert_eq!(first.await.unwrap(), 1);
    // Nothing is wedged: a later miss runs its body (nothing is stored with Redis down).
    let later = Arc::new(AtomicUsize::new(0));
    let got = tokio::time::timeout(
        Duration::from_secs(3),
        cache.get_or_insert_with("qd", &1u64, None, counted(&later, 4)),
    )
    .await;
    assert_eq!(got, Ok(4));
    assert_eq!((q_runs.load(SeqCst), later.load(SeqCst)), (0, 1));
}
