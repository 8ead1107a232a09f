//! The cancellation harness (`tests/cancellation/harness.rs`) on every backend, Redis healthy:
//! every manual operation's future dropped after 1..10 polls and at random moments, then
//! nothing wedged and nothing stale, for this instance and for another one. The faults
//! (stalled, killed) run in `cancellation.rs`, on servers of its own.

use std::time::Duration;

use cache_tests::backends::{Env, Kind};

#[allow(dead_code)] // the global-cache operations run in `cancellation.rs`
#[path = "../cancellation/harness.rs"]
mod harness;

use harness::{Fault, Harness, Op, Servers};

/// The breaker's cooldown (the suite keeps the default).
const COOLDOWN: Duration = Duration::from_secs(1);
/// How long after the drops the cache must serve hits again, nothing pending.
const RECOVERY_BOUND: Duration = Duration::from_secs(3);
const MAX_POLLS: usize = 10;
const RANDOM_DROPS: usize = 6;
const RANDOM_WITHIN_US: u64 = 20_000;

pub async fn dropped_futures_leave_nothing_wedged(env: &Env) {
    let servers = if env.kind == Kind::Memory {
        Servers::None
    } else {
        Servers::Shared
    };
    let harness = Harness::new(env.kind.name(), env.cache().await, servers);
    let ops = [
        Op::Get,
        Op::Set,
        Op::Delete,
        Op::GetOrInsert,
        Op::InvalidateNamespace,
    ];
    harness.run(&[Fault::Healthy], &ops).await;
}
