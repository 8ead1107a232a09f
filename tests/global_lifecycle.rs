//! The global cache: set once (a bad config leaves it unset, a second `init` is an error),
//! and `invalidate_all` drops every entry. One test in its own binary, since the global cache
//! is once per process.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use cache_runtime::{Config, Error, cached};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "life_a")]
async fn a(x: u64) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    x
}

#[cached(namespace = "life_b")]
async fn b(x: u64) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    x
}

#[tokio::test]
async fn init_once_then_invalidate_all() {
    let err = cache_runtime::init(Config::memory().max_entries(0))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
    assert!(err.to_string().contains("max_entries"), "{err}");
    assert!(cache_runtime::cache().is_err(), "a bad config sets nothing");

    cache_runtime::init(Config::memory().prefix("life"))
        .await
        .unwrap();
    let again = cache_runtime::init(Config::memory()).await.unwrap_err();
    assert!(matches!(again, Error::AlreadyInitialized), "{again:?}");
    let config = format!("{:?}", cache_runtime::cache().unwrap().config());
    assert!(
        config.contains(r#"prefix: "life""#),
        "the first configuration stays: {config}"
    );

    a(1).await;
    b(1).await;
    a(1).await;
    b(1).await;
    assert_eq!(RUNS.load(SeqCst), 2);
    cache_runtime::invalidate_all().await.unwrap();
    a(1).await;
    b(1).await;
    assert_eq!(RUNS.load(SeqCst), 4, "both namespaces recomputed");
    a(1).await;
    assert_eq!(RUNS.load(SeqCst), 4, "and cached again");

    let stats = cache_runtime::stats();
    assert_eq!(stats.total.invalidations, 1);
    assert_eq!(
        stats.total.hits,
        stats.namespace("life_a").hits + stats.namespace("life_b").hits
    );
}
