//! Fill notices (`{prefix}:__fill`) and the waiter's bound (`HolderWait`): a waiter dropped
//! mid-wait, a server frozen (SIGSTOP) under a waiter, and a holder that died holding the lease.

use super::*;
use futures_util::StreamExt;

/// The next fill notice heard on `notices`, as text (at most 5 s).
async fn next(
    notices: &mut (impl futures_util::Stream<Item = redis::Msg> + Unpin + ?Sized),
) -> String {
    let msg = tokio::time::timeout(Duration::from_secs(5), notices.next())
        .await
        .expect("a fill notice within 5 s")
        .expect("the subscription is open");
    String::from_utf8(msg.get_payload_bytes().to_vec()).unwrap()
}

/// Returns once `holder` has handled every bus message published so far (the `W` the test
/// just heard among them): an invalidation returns only after its own announcement came back
/// through the holder's subscription, which carries both channels in publish order. Without
/// it the test could release a holder that has not heard the `W` yet, which then rightly
/// sends no `F`.
async fn heard_by(holder: &Cache) {
    holder.delete::<u64>("unrelated", &0).await.unwrap();
}

/// B waits on A's fill (publishes `W`) and is dropped mid-wait; A's fill ends and answers the
/// `W` (`F`). The holder keeps no state for the key afterwards: A's next, uncontended fill of
/// it publishes nothing (the next notice is the `W` of another contended key), and B, waiting
/// again, is still answered and gets A's value. Fails if `release` kept the key `wanted`.
pub async fn a_dropped_waiter_leaves_no_notice_state_behind() {
    let server = RedisServer::start();
    let (a, b) = pair(|| config(&server, "nt", Duration::from_secs(5))).await;
    let mut pubsub = server.client().get_async_pubsub().await.unwrap();
    pubsub.subscribe("nt:__fill").await.unwrap();
    let mut notices = pubsub.into_on_message();
    let (gate, holder) = hold(&a, "busy", 7).await;
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { timed(&b, "busy", 8).await })
    };
    let wait = next(&mut notices).await;
    assert!(wait.starts_with("cr2|W|"), "{wait}");
    waiter.abort();
    assert!(waiter.await.unwrap_err().is_cancelled());
    heard_by(&a).await;
    gate.release();
    assert_eq!(holder.await.unwrap(), 7);
    assert_eq!(next(&mut notices).await, wait.replace("cr2|W|", "cr2|F|"));
    // Uncontended now: no notice.
    a.delete::<u64>("busy", &1).await.unwrap();
    assert_eq!(timed(&a, "busy", 9).await.0, 9);
    let (gate, holder) = hold(&a, "other", 1).await;
    let other = {
        let b = b.clone();
        tokio::spawn(async move { timed(&b, "other", 2).await })
    };
    let heard = next(&mut notices).await;
    assert!(
        heard.starts_with("cr2|W|") && heard != wait,
        "an uncontended fill was announced: {heard}"
    );
    heard_by(&a).await;
    gate.release();
    assert_eq!(holder.await.unwrap(), 1);
    assert_eq!(other.await.unwrap().0, 1);
    assert_eq!(next(&mut notices).await, heard.replace("cr2|W|", "cr2|F|"));
    // B waits on "busy" again and is answered.
    a.delete::<u64>("busy", &1).await.unwrap();
    let (gate, holder) = hold(&a, "busy", 11).await;
    let waiter = tokio::spawn(async move { timed(&b, "busy", 12).await });
    assert_eq!(next(&mut notices).await, wait);
    heard_by(&a).await;
    gate.release();
    assert_eq!(holder.await.unwrap(), 11);
    assert_eq!(next(&mut notices).await, wait.replace("cr2|W|", "cr2|F|"));
    assert_eq!(
        waiter.await.unwrap().0,
        11,
        "the waiter got the holder's value"
    );
}

