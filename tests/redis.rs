//! The Redis backend from the outside: one behavioural suite run against a single
//! `redis-server` and against a 3-master Redis Cluster (modules `single` and `cluster`), plus
//! single-node checks of URL auth/database and of `#[cached]` on a Redis global.
//!
//! Every test starts its own throwaway servers. Each `Cache` built here is an independent
//! instance (its own connections, generations and counters), standing in for another process.
//!
//! The suite's tests are in `redis/caching.rs` and `redis/entries.rs`, the single-node ones in
//! `redis/single_node.rs`; the `#[cached]` test on a Redis global stays here, since the keys it
//! checks hold this file's module path (`redis.double`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_runtime::L1;
use cache_runtime::{Cache, CodecKind, Config, Error, cached};
use cache_tests::{RedisCluster, RedisServer, UnixRedis, wait_until};
use redis::FromRedisValue;

#[path = "redis/caching.rs"]
mod caching;
#[path = "redis/entries.rs"]
mod entries;
#[path = "redis/single_node.rs"]
mod single_node;

use caching::*;
use entries::*;

// ----- support ----------------------------------------------------------------------------

/// The servers of one test: a single node or a cluster.
enum Servers {
    Single(RedisServer),
    Cluster(RedisCluster),
}

impl Servers {
    fn single() -> Self {
        Servers::Single(RedisServer::start())
    }

    fn cluster() -> Self {
        Servers::Cluster(RedisCluster::start())
    }

    /// A config for these servers. The timeout is generous: these tests check behaviour on a
    /// busy 2-core machine, not fail-open (that is `redis_faults.rs`).
    fn config(&self) -> Config {
        let config = match self {
            Servers::Single(s) => Config::redis(s.url()),
            Servers::Cluster(c) => Config::redis_cluster(c.urls()),
        };
        config
            .timeout(Duration::from_secs(2))
            .connect_timeout(Duration::from_secs(2))
    }

    async fn cache(&self) -> Cache {
        Cache::new(self.config()).await.expect("valid config")
    }

    /// A plain redis-rs connection for inspecting and planting data.
    async fn raw(&self) -> Raw {
        match self {
            Servers::Single(s) => Raw::Single(
                s.client()
                    .get_multiplexed_async_connection()
                    .await
                    .expect("raw connection"),
            ),
            Servers::Cluster(c) => Raw::Cluster(
                redis::cluster::ClusterClient::new(c.urls())
                    .expect("cluster client")
                    .get_async_connection()
                    .await
                    .expect("raw cluster connection"),
            ),
        }
    }

    /// How many keys matching `pattern` each node holds (inspection only: the cache itself
    /// never runs `KEYS` or `SCAN`).
    async fn keys_per_node(&self, pattern: &str) -> Vec<usize> {
        let nodes: Vec<&RedisServer> = match self {
            Servers::Single(s) => vec![s],
            Servers::Cluster(c) => c.nodes.iter().collect(),
        };
        let mut counts = Vec::new();
        for node in nodes {
            let mut conn = node
                .client()
                .get_multiplexed_async_connection()
                .await
                .expect("node connection");
            let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
                .arg(pattern)
                .query_async(&mut conn)
                .await
                .expect("KEYS");
            counts.push(keys.len());
        }
        counts
    }
}

enum Raw {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Raw {
    async fn query<T: FromRedisValue>(&mut self, cmd: &redis::Cmd) -> T {
        match self {
            Raw::Single(c) => cmd.query_async(c).await,
            Raw::Cluster(c) => cmd.query_async(c).await,
        }
        .expect("raw redis command")
    }

    async fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        self.query(redis::cmd("GET").arg(key)).await
    }

    async fn set(&mut self, key: &str, bytes: &[u8]) {
        self.query::<()>(redis::cmd("SET").arg(key).arg(bytes))
            .await
    }

    async fn exists(&mut self, key: &str) -> bool {
        self.query::<u64>(redis::cmd("EXISTS").arg(key)).await == 1
    }

    async fn pttl(&mut self, key: &str) -> i64 {
        self.query(redis::cmd("PTTL").arg(key)).await
    }
}

/// Counts how often a body runs.
#[derive(Clone, Default)]
struct Runs(Arc<AtomicUsize>);

impl Runs {
    /// A body returning `value` and counting the run.
    fn body<T>(&self, value: T) -> impl Future<Output = T> + use<T> {
        let runs = self.0.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            value
        }
    }

    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Polls `cond` until it holds; fails after 10 seconds.
async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not in time: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs each behavioural test against a single node and against a cluster.
macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod single {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::Servers::single()).await
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::Servers::cluster()).await
                }
            )*
        }
    };
}

suite!(
    hit_miss_and_ttl_expiry,
    exact_invalidation_is_seen_by_another_instance,
    namespace_invalidation_is_seen_by_another_instance,
    special_characters_in_arguments_work_and_do_not_collide,
    bad_entries_are_misses_counted_and_overwritten,
    limits_skip_caching_without_failing,
);

static DOUBLED: AtomicUsize = AtomicUsize::new(0);

#[cached(expire = 60, namespace = "global")]
async fn double(x: u64) -> u64 {
    DOUBLED.fetch_add(1, Ordering::SeqCst);
    x * 2
}

/// The only test of this binary that sets the process-global cache.
#[tokio::test]
async fn cached_functions_on_a_redis_global() {
    let server = RedisServer::start();
    cache_runtime::init(Config::redis(server.url()).timeout(Duration::from_secs(2)))
        .await
        .unwrap();
    assert!(matches!(
        cache_runtime::init(Config::redis(server.url())).await,
        Err(Error::AlreadyInitialized)
    ));
    let calls = || DOUBLED.load(Ordering::SeqCst);
    assert_eq!((double(21).await, double(21).await), (42, 42));
    assert_eq!(calls(), 1);

    let mut raw = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("cache:fn:global:redis.double:*")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(0 < pttl && pttl <= 60_000, "PTTL {pttl}");

    // Another process invalidates the namespace: the next call recomputes.
    let other = Cache::new(Config::redis(server.url())).await.unwrap();
    other.invalidate_namespace("global").await.unwrap();
    assert_eq!(double(21).await, 42);
    assert_eq!(calls(), 2);
    assert_eq!(double(21).await, 42);
    assert_eq!(calls(), 2);
    double_invalidate(21).await.unwrap();
    assert_eq!(double(21).await, 42);
    assert_eq!(calls(), 3);
    let stats = cache_runtime::stats().namespace("global");
    assert_eq!((stats.hits, stats.misses), (2, 3));
}
