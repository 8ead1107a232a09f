//! Single-flight through `#[cached]` on the memory backend: concurrent misses on one key run
//! the body once, and when the running body fails, panics or is cancelled, nobody hangs.
//!
//! Events are ordered with `Notify`/`Barrier`, never with sleeps, and every test is bounded by
//! `tokio::time::timeout` so a hang fails instead of blocking the suite. The tests that need
//! followers to be waiting on a flight run on a current-thread runtime: a spawned caller there
//! runs until it blocks (on the flight) before the test task runs again.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use cache_runtime::{Config, cached};
use tokio::sync::{Barrier, Notify};
use tokio::task::JoinHandle;

const LIMIT: Duration = Duration::from_secs(20);

async fn setup() {
    static INIT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    INIT.get_or_init(|| async { cache_runtime::init(Config::memory()).await.unwrap() })
        .await;
}

/// Lets every spawned task run until it blocks (current-thread runtime).
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

async fn join_all<T: std::fmt::Debug>(handles: Vec<JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("caller task failed"));
    }
    out
}

// ----- 1,000 callers on a cold key ----------------------------------------------------------

static COLD_RUNS: AtomicUsize = AtomicUsize::new(0);
static COLD_ARRIVED: AtomicUsize = AtomicUsize::new(0);
static COLD_GATE: Notify = Notify::const_new();

