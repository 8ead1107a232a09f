//! A body detached by `timeout` runs on the caller's runtime, not on the library's background
//! runtime (`background.rs`: one thread, which drives every Redis connection, the bus and the
//! lease renewals, and which a CPU-bound body used to stall).

use super::*;

/// Past expiry, a caller with `timeout = 50 ms` whose body computes for 800 ms (CPU-bound, no
/// await: a synchronous parser, a template render) gets the stale value before the body ends,
/// and another key's hit meanwhile is answered (within the 200 ms Redis timeout, else it would
/// be a miss). Both used to wait for the body, which occupied the thread that drives the Redis
/// connections.
pub async fn a_cpu_bound_detached_body_does_not_stall_the_process() {
    let server = RedisServer::start();
    let (a, _b) = pair(|| config(&server, "cpu", Duration::from_secs(5))).await;
    a.set("other", &1u64, &5u64, None).await.unwrap();
    let opts = stale(Duration::from_millis(300));
    stored_then_expired(&a, "cpu", opts).await;
    let began = Arc::new(AtomicBool::new(false));
    let busy = {
        let began = began.clone();
        async move {
            began.store(true, SeqCst);
            let until = Instant::now() + Duration::from_millis(800);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            Ok::<u64, String>(2)
        }
    };
    let short = opts.timeout(Duration::from_millis(50));
    let caller = {
        let a = a.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let got = a
                .get_or_try_insert_with_options("cpu", &1u64, short, busy)
                .await;
            (got, started.elapsed())
        })
    };
    wait_until("the body runs", Duration::from_secs(5), async || {
        began.load(SeqCst)
    })
    .await;
    let started = Instant::now();
    let other = a.get::<u64>("other", &1u64).await;
    let hit = started.elapsed();
    let (got, answered) = caller.await.unwrap();
    assert!(
        got == Ok(1) && answered < Duration::from_millis(800) && other == Some(5),
        "timeout 50 ms: {got:?} after {answered:?}; another key's hit while the body ran: \
         {other:?} after {hit:?}"
    );
}
