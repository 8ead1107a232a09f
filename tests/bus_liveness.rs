//! Liveness of the invalidation bus, seen from outside: an invalidation returns as soon as
//! every live process acknowledged it (not after the validity term), and waits the term for a
//! process that cannot answer; a process whose validity lease lapsed while its subscription is
//! alive frees its L1 within one watchdog period; a healthy bus keeps its L1 entries; each
//! prefix has its own channel; a subscriber that cannot reconnect backs off.
//!
//! A process that "cannot publish" is made with Redis ACLs: the caches under test connect as
//! the `default` user, whose `PUBLISH` the test revokes ([`RedisServer::acl_default`]), while a
//! peer connected as another user keeps the channel busy. Its subscription stays open and keeps
//! hearing the peer, so only its own heartbeats (and acknowledgements) stop.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Config, L1};
use cache_tests::{RedisServer, admin, answered_by_l1, wait_until, within};

/// The documented validity term: `T = 2 × bus_heartbeat + timeout`.
fn term(heartbeat: Duration, timeout: Duration) -> Duration {
    heartbeat * 2 + timeout
}

fn config(url: String, prefix: &str, heartbeat: Duration, timeout: Duration) -> Config {
    Config::redis(url)
        .prefix(prefix)
        .timeout(timeout)
        .bus_heartbeat(heartbeat)
        .with_l1(L1::new(100, Duration::from_secs(60)))
}

/// A tiered cache on `url` (see [`config`]).
async fn started(url: String, prefix: &str, heartbeat: Duration, timeout: Duration) -> Cache {
    Cache::new(config(url, prefix, heartbeat, timeout))
        .await
        .unwrap()
}

async fn bus_up(caches: &[&Cache]) {
    wait_until("bus up", Duration::from_secs(10), async || {
        caches.iter().all(|c| c.bus_healthy())
    })
    .await;
}

