//! Once in the cluster: an expired entry within its stale window recomputed once, tiered L1 hits
//! past `refresh_after` refreshed once.

use super::*;

/// An expired entry within its stale window is recomputed once in the cluster: the other
/// processes serve the stale value meanwhile; when the source fails, no process retries it
/// within the back-off. Failed before the fix: one run per process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_entry_is_recomputed_once_in_the_cluster() {
    for l1 in [false, true] {
        let server = RedisServer::start();
        let caches = three(&server, l1).await;
        let o = opts();
        let first =
            caches[0].get_or_try_insert_with_options("exp", &1, o, async { Ok::<u64, String>(0) });
        assert_eq!(first.await, Ok(0));
        for (round, fails) in [(1u64, false), (2, true)] {
            pass(Duration::from_millis(400)).await;
            let runs = Arc::new(AtomicUsize::new(0));
            let calls: Vec<_> = (0..300)
                .map(|i| {
                    let (c, runs) = (caches[i % 3].clone(), runs.clone());
                    tokio::spawn(async move {
                        let body = async move {
                            runs.fetch_add(1, SeqCst);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            if fails {
                                Err("down".to_string())
                            } else {
                                Ok(round)
                            }
                        };
                        c.get_or_try_insert_with_options("exp", &1, o, body).await
                    })
                })
                .collect();
            for call in calls {
                let got = call.await.unwrap();
                assert!(
                    got == Ok(0) || got == Ok(1),
                    "l1 {l1}, round {round}: {got:?}"
                );
            }
            assert_eq!(
                runs.load(SeqCst),
                1,
                "l1 {l1}, round {round}: one run in the cluster"
            );
        }
        let mut stale_served = 0;
        for c in &caches {
            stale_served += c.stats().namespace("exp").stale_served;
        }
        assert!(stale_served > 0);
    }
}

/// A tiered hit answered by the L1 past `refresh_after` refreshes the entry, once in the
/// cluster. Failed before the fix: L1 hits started no refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiered_hits_past_refresh_after_refresh_once_across_processes() {
    let server = RedisServer::start();
    let caches = three(&server, true).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let o = FillOptions::new()
        .ttl(Duration::from_secs(30))
        .refresh_after(Duration::from_millis(200));
    let get = |c: &Cache| {
        let (c, runs) = (c.clone(), runs.clone());
        async move {
            c.get_or_insert_with_options("hot", &1, o, async move { runs.fetch_add(1, SeqCst) })
                .await
        }
    };
    for c in &caches {
        assert_eq!(get(c).await, 0, "filled once, then in each L1");
    }
    pass(Duration::from_millis(250)).await;
    let calls: Vec<_> = (0..60).map(|i| tokio::spawn(get(&caches[i % 3]))).collect();
    for call in calls {
        assert!(
            call.await.unwrap() <= 1,
            "a hit: the old value or the refreshed one"
        );
    }
    for c in &caches {
        eventually("the refresh", async || get(c).await == 1).await;
    }
    assert_eq!(runs.load(SeqCst), 2, "the body ran exactly once more");
    let mut refreshes = 0;
    for c in &caches {
        refreshes += c.stats().total.refreshes;
    }
    assert_eq!(refreshes, 1);
}
