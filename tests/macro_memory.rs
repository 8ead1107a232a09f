//! `#[cached]` and the manual API on the memory backend, checked from outside as a user would.
//!
//! The global cache is initialised once for this binary ([`setup`]); each test uses its own
//! namespace, so tests running in parallel do not see each other's entries or statistics.
//! Whether a call hit is judged by counting body runs, never by timing. TTLs run on tokio's
//! paused clock.
//!
//! The tests are grouped by topic in `macro_memory/`; the default namespace's test stays here,
//! since the module path it checks is this file's.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_runtime::{Cache, CacheValue, CodecKind, Config, StatsSnapshot, cached};
use serde::{Deserialize, Serialize};

#[path = "macro_memory/basics.rs"]
mod basics;
#[path = "macro_memory/config.rs"]
mod config;
#[path = "macro_memory/invalidation.rs"]
mod invalidation;
#[path = "macro_memory/keys.rs"]
mod keys;
#[path = "macro_memory/stats.rs"]
mod stats;
#[path = "macro_memory/ttl.rs"]
mod ttl;

async fn setup() {
    static INIT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    INIT.get_or_init(|| async {
        cache_runtime::init(Config::memory())
            .await
            .expect("init the global cache")
    })
    .await;
}

async fn ns_stats(namespace: &str) -> StatsSnapshot {
    cache_runtime::stats().namespace(namespace)
}

fn runs(counter: &AtomicUsize) -> usize {
    counter.load(SeqCst)
}

// ----- the default namespace: its module path is what is tested, so it stays in the root -----

mod defaults {
    use super::*;
    pub static RUNS: AtomicUsize = AtomicUsize::new(0);
    #[cached]
    pub async fn plain(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x
    }
}

#[tokio::test]
async fn the_default_namespace_is_the_module_path_and_function_name() {
    setup().await;
    let namespace = "macro_memory::defaults::plain";
    assert_eq!(defaults::plain(1).await, 1);
    assert_eq!(defaults::plain(1).await, 1);
    let s = ns_stats(namespace).await;
    assert_eq!((s.hits, s.misses), (1, 1));
    cache_runtime::invalidate_namespace(namespace)
        .await
        .unwrap();
    assert_eq!(defaults::plain(1).await, 1);
    assert_eq!(runs(&defaults::RUNS), 2);
}
