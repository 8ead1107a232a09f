//! A randomized consistency checker in the spirit of Jepsen: several cache instances on one real
//! Redis (tiered and plain) run random reads, writes-then-invalidations and namespace
//! invalidations against a shared "database", with random delays inside the cached bodies, while
//! a fault injector pauses (SIGSTOP), kills and restarts Redis. The history is then checked read
//! by read (see `checker/history.rs`): no read may return a version overwritten by a write whose
//! invalidation returned `Ok` before the read began.
//!
//! CI runs a short pass; `CHECKER_SECS=120 cargo test -p cache-tests --test checker -- --nocapture`
//! runs a longer one and prints its figures. The checker is shown to fail on a deliberately
//! broken setup (instances with unshared in-process caches).

#[path = "checker/history.rs"]
mod history;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Config, L1};
use cache_tests::RedisServer;
use history::{Event, History};

const KEYS: u64 = 6;
const NAMESPACE: &str = "chk";

/// The system of record: a version per key, bumped by writes.
#[derive(Default)]
struct Database(Mutex<HashMap<u64, u64>>);

impl Database {
    fn read(&self, key: u64) -> u64 {
        *self.0.lock().unwrap().get(&key).unwrap_or(&0)
    }

    fn bump(&self, keys: impl Iterator<Item = u64>) -> Vec<(u64, u64)> {
        let mut rows = self.0.lock().unwrap();
        keys.map(|k| {
            let v = rows.entry(k).or_insert(0);
            *v += 1;
            (k, *v)
        })
        .collect()
    }
}

/// xorshift64*: enough randomness for operation choice, seeded per worker.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Run {
    db: Database,
    history: History,
    stop: AtomicBool,
    faults: AtomicU64,
}

async fn read(run: &Run, cache: &Cache, who: &str, key: u64, rng: &mut Rng) {
    let (before, after) = (rng.below(8), rng.below(8));
    let start = Instant::now();
    let version = cache
        .get_or_insert_with(NAMESPACE, &key, Some(Duration::from_secs(30)), async {
            tokio::time::sleep(Duration::from_millis(before)).await;
            let v = run.db.read(key);
            tokio::time::sleep(Duration::from_millis(after)).await;
            v
        })
        .await;
    let end = Instant::now();
    let who = who.to_owned();
    run.history.record(Event::Read {
        who,
        key,
        version,
        start,
        end,
    });
}

async fn write(run: &Run, cache: &Cache, key: u64) {
    let written = run.db.bump(std::iter::once(key));
    if cache.delete::<u64>(NAMESPACE, &key).await.is_ok() {
        record_writes(run, written, "delete");
    }
}

async fn write_all(run: &Run, cache: &Cache) {
    let written = run.db.bump(0..KEYS);
    if cache.invalidate_namespace(NAMESPACE).await.is_ok() {
        record_writes(run, written, "namespace");
    }
}

fn record_writes(run: &Run, written: Vec<(u64, u64)>, how: &'static str) {
    let done = Instant::now();
    for (key, version) in written {
        run.history.record(Event::Write {
            key,
            version,
            done,
            how,
        });
    }
}

async fn worker(run: Arc<Run>, cache: Cache, who: String, seed: u64) {
    let mut rng = Rng(seed | 1);
    while !run.stop.load(SeqCst) {
        let key = rng.below(KEYS);
        match rng.below(100) {
            0..75 => read(&run, &cache, &who, key, &mut rng).await,
            75..97 => write(&run, &cache, key).await,
            _ => write_all(&run, &cache).await,
        }
    }
}

/// Pauses Redis for a random while, now and then, and kills and restarts it once.
async fn inject_faults(run: &Run, server: &mut RedisServer, until: Instant, seed: u64) {
    let mut rng = Rng(seed | 1);
    let mut killed = false;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(300 + rng.below(700))).await;
        if !killed && rng.below(4) == 0 {
            server.kill();
            tokio::time::sleep(Duration::from_millis(100 + rng.below(300))).await;
            server.restart();
            killed = true;
        } else {
            server.pause();
            tokio::time::sleep(Duration::from_millis(50 + rng.below(600))).await;
            server.resume();
        }
        run.faults.fetch_add(1, SeqCst);
    }
}

/// Runs `instances` workers (two per instance) for `secs`, with faults if `server` is given;
/// returns the run for checking.
async fn check(
    instances: Vec<(String, Cache)>,
    server: Option<&mut RedisServer>,
    secs: u64,
) -> Arc<Run> {
    let run = Arc::new(Run {
        db: Database::default(),
        history: History::default(),
        stop: AtomicBool::new(false),
        faults: AtomicU64::new(0),
    });
    let seed = std::env::var("CHECKER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            Instant::now().elapsed().as_nanos() as u64 ^ u64::from(std::process::id())
        });
    eprintln!("checker seed {seed} (CHECKER_SEED to replay the choices)");
    let mut tasks = Vec::new();
    for (i, (name, cache)) in instances.into_iter().enumerate() {
        for w in 0..2u64 {
            let who = format!("{name}/{w}");
            let seed = seed.wrapping_add(i as u64 * 31 + w * 7 + 1);
            tasks.push(tokio::spawn(worker(run.clone(), cache.clone(), who, seed)));
        }
    }
    let until = Instant::now() + Duration::from_secs(secs);
    match server {
        Some(server) => inject_faults(&run, server, until, seed).await,
        None => tokio::time::sleep_until(until.into()).await,
    }
    run.stop.store(true, SeqCst);
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("a worker hung")
            .expect("a worker panicked");
    }
    run
}

fn secs() -> u64 {
    std::env::var("CHECKER_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_read_returns_an_invalidated_version_under_faults() {
    let mut server = RedisServer::start();
    let tiered = || {
        Config::redis(server.url())
            .timeout(Duration::from_millis(100))
            .circuit_breaker(3, Duration::from_millis(200))
            .with_l1(L1::new(1000, Duration::from_secs(30)))
    };
    let mut instances = Vec::new();
    for i in 0..3 {
        instances.push((format!("tiered{i}"), Cache::new(tiered()).await.unwrap()));
    }
    let plain = Config::redis(server.url()).timeout(Duration::from_millis(100));
    instances.push(("redis".to_owned(), Cache::new(plain).await.unwrap()));
    let secs = secs();
    let run = check(instances, Some(&mut server), secs).await;
    let (reads, writes) = run.history.counts();
    let violations = run.history.violations();
    eprintln!(
        "checker: {secs} s, {reads} reads, {writes} completed writes, {} faults, {} violations",
        run.faults.load(SeqCst),
        violations.len()
    );
    assert!(
        reads > 100 && writes > 10,
        "the run did too little to check anything"
    );
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_reports_unshared_in_process_caches() {
    // Each "process" with its own memory cache: a write invalidates only its own.
    let mut instances = Vec::new();
    for i in 0..3 {
        instances.push((
            format!("memory{i}"),
            Cache::new(Config::memory()).await.unwrap(),
        ));
    }
    let run = check(instances, None, 2).await;
    assert!(
        !run.history.violations().is_empty(),
        "the checker must see stale reads from caches that are not shared"
    );
}
