//! The L1 validity lease is checked by every read, not by a task: with the library's
//! background thread starved (no subscriber, heartbeat or watchdog can run: a process just
//! resumed from a freeze, or a body blocking that thread), a read made once the lease has
//! lapsed is not answered from the L1, though the L1 still holds the entry.
//!
//! A binary of its own: it blocks the process-wide background runtime, which every test of a
//! binary shares.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use cache_runtime::{Cache, Config, L1};
use cache_tests::{RedisServer, answered_by_l1, wait_until, within};
use redis::AsyncCommands;

const HEARTBEAT: Duration = Duration::from_millis(100);
const TIMEOUT: Duration = Duration::from_millis(100);

/// The receiver the value below blocks on while it is serialised (taken by the first one).
static FREEZE: Mutex<Option<mpsc::Receiver<()>>> = Mutex::new(None);
static FROZEN: AtomicBool = AtomicBool::new(false);

/// A value whose serialisation blocks its thread until released. A Redis `set` serialises on
/// the library's background thread (its write runs to completion there, whatever the caller
/// does), so storing it freezes that thread.
#[derive(Clone, serde::Deserialize)]
struct Freezer;

impl serde::Serialize for Freezer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let gate = FREEZE.lock().unwrap().take();
        if let Some(gate) = gate {
            FROZEN.store(true, SeqCst);
            // Deliberately blocking: the thread stands still until released.
            let _ = gate.recv();
        }
        s.serialize_unit_struct("Freezer")
    }
}

/// Blocks the background runtime's thread until the returned sender is used or dropped.
///
/// The blocking `set` goes to the namespace `item`, whose generations this process already
/// knows: a `set` into a new namespace first creates its generation and forgets the remembered
/// ones, after which the hit path misses for that reason alone and would not show whether it
/// checks the lease.
async fn block_background_thread(cache: &Cache) -> mpsc::Sender<()> {
    let (release, blocked) = mpsc::channel::<()>();
    *FREEZE.lock().unwrap() = Some(blocked);
    let cache = cache.clone();
    tokio::spawn(async move { cache.set("item", &0, &Freezer, None).await });
    wait_until(
        "the background thread blocks",
        Duration::from_secs(5),
        async || FROZEN.load(SeqCst),
    )
    .await;
    release
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_lease_is_not_served_from_the_l1_while_background_tasks_cannot_run() {
    within(Duration::from_secs(60), async {
        let server = RedisServer::start();
        let config = Config::redis(server.url())
            .prefix("lease")
            .timeout(TIMEOUT)
            .bus_heartbeat(HEARTBEAT)
            .with_l1(L1::new(100, Duration::from_secs(60)));
        let cache = Cache::new(config).await.unwrap();
        wait_until("bus up", Duration::from_secs(5), async || {
            cache.bus_healthy()
        })
        .await;
        cache
            .set("item", &1, &"old".to_owned(), None)
            .await
            .unwrap();
        answered_by_l1(&server, async || {
            cache.get::<String>("item", &1).await.as_deref() == Some("old")
        })
        .await;

        let release = block_background_thread(&cache).await;
        // Another process invalidates the entry: Redis no longer holds it, and this process
        // cannot hear the announcement (nor acknowledge it: the other process's call returns
        // once this process's lease has lapsed).
        let key = cache.key_for::<String>("item", &1).unwrap();
        let mut conn = server
            .client()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let deleted: u64 = conn.del(&key).await.unwrap();
        assert_eq!(deleted, 1);
        let bound = cache.staleness_bound();
        wait_until("the lease lapses", bound * 3, async || !cache.bus_healthy()).await;
        // Redis cannot be read either (its connections are driven by the blocked thread): the
        // read fails open, without the old value.
        assert_eq!(cache.get::<String>("item", &1).await, None);

        release.send(()).unwrap();
        wait_until("bus back", bound * 10, async || cache.bus_healthy()).await;
        assert_eq!(cache.get::<String>("item", &1).await, None);
    })
    .await;
}
