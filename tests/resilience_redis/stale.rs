//! `stale` and `refresh_after` on one Redis: a failing source served stale, an invalidation never
//! served stale, hits past `refresh_after` refreshing once across processes.

use super::*;

#[tokio::test]
async fn a_failing_source_serves_the_stale_value_and_recovers() {
    within(Duration::from_secs(60), async {
        let server = RedisServer::start();
        let a = cache(&server).await;
        let b = cache(&server).await;
        assert_eq!(call(&a, Some(1)).await, Ok(1));
        // Past expiry another process, whose source fails, gets the stale value.
        let until = std::time::Instant::now() + Duration::from_millis(400);
        eventually("expiry", async || std::time::Instant::now() >= until).await;
        assert_eq!(call(&b, None).await, Ok(1), "stale");
        assert_eq!(b.stats().namespace("price").stale_served, 1);
        // The source recovers: after the back-off the new value is stored.
        eventually("recovery", async || call(&b, Some(2)).await == Ok(2)).await;
        assert_eq!(
            call(&a, None).await,
            Ok(2),
            "the recovered value is stored in Redis"
        );
    })
    .await;
}

#[tokio::test]
async fn after_an_invalidation_a_failing_source_returns_its_error() {
    within(Duration::from_secs(60), async {
        let server = RedisServer::start();
        let a = cache(&server).await;
        let b = cache(&server).await;
        assert_eq!(call(&a, Some(1)).await, Ok(1));
        let until = std::time::Instant::now() + Duration::from_millis(400);
        eventually("expiry", async || std::time::Instant::now() >= until).await;
        a.delete::<u64>("price", &1).await.unwrap();
        assert_eq!(
            call(&b, None).await,
            Err("down".into()),
            "exact invalidation"
        );
        assert_eq!(call(&a, Some(3)).await, Ok(3));
        let until = std::time::Instant::now() + Duration::from_millis(400);
        eventually("expiry", async || std::time::Instant::now() >= until).await;
        a.invalidate_namespace("price").await.unwrap();
        assert_eq!(
            call(&b, None).await,
            Err("down".into()),
            "namespace invalidation"
        );
    })
    .await;
}

#[tokio::test]
async fn hits_past_refresh_after_refresh_once_across_processes() {
    within(Duration::from_secs(60), async {
        let server = RedisServer::start();
        let caches = [cache(&server).await, cache(&server).await];
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
        assert_eq!(get(&caches[0]).await, 0);
        let until = std::time::Instant::now() + Duration::from_millis(250);
        eventually("age", async || std::time::Instant::now() >= until).await;
        let calls: Vec<_> = (0..50).map(|i| tokio::spawn(get(&caches[i % 2]))).collect();
        for call in calls {
            assert!(
                call.await.unwrap() <= 1,
                "a hit: the old value or the refreshed one"
            );
        }
        eventually("the refresh", async || get(&caches[1]).await == 1).await;
        assert_eq!(runs.load(SeqCst), 2, "the body ran exactly once more");
        let refreshes = caches[0].stats().total.refreshes + caches[1].stats().total.refreshes;
        assert_eq!(refreshes, 1);
    })
    .await;
}
