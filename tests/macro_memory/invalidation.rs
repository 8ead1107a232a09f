//! Invalidation: the `_invalidate` companion, one namespace, the whole cache.

use super::*;

static INV_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "t_invalidate")]
async fn square(x: u64, label: String) -> String {
    INV_RUNS.fetch_add(1, SeqCst);
    format!("{label}={}", x * x)
}

#[tokio::test]
async fn the_invalidate_companion_drops_exactly_that_call() {
    setup().await;
    square(2, "a".into()).await;
    square(3, "a".into()).await;
    assert_eq!(runs(&INV_RUNS), 2);
    square_invalidate(2, "a".into()).await.unwrap();
    square_invalidate(3, "other label".into()).await.unwrap(); // another call: nothing to drop
    square(2, "a".into()).await;
    square(3, "a".into()).await;
    assert_eq!(runs(&INV_RUNS), 3, "only (2, \"a\") ran again");
    assert_eq!(ns_stats("t_invalidate").await.invalidations, 2);
}

static NS_A_RUNS: AtomicUsize = AtomicUsize::new(0);
static NS_B_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "t_ns_a")]
async fn in_a(x: u64) -> u64 {
    NS_A_RUNS.fetch_add(1, SeqCst);
    x
}

#[cached(namespace = "t_ns_b")]
async fn in_b(x: u64) -> u64 {
    NS_B_RUNS.fetch_add(1, SeqCst);
    x
}

#[tokio::test]
async fn invalidate_namespace_drops_that_namespace_only() {
    setup().await;
    for x in 0..5 {
        in_a(x).await;
        in_b(x).await;
    }
    cache_runtime::invalidate_namespace("t_ns_a").await.unwrap();
    for x in 0..5 {
        in_a(x).await;
        in_b(x).await;
    }
    assert_eq!(runs(&NS_A_RUNS), 10, "every entry of t_ns_a recomputed");
    assert_eq!(runs(&NS_B_RUNS), 5, "t_ns_b untouched");
    // A value computed after the invalidation is cached again.
    in_a(0).await;
    assert_eq!(runs(&NS_A_RUNS), 10);
}

#[tokio::test]
async fn invalidate_all_on_an_instance_drops_everything() {
    let cache = Cache::new(Config::memory()).await.unwrap();
    for ns in ["x", "y"] {
        cache.set(ns, &1, &1u8, None).await.unwrap();
    }
    cache.invalidate_all().await.unwrap();
    assert_eq!(cache.get::<u8>("x", &1).await, None);
    assert_eq!(cache.get::<u8>("y", &1).await, None);
    cache.set("x", &1, &2u8, None).await.unwrap();
    assert_eq!(cache.get::<u8>("x", &1).await, Some(2), "usable afterwards");
}

/// A deleted entry leaves memory at once, not when its TTL or the capacity would push it out.
#[tokio::test]
async fn a_deleted_entry_leaves_memory_at_once() {
    let cache = Cache::new(Config::memory()).await.unwrap();
    cache.set("freed", &1, &"v".to_owned(), None).await.unwrap();
    cache.set("freed", &2, &"v".to_owned(), None).await.unwrap();
    cache.run_pending_tasks().await;
    assert_eq!(cache.local_entry_count(), 2);
    cache.delete::<String>("freed", &1).await.unwrap();
    cache.run_pending_tasks().await;
    assert_eq!(cache.local_entry_count(), 1);
}