/// B waits on A's fill lease (5 s term); the server is frozen (SIGSTOP). B must not wait the
/// term out: its next read of Redis times out (200 ms) and it runs its body, uncached. After
/// SIGCONT A's value is stored and seen by both; a delete by A then wins in B's L1 too.
/// Fails if a waiter kept waiting through Redis errors (it would take the 5 s term).
pub async fn a_waiter_on_a_frozen_server_answers_within_its_redis_timeout() {
    let server = RedisServer::start();
    let (a, b) = pair(|| tiered(&server, "frozen", Duration::from_secs(5))).await;
    let (gate, holder) = hold(&a, "fz", 7).await;
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { timed(&b, "fz", 8).await })
    };
    wait_until("B waits on A's lease", Duration::from_secs(5), async || {
        b.stats().namespace("fz").coalesced >= 1
    })
    .await;
    server.pause();
    let paused = Instant::now();
    let answered = tokio::time::timeout(Duration::from_secs(4), waiter).await;
    let waited = paused.elapsed();
    server.resume();
    let (got, _) = answered.expect("B waited the lease term out").unwrap();
    assert_eq!(got, 8, "B ran its own body");
    assert!(
        waited < Duration::from_secs(1),
        "B waited {waited:?} on a frozen server"
    );
    gate.release();
    assert_eq!(holder.await.unwrap(), 7);
    wait_until("buses back", Duration::from_secs(10), async || {
        a.bus_healthy() && b.bus_healthy()
    })
    .await;
    for cache in [&a, &b] {
        wait_until("A's value", Duration::from_secs(5), async || {
            cache.get::<u64>("fz", &1u64).await == Some(7)
        })
        .await;
    }
    a.delete::<u64>("fz", &1).await.unwrap();
    assert_eq!(timed(&b, "fz", 10).await.0, 10, "B served a deleted value");
}

/// A holder that died right after taking the lease (a marker planted in Redis: no renewal, no
/// release, no `F`). B's miss waits for it no longer than its term, then fills the key itself
/// (the marker has lapsed), so A then hits B's value. Fails if a waiter outlasted the term.
pub async fn a_dead_holders_lease_holds_a_waiter_no_longer_than_its_term() {
    let server = RedisServer::start();
    let term = Duration::from_millis(600);
    let (a, b) = pair(|| config(&server, "dead", term)).await;
    let (gate, holder) = hold(&a, "dh", 1).await;
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = lease_key(&mut conn).await;
    gate.release();
    assert_eq!(holder.await.unwrap(), 1);
    a.delete::<u64>("dh", &1).await.unwrap();
    let marker: [u8; 10] = [0xCA, 0xC8, 1, 2, 3, 4, 5, 6, 7, 8];
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(&marker[..])
        .arg("PX")
        .arg(term.as_millis() as u64)
        .query_async(&mut conn)
        .await
        .unwrap();
    let (got, waited) = timed(&b, "dh", 5).await;
    assert_eq!(got, 5);
    assert!(b.stats().namespace("dh").coalesced >= 1, "B did not wait");
    assert!(
        waited < term + Duration::from_millis(400),
        "B waited {waited:?}"
    );
    assert_eq!(timed(&a, "dh", 6).await.0, 5, "B filled the key");
}

/// The only key holding a lease marker (10 bytes, `CA C8 ...`) now.
async fn lease_key(conn: &mut redis::aio::MultiplexedConnection) -> Vec<u8> {
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query_async(conn).await.unwrap();
    let mut found = Vec::new();
    for key in keys {
        let value: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query_async(conn).await.ok();
        if value.is_some_and(|v| v.len() == 10 && v[..2] == [0xCA, 0xC8]) {
            found.push(key);
        }
    }
    assert_eq!(found.len(), 1, "one lease marker");
    found.pop().unwrap()
}

/// The next notice on every subscription of `subs` (one per node), which must agree: once each
/// node delivered it, the holder's subscription (on one of them) has it too.
async fn next_everywhere(subs: &mut [Notices]) -> String {
    let mut heard = Vec::new();
    for sub in subs.iter_mut() {
        heard.push(next(sub).await);
    }
    assert!(heard.windows(2).all(|w| w[0] == w[1]), "{heard:?}");
    heard.pop().unwrap()
}

/// A subscription to fill notices.
type Notices = std::pin::Pin<Box<dyn futures_util::Stream<Item = redis::Msg> + Send>>;

/// Subscribes to `channel` on `client`.
async fn subscribe(client: redis::Client, channel: &str) -> Notices {
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(channel).await.unwrap();
    Box::pin(pubsub.into_on_message())
}

