//! The backend factory of the one-suite-every-backend test binary (`tests/backends.rs`):
//! memory, Redis, Redis Cluster, tiered (Redis + L1) and tiered on Cluster.
//!
//! The Redis backends share one single-node server and one 3-master Cluster per test binary,
//! started on first use and killed when the binary exits; each test isolates itself with a
//! key prefix of its own (which also names its bus channel and generation keys). A child
//! process (the suite's `#[cached]` and HTTP part, see [`Kind::child_env`]) is handed the
//! servers' URLs instead of starting its own.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use cache_runtime::{Cache, Config, L1};

pub use crate::within;
use crate::{RedisCluster, RedisServer, wait_until};

/// A backend the suite runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The embedded moka cache.
    Memory,
    /// One Redis server.
    Redis,
    /// A 3-master Redis Cluster.
    Cluster,
    /// One Redis server with an L1 per instance.
    Tiered,
    /// The Cluster with an L1 per instance (the bus across cluster nodes).
    TieredCluster,
}

impl Kind {
    /// Every backend.
    pub const ALL: [Kind; 5] = [
        Kind::Memory,
        Kind::Redis,
        Kind::Cluster,
        Kind::Tiered,
        Kind::TieredCluster,
    ];

    /// Its name (as in the test modules `on_<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Memory => "memory",
            Kind::Redis => "redis",
            Kind::Cluster => "cluster",
            Kind::Tiered => "tiered",
            Kind::TieredCluster => "tiered_cluster",
        }
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether entries live in Redis (several instances share them).
    pub fn is_redis(self) -> bool {
        self != Kind::Memory
    }

    /// Whether each instance has an in-process L1 over Redis.
    pub fn has_l1(self) -> bool {
        matches!(self, Kind::Tiered | Kind::TieredCluster)
    }

    /// The URLs of the Redis nodes this backend uses (none for memory).
    pub fn urls(self) -> Vec<String> {
        match self {
            Kind::Memory => Vec::new(),
            Kind::Redis | Kind::Tiered => vec![single_url()],
            Kind::Cluster | Kind::TieredCluster => cluster_urls(),
        }
    }

    /// The environment that hands this backend's servers to a child process.
    pub fn child_env(self) -> Vec<(&'static str, String)> {
        let mut env = vec![(CHILD_KIND, self.name().to_owned())];
        match self {
            Kind::Memory => {}
            Kind::Redis | Kind::Tiered => env.push((REDIS_URL, single_url())),
            Kind::Cluster | Kind::TieredCluster => {
                env.push((CLUSTER_URLS, cluster_urls().join(" ")))
            }
        }
        env
    }

    /// The backend a parent process handed to this (child) process, if any.
    pub fn of_child() -> Option<Kind> {
        Kind::from_name(&std::env::var(CHILD_KIND).ok()?)
    }
}

/// Environment variables of a child process: its backend and the servers' URLs.
const CHILD_KIND: &str = "CACHE_SUITE_CHILD";
const REDIS_URL: &str = "CACHE_SUITE_REDIS_URL";
const CLUSTER_URLS: &str = "CACHE_SUITE_CLUSTER_URLS";

/// The servers shared by this test binary, dropped (killed) at exit.
static SHARED: Mutex<(Option<RedisServer>, Option<RedisCluster>)> = Mutex::new((None, None));
static SINGLE_URL: OnceLock<String> = OnceLock::new();
static CLUSTER: OnceLock<Vec<String>> = OnceLock::new();

extern "C" fn kill_shared_servers() {
    if let Ok(mut shared) = SHARED.lock() {
        drop(shared.0.take());
        drop(shared.1.take());
    }
}

fn register_exit_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: `atexit` with a plain `extern "C" fn` that only takes a lock and kills children.
    ONCE.call_once(|| unsafe {
        libc::atexit(kill_shared_servers);
    });
}

/// The shared single-node server's URL (started on first use).
pub fn single_url() -> String {
    SINGLE_URL
        .get_or_init(|| {
            if let Ok(url) = std::env::var(REDIS_URL) {
                return url;
            }
            register_exit_hook();
            let server = RedisServer::start();
            let url = server.url();
            SHARED.lock().unwrap().0 = Some(server);
            url
        })
        .clone()
}

/// The shared Cluster's node URLs (started on first use).
pub fn cluster_urls() -> Vec<String> {
    CLUSTER
        .get_or_init(|| {
            if let Ok(urls) = std::env::var(CLUSTER_URLS) {
                return urls.split(' ').map(str::to_owned).collect();
            }
            register_exit_hook();
            let cluster = RedisCluster::start();
            let urls = cluster.urls();
            SHARED.lock().unwrap().1 = Some(cluster);
            urls
        })
        .clone()
}

/// The L1 of the tiered backends: room for every test's entries, a TTL no test waits out.
pub const L1_TTL: Duration = Duration::from_secs(30);

/// One test on one backend: its config (a prefix of its own) and the instances it builds.
pub struct Env {
    /// The backend.
    pub kind: Kind,
    /// The key prefix of this test (unique in the binary).
    pub prefix: String,
    memory: Mutex<Option<Cache>>,
}

impl Env {
    /// The environment of test `test` on `kind`.
    pub fn new(kind: Kind, test: &str) -> Self {
        Self {
            kind,
            prefix: format!("{test}-{}", kind.name()),
            memory: Mutex::new(None),
        }
    }

    /// The config of an instance. Timeouts are generous: the suite checks behaviour on a busy
    /// 2-core machine, not fail-open (the fault tests do).
    pub fn config(&self) -> Config {
        let config = match self.kind {
            Kind::Memory => Config::memory(),
            Kind::Redis | Kind::Tiered => Config::redis(single_url()),
            Kind::Cluster | Kind::TieredCluster => Config::redis_cluster(cluster_urls()),
        };
        let config = config
            .prefix(&self.prefix)
            .timeout(Duration::from_secs(1))
            .connect_timeout(Duration::from_secs(2))
            .bus_heartbeat(Duration::from_millis(100));
        if self.kind.has_l1() {
            config.with_l1(L1::new(1_000, L1_TTL))
        } else {
            config
        }
    }

    /// An instance (another process, on Redis; the one cache, on memory), once it serves: its
    /// bus is up on Redis backends.
    pub async fn cache(&self) -> Cache {
        if self.kind == Kind::Memory {
            if let Some(cache) = &*self.memory.lock().unwrap() {
                return cache.clone();
            }
            let cache = self.cache_with(self.config()).await;
            return self.memory.lock().unwrap().get_or_insert(cache).clone();
        }
        self.cache_with(self.config()).await
    }

    /// A new instance with a config of the caller's (e.g. another codec), once its bus is up.
    pub async fn cache_with(&self, config: Config) -> Cache {
        let cache = Cache::new(config).await.expect("valid config");
        if self.kind.is_redis() {
            wait_until("the bus is up", Duration::from_secs(10), async || {
                cache.bus_healthy()
            })
            .await;
        }
        cache
    }
}