/// `body`'s output if `cache`'s bus stayed healthy the whole time it ran (sampled every
/// millisecond), `None` if it lapsed (a late heartbeat on a loaded machine flushes the L1).
async fn healthy_throughout<R>(cache: &Cache, body: impl Future<Output = R>) -> Option<R> {
    let (done, lapsed) = (
        AtomicBool::new(false),
        AtomicBool::new(!cache.bus_healthy()),
    );
    let sample = async {
        while !done.load(SeqCst) {
            if !cache.bus_healthy() {
                lapsed.store(true, SeqCst);
            }
            // The sampling interval, not a synchronisation.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    let run = async {
        let out = body.await;
        done.store(true, SeqCst);
        out
    };
    let (out, ()) = tokio::join!(run, sample);
    (!lapsed.load(SeqCst) && cache.bus_healthy()).then_some(out)
}

/// How many value reads (`GET`, `MGET`) the server has answered.
async fn redis_reads(server: &RedisServer) -> u64 {
    server.command_calls("get").await + server.command_calls("mget").await
}

/// Checks that an entry of `cache`'s L1 is still there, read without a Redis round trip, after
/// `what` ran: retried up to ten times until the bus stayed healthy throughout (a late
/// heartbeat on a loaded machine flushes the L1 and would say nothing of `what`).
async fn still_in_l1_after(
    server: &RedisServer,
    cache: &Cache,
    what: &str,
    mut during: impl AsyncFnMut(),
) {
    cache.set("item", &1, &"v".to_owned(), None).await.unwrap();
    for _ in 0..10 {
        answered_by_l1(server, async || {
            cache.get::<String>("item", &1).await.as_deref() == Some("v")
        })
        .await;
        let reads = redis_reads(server).await;
        let steady = healthy_throughout(cache, async {
            during().await;
            cache.get::<String>("item", &1).await
        })
        .await;
        if let Some(read) = steady {
            assert_eq!(read.as_deref(), Some("v"));
            assert_eq!(
                redis_reads(server).await,
                reads,
                "read from Redis: the L1 was flushed by {what}"
            );
            return;
        }
    }
    panic!("the bus never stayed healthy through {what} in ten tries");
}

/// The ids of the server's pub/sub connections.
async fn subscriber_ids(server: &RedisServer) -> Vec<u64> {
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg(&["LIST", "TYPE", "pubsub"])
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut ids: Vec<u64> = list
        .lines()
        .filter_map(|l| l.strip_prefix("id=")?.split(' ').next()?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids
}

/// With every process answering, each kind of invalidation returns after the acknowledgements,
/// well before the term it would wait for a silent process (4 s here), and the other process's
/// L1 no longer holds the old value when it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_returns_as_soon_as_every_process_acknowledged() {
    let server = RedisServer::start();
    let (heartbeat, timeout) = (Duration::from_secs(1), Duration::from_secs(2));
    let a = started(server.url(), "acked", heartbeat, timeout).await;
    let b = started(server.url(), "acked", heartbeat, timeout).await;
    within(Duration::from_secs(60), async {
        bus_up(&[&a, &b]).await;
        for op in ["delete", "set", "invalidate_namespace", "invalidate_all"] {
            a.set("item", &1, &format!("old {op}"), None).await.unwrap();
            let old = Some(format!("old {op}"));
            // Precondition: the other process's L1 holds the old value.
            answered_by_l1(&server, async || b.get::<String>("item", &1).await == old).await;
            let start = Instant::now();
            match op {
                "delete" => a.delete::<String>("item", &1).await.unwrap(),
                "set" => a.set("item", &1, &"new".to_owned(), None).await.unwrap(),
                "invalidate_namespace" => a.invalidate_namespace("item").await.unwrap(),
                _ => a.invalidate_all().await.unwrap(),
            }
            let took = start.elapsed();
            assert_ne!(b.get::<String>("item", &1).await, old, "{op}");
            assert!(
                took < term(heartbeat, timeout) / 2,
                "{op} took {took:?}: it waited for the term, not for the acknowledgement"
            );
        }
    })
    .await;
}

/// A live process that hears the invalidation but cannot acknowledge it (its `PUBLISH` is
/// refused) holds the invalidation for the whole term: the caller cannot know it dropped its
/// copy, only that its lease has run out by then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_waits_the_term_for_a_process_that_does_not_acknowledge() {
    let server = RedisServer::start();
    let (heartbeat, timeout) = (Duration::from_millis(100), Duration::from_millis(200));
    let peer_url = server.user_url("peer").await;
    let a = started(peer_url, "unacked", heartbeat, timeout).await;
    let b = started(server.url(), "unacked", heartbeat, timeout).await;
    within(Duration::from_secs(60), async {
        bus_up(&[&a, &b]).await;
        a.set("item", &1, &"old".to_owned(), None).await.unwrap();
        answered_by_l1(&server, async || {
            b.get::<String>("item", &1).await.as_deref() == Some("old")
        })
        .await;
        server.acl_default(&["-publish"]).await;
        let start = Instant::now();
        a.delete::<String>("item", &1).await.unwrap();
        let took = start.elapsed();
        server.acl_default(&["+publish"]).await;
        assert!(
            took >= term(heartbeat, timeout),
            "returned after {took:?}, before the term, without the acknowledgement"
        );
        assert_eq!(b.get::<String>("item", &1).await, None);
    })
    .await;
}

/// A process whose heartbeats stop getting through while its subscription stays open (it keeps
/// hearing a peer, so it is never rebuilt) stops trusting its L1 once the lease lapses, and its
/// watchdog frees the L1 within one heartbeat of that (documented: within `bus_heartbeat / 5`),
/// counting an error; once its heartbeats get through again the L1 is back in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_lease_frees_the_l1_though_the_subscription_is_alive() {
    let server = RedisServer::start();
    let (heartbeat, timeout) = (Duration::from_millis(300), Duration::from_millis(100));
    let peer = started(server.user_url("peer").await, "lapse", heartbeat, timeout).await;
    let cache = started(server.url(), "lapse", heartbeat, timeout).await;
    within(Duration::from_secs(60), async {
        bus_up(&[&cache, &peer]).await;
        cache.set("item", &1, &"v".to_owned(), None).await.unwrap();
        let subscribers = subscriber_ids(&server).await;
        let errors = cache.stats().total.errors;
        // Three rounds: the watchdog wakes at a random moment of its period.
        for round in 0..3 {
            answered_by_l1(&server, async || {
                cache.get::<String>("item", &1).await.as_deref() == Some("v")
            })
            .await;
            server.acl_default(&["-publish"]).await;
            wait_until(
                "the lease lapses",
                term(heartbeat, timeout) * 4,
                async || !cache.bus_healthy(),
            )
            .await;
            let lapsed = Instant::now();
            wait_until("the L1 is freed", Duration::from_secs(10), async || {
                cache.run_pending_tasks().await;
                cache.local_entry_count() == 0
            })
            .await;
            let freed = lapsed.elapsed();
            assert!(
                freed <= heartbeat,
                "round {round}: the L1 was freed {freed:?} after the lease lapsed"
            );
            server.acl_default(&["+publish"]).await;
            bus_up(&[&cache]).await;
        }
        assert!(
            cache.stats().total.errors >= errors + 3,
            "each lapse counted"
        );
        // Precondition: the subscription was never rebuilt, so the watchdog freed the L1.
        assert_eq!(subscriber_ids(&server).await, subscribers);
    })
    .await;
}

