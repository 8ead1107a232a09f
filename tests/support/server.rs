//! One throwaway `redis-server` on a free loopback port ([`RedisServer`]), in a temporary
//! directory of its own, killed on drop; and the port and directory helpers it starts from.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
