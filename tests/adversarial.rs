//! Adversarial probes of the paths added for issues 9 and 16: queued single-flight with the bus
//! down (`flight.rs`), fill notices (`fill_notice.rs`, the waiter's `HolderWait`), and the
//! lease terms (`lease_guard.rs`), against real redis-servers that are paused, killed and
//! planted with a dead holder's lease. Every probe is a regression test (each can fail: see
//! its doc); five of them found defects, fixed since (queued flights after a namespace or
//! whole-cache invalidation, a CPU-bound detached body, a stalled fill's lease, a hung
//! recomputation's lease).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Config, FillOptions, L1};
use cache_tests::{RedisCluster, RedisServer, wait_until, within};

#[path = "adversarial/detached.rs"]
mod detached;
#[path = "adversarial/flights.rs"]
mod flights;
#[path = "adversarial/leases.rs"]
mod leases;
#[path = "adversarial/notices.rs"]
mod notices;

/// The outer bound of every probe: a hang fails it instead of stalling the suite.
pub const LIMIT: Duration = Duration::from_secs(20);

/// A Redis config on `server` with `prefix`, a 200 ms command timeout and `term` fill leases.
pub fn config(server: &RedisServer, prefix: &str, term: Duration) -> Config {
    Config::redis(server.url())
        .prefix(prefix)
        .timeout(Duration::from_millis(200))
        .fill_lease(term)
}

/// [`config`] with an L1 (tiered).
pub fn tiered(server: &RedisServer, prefix: &str, term: Duration) -> Config {
    config(server, prefix, term).with_l1(L1::new(1000, Duration::from_secs(30)))
}

/// Two instances ("processes") from `config`, once both are connected and hear the bus.
pub async fn pair(config: impl Fn() -> Config) -> (Cache, Cache) {
    let (a, b) = (
        Cache::new(config()).await.unwrap(),
        Cache::new(config()).await.unwrap(),
    );
    for cache in [&a, &b] {
        wait_until("connected", Duration::from_secs(10), async || {
            cache.set("warm", &0, &0u8, None).await.is_ok() && cache.bus_healthy()
        })
        .await;
    }
    (a, b)
}

/// A body that starts (sets `started`, counts a run) and then waits for `gate`.
#[derive(Default, Clone)]
pub struct Gated {
    pub gate: Arc<tokio::sync::Notify>,
    pub started: Arc<AtomicBool>,
    pub runs: Arc<AtomicUsize>,
}

impl Gated {
    pub fn body(&self, value: u64) -> impl Future<Output = u64> + Send + 'static {
        let (gate, started, runs) = (self.gate.clone(), self.started.clone(), self.runs.clone());
        async move {
            runs.fetch_add(1, SeqCst);
            started.store(true, SeqCst);
            gate.notified().await;
            value
        }
    }

    pub async fn wait_started(&self) {
        let started = self.started.clone();
        wait_until("the body runs", Duration::from_secs(5), async || {
            started.load(SeqCst)
        })
        .await;
    }

    pub fn release(&self) {
        self.gate.notify_waiters();
        self.gate.notify_one();
    }
}

/// Stores `1` for `(ns, 1)` on `cache` under `opts` (a 300 ms ttl, see [`stale`]) and waits
/// until it has expired (its `stale` window still holds it).
pub async fn stored_then_expired(cache: &Cache, ns: &str, opts: FillOptions) {
    let ok = async { Ok::<u64, String>(1) };
    let stored = cache
        .get_or_try_insert_with_options(ns, &1u64, opts, ok)
        .await;
    assert_eq!(stored, Ok(1));
    let until = Instant::now() + Duration::from_millis(450);
    wait_until("expired", Duration::from_secs(2), async || {
        Instant::now() >= until
    })
    .await;
}

/// Counts its runs and answers `value` at once.
pub fn counted(runs: &Arc<AtomicUsize>, value: u64) -> impl Future<Output = u64> + Send + 'static {
    let runs = runs.clone();
    async move {
        runs.fetch_add(1, SeqCst);
        value
    }
}

