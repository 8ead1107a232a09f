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
    cache_tests::kill_under(&mut server, &cache).await;
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

/// How the probe invalidates.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    Delete,
    Namespace,
    All,
}

/// The bus is down while Redis answers (SUBSCRIBE refused by ACL, the subscriber's connection
/// killed), so stamps are solo. F1 runs (gated; it read 1 before what follows) and Q queues
/// behind it. The key is invalidated by `op` (Ok). X misses after that and joins Q's queued flight
/// (anyone may, "its body has not begun"). F1 stores 1 under the old generation; then Q's
/// leader begins its fill with the generations Q looked up *before* the invalidation, finds
/// F1's entry valid under them, and hands it to X: a value read before an invalidation, served
/// to a caller that started after it returned (namespace and all; a delete voids F1's lease).
pub async fn a_caller_after_an_invalidation_never_joins_a_queued_flight_that_read_before(op: Op) {
    let server = RedisServer::start();
    let cache = Cache::new(config(&server, "qgen", Duration::from_secs(5)))
        .await
        .unwrap();
    wait_until("bus up", Duration::from_secs(10), async || {
        cache.bus_healthy()
    })
    .await;
    bus_down_redis_up(&server, &cache).await;
    let (f1, first) = hold(&cache, "qg", 1).await;
    let (q_runs, x_runs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut q = Box::pin(cache.get_or_insert_with("qg", &1u64, None, counted(&q_runs, 2)));
    let parked = tokio::time::timeout(Duration::from_millis(300), &mut q).await;
    assert!(parked.is_err(), "Q answered while F1 runs: {parked:?}");
    match op {
        Op::Delete => cache.delete::<u64>("qg", &1u64).await.unwrap(),
        Op::Namespace => cache.invalidate_namespace("qg").await.unwrap(),
        Op::All => cache.invalidate_all().await.unwrap(),
    }
    let mut x = Box::pin(cache.get_or_insert_with("qg", &1u64, None, counted(&x_runs, 3)));
    let parked = tokio::time::timeout(Duration::from_millis(300), &mut x).await;
    assert!(parked.is_err(), "X answered while F1 runs: {parked:?}");
    f1.release();
    assert_eq!(first.await.unwrap(), 1);
    let limit = Duration::from_secs(5);
    let (q, x) = (
        tokio::time::timeout(limit, q),
        tokio::time::timeout(limit, x),
    );
    let (q, x) = tokio::join!(q, x);
    let (q, x) = (q.expect("Q answers"), x.expect("X answers"));
    let runs = (q_runs.load(SeqCst), x_runs.load(SeqCst));
    let stored = cache.get::<u64>("qg", &1u64).await;
    assert_ne!(
        x, 1,
        "X, which started after the invalidation ({op:?}) returned Ok, got F1's value (read \
         before it); Q got {q}, body runs (Q, X) {runs:?}, stored now {stored:?}"
    );
}

/// Takes the bus of `cache` down while Redis keeps answering its commands: SUBSCRIBE is
/// refused to the default user, and the subscriber's connection is killed.
async fn bus_down_redis_up(server: &RedisServer, cache: &Cache) {
    server.acl_default(&["-subscribe"]).await;
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    wait_until("bus down", Duration::from_secs(10), async || {
        !cache.bus_healthy()
    })
    .await;
    assert!(
        cache.set("warm", &0, &0u8, None).await.is_ok(),
        "Redis answers"
    );
}
