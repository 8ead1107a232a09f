//! `stale`, `timeout_ms` and `refresh_after` on the memory backend. Expiry follows tokio's
//! clock (paused where the body runs in the caller); detached bodies run on the library's
//! background runtime, so those tests poll with real-time deadlines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_runtime::{Cache, Config, FillOptions, cached};

async fn setup() {
    static INIT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    INIT.get_or_init(|| async { cache_runtime::init(Config::memory()).await.unwrap() })
        .await;
}

/// Polls `cond` (yielding) until it holds, for at most 5 s of real time.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within 5 s"
        );
        tokio::task::yield_now().await;
    }
}

static PRICE_RUNS: AtomicUsize = AtomicUsize::new(0);
static PRICE_FAILS: AtomicBool = AtomicBool::new(false);

#[cached(expire = 10, stale = 100, namespace = "r_stale")]
async fn price(sku: u64) -> Result<u64, String> {
    let run = PRICE_RUNS.fetch_add(1, SeqCst) as u64;
    if PRICE_FAILS.load(SeqCst) {
        return Err("upstream down".into());
    }
    Ok(sku * 100 + run)
}

#[tokio::test(start_paused = true)]
async fn a_failing_source_serves_the_stale_value_past_expire_and_recovers() {
    setup().await;
    assert_eq!(price(1).await, Ok(100));
    tokio::time::advance(Duration::from_secs(11)).await;
    PRICE_FAILS.store(true, SeqCst);
    assert_eq!(price(1).await, Ok(100), "stale value served");
    assert_eq!(PRICE_RUNS.load(SeqCst), 2, "the body ran once past expiry");
    // Back-off: within it the failing source is not tried again.
    assert_eq!(price(1).await, Ok(100));
    assert_eq!(PRICE_RUNS.load(SeqCst), 2);
    let stats = cache_runtime::stats().namespace("r_stale");
    assert_eq!(stats.stale_served, 2);
    // The source recovers: after the back-off the next call gets (and stores) a new value.
    PRICE_FAILS.store(false, SeqCst);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(price(1).await, Ok(102));
    assert_eq!(price(1).await, Ok(102), "stored fresh");
    // Past expire + stale nothing is kept.
    tokio::time::advance(Duration::from_secs(200)).await;
    PRICE_FAILS.store(true, SeqCst);
    assert!(price(1).await.is_err());
}

static INV_RUNS: AtomicUsize = AtomicUsize::new(0);
static INV_FAILS: AtomicBool = AtomicBool::new(false);

#[cached(expire = 10, stale = 100, namespace = "r_stale_inv")]
async fn rate(id: u64) -> Result<u64, String> {
    INV_RUNS.fetch_add(1, SeqCst);
    if INV_FAILS.load(SeqCst) {
        return Err("down".into());
    }
    Ok(id)
}

#[tokio::test(start_paused = true)]
async fn an_invalidated_value_is_never_served_stale() {
    setup().await;
    assert_eq!(rate(1).await, Ok(1));
    assert_eq!(rate(2).await, Ok(2));
    tokio::time::advance(Duration::from_secs(11)).await;
    INV_FAILS.store(true, SeqCst);
    rate_invalidate(1).await.unwrap();
    assert_eq!(rate(1).await, Err("down".into()), "exact invalidation");
    cache_runtime::invalidate_namespace("r_stale_inv")
        .await
        .unwrap();
    assert_eq!(rate(2).await, Err("down".into()), "namespace invalidation");
}

