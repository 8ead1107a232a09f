//! A `#[cached]` function whose keys cannot fit `max_key_len` even hashed runs uncached, and
//! the skipped caching is counted as `oversized`, not as an error.

use std::cell::Cell;

use cache_runtime::{Config, cached};

thread_local! {
    static RUNS: Cell<u32> = const { Cell::new(0) };
}

#[cached(namespace = "a-namespace-long-enough-that-no-hashed-key-of-it-fits-in-eighty-bytes")]
async fn long_namespace(id: u64) -> u64 {
    RUNS.with(|r| r.set(r.get() + 1));
    id * 2
}

#[cached(namespace = "short")]
async fn short_namespace(id: u64) -> u64 {
    RUNS.with(|r| r.set(r.get() + 1));
    id * 3
}

#[tokio::test(flavor = "current_thread")]
async fn keys_over_the_limit_run_uncached_and_count_as_oversized() {
    cache_runtime::init(Config::memory().max_key_len(80))
        .await
        .unwrap();
    assert_eq!(long_namespace(21).await, 42);
    assert_eq!(long_namespace(21).await, 42);
    assert_eq!(RUNS.with(Cell::get), 2, "not cached: the body ran twice");
    let stats = cache_runtime::stats();
    let ns =
        stats.namespace("a-namespace-long-enough-that-no-hashed-key-of-it-fits-in-eighty-bytes");
    assert_eq!((ns.oversized, ns.errors, ns.hits), (2, 0, 0));

    // A key within the limit is cached as usual under the same configuration.
    assert_eq!(short_namespace(5).await, 15);
    assert_eq!(short_namespace(5).await, 15);
    assert_eq!(RUNS.with(Cell::get), 3);
    assert_eq!(cache_runtime::stats().namespace("short").hits, 1);
}
