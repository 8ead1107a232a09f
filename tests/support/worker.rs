//! Drives `stampede_worker` processes (`tests/bin/stampede_worker.rs`): real processes, each
//! with its own global cache on a shared Redis, for the cross-process stampede test and bench.
//! Each is killed (by its PID, through its handle) when dropped.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long a worker may take to start and reach Redis and its bus.
const START: Duration = Duration::from_secs(30);

/// What a worker printed once its callers were done.
#[derive(Debug, Default)]
pub struct Report {
    /// Each call's value, in call order.
    pub values: Vec<String>,
    /// Each call's latency, in call order.
    pub latencies: Vec<Duration>,
    /// Calls that waited on another process's fill lease.
    pub coalesced: u64,
    /// Fill leases taken over from a holder that died, stalled or was cancelled.
    pub lease_takeovers: u64,
}

/// One running `stampede_worker`.
pub struct Worker {
    pid: u32,
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

/// A worker's settings: `callers` concurrent calls on `key`, a body of `body`, a fill lease of
/// `lease`.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub callers: usize,
    pub body: Duration,
    pub lease: Duration,
    pub key: u64,
}

impl Worker {
    /// Starts the worker binary `exe` on `redis_url` and waits until it is ready.
    pub async fn start(exe: &str, redis_url: &str, load: Load) -> Self {
        let mut child = Command::new(exe)
            .arg(redis_url)
            .arg(load.callers.to_string())
            .arg(load.body.as_millis().to_string())
            .arg(load.lease.as_millis().to_string())
            .arg(load.key.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start stampede_worker");
        let pid = child.id().expect("a running worker");
        let stdin = child.stdin.take().expect("stdin");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut worker = Self {
            pid,
            child,
            stdin,
            lines,
        };
        tokio::time::timeout(START, worker.expect("ready"))
            .await
            .expect("the worker did not get ready");
        worker
    }

    /// The worker's process id (its values are `<pid>-<run>-<key>` when it ran the body).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Lets the worker's callers go.
    pub async fn go(&mut self) {
        self.stdin.write_all(b"go\n").await.expect("go");
        self.stdin.flush().await.expect("go");
    }

    /// Reads lines until one equals `line`.
    pub async fn expect(&mut self, line: &str) {
        while let Some(got) = self.lines.next_line().await.expect("read the worker") {
            if got == line {
                return;
            }
        }
        panic!("the worker exited before printing {line:?}");
    }

    /// SIGKILLs the worker and reaps it.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill the worker");
    }

    /// Reads the worker's report until it exits.
    pub async fn report(mut self) -> Report {
        let mut report = Report::default();
        while let Some(line) = self.lines.next_line().await.expect("read the worker") {
            let words: Vec<&str> = line.split(' ').collect();
            match words[..] {
                ["call", value, micros] => {
                    report.values.push(value.to_owned());
                    let micros = micros.parse().expect("micros");
                    report.latencies.push(Duration::from_micros(micros));
                }
                ["stats", coalesced, takeovers] => {
                    report.coalesced = coalesced.parse().expect("coalesced");
                    report.lease_takeovers = takeovers.parse().expect("takeovers");
                }
                _ => {}
            }
        }
        let status = self.child.wait().await.expect("wait for the worker");
        assert!(status.success(), "the worker failed: {status}");
        report
    }
}
