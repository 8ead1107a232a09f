//! Three real `items_server` processes on one Redis and one SQLite file, tiered (L1 on): a
//! `PUT` through one is seen by the others within the documented bound, also when Redis is
//! killed or paused (SIGSTOP) around the write.
//!
//! The bounds come from `cache_runtime::tiered` with the server's defaults (heartbeat 500 ms,
//! timeout 50 ms, breaker cooldown 1 s): bus silence bound S = 2 x 500 + 50 + 100 = 1.15 s.

use std::time::Duration;

use cache_tests::{RedisServer, within};
use serde_json::{Value, json};
use tokio::time::Instant;

#[path = "support/server.rs"]
#[allow(dead_code)]
mod server;
use server::{Server, TempDir};

/// The staleness bound of the server's tiered config (see the module docs).
const S: Duration = Duration::from_millis(1_150);
/// Default circuit breaker cooldown plus the recovery retry interval.
const RECOVERY: Duration = Duration::from_millis(1_025);
/// Scheduling allowance: 2 shared cores run Redis, three servers and this test.
const SLACK: Duration = Duration::from_millis(500);

/// One at a time: each test runs three servers.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Fleet {
    redis: RedisServer,
    servers: Vec<Server>,
    http: reqwest::Client,
    _dir: TempDir,
}