#[cached(namespace = "sf_cold")]
async fn cold(id: u64) -> String {
    COLD_RUNS.fetch_add(1, SeqCst);
    COLD_GATE.notified().await; // held until every caller has arrived
    format!("value {id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_callers_on_a_cold_key_run_the_body_once() {
    setup().await;
    let test = async {
        let handles: Vec<_> = (0..1000)
            .map(|_| {
                tokio::spawn(async {
                    COLD_ARRIVED.fetch_add(1, SeqCst);
                    cold(7).await
                })
            })
            .collect();
        while COLD_ARRIVED.load(SeqCst) < 1000 || COLD_RUNS.load(SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        settle().await;
        COLD_GATE.notify_one();
        let values = join_all(handles).await;
        assert!(values.iter().all(|v| v == "value 7"));
        assert_eq!(values.len(), 1000);
    };
    tokio::time::timeout(LIMIT, test)
        .await
        .expect("callers hung");
    assert_eq!(
        COLD_RUNS.load(SeqCst),
        1,
        "the body ran once for 1,000 callers"
    );
    let s = cache_runtime::stats().namespace("sf_cold");
    assert_eq!((s.misses, s.hits, s.inserts), (1, 999, 1));
}

// ----- the leader returns Err -----------------------------------------------------------------

static ERR_RUNS: AtomicUsize = AtomicUsize::new(0);
static ERR_LEADER_IN: Notify = Notify::const_new();
static ERR_RELEASE: Notify = Notify::const_new();
static ERR_FOLLOWERS: LazyLock<Barrier> = LazyLock::new(|| Barrier::new(3));

#[cached(namespace = "sf_err")]
async fn fails_first(id: u64) -> Result<u64, String> {
    let run = ERR_RUNS.fetch_add(1, SeqCst) + 1;
    if run == 1 {
        ERR_LEADER_IN.notify_one();
        ERR_RELEASE.notified().await;
        return Err(format!("transient failure for {id}"));
    }
    // Each follower runs its own body: all three are in here at once, or this never returns.
    ERR_FOLLOWERS.wait().await;
    Ok(id)
}

#[tokio::test(flavor = "current_thread")]
async fn when_the_leader_errs_each_follower_runs_the_body_itself() {
    setup().await;
    let test = async {
        let leader = tokio::spawn(fails_first(1));
        ERR_LEADER_IN.notified().await;
        let followers: Vec<_> = (0..3).map(|_| tokio::spawn(fails_first(1))).collect();
        settle().await;
        assert_eq!(ERR_RUNS.load(SeqCst), 1, "followers wait for the leader");
        ERR_RELEASE.notify_one();
        assert_eq!(leader.await.unwrap(), Err("transient failure for 1".into()));
        for v in join_all(followers).await {
            assert_eq!(v, Ok(1));
        }
    };
    tokio::time::timeout(LIMIT, test)
        .await
        .expect("a caller hung");
    assert_eq!(
        ERR_RUNS.load(SeqCst),
        4,
        "the leader once, then each follower"
    );
}

// ----- the leader panics ---------------------------------------------------------------------

static PANIC_RUNS: AtomicUsize = AtomicUsize::new(0);
static PANIC_LEADER_IN: Notify = Notify::const_new();
static PANIC_RELEASE: Notify = Notify::const_new();

#[cached(namespace = "sf_panic")]
async fn panics_first(id: u64) -> u64 {
    let run = PANIC_RUNS.fetch_add(1, SeqCst) + 1;
    if run == 1 {
        PANIC_LEADER_IN.notify_one();
        PANIC_RELEASE.notified().await;
        panic!("the first run of the body panics");
    }
    id * 10 + run as u64
}

#[tokio::test(flavor = "current_thread")]
async fn when_the_leader_panics_one_follower_takes_over() {
    setup().await;
    let test = async {
        let leader = tokio::spawn(panics_first(1));
        PANIC_LEADER_IN.notified().await;
        let followers: Vec<_> = (0..5).map(|_| tokio::spawn(panics_first(1))).collect();
        settle().await;
        PANIC_RELEASE.notify_one();
        assert!(
            leader.await.unwrap_err().is_panic(),
            "the panic stays with the leader"
        );
        // The new leader's run is the second run: every follower gets its value.
        for v in join_all(followers).await {
            assert_eq!(v, 12);
        }
    };
    tokio::time::timeout(LIMIT, test)
        .await
        .expect("a follower hung");
    assert_eq!(
        PANIC_RUNS.load(SeqCst),
        2,
        "the body ran again exactly once"
    );
    assert_eq!(panics_first(1).await, 12, "and its value was cached");
}

// ----- the leader is cancelled ---------------------------------------------------------------

static ABORT_RUNS: AtomicUsize = AtomicUsize::new(0);
static ABORT_LEADER_IN: Notify = Notify::const_new();

#[cached(namespace = "sf_abort")]
async fn stalls_first(id: u64) -> u64 {
    let run = ABORT_RUNS.fetch_add(1, SeqCst) + 1;
    if run == 1 {
        ABORT_LEADER_IN.notify_one();
        std::future::pending::<()>().await; // only cancellation ends this run
    }
    id * 10 + run as u64
}

#[tokio::test(flavor = "current_thread")]
async fn when_the_leaders_task_is_aborted_one_follower_takes_over() {
    setup().await;
    let test = async {
        let leader = tokio::spawn(stalls_first(1));
        ABORT_LEADER_IN.notified().await;
        let followers: Vec<_> = (0..5).map(|_| tokio::spawn(stalls_first(1))).collect();
        settle().await;
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        for v in join_all(followers).await {
            assert_eq!(v, 12);
        }
    };
    tokio::time::timeout(LIMIT, test)
        .await
        .expect("a follower hung");
    assert_eq!(ABORT_RUNS.load(SeqCst), 2);
}

static DROP_RUNS: AtomicUsize = AtomicUsize::new(0);
static DROP_LEADER_IN: Notify = Notify::const_new();

#[cached(namespace = "sf_drop")]
async fn slow_first(id: u64) -> u64 {
    let run = DROP_RUNS.fetch_add(1, SeqCst) + 1;
    if run == 1 {
        DROP_LEADER_IN.notify_one();
        std::future::pending::<()>().await;
    }
    id * 10 + run as u64
}

#[tokio::test(flavor = "current_thread")]
async fn when_the_leaders_future_is_dropped_one_follower_takes_over() {
    setup().await;
    let test = async {
        let give_up = Arc::new(Notify::new());
        let leader = tokio::spawn({
            let give_up = give_up.clone();
            async move {
                // A caller that stops waiting (a client that went away, a select! timeout).
                tokio::select! {
                    v = slow_first(1) => Some(v),
                    () = give_up.notified() => None,
                }
            }
        });
        DROP_LEADER_IN.notified().await;
        let followers: Vec<_> = (0..5).map(|_| tokio::spawn(slow_first(1))).collect();
        settle().await;
        give_up.notify_one();
        assert_eq!(leader.await.unwrap(), None);
        for v in join_all(followers).await {
            assert_eq!(v, 12);
        }
    };
    tokio::time::timeout(LIMIT, test)
        .await
        .expect("a follower hung");
    assert_eq!(DROP_RUNS.load(SeqCst), 2);
}

// ----- the manual API shares flights too --------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_or_insert_with_runs_the_computation_once_for_concurrent_callers() {
    let cache = cache_runtime::Cache::new(Config::memory()).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Barrier::new(101));
    let test = async {
        let handles: Vec<_> = (0..100)
            .map(|_| {
                let (cache, runs, gate) = (cache.clone(), runs.clone(), gate.clone());
                tokio::spawn(async move {
                    gate.wait().await;
                    cache
                        .get_or_insert_with("manual_sf", &1, None, async {
                            runs.fetch_add(1, SeqCst);
                            tokio::task::yield_now().await;
                            42u64
                        })
                        .await
                })
            })
            .collect();
        gate.wait().await;
        let values = join_all(handles).await;
        assert!(values.iter().all(|v| *v == 42));
    };
    tokio::time::timeout(LIMIT, test)
        .await
        .expect("callers hung");
    assert_eq!(runs.load(SeqCst), 1);
}