/// Holds the fill lease of `(ns, 1)` on `cache` with a gated body giving `value`; returns the
/// gate and the holder's task once the body runs.
pub async fn hold(
    cache: &Cache,
    ns: &'static str,
    value: u64,
) -> (Gated, tokio::task::JoinHandle<u64>) {
    let gated = Gated::default();
    let body = gated.body(value);
    let cache = cache.clone();
    let task = tokio::spawn(async move { cache.get_or_insert_with(ns, &1u64, None, body).await });
    gated.wait_started().await;
    (gated, task)
}

/// A `(ns, 1)` miss on `cache` giving `value`, and how long it took.
pub async fn timed(cache: &Cache, ns: &str, value: u64) -> (u64, Duration) {
    let started = Instant::now();
    let got = cache
        .get_or_insert_with(ns, &1u64, None, async move { value })
        .await;
    (got, started.elapsed())
}

/// A stale-window option set: `ttl` to live, 60 s more to be served stale.
pub fn stale(ttl: Duration) -> FillOptions {
    FillOptions::new().ttl(ttl).stale(Duration::from_secs(60))
}

macro_rules! probe {
    ($($(#[$attr:meta])* $name:ident => $scenario:path;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$attr])*
        async fn $name() {
            within(LIMIT, $scenario()).await;
        }
    )*};
}

probe! {
    a_queued_leader_dropped_in_begin_hands_its_followers_on =>
        flights::a_queued_leader_dropped_in_begin_hands_its_followers_on;
    a_dropped_waiter_leaves_no_notice_state_behind =>
        notices::a_dropped_waiter_leaves_no_notice_state_behind;
    a_waiter_on_a_frozen_server_answers_within_its_redis_timeout =>
        notices::a_waiter_on_a_frozen_server_answers_within_its_redis_timeout;
    a_dead_holders_lease_holds_a_waiter_no_longer_than_its_term =>
        notices::a_dead_holders_lease_holds_a_waiter_no_longer_than_its_term;
    a_waiter_on_a_stalled_holder_answers_within_one_term =>
        leases::a_waiter_on_a_stalled_holder_answers_within_one_term;
    fill_notices_flow_again_after_a_redis_restart =>
        notices::fill_notices_flow_again_after_a_redis_restart;
    fill_notices_flow_on_a_cluster => notices::fill_notices_flow_on_a_cluster;
    a_burst_of_waiters_costs_one_notice_per_process =>
        notices::a_burst_of_waiters_costs_one_notice_per_process;
}

probe! {
    a_stalled_fill_loses_its_lease_after_the_term => leases::a_stalled_fill_loses_its_lease_after_the_term;
    a_hung_recomputation_loses_its_lease_within_two_terms =>
        leases::a_hung_recomputation_loses_its_lease_within_two_terms;
    without_cross_process_single_flight_a_held_recomputation_is_not_waited_for =>
        leases::without_cross_process_single_flight_a_held_recomputation_is_not_waited_for;
}

macro_rules! queued_after {
    ($($(#[$attr:meta])* $name:ident: $op:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$attr])*
        async fn $name() {
            within(LIMIT, flights::a_caller_after_an_invalidation_never_joins_a_queued_flight_that_read_before(flights::Op::$op)).await;
        }
    )*};
}

queued_after! {
    queued_after_a_delete: Delete,
    queued_after_a_namespace_invalidation: Namespace,
    queued_after_an_invalidate_all: All
}

#[path = "adversarial/revalidate.rs"]
mod revalidate;

#[path = "adversarial/options.rs"]
mod options;

probe! {
    a_cpu_bound_detached_body_does_not_stall_the_process =>
        detached::a_cpu_bound_detached_body_does_not_stall_the_process;
    a_zero_ttl_is_not_kept_forever => options::a_zero_ttl_is_not_kept_forever;
    a_no_cache_request_dropped_mid_handler_keeps_the_stored_response =>
        revalidate::a_no_cache_request_dropped_mid_handler_keeps_the_stored_response;
}
