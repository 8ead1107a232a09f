//! Generations and invalidation recovery against edge cases of a real Redis: lost generation
//! keys, TTLs beyond what Redis accepts, and re-applying an invalidation while the circuit
//! breaker is still cooling down.

use std::time::Duration;

use cache_runtime::{Cache, Config, Error};
use cache_tests::{RedisServer, within};
use redis::AsyncCommands;

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_lost_generation_key_never_revives_invalidated_entries() {
    let server = RedisServer::start();
    let cache = Cache::new(Config::redis(server.url()).prefix("gens"))
        .await
        .unwrap();
    cache
        .set("user", &1, &"before".to_string(), None)
        .await
        .unwrap();
    assert_eq!(
        cache.get::<String>("user", &1).await.as_deref(),
        Some("before")
    );

    // The generation key disappears (evicted under maxmemory, or deleted by hand): the entry
    // written before the invalidation must stay dead.
    let mut conn = raw(&server).await;
    let removed: u32 = conn.del("gens:__gen:user").await.unwrap();
    assert_eq!(
        removed, 1,
        "the namespace generation lives under gens:__gen:user"
    );
    assert_eq!(cache.get::<String>("user", &1).await, None);
    let other = Cache::new(Config::redis(server.url()).prefix("gens"))
        .await
        .unwrap();
    assert_eq!(other.get::<String>("user", &1).await, None);

    // And the namespace keeps working afterwards.
    cache
        .set("user", &1, &"after".to_string(), None)
        .await
        .unwrap();
    assert_eq!(
        other.get::<String>("user", &1).await.as_deref(),
        Some("after")
    );
    // Invalidating a namespace deletes its generation the same way (a write Redis accepts
    // even when out of memory).
    cache.invalidate_namespace("user").await.unwrap();
    assert_eq!(other.get::<String>("user", &1).await, None);
    let exists: u32 = conn.exists("gens:__gen:user").await.unwrap();
    assert_eq!(exists, 0);
}

#[tokio::test]
async fn ttls_beyond_what_redis_accepts_are_stored_without_expiry() {
    let server = RedisServer::start();
    let cache = Cache::new(Config::redis(server.url())).await.unwrap();
    for (i, ttl) in [Duration::MAX, Duration::from_secs(u64::MAX / 1000)]
        .into_iter()
        .enumerate()
    {
        cache
            .set("long", &i, &"kept".to_string(), Some(ttl))
            .await
            .unwrap();
        assert_eq!(
            cache.get::<String>("long", &i).await.as_deref(),
            Some("kept")
        );
        let key = cache.key_for::<String>("long", &i).unwrap();
        let pttl: i64 = raw(&server).await.pttl(&key).await.unwrap();
        assert_eq!(pttl, -1, "stored without expiry");
    }
}

#[tokio::test]
async fn a_pending_invalidation_is_reapplied_while_the_breaker_cools_down() {
    within(Duration::from_secs(30), async {
        let server = RedisServer::start();
        let config = Config::redis(server.url())
            .timeout(Duration::from_millis(50))
            .circuit_breaker(1, Duration::from_secs(600));
        let cache = Cache::new(config).await.unwrap();
        cache
            .set("item", &7, &"old".to_string(), None)
            .await
            .unwrap();
        let key = cache.key_for::<String>("item", &7).unwrap();

        server.pause();
        assert!(
            cache.delete::<String>("item", &7).await.is_err(),
            "Redis is paused"
        );
        assert_eq!(cache.pending_invalidations(), 1);
        assert!(
            cache.circuit_open(),
            "one failure opens a breaker with threshold 1"
        );
        // While pending, this process does not serve the key from Redis.
        assert_eq!(cache.get::<String>("item", &7).await, None);
        server.resume();

        // Recovery probes through the open breaker (cooldown 10 minutes) and re-applies the delete.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while cache.pending_invalidations() > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "pending invalidation not re-applied"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let exists: bool = raw(&server).await.exists(&key).await.unwrap();
        assert!(!exists, "the old entry was deleted from Redis");
        assert!(
            !cache.circuit_open(),
            "the successful probe closed the breaker"
        );
    })
    .await;
}

