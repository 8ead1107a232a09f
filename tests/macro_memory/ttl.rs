//! TTLs on tokio's paused clock, through `#[cached(expire)]` and the manual API.

use super::*;

static TTL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "t_ttl", expire = 60)]
async fn short_lived(x: u64) -> u64 {
    TTL_RUNS.fetch_add(1, SeqCst);
    x
}

#[tokio::test(start_paused = true)]
async fn entries_expire_after_their_ttl() {
    setup().await;
    short_lived(1).await;
    tokio::time::advance(Duration::from_secs(59)).await;
    short_lived(1).await;
    assert_eq!(runs(&TTL_RUNS), 1, "still fresh after 59 s");
    tokio::time::advance(Duration::from_secs(2)).await;
    short_lived(1).await;
    assert_eq!(runs(&TTL_RUNS), 2, "expired after 61 s");
    short_lived(1).await;
    assert_eq!(
        runs(&TTL_RUNS),
        2,
        "the recomputed value is cached for another 60 s"
    );
}

static FOREVER_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "t_ttl_max", expire = 18446744073709551615)]
async fn practically_forever(x: u64) -> u64 {
    FOREVER_RUNS.fetch_add(1, SeqCst);
    x
}

#[tokio::test(start_paused = true)]
async fn the_longest_ttl_neither_panics_nor_expires() {
    setup().await;
    practically_forever(1).await;
    tokio::time::advance(Duration::from_secs(10 * 365 * 24 * 3600)).await;
    practically_forever(1).await;
    assert_eq!(runs(&FOREVER_RUNS), 1);
}

#[tokio::test(start_paused = true)]
async fn the_manual_api_honours_ttls() {
    let cache = Cache::new(Config::memory()).await.unwrap();
    let ttl = Some(Duration::from_secs(10));
    cache.set("m", &"a", &"one".to_string(), ttl).await.unwrap();
    cache
        .set("m", &"b", &"two".to_string(), None)
        .await
        .unwrap();
    cache
        .set("m", &"c", &3u8, Some(Duration::MAX))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(cache.get::<String>("m", &"a").await.as_deref(), Some("one"));
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(cache.get::<String>("m", &"a").await, None, "expired");
    assert_eq!(cache.get::<String>("m", &"b").await.as_deref(), Some("two"));
    assert_eq!(cache.get::<u8>("m", &"c").await, Some(3));
    // The same key with another type is another entry.
    assert_eq!(cache.get::<u8>("m", &"b").await, None);

    let mut computed = 0;
    for _ in 0..2 {
        let v = cache
            .get_or_insert_with("m", &"d", ttl, async {
                computed += 1;
                4u32
            })
            .await;
        assert_eq!(v, 4);
    }
    assert_eq!(computed, 1);
    tokio::time::advance(Duration::from_secs(11)).await;
    let v = cache
        .get_or_insert_with("m", &"d", ttl, async { 5u32 })
        .await;
    assert_eq!(v, 5, "recomputed after the TTL");

    let failed: Result<u32, &str> = cache
        .get_or_try_insert_with("m", &"e", ttl, async { Err("down") })
        .await;
    assert_eq!(failed, Err("down"));
    assert_eq!(cache.get::<u32>("m", &"e").await, None, "Err not stored");
    let ok: Result<u32, &str> = cache
        .get_or_try_insert_with("m", &"e", ttl, async { Ok(6) })
        .await;
    assert_eq!(ok, Ok(6));
    assert_eq!(cache.get::<u32>("m", &"e").await, Some(6));

    cache.delete::<u32>("m", &"e").await.unwrap();
    assert_eq!(cache.get::<u32>("m", &"e").await, None);
}

/// An expired entry does not stay in memory until capacity pushes it out: the store drops it
/// at its TTL (real time: the in-memory store keeps its own clock) and counts it as evicted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_entry_is_dropped_and_counted() {
    let cache = cache_runtime::Cache::new(cache_runtime::Config::memory())
        .await
        .unwrap();
    let ttl = Some(Duration::from_millis(50));
    cache.set("gone", &1, &"v".to_owned(), ttl).await.unwrap();
    // Written twice: the second write replaces the entry (the store's update path).
    cache.set("gone", &2, &"v".to_owned(), ttl).await.unwrap();
    cache.set("gone", &2, &"w".to_owned(), ttl).await.unwrap();
    cache.set("kept", &1, &"v".to_owned(), None).await.unwrap();
    cache_tests::wait_until(
        "the entry is dropped",
        Duration::from_secs(10),
        async || {
            cache.run_pending_tasks().await;
            cache.local_entry_count() == 1
        },
    )
    .await;
    assert_eq!(cache.stats().namespace("gone").evictions, 2);
    assert_eq!(cache.stats().namespace("kept").evictions, 0);
}
