//! Statistics, values and arguments that cannot be serialized, `max_value_bytes` and eviction.

use super::*;

#[tokio::test]
async fn stats_count_per_namespace_and_in_total() {
    let cache = Cache::new(Config::memory()).await.unwrap();
    assert_eq!(cache.get::<u8>("a", &1).await, None);
    cache.set("a", &1, &1u8, None).await.unwrap();
    assert_eq!(cache.get::<u8>("a", &1).await, Some(1));
    assert_eq!(cache.get::<u8>("a", &1).await, Some(1));
    cache.set("b", &1, &1u8, None).await.unwrap();
    assert_eq!(cache.get::<u8>("b", &2).await, None);
    cache.invalidate_namespace("b").await.unwrap();

    let stats = cache.stats();
    let a = stats.namespace("a");
    let b = stats.namespace("b");
    assert_eq!((a.hits, a.misses, a.inserts), (2, 1, 1));
    assert_eq!((b.hits, b.misses, b.inserts, b.invalidations), (0, 1, 1, 1));
    assert_eq!(stats.total.hits, 2);
    assert_eq!(stats.total.misses, 2);
    assert_eq!(stats.total.inserts, 2);
    assert_eq!(stats.total.invalidations, 1);
    assert_eq!(stats.namespace("never used"), StatsSnapshot::default());
    // Serializable, for a /stats endpoint.
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["namespaces"]["a"]["hits"], 2);
}

/// A value whose serialization fails: it can be returned but never cached.
#[derive(Clone, Debug, PartialEq, Deserialize)]
struct Unencodable(u8);

impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "this value refuses to be encoded",
        ))
    }
}

static UNENCODABLE_RUNS: AtomicUsize = AtomicUsize::new(0);
static UNKEYABLE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "t_unencodable")]
async fn unencodable(x: u8) -> Unencodable {
    UNENCODABLE_RUNS.fetch_add(1, SeqCst);
    Unencodable(x)
}

#[cached(namespace = "t_unkeyable")]
async fn unkeyable(arg: Unencodable) -> u8 {
    UNKEYABLE_RUNS.fetch_add(1, SeqCst);
    arg.0
}

#[tokio::test]
async fn values_or_arguments_that_cannot_be_serialized_run_uncached_and_count_errors() {
    setup().await;
    for _ in 0..3 {
        assert_eq!(unencodable(1).await, Unencodable(1));
        assert_eq!(unkeyable(Unencodable(2)).await, 2);
    }
    assert_eq!(runs(&UNENCODABLE_RUNS), 3);
    assert_eq!(runs(&UNKEYABLE_RUNS), 3);
    assert_eq!(ns_stats("t_unencodable").await.errors, 3);
    assert_eq!(ns_stats("t_unkeyable").await.errors, 3);
}

#[tokio::test]
async fn values_over_max_value_bytes_are_returned_but_not_stored() {
    let cache = Cache::new(Config::memory().max_value_bytes(100))
        .await
        .unwrap();
    let big = "x".repeat(200);
    assert!(cache.set("big", &1, &big, None).await.is_err());
    let mut computed = 0;
    for _ in 0..2 {
        let v = cache
            .get_or_insert_with("big", &2, None, async {
                computed += 1;
                big.clone()
            })
            .await;
        assert_eq!(v, big);
    }
    assert_eq!(computed, 2);
    assert_eq!(cache.stats().namespace("big").oversized, 3);
}

#[tokio::test]
async fn eviction_bounds_the_entry_count() {
    let cache = Cache::new(Config::memory().max_entries(10)).await.unwrap();
    for i in 0..100u32 {
        cache.set("e", &i, &i, None).await.unwrap();
    }
    cache.run_pending_tasks().await;
    let held = cache.local_entry_count();
    let stats = cache.stats().namespace("e");
    assert!(held <= 10, "{held} entries held, bound is 10");
    assert!(held > 0);
    assert_eq!(stats.inserts, 100);
    assert_eq!(
        stats.evictions + held,
        100,
        "every entry is held or evicted"
    );
}

#[tokio::test]
async fn eviction_bounds_the_bytes() {
    // 1,000 entries may be held, but only 10,000 bytes: ~1 KB values fit nine at a time.
    let cfg = || Config::memory().max_entries(1_000).max_bytes(10_000);
    let cache = Cache::new(cfg()).await.unwrap();
    let value = "v".repeat(1_000);
    for i in 0..50u32 {
        cache.set("bytes", &i, &value, None).await.unwrap();
    }
    cache.run_pending_tasks().await;
    let held = cache.local_entry_count();
    let stats = cache.stats().namespace("bytes");
    assert!(
        (1..=10).contains(&held),
        "{held} KB-sized entries held in 10 KB"
    );
    assert_eq!(stats.evictions + held, 50);

    // The same number of small values fits: the bound is on bytes, not on count.
    let cache = Cache::new(cfg()).await.unwrap();
    for i in 0..50u32 {
        cache.set("small", &i, &(i as u8), None).await.unwrap();
    }
    cache.run_pending_tasks().await;
    assert_eq!(cache.local_entry_count(), 50);
    assert_eq!(cache.stats().namespace("small").evictions, 0);
}
