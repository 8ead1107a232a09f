//! The library's own background runtime: one thread, started on first use, never stopped.
//!
//! Every Redis connection is made and driven here, and every background task (bus subscriber,
//! heartbeat, watchdog, recovery, warm-up) runs here, so a [`crate::Cache`] does not depend on
//! the runtime that built it: a test suite where each `#[tokio::test]` has its own runtime, and
//! one of them calls [`crate::init`], keeps a working cache in every test.
//!
//! User code never runs here: a body that goes on without its caller (`timeout`, a background
//! refresh) is spawned on the caller's runtime ([`spawn_body`]).
//!
//! Callers never hop to this thread: a request is handed to the connection's driver through
//! the connection's channel (what redis-rs does anyway) and its reply comes back through a
//! one-shot channel, both of which work from any runtime.

use std::sync::LazyLock;

use tokio::runtime::{Builder, Runtime};
use tokio::task::JoinHandle;

static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("cache-runtime-bg")
        .enable_all()
        .build()
        .expect("cache-runtime: cannot start its background runtime thread")
});

/// Spawns `task` on the background runtime.
pub(crate) fn spawn<F>(task: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    RUNTIME.spawn(task)
}

/// Spawns user code that goes on without its caller (a body detached by `timeout`, a
/// background refresh): on the caller's runtime, never on the library's one thread, where a
/// CPU-bound body would stall every Redis connection, the bus and the lease renewals of the
/// process. Outside a tokio runtime (not reachable from a caller on tokio), on the library's.
pub(crate) fn spawn_body<F>(task: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(caller) => caller.spawn(task),
        Err(_) => RUNTIME.spawn(task),
    }
}

/// Runs `f` inside the background runtime's context, so that whatever it spawns or registers
/// (redis-rs connection tasks, sockets) belongs to that runtime.
pub(crate) fn enter<R>(f: impl FnOnce() -> R) -> R {
    let _guard = RUNTIME.enter();
    f()
}
