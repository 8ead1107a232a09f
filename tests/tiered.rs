//! The tiered cache with the invalidation bus up: two `Cache` instances share one real Redis,
//! each with its own L1. A write or invalidation through one is never answered with the old
//! value by the other once the call returned, not even once: the call waits for the other
//! instance's acknowledgement (or for the validity term `T = 2 × bus_heartbeat + timeout`
//! documented in `cache_runtime::tiered`, after which an unconfirmed L1 is not trusted).
//! Before each round, the test proves the other instance's L1 holds the old value (a read
//! answered with no `GET`/`MGET` on Redis), so a round cannot pass without the bus acting.
//!
//! This root holds the shared helpers; the tests are in `tiered/writes.rs` (the promise) and
//! `tiered/l1.rs` (the L1's own behaviour).

use std::time::Duration;

use cache_runtime::{Cache, Config, L1};
use cache_tests::{Db, RedisServer, answered_by_l1, bus_up_pair, wait_until};

#[path = "tiered/l1.rs"]
mod l1;
#[path = "tiered/writes.rs"]
mod writes;

const HEARTBEAT: Duration = Duration::from_millis(100);
const TIMEOUT: Duration = Duration::from_millis(50);

fn tiered(server: &RedisServer) -> Config {
    Config::redis(server.url())
        .prefix("t")
        .with_l1(L1::new(1_000, Duration::from_secs(30)))
        .bus_heartbeat(HEARTBEAT)
        .timeout(TIMEOUT)
}

/// Reads Redis ran (`GET` and `MGET`, from `INFO commandstats`).
async fn redis_reads(server: &RedisServer) -> u64 {
    server.command_calls("get").await + server.command_calls("mget").await
}

/// Proves the precondition of a round: `read` gives `expected` from the L1 (Redis ran no read
/// meanwhile). Polls: the L1 is bypassed for a moment whenever a heartbeat is late on a loaded
/// machine.
async fn l1_holds(server: &RedisServer, expected: &str, mut read: impl AsyncFnMut() -> String) {
    wait_until(
        "the L1 holds the old value",
        Duration::from_secs(5),
        async || {
            let before = redis_reads(server).await;
            let seen = read().await;
            assert_eq!(seen, expected, "the old value before the invalidation");
            redis_reads(server).await == before
        },
    )
    .await;
}

async fn pair(server: &RedisServer) -> (Cache, Cache) {
    bus_up_pair(|| tiered(server)).await
}

async fn load(cache: &Cache, db: &Db, ns: &str, id: u64) -> String {
    cache
        .get_or_insert_with(ns, &id, None, async { db.get(id) })
        .await
}

/// The promise: once the write or invalidation returned, `read` never gives `old` again, not
/// even once (the call waited for the other instance's acknowledgement, or for its L1
/// validity lease to lapse).
async fn replaced(what: &str, old: &str, new: &str, mut read: impl AsyncFnMut() -> String) {
    for i in 0..50 {
        let seen = read().await;
        assert_ne!(
            seen, old,
            "{what}: the old value served after the call returned (read {i})"
        );
        assert_eq!(seen, new, "{what}: neither the old nor the new value");
    }
}
