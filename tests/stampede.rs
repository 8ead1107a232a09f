//! One body run per key under a stampede: across three real processes on one Redis (each with
//! its own global cache, `tests/bin/stampede_worker.rs`), past a lease holder that is killed,
//! and within a process whose Redis is down (its flights queue instead of each caller running
//! the body). And the fill notices that wake a waiting process when the holder's fill ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Config};
use cache_tests::worker::{Load, Report, Worker};
use cache_tests::{RedisServer, within};

const EXE: &str = env!("CARGO_BIN_EXE_stampede_worker");

/// Outer bound of each test: a broken lease or flight fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(90);

fn runs(server: &RedisServer) -> u64 {
    let mut conn = server.client().get_connection().expect("counter");
    redis::cmd("GET")
        .arg("stampede:runs")
        .query::<Option<u64>>(&mut conn)
        .expect("GET")
        .unwrap_or(0)
}

async fn fleet(server: &RedisServer, n: usize, load: Load) -> Vec<Worker> {
    let mut workers = Vec::new();
    for _ in 0..n {
        workers.push(Worker::start(EXE, &server.url(), load).await);
    }
    workers
}

async fn reports(workers: Vec<Worker>) -> Vec<Report> {
    let mut out = Vec::new();
    for w in workers {
        out.push(w.report().await);
    }
    out
}