impl Fleet {
    async fn start() -> Fleet {
        let redis = RedisServer::start();
        let dir = std::env::temp_dir().join(format!("items-multiprocess-{}", redis.port()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("items.db");
        // The first server creates and seeds the database; the others then open it.
        let mut servers = vec![Server::start(&redis, &db)];
        servers.push(Server::start(&redis, &db));
        servers.push(Server::start(&redis, &db));
        Fleet {
            redis,
            servers,
            http: reqwest::Client::new(),
            _dir: TempDir(dir),
        }
    }

    async fn name(&self, server: usize, id: u64) -> String {
        let url = format!("{}/items/{id}", self.servers[server].base);
        let resp = self.http.get(&url).send().await.unwrap();
        assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
        let item: Value = resp.json().await.unwrap();
        item["name"].as_str().unwrap().to_owned()
    }

    /// The cache errors (failed-open calls) a server has counted, from its `/stats`.
    async fn errors(&self, server: usize) -> u64 {
        let url = format!("{}/stats", self.servers[server].base);
        let stats: Value = self
            .http
            .get(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["total"]["errors"].as_u64().unwrap()
    }

    async fn put(&self, server: usize, id: u64, name: &str) {
        let url = format!("{}/items/{id}", self.servers[server].base);
        let resp = self
            .http
            .put(&url)
            .json(&json!({ "name": name, "price": 1.0 }))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "PUT {url}: {}", resp.status());
    }

    /// GETs `id` through every server until all answer from their L1: a whole round of GETs
    /// makes no Redis read.
    async fn fill_every_l1(&self, id: u64, expected: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            for s in 0..3 {
                assert_eq!(self.name(s, id).await, expected);
            }
            let before = self.redis.command_calls("mget").await;
            for s in 0..3 {
                assert_eq!(self.name(s, id).await, expected);
            }
            if self.redis.command_calls("mget").await == before {
                return;
            }
            assert!(Instant::now() < deadline, "the L1s were never all in use");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls every server in `servers` until each answers `new`; each may answer `old` only
    /// for `bound` (plus scheduling slack) after `since`. Then `new` must stay. Returns how
    /// long after `since` each one first answered `new`.
    async fn converge(
        &self,
        servers: std::ops::Range<usize>,
        id: u64,
        (old, new): (&str, &str),
        since: Instant,
        bound: Duration,
    ) -> Vec<Duration> {
        let mut took: Vec<Option<Duration>> = vec![None; servers.len()];
        while took.iter().any(Option::is_none) {
            for (i, s) in servers.clone().enumerate() {
                if took[i].is_some() {
                    continue;
                }
                let name = self.name(s, id).await;
                if name == new {
                    took[i] = Some(since.elapsed());
                    continue;
                }
                assert_eq!(name, old, "server {s}: neither old nor new");
                assert!(
                    since.elapsed() <= bound + SLACK,
                    "server {s} still serves the old value {:?} after the write (bound {bound:?})",
                    since.elapsed()
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for _ in 0..20 {
            for s in servers.clone() {
                assert_eq!(
                    self.name(s, id).await,
                    new,
                    "server {s}: the old value came back"
                );
            }
        }
        took.into_iter().flatten().collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_through_one_process_reaches_the_others_l1() {
    within(Duration::from_secs(300), async {
        let _serial = SERIAL.lock().await;
        let fleet = Fleet::start().await;
        for round in 0..5 {
            let (old, new) = (format!("old {round}"), format!("new {round}"));
            fleet.put(0, 1, &old).await;
            fleet.fill_every_l1(1, &old).await;
            fleet.put(round % 3, 1, &new).await;
            let written = Instant::now();
            let took = fleet.converge(0..3, 1, (&old, &new), written, S).await;
            println!("round {round}: new value served after {took:?}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_during_a_put_no_process_serves_the_old_value_after_restart() {
    within(Duration::from_secs(300), async {
        let _serial = SERIAL.lock().await;
        let mut fleet = Fleet::start().await;
        fleet.put(0, 2, "old").await;
        fleet.fill_every_l1(2, "old").await;

        fleet.redis.kill();
        let killed = Instant::now();
        // The PUT fails open: the database changes, the invalidation is kept pending.
        fleet.put(0, 2, "new").await;
        // The subscriptions drop at once; allow the silence bound at most.
        let took = fleet.converge(0..3, 2, ("old", "new"), killed, S).await;
        println!("killed: new value served after {took:?}");

        fleet.redis.restart();
        // Reconnecting, resubscribing, re-applying: never the old value.
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            for s in 0..3 {
                assert_eq!(
                    fleet.name(s, 2).await,
                    "new",
                    "server {s} after the restart"
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The L1s come back into use, with the new value.
        fleet.fill_every_l1(2, "new").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_paused_during_a_put_the_old_value_does_not_come_back_on_resume() {
    within(Duration::from_secs(300), async {
        let _serial = SERIAL.lock().await;
        let fleet = Fleet::start().await;
        fleet.put(0, 3, "old").await;
        fleet.fill_every_l1(3, "old").await;

        fleet.redis.pause();
        let paused = Instant::now();
        fleet.put(0, 3, "new").await; // its invalidations time out: pending in server 0
        assert_eq!(
            fleet.name(0, 3).await,
            "new",
            "the writer never serves the old value"
        );
        let took = fleet.converge(1..3, 3, ("old", "new"), paused, S).await;
        println!("paused: new value served after {took:?}");
        // Keep the fleet busy until the readers have failed open often enough to open their
        // breakers (5 failures by default), checking that none serves the old value meanwhile.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut errors = Vec::new();
            for server in 0..3 {
                assert_eq!(fleet.name(server, 3).await, "new");
                errors.push(fleet.errors(server).await);
            }
            // Servers 1 and 2 read through Redis and fail open; server 0 bypasses the cache for
            // the key its pending invalidation covers (and retries that through the breaker).
            if errors[1..].iter().all(|&e| e >= 5) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the readers did not fail open 5 times: {errors:?}"
            );
        }

        fleet.redis.resume();
        let resumed = Instant::now();
        // Server 0 re-applies its pending invalidation and publishes it. Until then the others may
        // read the old value back from Redis (the documented recovery window); after it, never.
        assert_eq!(fleet.name(0, 3).await, "new");
        let took = fleet
            .converge(0..3, 3, ("old", "new"), resumed, RECOVERY + S)
            .await;
        println!("resumed: new value served after {took:?}");
        fleet.fill_every_l1(3, "new").await;
    })
    .await;
}
