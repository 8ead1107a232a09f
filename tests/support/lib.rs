//! Test support: throwaway `redis-server`s (single node and a 3-master Redis Cluster, with or
//! without replicas) on free loopback ports, started by the tests themselves and killed on drop.
//!
//! Servers keep nothing on disk (`--save "" --appendonly no`); each runs in its own temporary
//! directory. They listen on 127.0.0.1 only. Tests can [`RedisServer::kill`],
//! [`RedisServer::restart`], [`RedisServer::pause`] (SIGSTOP) and [`RedisServer::resume`]
//! (SIGCONT) them to test faults.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod backends;
pub mod fixtures;
mod unix;
pub mod worker;

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

/// A port that was free a moment ago, whose `port + 10000` (the cluster bus) is free too.
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = listener.local_addr().expect("local addr").port();
        if port < 55000 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

pub(crate) fn temp_dir(tag: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("cache-tests-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Sends one inline command and returns the raw reply (for readiness checks).
pub fn raw_command(port: u16, command: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    stream.write_all(format!("{command}\r\n").as_bytes()).ok()?;
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// One `redis-server` process.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        let mut server = Self {
            port: free_port(),
            dir: temp_dir("redis"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if raw_command(self.port, "PING").is_some_and(|r| r.starts_with("+PONG")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Kills the server (SIGKILL); its data is lost.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(child.id().to_string())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (after [`RedisServer::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.spawn();
    }

    /// Freezes the process (SIGSTOP): connections stay open, nothing answers, data survives.
    pub fn pause(&self) {
        if let Some(pid) = self.pid() {
            Command::new("kill")
                .arg("-STOP")
                .arg(pid.to_string())
                .status()
                .expect("kill -STOP");
        }
    }

    /// Thaws a paused process (SIGCONT).
    pub fn resume(&self) {
        if let Some(pid) = self.pid() {
            Command::new("kill")
                .arg("-CONT")
                .arg(pid.to_string())
                .status()
                .expect("kill -CONT");
        }
    }

    /// How many times `command` (lower case, e.g. `"mget"`) ran on this server, from
    /// `INFO commandstats`: proves whether a path made a round trip.
    pub async fn command_calls(&self, command: &str) -> u64 {
        let mut conn = self
            .client()
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test server");
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .expect("INFO commandstats");
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().expect("a call count"))
    }

    /// Changes what the `default` user (the caches' user) may run: `ACL SETUSER default
    /// <rules>`, e.g. `["-del"]` so that Redis answers everything but refuses deletes (an
    /// error reply: Redis is up, the circuit breaker stays closed), and `["+del"]` to undo it.
    pub async fn acl_default(&self, rules: &[&str]) {
        let mut conn = self
            .client()
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test server");
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg("default")
            .arg(rules)
            .query_async::<()>(&mut conn)
            .await
            .expect("ACL SETUSER");
    }

    /// The URL of a second user, `name`, with every right (created now): a process connected
    /// as it is untouched by [`RedisServer::acl_default`].
    pub async fn user_url(&self, name: &str) -> String {
        let mut conn = self
            .client()
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test server");
        let password = format!("{name}-secret");
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(name)
            .arg(&["on", &format!(">{password}"), "~*", "&*", "+@all"])
            .query_async::<()>(&mut conn)
            .await
            .expect("ACL SETUSER");
        format!("redis://{name}:{password}@127.0.0.1:{}", self.port)
    }

    /// A redis-rs client for inspecting or planting data.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("valid url")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster: three masters, with or without one replica each.
pub struct RedisCluster {
    /// The nodes.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers, creates the cluster and waits until it is `ok`.
    pub fn start() -> Self {
        Self::start_with(0, 2000)
    }

    /// Three masters with one replica each (`--cluster-replicas 1`) and a node timeout of
    /// 1 s, so that a killed master is replaced by its replica within a few seconds. Returns
    /// once every replica is in sync with its master.
    pub fn start_with_replicas() -> Self {
        let cluster = Self::start_with(1, 1000);
        for (i, n) in cluster.nodes.iter().enumerate() {
            if cluster.role(i).as_deref() == Some("slave") {
                poll("a replica in sync", Duration::from_secs(20), || {
                    cli(n.port(), &["INFO", "replication"])
                        .is_some_and(|r| r.contains("master_link_status:up"))
                });
            }
        }
        cluster
    }

    fn start_with(replicas: usize, node_timeout_ms: u64) -> Self {
        let node_timeout = node_timeout_ms.to_string();
        let nodes: Vec<RedisServer> = (0..3 * (1 + replicas))
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    &node_timeout,
                ])
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port()));
        }
        let status = create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli must be installed (apt-get install redis-tools)");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = Self { nodes };
        cluster.wait_ok();
        cluster
    }

    /// Waits until every node reports `cluster_state:ok`.
    fn wait_ok(&self) {
        poll("the redis cluster ready", Duration::from_secs(20), || {
            (0..self.nodes.len()).all(|i| self.healthy_from(i))
        });
    }

    /// Restarts every node (after they were killed: their data is lost, the cluster's layout
    /// is kept in each node's `nodes.conf`) and waits until the cluster is `ok` again.
    pub fn restart(&mut self) {
        for node in &mut self.nodes {
            node.restart();
        }
        self.wait_ok();
    }

    /// The nodes' URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url()).collect()
    }

    /// Node `i`'s role as it says itself (`master` or `slave`), if it answers.
    pub fn role(&self, i: usize) -> Option<String> {
        let info = cli(self.nodes[i].port(), &["INFO", "replication"])?;
        info_field(&info, "role")
    }

    /// Node `i`'s cluster node id.
    pub fn node_id(&self, i: usize) -> String {
        cli(self.nodes[i].port(), &["CLUSTER", "MYID"])
            .map(|s| s.trim().to_owned())
            .expect("CLUSTER MYID")
    }

    /// The indices of the nodes that are masters now.
    pub fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.role(i).as_deref() == Some("master"))
            .collect()
    }

    /// Whether node `i` (alive) sees the cluster `ok` with every slot served
    /// (`cluster_state:ok`, `cluster_slots_ok:16384`) and no failing node holding slots:
    /// after a failover, the replica has been promoted.
    pub fn healthy_from(&self, i: usize) -> bool {
        let Some(info) = cli(self.nodes[i].port(), &["CLUSTER", "INFO"]) else {
            return false;
        };
        let ok = info_field(&info, "cluster_state").as_deref() == Some("ok")
            && info_field(&info, "cluster_slots_ok").as_deref() == Some("16384");
        ok && cli(self.nodes[i].port(), &["CLUSTER", "NODES"]).is_some_and(|nodes| {
            nodes.lines().all(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                fields.len() <= 8 || !fields[2].contains("fail")
            })
        })
    }

    /// Whether node `i` (alive) sees the node `failed` (an id) marked `fail`, holding no
    /// slots, and the cluster [healthy](Self::healthy_from): its replica has taken over.
    pub fn failed_over_from(&self, i: usize, failed: &str) -> bool {
        let replaced = cli(self.nodes[i].port(), &["CLUSTER", "NODES"]).is_some_and(|nodes| {
            nodes.lines().any(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                fields.len() == 8
                    && fields[0] == failed
                    && fields[2].split(',').any(|flag| flag == "fail")
            })
        });
        replaced && self.healthy_from(i)
    }

    /// Runs `redis-cli -p <node i's port> args...` and returns its output (`None` when it
    /// fails, e.g. the node is down).
    pub fn cli(&self, i: usize, args: &[&str]) -> Option<String> {
        cli(self.nodes[i].port(), args)
    }
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
