//! The Redis backend from the outside: one behavioural suite run against a single
//! `redis-server` and against a 3-master Redis Cluster (modules `single` and `cluster`), plus
//! single-node checks of URL auth/database and of `#[cached]` on a Redis global.
//!
//! Every test starts its own throwaway servers. Each `Cache` built here is an independent
//! instance (its own connections, generations and counters), standing in for another process.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_runtime::L1;
use cache_runtime::{Cache, CodecKind, Config, Error, cached};
use cache_tests::{RedisCluster, RedisServer, UnixRedis, wait_until};
use redis::FromRedisValue;

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

// ----- the suite --------------------------------------------------------------------------

async fn hit_miss_and_ttl_expiry(servers: Servers) {
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

async fn exact_invalidation_is_seen_by_another_instance(servers: Servers) {
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

async fn namespace_invalidation_is_seen_by_another_instance(servers: Servers) {
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

async fn special_characters_in_arguments_work_and_do_not_collide(servers: Servers) {
    let a = servers.cache().await;
    let b = servers.cache().await;
    let mut raw = servers.raw().await;
    let args = [
        "a:b",
        "a",
        "b",
        "a*",
        "*",
        "{a}",
        "{",
        "}",
        "}{",
        "{user}:1",
        "a b",
        " ",
        "",
        "ü",
        "日本語",
        "🦀 crab",
        "cache:ns:x",
        "\"quoted\"",
        "back\\slash",
        "new\nline",
    ];
    let runs = Runs::default();
    let mut keys = std::collections::BTreeSet::new();
    for (i, arg) in args.iter().enumerate() {
        let v = a
            .get_or_insert_with("odd", arg, None, runs.body(format!("value {i}")))
            .await;
        assert_eq!(v, format!("value {i}"));
        let key = a.key_for::<String>("odd", arg).unwrap();
        assert!(raw.exists(&key).await, "{key:?} stored");
        keys.insert(key);
    }
    // Separators inside tuple arguments do not collide either.
    a.set("odd", &("a:b", "c"), &"left".to_string(), None)
        .await
        .unwrap();
    a.set("odd", &("a", "b:c"), &"right".to_string(), None)
        .await
        .unwrap();
    assert_eq!(keys.len(), args.len());
    assert_eq!(runs.get(), args.len());
    for (i, arg) in args.iter().enumerate() {
        assert_eq!(
            b.get::<String>("odd", arg).await,
            Some(format!("value {i}")),
            "{arg:?}"
        );
    }
    assert_eq!(
        b.get::<String>("odd", &("a:b", "c")).await.as_deref(),
        Some("left")
    );
    assert_eq!(
        b.get::<String>("odd", &("a", "b:c")).await.as_deref(),
        Some("right")
    );

    // Namespaces with odd characters invalidate independently.
    for ns in ["ns {1}:*ü", "ns {1}", "ns"] {
        a.set(ns, &1, &ns.to_string(), None).await.unwrap();
    }
    b.invalidate_namespace("ns {1}:*ü").await.unwrap();
    assert_eq!(a.get::<String>("ns {1}:*ü", &1).await, None);
    assert_eq!(
        a.get::<String>("ns {1}", &1).await.as_deref(),
        Some("ns {1}")
    );
    assert_eq!(a.get::<String>("ns", &1).await.as_deref(), Some("ns"));
}

async fn bad_entries_are_misses_counted_and_overwritten(servers: Servers) {
    let cache = servers.cache().await;
    let json = Cache::new(servers.config().codec(CodecKind::Json))
        .await
        .unwrap();
    let reader = servers.cache().await;
    let mut raw = servers.raw().await;
    let key = cache.key_for::<String>("bad", &1).unwrap();

    // A valid entry, to derive foreign variants from. The envelope is
    // magic (2) | format (1) | codec id (1) | type tag (4) | gens, timestamps | codec bytes.
    cache
        .set("bad", &1, &"valid".to_string(), None)
        .await
        .unwrap();
    let valid = raw.get(&key).await.expect("stored");
    let mut other_format = valid.clone();
    other_format[2] = other_format[2].wrapping_add(1);
    let mut trailing = valid.clone();
    trailing.push(0);
    // The same key written by a JSON-codec cache.
    json.set("bad", &1, &"json".to_string(), None)
        .await
        .unwrap();
    let other_codec = raw.get(&key).await.expect("stored");
    assert_ne!(other_codec, valid);
    // A u64 entry's bytes planted under the String key.
    cache.set("bad", &1, &7u64, None).await.unwrap();
    let other_type = raw
        .get(&cache.key_for::<u64>("bad", &1).unwrap())
        .await
        .expect("stored");

    let planted: [(&str, Vec<u8>); 7] = [
        (
            "garbage",
            b"\x00\xffthis is not a cache entry, just bytes".to_vec(),
        ),
        ("empty", Vec::new()),
        ("truncated", valid[..10].to_vec()),
        ("another envelope format", other_format),
        ("another codec", other_codec),
        ("another type", other_type),
        ("trailing bytes after the value", trailing),
    ];
    let runs = Runs::default();
    for (i, (what, bytes)) in planted.iter().enumerate() {
        raw.set(&key, bytes).await;
        let before = cache.stats().namespace("bad");
        let fresh = format!("fresh {i}");
        let got = cache
            .get_or_insert_with("bad", &1, None, runs.body(fresh.clone()))
            .await;
        assert_eq!(got, fresh, "{what}: the body's value is served");
        assert_eq!(runs.get(), i + 1, "{what}: a miss");
        let after = cache.stats().namespace("bad");
        assert_eq!(
            after.decode_errors,
            before.decode_errors + 1,
            "{what}: counted"
        );
        assert_eq!(after.errors, before.errors, "{what}: not a backend error");
        assert_ne!(raw.get(&key).await.as_ref(), Some(bytes), "{what}");
        assert_eq!(
            reader.get::<String>("bad", &1).await,
            Some(fresh),
            "{what}: overwritten with a valid entry"
        );
    }
    assert_eq!(reader.stats().total.decode_errors, 0);
}

async fn limits_skip_caching_without_failing(servers: Servers) {
    let cache = Cache::new(servers.config().max_value_bytes(1000).max_key_len(120))
        .await
        .unwrap();
    let mut raw = servers.raw().await;
    let runs = Runs::default();
    let big = "x".repeat(5000);

    for _ in 0..2 {
        let v = cache
            .get_or_insert_with("limits", &"big", None, runs.body(big.clone()))
            .await;
        assert_eq!(v, big);
    }
    assert_eq!(runs.get(), 2, "an oversized value is not cached");
    let stats = cache.stats().namespace("limits");
    assert_eq!((stats.oversized, stats.errors, stats.inserts), (2, 0, 0));
    assert!(
        !raw.exists(&cache.key_for::<String>("limits", &"big").unwrap())
            .await
    );
    assert!(matches!(
        cache.set("limits", &"big", &big, None).await,
        Err(Error::TooLarge { what: "value", .. })
    ));

    // A small value under the same config is cached.
    for _ in 0..2 {
        cache
            .get_or_insert_with("limits", &"small", None, runs.body("s".to_string()))
            .await;
    }
    assert_eq!(runs.get(), 3);

    // Long arguments are hashed into a bounded key; different ones stay apart.
    let (long_a, long_b) = ("k".repeat(500), format!("{}z", "k".repeat(500)));
    for (arg, v) in [(&long_a, "a"), (&long_b, "b"), (&long_a, "not a")] {
        cache
            .get_or_insert_with("limits", arg, None, runs.body(v.to_string()))
            .await;
    }
    assert_eq!(runs.get(), 5, "the third call is a hit");
    let key = cache.key_for::<String>("limits", &long_a).unwrap();
    assert!(key.len() <= 120 && raw.exists(&key).await, "{key}");
    assert_eq!(
        cache.get::<String>("limits", &long_b).await.as_deref(),
        Some("b")
    );

    // A key that cannot fit even hashed: served uncached, not an error.
    let long_ns = "n".repeat(200);
    for _ in 0..2 {
        let v = cache
            .get_or_insert_with(&long_ns, &1, None, runs.body("ok".to_string()))
            .await;
        assert_eq!(v, "ok");
    }
    assert_eq!(runs.get(), 7);
}

// ----- single node only ---------------------------------------------------------------------

/// `unix://` URLs: a server listening on a Unix socket only (`--port 0`), plain and tiered
/// (the bus subscribes over the socket too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_urls_work_plain_and_tiered() {
    let server = UnixRedis::start();
    let config = || {
        Config::redis(server.url())
            .timeout(Duration::from_secs(2))
            .connect_timeout(Duration::from_secs(2))
    };
    let plain = Cache::new(config()).await.unwrap();
    let tiered = Cache::new(config().with_l1(L1::new(100, Duration::from_secs(30))))
        .await
        .unwrap();
    wait_until("both buses up", Duration::from_secs(5), async || {
        plain.bus_healthy() && tiered.bus_healthy()
    })
    .await;
    eventually("a first write", async || {
        plain
            .set("unix", &1, &"one".to_string(), None)
            .await
            .is_ok()
    })
    .await;
    assert_eq!(
        tiered.get::<String>("unix", &1).await.as_deref(),
        Some("one")
    );
    tiered.invalidate_namespace("unix").await.unwrap();
    assert_eq!(plain.get::<String>("unix", &1).await, None);
    assert_eq!(tiered.get::<String>("unix", &1).await, None);
    assert!(!plain.circuit_open() && !tiered.circuit_open());
}

#[tokio::test]
async fn auth_and_database_come_from_the_url() {
    let server = RedisServer::start();
    let port = server.port();
    let mut admin = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("s3cret")
        .query_async::<()>(&mut admin)
        .await
        .unwrap();
    let runs = Runs::default();
    for url in [
        format!("redis://:s3cret@127.0.0.1:{port}/3"),
        format!("redis://default:s3cret@127.0.0.1:{port}/3"),
    ] {
        let cache = Cache::new(Config::redis(&url).timeout(Duration::from_secs(2)))
            .await
            .unwrap();
        for _ in 0..2 {
            let v = cache
                .get_or_insert_with("auth", &url, None, runs.body(url.clone()))
                .await;
            assert_eq!(v, url);
        }
        let key = cache.key_for::<String>("auth", &url).unwrap();
        let mut db3 = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let exists: u64 = redis::cmd("EXISTS")
            .arg(&key)
            .arg("cache:__gen:auth")
            .query_async(&mut db3)
            .await
            .unwrap();
        assert_eq!(exists, 2, "entry and generation are in database 3");
        cache.invalidate_namespace("auth").await.unwrap();
    }
    assert_eq!(runs.get(), 2, "each URL: one miss, one hit");
    let mut db0 = redis::Client::open(format!("redis://:s3cret@127.0.0.1:{port}/0"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let in_db0: u64 = redis::cmd("DBSIZE").query_async(&mut db0).await.unwrap();
    assert_eq!(in_db0, 0, "nothing in database 0");

    // A wrong password fails open: right values, errors counted, nothing cached.
    let wrong = Cache::new(
        Config::redis(format!("redis://:wrong@127.0.0.1:{port}/3")).timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    for i in 0..3 {
        let v = wrong
            .get_or_insert_with("auth", &"wrong", None, runs.body(i))
            .await;
        assert_eq!(v, i);
    }
    assert_eq!(runs.get(), 5);
    assert!(wrong.stats().total.errors >= 3);
}

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
