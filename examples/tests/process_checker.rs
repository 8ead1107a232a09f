//! The randomized consistency checker (see `tests/checker.rs`) over real processes: three
//! `items_server` processes (tiered: an L1 each) on one Redis and one SQLite file. Random GETs
//! and PUTs go to random processes; one process at a time is frozen (SIGSTOP) for a while, so
//! writers must wait out its validity term. The history is checked read by read: no GET may
//! return a version overwritten by a PUT that had returned before the GET began.
//!
//! `CHECKER_SECS=60 cargo test -p cache-examples --test process_checker -- --nocapture` runs a
//! longer pass.

#[path = "../../tests/checker/history.rs"]
#[allow(dead_code)]
mod history;
#[path = "support/server.rs"]
mod server;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cache_tests::RedisServer;
use history::{Event, History};
use serde_json::{Value, json};
use server::{Server, TempDir};

const IDS: u64 = 3;

struct Fleet {
    servers: Vec<Server>,
    http: reqwest::Client,
    /// One writer per item at a time, so the database's versions only grow.
    locks: Vec<tokio::sync::Mutex<u64>>,
    history: History,
    stop: AtomicBool,
}

fn version(name: &str) -> u64 {
    name.strip_prefix('v')
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn get(fleet: &Fleet, s: usize, id: u64) {
    let url = format!("{}/items/{id}", fleet.servers[s].base);
    let start = Instant::now();
    let Ok(resp) = fleet.http.get(&url).send().await else {
        return;
    };
    let Ok(item) = resp.json::<Value>().await else {
        return;
    };
    let end = Instant::now();
    let name = item["name"].as_str().unwrap_or_default();
    fleet.history.record(Event::Read {
        who: format!("process {s}"),
        key: id,
        version: version(name),
        start,
        end,
    });
}

async fn put(fleet: &Fleet, s: usize, id: u64) {
    let mut last = fleet.locks[id as usize].lock().await;
    let next = *last + 1;
    let url = format!("{}/items/{id}", fleet.servers[s].base);
    let body = json!({ "name": format!("v{next}"), "price": 1.0 });
    let sent = fleet.http.put(&url).json(&body).send().await;
    if sent.is_ok_and(|r| r.status().is_success()) {
        *last = next;
        fleet.history.record(Event::Write {
            key: id,
            version: next,
            done: Instant::now(),
            how: "PUT",
        });
    }
}

async fn worker(fleet: Arc<Fleet>, mut seed: u64) {
    while !fleet.stop.load(SeqCst) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let (s, id) = ((seed % 3) as usize, 1 + (seed >> 8) % IDS);
        if (seed >> 16).is_multiple_of(4) {
            put(&fleet, s, id).await;
        } else {
            get(&fleet, s, id).await;
        }
    }
}

fn signal(pid: u32, sig: &str) {
    Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .expect("kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_process_serves_an_overwritten_version() {
    let redis = RedisServer::start();
    let dir = TempDir(std::env::temp_dir().join(format!("items-checker-{}", redis.port())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let db = dir.0.join("items.db");
    let servers: Vec<Server> = (0..3).map(|_| Server::start(&redis, &db)).collect();
    let fleet = Arc::new(Fleet {
        servers,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        locks: (0..=IDS).map(|_| tokio::sync::Mutex::new(0)).collect(),
        history: History::default(),
        stop: AtomicBool::new(false),
    });
    let secs: u64 = std::env::var("CHECKER_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let workers: Vec<_> = (0..6u64)
        .map(|w| {
            tokio::spawn(worker(
                fleet.clone(),
                0x9e37_79b9_7f4a_7c15 ^ ((w + 1) * 7919),
            ))
        })
        .collect();
    let until = Instant::now() + Duration::from_secs(secs);
    let mut pauses = 0;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let pid = fleet.servers[pauses % 3].pid();
        signal(pid, "-STOP");
        tokio::time::sleep(Duration::from_millis(400 + 300 * (pauses as u64 % 3))).await;
        signal(pid, "-CONT");
        pauses += 1;
    }
    fleet.stop.store(true, SeqCst);
    for w in workers {
        tokio::time::timeout(Duration::from_secs(30), w)
            .await
            .expect("a worker hung")
            .expect("a worker panicked");
    }
    let (reads, writes) = fleet.history.counts();
    let violations = fleet.history.violations();
    eprintln!(
        "process checker: {secs} s, {reads} GETs, {writes} PUTs, {pauses} process pauses, {} violations",
        violations.len()
    );
    assert!(
        reads > 50 && writes > 10,
        "the run did too little to check anything"
    );
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}
