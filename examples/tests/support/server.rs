//! A real `items_server` process for the examples' tests, and a temporary directory.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use cache_tests::RedisServer;

/// A running `items_server` on a free port, killed on drop.
pub struct Server {
    child: Child,
    /// `http://ADDR`, as the server printed it.
    pub base: String,
}

impl Server {
    /// Starts `items_server` on `redis` and the SQLite file `db`; returns once it listens.
    pub fn start(redis: &RedisServer, db: &std::path::Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_items_server"))
            .env("REDIS_URL", redis.url())
            .env("DATABASE_URL", format!("sqlite://{}", db.display()))
            .env("PORT", "0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start items_server");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Server { child, base }
    }

    /// The process id, to pause (SIGSTOP) and resume (SIGCONT) it.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