#[tokio::test]
async fn three_processes_times_100_callers_on_a_cold_key_run_the_body_once() {
    let server = RedisServer::start();
    within(LIMIT, async {
        // A body long enough that every process's callers arrive while it runs.
        let load = Load {
            callers: 100,
            body: Duration::from_millis(500),
            lease: Duration::from_secs(5),
            key: 1,
        };
        let mut workers = fleet(&server, 3, load).await;
        for w in &mut workers {
            w.go().await;
        }
        let pids: Vec<u32> = workers.iter().map(Worker::pid).collect();
        let reports = reports(workers).await;
        assert_eq!(runs(&server), 1, "the body ran once in the whole cluster");
        let first = &reports[0].values[0];
        for r in &reports {
            assert_eq!(r.values.len(), 100);
            assert!(r.values.iter().all(|v| v == first), "one value for all");
        }
        // The two processes that did not run the body waited on the holder's lease (the
        // holder's own process may count a wait too: a caller whose bus heartbeat was late
        // on a loaded machine queues behind the flight and then finds the lease still held).
        let holder = first.split('-').next().unwrap();
        for (pid, r) in pids.iter().zip(&reports) {
            if pid.to_string() != holder {
                assert!(r.coalesced > 0, "process {pid} did not wait: {r:?}");
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_killed_lease_holder_blocks_the_others_no_longer_than_its_lease() {
    let server = RedisServer::start();
    within(LIMIT, async {
        let lease = Duration::from_secs(1);
        let body = Duration::from_millis(100);
        let hung = Load {
            callers: 1,
            body: Duration::from_secs(600),
            lease,
            key: 1,
        };
        let mut holder = Worker::start(EXE, &server.url(), hung).await;
        let load = Load {
            callers: 50,
            body,
            lease,
            key: 1,
        };
        let mut others = fleet(&server, 2, load).await;
        holder.go().await;
        holder.expect("body").await;
        holder.kill().await;
        let killed = Instant::now();
        for w in &mut others {
            w.go().await;
        }
        let reports = reports(others).await;
        // The documented bound: a holder that dies loses its lease after its term, and a
        // waiter then fills the key itself; plus the body, plus scheduling slack.
        let bound = lease + body + Duration::from_secs(2);
        assert!(killed.elapsed() < bound, "{:?}", killed.elapsed());
        for r in &reports {
            assert!(r.latencies.iter().all(|l| *l < bound), "{:?}", r.latencies);
        }
        let taken = reports.iter().map(|r| r.lease_takeovers).sum::<u64>();
        assert!(
            taken >= 1,
            "the dead holder's lease was taken over: {reports:?}"
        );
        let after = runs(&server) - 1;
        assert!(
            (1..=2).contains(&after),
            "at most one run per process: {after}"
        );
    })
    .await;
}

/// With Redis down no process hears the bus, so no caller may join a flight that began before
/// it arrived (it may predate an invalidation). The callers queue instead: a burst of 100 on
/// one key runs the body at most twice, and every caller gets a value read after it arrived.
#[tokio::test]
async fn with_redis_down_a_burst_runs_the_body_at_most_twice_and_never_before_a_caller() {
    let mut server = RedisServer::start();
    let cache = Cache::new(Config::redis(server.url()).prefix("down"))
        .await
        .unwrap();
    within(LIMIT, async {
        cache_tests::kill_under(&mut server, &cache).await;
        let base = Instant::now();
        let runs = Arc::new(AtomicUsize::new(0));
        let calls: Vec<_> = (0..100)
            .map(|_| {
                let (cache, runs) = (cache.clone(), runs.clone());
                tokio::spawn(async move {
                    let arrived = base.elapsed();
                    let body = async move {
                        let began = base.elapsed();
                        runs.fetch_add(1, SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        began.as_nanos() as u64
                    };
                    let began = cache.get_or_insert_with("burst", &1, None, body).await;
                    (arrived.as_nanos() as u64, began)
                })
            })
            .collect();
        for call in calls {
            let (arrived, began) = call.await.unwrap();
            assert!(began >= arrived, "a value read before its caller arrived");
        }
        let runs = runs.load(SeqCst);
        assert!((1..=2).contains(&runs), "the body ran {runs} times");
    })
    .await;
}

/// A miss that waits on another process's fill lease asks the holder (`cr2|W|<key>` on
/// `{prefix}:__fill`), and the holder says when its fill ended (`cr2|F|<key>`); an uncontended
/// fill publishes nothing.
#[tokio::test]
async fn a_contended_fill_is_announced_to_its_waiters_and_an_uncontended_one_is_not() {
    use futures_util::StreamExt;
    let server = RedisServer::start();
    within(LIMIT, async {
        let config = || Config::redis(server.url()).prefix("notice");
        let (a, b) = cache_tests::bus_up_pair(config).await;
        let mut pubsub = server.client().get_async_pubsub().await.unwrap();
        pubsub.subscribe("notice:__fill").await.unwrap();
        let mut notices = pubsub.into_on_message();
        let alone = a
            .get_or_insert_with("quiet", &1, None, async { 1u64 })
            .await;
        assert_eq!(alone, 1);
        let release = Arc::new(tokio::sync::Notify::new());
        let started = Arc::new(tokio::sync::Notify::new());
        let holder = {
            let (a, release, started) = (a.clone(), release.clone(), started.clone());
            tokio::spawn(async move {
                a.get_or_insert_with("busy", &1, None, async move {
                    started.notify_one();
                    release.notified().await;
                    7u64
                })
                .await
            })
        };
        started.notified().await;
        let waiter =
            tokio::spawn(
                async move { b.get_or_insert_with("busy", &1, None, async { 8u64 }).await },
            );
        // A bound far above a notice's loopback latency: a missing notice fails in seconds.
        let mut next = async || {
            let msg = tokio::time::timeout(Duration::from_secs(10), notices.next())
                .await
                .expect("no notice within 10 s")
                .expect("a notice");
            String::from_utf8(msg.get_payload_bytes().to_vec()).unwrap()
        };
        let wait = next().await;
        assert!(wait.starts_with("cr2|W|"), "{wait}");
        release.notify_one();
        assert_eq!(holder.await.unwrap(), 7);
        let filled = next().await;
        assert_eq!(filled, wait.replace("cr2|W|", "cr2|F|"));
        assert_eq!(
            waiter.await.unwrap(),
            7,
            "the waiter got the holder's value"
        );
    })
    .await;
}
