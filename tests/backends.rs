//! One suite, every backend: the behaviours that do not depend on the backend, written once
//! (`backends/cases.rs`, manual API on `Cache` instances; `backends/global.rs`, `#[cached]`
//! functions and axum handlers on the global cache) and run on memory, Redis, Redis Cluster,
//! tiered (Redis + L1) and tiered on Cluster (the bus across cluster nodes).
//!
//! [`on_every_backend!`] instantiates one module per backend (`on_memory`, `on_redis`,
//! `on_cluster`, `on_tiered`, `on_tiered_cluster`), so one backend runs with a filter:
//! `cargo test -p cache-tests --test backends on_cluster::`. The Redis backends share one
//! server and one Cluster per run (`cache_tests::backends`); every test has a key prefix of
//! its own. The global cache can be set once per process, so the `#[cached]` and HTTP part
//! runs in a child process per backend (this binary again, filtered to [`child_process`]).
//!
//! Fault tests are elsewhere (`cancellation.rs`, `*_faults.rs`): the shared servers are never
//! paused or killed here.

use std::time::Duration;

use cache_tests::backends::{Env, Kind, within};

#[path = "backends/cancel.rs"]
mod cancel;
#[path = "backends/cases.rs"]
mod cases;
#[path = "backends/global.rs"]
mod global;
#[path = "http_app.rs"]
mod http_app;

/// The outer timeout of each test: a hang fails instead of stalling the run.
const LIMIT: Duration = Duration::from_secs(60);

/// Instantiates each `group::case(&Env)` once per backend, in a module per backend.
macro_rules! on_every_backend {
    ($($group:ident: [$($case:ident),* $(,)?]),* $(,)?) => {
        on_every_backend!(@one on_memory Memory $($group: [$($case),*]),*);
        on_every_backend!(@one on_redis Redis $($group: [$($case),*]),*);
        on_every_backend!(@one on_cluster Cluster $($group: [$($case),*]),*);
        on_every_backend!(@one on_tiered Tiered $($group: [$($case),*]),*);
        on_every_backend!(@one on_tiered_cluster TieredCluster $($group: [$($case),*]),*);
    };
    (@one $module:ident $kind:ident $($group:ident: [$($case:ident),*]),*) => {
        mod $module {
            $($(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let env = super::Env::new(super::Kind::$kind, stringify!($case));
                    super::within(super::LIMIT, super::$group::$case(&env)).await;
                }
            )*)*
        }
    };
}

on_every_backend!(
    cases: [
        hit_and_miss,
        ttl_expiry,
        option_and_result_values,
        invalidation_of_key_namespace_and_all,
        single_flight_in_process_and_across_instances,
        codecs_read_back,
        invalidation_while_the_body_runs,
        max_value_bytes_is_inclusive,
    ],
    cancel: [dropped_futures_leave_nothing_wedged],
    global: [cached_functions_and_handlers_in_a_child_process],
);

/// The entry point of a child process started by `global`: runs the `#[cached]` and HTTP
/// part on the backend it was handed; does nothing in a normal run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process() {
    if let Some(kind) = Kind::of_child() {
        within(LIMIT, global::child(kind)).await;
    }
}