/// One contended fill of `(ns, 1)`: A holds the lease, B waits; the `W` and then (A heard it)
/// the `F` are heard on every node, and B gets A's value.
async fn contended(a: &Cache, b: &Cache, ns: &'static str, subs: &mut [Notices]) {
    let (gate, holder) = hold(a, ns, 21).await;
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { timed(&b, ns, 22).await })
    };
    let wait = next_everywhere(subs).await;
    assert!(wait.starts_with("cr2|W|") && wait.contains(ns), "{wait}");
    gate.release();
    assert_eq!(holder.await.unwrap(), 21);
    let filled = next_everywhere(subs).await;
    assert_eq!(
        filled,
        wait.replace("cr2|W|", "cr2|F|"),
        "the holder did not answer"
    );
    assert_eq!(
        waiter.await.unwrap().0,
        21,
        "the waiter got the holder's value"
    );
}

/// Redis is killed and restarted (data lost): once both buses are back, a contended fill is
/// still announced and answered, so the holder's subscription to `{prefix}:__fill` was rebuilt
/// along with the bus's. Fails if the fill channel is subscribed on the first connection only.
pub async fn fill_notices_flow_again_after_a_redis_restart() {
    let mut server = RedisServer::start();
    let (a, b) = pair(|| tiered(&server, "rs", Duration::from_secs(5))).await;
    server.restart();
    wait_until("buses back", Duration::from_secs(10), async || {
        a.set("warm", &0, &0u8, None).await.is_ok() && a.bus_healthy() && b.bus_healthy()
    })
    .await;
    let mut subs = [subscribe(server.client(), "rs:__fill").await];
    contended(&a, &b, "after", &mut subs).await;
}

/// On Redis Cluster too (PUBLISH reaches every node): a contended fill is announced and
/// answered, whichever node each process subscribed to. (Released as soon as the test's
/// subscriber on one node heard the `W`, the holder, subscribed to another node, often had not
/// heard it yet and published no `F`: latency only, the waiter polls.)
pub async fn fill_notices_flow_on_a_cluster() {
    let cluster = RedisCluster::start();
    let config = || {
        Config::redis_cluster(cluster.urls())
            .prefix("cl")
            .timeout(Duration::from_secs(1))
    };
    let (a, b) = pair(config).await;
    let mut subs = Vec::new();
    for node in &cluster.nodes {
        subs.push(subscribe(node.client(), "cl:__fill").await);
    }
    for ns in ["c1", "c2", "c3"] {
        contended(&a, &b, ns, &mut subs).await;
    }
}

/// No notice storm: while A holds the lease, 50 callers in each of B and C wait; that costs one
/// `W` per waiting process and one `F`, nothing more (a sentinel published after everything
/// ended is the next message). Fails if waits were announced per caller or per poll (checked:
/// a `W` per poll gives more notices).
pub async fn a_burst_of_waiters_costs_one_notice_per_process() {
    let server = RedisServer::start();
    let (a, b) = pair(|| config(&server, "storm", Duration::from_secs(5))).await;
    let (c, _) = pair(|| config(&server, "storm", Duration::from_secs(5))).await;
    let mut subs = [subscribe(server.client(), "storm:__fill").await];
    let (gate, holder) = hold(&a, "burst", 21).await;
    let mut callers = Vec::new();
    for cache in [&b, &c] {
        for _ in 0..50 {
            let cache = cache.clone();
            callers.push(tokio::spawn(
                async move { timed(&cache, "burst", 22).await.0 },
            ));
        }
    }
    let (first, second) = (
        next_everywhere(&mut subs).await,
        next_everywhere(&mut subs).await,
    );
    assert!(
        first.starts_with("cr2|W|") && first == second,
        "{first} {second}"
    );
    // The holder's body takes 200 ms more: the waiters poll several times meanwhile.
    let until = Instant::now() + Duration::from_millis(200);
    wait_until("the body's time", Duration::from_secs(2), async || {
        Instant::now() >= until
    })
    .await;
    gate.release();
    assert_eq!(holder.await.unwrap(), 21);
    assert_eq!(
        next_everywhere(&mut subs).await,
        first.replace("cr2|W|", "cr2|F|")
    );
    for caller in callers {
        assert_eq!(caller.await.unwrap(), 21);
    }
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: u64 = redis::cmd("PUBLISH")
        .arg("storm:__fill")
        .arg("sentinel")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(next_everywhere(&mut subs).await, "sentinel", "more notices");
}
