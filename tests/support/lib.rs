//! Test support: throwaway `redis-server`s (single node and a 3-master Redis Cluster, with or
//! without replicas) on free loopback ports, started by the tests themselves and killed on drop.
//!
//! Servers keep nothing on disk (`--save "" --appendonly no`); each runs in its own temporary
//! directory. They listen on 127.0.0.1 only. Tests can [`RedisServer::kill`],
//! [`RedisServer::restart`], [`RedisServer::pause`] (SIGSTOP) and [`RedisServer::resume`]
//! (SIGCONT) them to test faults.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub mod admin;
pub mod backends;
mod cluster;
pub mod fixtures;
mod server;
mod unix;
pub mod worker;

pub use cluster::RedisCluster;
pub(crate) use server::temp_dir;
pub use server::{RedisServer, free_port, raw_command};
pub use unix::UnixRedis;

/// Two caches built from `config` (tiered: each with its own L1) once both buses are up.
pub async fn bus_up_pair(
    config: impl Fn() -> cache_runtime::Config,
) -> (cache_runtime::Cache, cache_runtime::Cache) {
    let a = cache_runtime::Cache::new(config()).await.expect("cache a");
    let b = cache_runtime::Cache::new(config()).await.expect("cache b");
    wait_until("bus up", Duration::from_secs(5), async || {
        a.bus_healthy() && b.bus_healthy()
    })
    .await;
    (a, b)
}

/// The system of record cached loaders read in tests: id -> value, shared by clones.
#[derive(Clone, Default)]
pub struct Db(std::sync::Arc<std::sync::Mutex<std::collections::HashMap<u64, String>>>);

impl Db {
    /// Writes `value` under `id`.
    pub fn put(&self, id: u64, value: &str) {
        self.0.lock().unwrap().insert(id, value.to_owned());
    }

    /// The value under `id` ("" if none).
    pub fn get(&self, id: u64) -> String {
        self.0.lock().unwrap().get(&id).cloned().unwrap_or_default()
    }
}

/// Kills `server` once `cache` hears its bus, and returns when `cache` knows the bus is down
/// (Redis unreachable: the process cannot hear other processes' invalidations).
pub async fn kill_under(server: &mut RedisServer, cache: &cache_runtime::Cache) {
    wait_until("bus up", Duration::from_secs(10), async || {
        cache.bus_healthy()
    })
    .await;
    server.kill();
    wait_until("bus down", Duration::from_secs(10), async || {
        !cache.bus_healthy()
    })
    .await;
}

/// Polls `cond` every 2 ms until it holds; panics with `what` if it does not within `within`.
pub async fn wait_until(what: &str, within: Duration, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Runs `body` under an outer timeout, so a hang (a broken timeout, a lost wake-up) fails the
/// test instead of stalling the suite.
pub async fn within<F: Future>(limit: Duration, body: F) -> F::Output {
    tokio::time::timeout(limit, body)
        .await
        .unwrap_or_else(|_| panic!("the test did not finish within {limit:?}"))
}

/// Polls until `read` answers right (returns true) while `server` runs no `GET` or `MGET`: an
/// answer from the L1. Proves the L1 is used; polls because a tiered cache bypasses its L1 for
/// a moment whenever a bus heartbeat is late on a loaded machine. Fails after 5 seconds.
pub async fn answered_by_l1(server: &RedisServer, mut read: impl AsyncFnMut() -> bool) {
    wait_until(
        "an answer from the L1",
        Duration::from_secs(5),
        async || {
            let before = server.command_calls("get").await + server.command_calls("mget").await;
            assert!(read().await, "the right answer");
            server.command_calls("get").await + server.command_calls("mget").await == before
        },
    )
    .await;
}

/// `redis-cli -p port args...` (output, `None` on failure or an error reply).
pub fn cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success() && !text.starts_with("ERR") && !text.starts_with("Could not connect"))
        .then_some(text)
}

/// The value of `name:` in an `INFO`-style reply.
pub fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
}

/// Polls `cond` every 20 ms (blocking the thread) until it holds; panics with `what` after
/// `within`.
pub fn poll(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
