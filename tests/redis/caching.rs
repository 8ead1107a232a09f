//! The behavioural suite, part one: hits, misses and TTL expiry; key and namespace invalidations
//! seen by another instance. Run on one node and on a Cluster by `suite!`.

use super::*;

pub(super) async fn hit_miss_and_ttl_expiry(servers: Servers) {
    let cache = servers.cache().await;
    let mut raw = servers.raw().await;
    let runs = Runs::default();
    let ttl = Some(Duration::from_millis(1500));

    let first = cache
        .get_or_insert_with("ttl", &1, ttl, runs.body("one".to_string()))
        .await;
    let second = cache
        .get_or_insert_with("ttl", &1, ttl, runs.body("not this".to_string()))
        .await;
    assert_eq!((first.as_str(), second.as_str()), ("one", "one"));
    assert_eq!(runs.get(), 1, "the second call is a hit");
    let stats = cache.stats().namespace("ttl");
    assert_eq!((stats.hits, stats.misses, stats.inserts), (1, 1, 1));

    // Written with SET ... PX: Redis itself expires the entry.
    let key = cache.key_for::<String>("ttl", &1).unwrap();
    let pttl = raw.pttl(&key).await;
    assert!(0 < pttl && pttl <= 1500, "PTTL {pttl}");
    // No TTL: no expiry in Redis either.
    cache
        .set("ttl", &2, &"kept".to_string(), None)
        .await
        .unwrap();
    let kept = cache.key_for::<String>("ttl", &2).unwrap();
    assert_eq!(raw.pttl(&kept).await, -1);

    // Redis has its own clock: poll until it has dropped the entry.
    eventually("the entry expires", async || !raw.exists(&key).await).await;
    assert_eq!(cache.get::<String>("ttl", &1).await, None);
    let third = cache
        .get_or_insert_with("ttl", &1, ttl, runs.body("recomputed".to_string()))
        .await;
    assert_eq!(third, "recomputed");
    assert_eq!(runs.get(), 2);
    assert_eq!(
        cache.get::<String>("ttl", &2).await.as_deref(),
        Some("kept")
    );
}

pub(super) async fn exact_invalidation_is_seen_by_another_instance(servers: Servers) {
    let a = servers.cache().await;
    let b = servers.cache().await;
    let mut raw = servers.raw().await;
    let runs = Runs::default();
    for (k, v) in [(1, "one"), (2, "two")] {
        a.get_or_insert_with("user", &k, None, runs.body(v.to_string()))
            .await;
    }
    assert_eq!(b.get::<String>("user", &1).await.as_deref(), Some("one"));

    b.delete::<String>("user", &1).await.unwrap();
    assert!(!raw.exists(&a.key_for::<String>("user", &1).unwrap()).await);
    assert_eq!(a.get::<String>("user", &1).await, None);
    assert_eq!(a.get::<String>("user", &2).await.as_deref(), Some("two"));
    let again = a
        .get_or_insert_with("user", &1, None, runs.body("one again".to_string()))
        .await;
    assert_eq!(again, "one again");
    assert_eq!(runs.get(), 3, "only the deleted entry was recomputed");
    assert_eq!(
        b.get::<String>("user", &1).await.as_deref(),
        Some("one again")
    );
}

pub(super) async fn namespace_invalidation_is_seen_by_another_instance(servers: Servers) {
    let a = servers.cache().await;
    let b = servers.cache().await;
    let c = servers.cache().await;
    let n = 40u32;
    for i in 0..n {
        a.set("user", &i, &format!("user {i}"), None).await.unwrap();
    }
    a.set("other", &0, &"other".to_string(), None)
        .await
        .unwrap();
    let spread = servers.keys_per_node("cache:manual:user:*").await;
    assert_eq!(spread.iter().sum::<usize>(), n as usize);
    if matches!(servers, Servers::Cluster(_)) {
        assert!(
            spread.iter().filter(|&&k| k > 0).count() >= 2,
            "a namespace's entries live on several nodes: {spread:?}"
        );
    }
    for i in 0..n {
        assert_eq!(b.get::<String>("user", &i).await, Some(format!("user {i}")));
    }

    b.invalidate_namespace("user").await.unwrap();
    for i in 0..n {
        assert_eq!(a.get::<String>("user", &i).await, None, "user {i}");
    }
    assert_eq!(
        a.get::<String>("other", &0).await.as_deref(),
        Some("other"),
        "other namespaces are untouched"
    );
    // O(1): the entries are retired by the generation, not deleted one by one.
    assert_eq!(
        servers
            .keys_per_node("cache:manual:user:*")
            .await
            .iter()
            .sum::<usize>(),
        n as usize
    );

    // A write after another instance's invalidation is visible, even with no lookup between.
    a.set("user", &1, &"fresh".to_string(), None).await.unwrap();
    assert_eq!(b.get::<String>("user", &1).await.as_deref(), Some("fresh"));
    c.invalidate_namespace("user").await.unwrap();
    a.set("user", &2, &"after c".to_string(), None)
        .await
        .unwrap();
    assert_eq!(
        b.get::<String>("user", &2).await.as_deref(),
        Some("after c")
    );
    assert_eq!(b.get::<String>("user", &1).await, None);

    // And the whole cache.
    c.invalidate_all().await.unwrap();
    assert_eq!(a.get::<String>("other", &0).await, None);
    assert_eq!(b.get::<String>("user", &2).await, None);
    let runs = Runs::default();
    let v = a
        .get_or_insert_with("other", &0, None, runs.body("recomputed".to_string()))
        .await;
    assert_eq!((v.as_str(), runs.get()), ("recomputed", 1));
    assert_eq!(
        b.get::<String>("other", &0).await.as_deref(),
        Some("recomputed")
    );
}