/// Two caches on `server` whose breaker, once open, stays open (a 600 s cooldown), with a
/// Redis timeout a loaded machine does not reach.
async fn patient_pair(server: &RedisServer) -> (Cache, Cache) {
    let config = || {
        Config::redis(server.url())
            .timeout(Duration::from_secs(1))
            .circuit_breaker(1, Duration::from_secs(600))
    };
    (
        Cache::new(config()).await.unwrap(),
        Cache::new(config()).await.unwrap(),
    )
}

/// The pending check on its own: Redis answers (another key is a hit, the breaker is closed)
/// and still holds the old value, but refuses the delete; only the pending invalidation can
/// keep this process from serving it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_key_is_not_served_while_redis_answers() {
    within(Duration::from_secs(30), async {
        let server = RedisServer::start();
        let (cache, other) = patient_pair(&server).await;
        for (id, value) in [(7, "old"), (8, "other")] {
            cache
                .set("item", &id, &value.to_owned(), None)
                .await
                .unwrap();
        }
        let key = cache.key_for::<String>("item", &7).unwrap();

        server.acl_default(&["-del"]).await;
        assert!(
            cache.delete::<String>("item", &7).await.is_err(),
            "DEL refused"
        );
        assert_eq!(cache.pending_invalidations(), 1);
        // Preconditions: Redis answers this cache, the breaker is closed, the old value is in
        // Redis, and a process with nothing pending reads it (the documented window).
        assert_eq!(
            cache.get::<String>("item", &8).await.as_deref(),
            Some("other")
        );
        assert!(!cache.circuit_open());
        let exists: bool = raw(&server).await.exists(&key).await.unwrap();
        assert!(exists);
        assert_eq!(
            other.get::<String>("item", &7).await.as_deref(),
            Some("old")
        );
        // So only the pending check refuses it here.
        assert_eq!(cache.get::<String>("item", &7).await, None);
        // Nor is a value stored under it meanwhile (Redis would take this write).
        let refused = cache.set("item", &7, &"written".to_owned(), None).await;
        assert!(
            matches!(refused, Err(Error::InvalidationPending)),
            "{refused:?}"
        );
        assert_eq!(
            other.get::<String>("item", &7).await.as_deref(),
            Some("old"),
            "Redis unchanged"
        );
        assert_eq!(cache.pending_invalidations(), 1, "still pending");

        server.acl_default(&["+del"]).await;
        assert_eq!(cache.flush_pending(Duration::from_secs(5)).await, 0);
        let exists: bool = raw(&server).await.exists(&key).await.unwrap();
        assert!(!exists, "re-applied");
        assert_eq!(other.get::<String>("item", &7).await, None);
    })
    .await;
}

/// The same for a pending namespace invalidation: Redis refuses the delete of the namespace's
/// generation, so its entries still read as current there; this process serves none of them,
/// and keeps serving the other namespaces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_namespace_is_not_served_while_redis_answers() {
    within(Duration::from_secs(30), async {
        let server = RedisServer::start();
        let (cache, other) = patient_pair(&server).await;
        cache
            .set("item", &7, &"old".to_owned(), None)
            .await
            .unwrap();
        cache
            .set("thing", &8, &"kept".to_owned(), None)
            .await
            .unwrap();

        server.acl_default(&["-del"]).await;
        assert!(cache.invalidate_namespace("item").await.is_err());
        assert_eq!(cache.pending_invalidations(), 1);
        // Preconditions: Redis answers this cache for another namespace (breaker closed), and
        // a process with nothing pending still reads the old entry.
        assert_eq!(
            cache.get::<String>("thing", &8).await.as_deref(),
            Some("kept")
        );
        assert!(!cache.circuit_open());
        assert_eq!(
            other.get::<String>("item", &7).await.as_deref(),
            Some("old")
        );
        // So only the pending check refuses it here.
        assert_eq!(cache.get::<String>("item", &7).await, None);

        server.acl_default(&["+del"]).await;
        assert_eq!(cache.flush_pending(Duration::from_secs(5)).await, 0);
        assert_eq!(other.get::<String>("item", &7).await, None, "re-applied");
    })
    .await;
}