static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[tokio::test]
async fn a_slow_body_behind_timeout_answers_stale_in_time_and_refreshes_later() {
    let cache = Cache::new(Config::memory()).await.unwrap();
    let opts = FillOptions::new()
        .ttl(Duration::from_millis(100))
        .stale(Duration::from_secs(60))
        .timeout(Duration::from_millis(50));
    let first: u64 = cache
        .get_or_insert_with_options("slow", &1, opts, async { 1 })
        .await;
    assert_eq!(first, 1);
    let gate = Arc::new(tokio::sync::Notify::new());
    let expired = std::time::Instant::now() + Duration::from_millis(150);
    eventually("the entry expires", || std::time::Instant::now() >= expired).await;
    let started = std::time::Instant::now();
    let g = gate.clone();
    let got: u64 = cache
        .get_or_insert_with_options("slow", &1, opts, async move {
            SLOW_RUNS.fetch_add(1, SeqCst);
            g.notified().await;
            2
        })
        .await;
    assert_eq!(got, 1, "the stale value, at the timeout");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(cache.stats().namespace("slow").stale_served, 1);
    gate.notify_one();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now: u64 = cache
            .get_or_insert_with_options("slow", &1, opts, async { 3 })
            .await;
        if now == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the detached body's value replaces the entry"
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(SLOW_RUNS.load(SeqCst), 1);
}

static HOT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(expire = 30, refresh_after = 1, namespace = "r_refresh")]
async fn hot(id: u64) -> u64 {
    let _ = id;
    HOT_RUNS.fetch_add(1, SeqCst) as u64
}

// Real time: the refresh stores from the background runtime, whose clock is not paused.
#[tokio::test]
async fn fifty_hits_past_refresh_after_run_the_body_once_more_without_waiting() {
    setup().await;
    assert_eq!(hot(1).await, 0);
    let aged = std::time::Instant::now() + Duration::from_millis(1050);
    eventually("the entry ages past refresh_after", || {
        std::time::Instant::now() >= aged
    })
    .await;
    let calls: Vec<_> = (0..50).map(|_| tokio::spawn(hot(1))).collect();
    for call in calls {
        // The old value, or the refreshed one if the refresh already landed: never a wait.
        assert!(call.await.unwrap() <= 1);
    }
    eventually("one background refresh", || HOT_RUNS.load(SeqCst) == 2).await;
    let stats = cache_runtime::stats().namespace("r_refresh");
    assert_eq!(stats.refreshes, 1);
    // The refreshed entry is served (and is young: no further refresh).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while hot(1).await != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the refresh stored its value"
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(HOT_RUNS.load(SeqCst), 2, "exactly once more");
}

/// Counts the values alive (here: body futures not yet dropped).
struct Alive(Arc<AtomicUsize>);

impl Alive {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, SeqCst);
        Self(count.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// 50 concurrent callers past expiry behind `timeout` share one detached body (per key and
/// process): each gets the stale value at the timeout, and only that one body is left running.
/// Failed before the fix: each caller left its own task (and body) behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_behind_timeout_share_one_detached_body() {
    let cache = Cache::new(Config::memory()).await.unwrap();
    let opts = FillOptions::new()
        .ttl(Duration::from_millis(100))
        .stale(Duration::from_secs(60))
        .timeout(Duration::from_millis(50));
    let first: u64 = cache
        .get_or_insert_with_options("shared", &1, opts, async { 1 })
        .await;
    assert_eq!(first, 1);
    let expired = std::time::Instant::now() + Duration::from_millis(150);
    eventually("the entry expires", || std::time::Instant::now() >= expired).await;
    let (gate, runs, alive) = (
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let (cache, gate, runs, guard) = (
                cache.clone(),
                gate.clone(),
                runs.clone(),
                Alive::new(&alive),
            );
            tokio::spawn(async move {
                let body = async move {
                    let _guard = guard;
                    runs.fetch_add(1, SeqCst);
                    gate.notified().await;
                    2u64
                };
                cache
                    .get_or_insert_with_options("shared", &1, opts, body)
                    .await
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), 1, "the stale value, at the timeout");
    }
    eventually("the callers' bodies are dropped", || {
        alive.load(SeqCst) == 1
    })
    .await;
    assert_eq!(runs.load(SeqCst), 1);
    gate.notify_one();
    eventually("the detached body ends", || alive.load(SeqCst) == 0).await;
}