/// Heartbeats extend the lease without touching the L1: an entry stays in it across several
/// heartbeats while the bus is healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_stays_in_the_l1_while_the_bus_stays_healthy() {
    let server = RedisServer::start();
    let heartbeat = Duration::from_millis(200);
    let cache = started(server.url(), "keep", heartbeat, heartbeat).await;
    within(Duration::from_secs(60), async {
        bus_up(&[&cache]).await;
        let span = heartbeat * 4;
        still_in_l1_after(&server, &cache, "four heartbeats", async || {
            let start = Instant::now();
            wait_until("four heartbeats", span * 2, async || {
                start.elapsed() >= span
            })
            .await;
        })
        .await;
    })
    .await;
}

/// Each prefix has its own channel, `{prefix}:__bus` (and `{prefix}:__fill` for fill
/// notices): an invalidation of everything under one prefix leaves another prefix's L1 alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_prefix_has_its_own_bus() {
    let server = RedisServer::start();
    let (heartbeat, timeout) = (Duration::from_millis(200), Duration::from_millis(200));
    let left = started(server.url(), "left", heartbeat, timeout).await;
    let right = started(server.url(), "right", heartbeat, timeout).await;
    within(Duration::from_secs(60), async {
        bus_up(&[&left, &right]).await;
        let channels = cache_tests::cli(server.port(), &["PUBSUB", "CHANNELS"]).unwrap();
        let mut channels: Vec<&str> = channels.lines().collect();
        channels.sort_unstable();
        assert_eq!(
            channels,
            ["left:__bus", "left:__fill", "right:__bus", "right:__fill"]
        );
        still_in_l1_after(
            &server,
            &left,
            "an invalidation of another prefix",
            async || {
                right.invalidate_all().await.unwrap();
            },
        )
        .await;
    })
    .await;
}

/// A subscriber that cannot reconnect (the server refuses new connections: `maxclients`
/// reached) retries with a back-off, from 50 ms doubling to 1 s: at most 9 attempts in 4 s,
/// not a tight loop; it is subscribed again once the server accepts connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_cannot_reconnect_backs_off() {
    let server = RedisServer::start();
    let cache = started(
        server.url(),
        "backoff",
        Duration::from_millis(100),
        Duration::from_millis(200),
    )
    .await;
    within(Duration::from_secs(60), async {
        bus_up(&[&cache]).await;
        let mut conn = server
            .client()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        // The subscription killed below frees a place that must stay taken.
        admin::refuse_new_connections(&mut conn).await;
        let before = admin::info_number(&mut conn, "stats", "rejected_connections").await;
        redis::cmd("CLIENT")
            .arg(&["KILL", "TYPE", "pubsub"])
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
        let window = Duration::from_secs(4);
        let start = Instant::now();
        wait_until("the window", window * 2, async || start.elapsed() >= window).await;
        let attempts =
            admin::info_number(&mut conn, "stats", "rejected_connections").await - before;
        admin::accept_connections(&mut conn).await;
        eprintln!("{attempts} reconnection attempts in {window:?}");
        assert!(
            (2..=12).contains(&attempts),
            "{attempts} reconnection attempts in {window:?}"
        );
        bus_up(&[&cache]).await;
    })
    .await;
}
