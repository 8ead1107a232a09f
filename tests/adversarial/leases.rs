//! Lease terms against their documentation (`Config::fill_lease`): a stalled fill body, and a
//! hung recomputation's recompute lease (`RECOMPUTE_HOLD_TERMS`); without cross-process
//! single-flight, a recompute lease held elsewhere is not waited for.

use super::*;

/// `Config::fill_lease` is "the longest a miss waits for another process's fill". A's fill body
/// stalls (gated) and its lease is renewed meanwhile; B's miss waits at most one term, then
/// runs its own body. Fails (hangs) if the waiter's deadline is not kept.
pub async fn a_waiter_on_a_stalled_holder_answers_within_one_term() {
    let server = RedisServer::start();
    let term = Duration::from_millis(400);
    let (a, b) = pair(|| config(&server, "stallw", term)).await;
    let (gate, holder) = hold(&a, "sw", 7).await;
    let (first, waited) = timed(&b, "sw", 8).await;
    gate.release();
    assert_eq!(holder.await.unwrap(), 7);
    assert_eq!(first, 8, "B ran its own body");
    assert!(b.stats().namespace("sw").coalesced >= 1, "B did not wait");
    assert!(
        waited < term + Duration::from_millis(300),
        "B waited {waited:?}, term {term:?}"
    );
}

/// `Config::fill_lease`: "a holder that dies or stalls loses it after this term, and waiting
/// processes then fill the key themselves". A's fill body stalls (gated); B's first miss waits
/// one term, takes the key over and runs its body; B's value is stored, so B's next call is a
/// hit. (It used to be refused: the stalled body's fill lease was renewed for as long as the
/// body ran, so every later miss in every other process waited a full term again.)
pub async fn a_stalled_fill_loses_its_lease_after_the_term() {
    let server = RedisServer::start();
    let term = Duration::from_millis(400);
    let (a, b) = pair(|| config(&server, "stall", term)).await;
    let (gate, holder) = hold(&a, "st", 7).await;
    let (first, waited) = timed(&b, "st", 8).await;
    assert_eq!(first, 8, "B ran its body after waiting {waited:?}");
    let (second, again) = timed(&b, "st", 9).await;
    gate.release();
    assert_eq!(holder.await.unwrap(), 7);
    assert_eq!(
        second, 8,
        "B's value was not stored: B's next miss waited {again:?} (term {term:?}) and ran its \
         body again, while the stalled holder keeps its lease renewed"
    );
}

/// `Config::fill_lease`: a recomputation "holds its lease for at most two terms". A's
/// recomputation of an expired entry hangs (no timeout). The recompute lease key is gone
/// within two terms (plus scheduling slack) of the body's start, and B then takes over. (It
/// used to live 2.5 to 3 terms: the renewal just before the limit added a full term.)
pub async fn a_hung_recomputation_loses_its_lease_within_two_terms() {
    let server = RedisServer::start();
    let term = Duration::from_millis(600);
    let (a, b) = pair(|| config(&server, "hung", term)).await;
    let opts = stale(Duration::from_millis(300));
    stored_then_expired(&a, "hg", opts).await;
    let hung = Gated::default();
    let body = hung.body(2);
    let recompute = {
        let a = a.clone();
        tokio::spawn(async move {
            let body = async move { Ok::<u64, String>(body.await) };
            a.get_or_try_insert_with_options("hg", &1u64, opts, body)
                .await
        })
    };
    hung.wait_started().await;
    let started = Instant::now();
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = recompute_key(&mut conn).await;
    wait_until("the lease lapses", Duration::from_secs(5), async || {
        let exists: u64 = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        exists == 0
    })
    .await;
    let held = started.elapsed();
    wait_until("B takes over", Duration::from_secs(5), async || {
        b.get_or_try_insert_with_options("hg", &1u64, opts, async { Ok::<u64, String>(5) })
            .await
            == Ok(5)
    })
    .await;
    hung.release();
    let _ = recompute.await;
    let bound = term * 2 + Duration::from_millis(250);
    assert!(
        held <= bound,
        "the recompute lease lived {held:?}; documented: at most two terms ({term:?} each)"
    );
}

/// `Config::cross_process_single_flight(false)`: "recomputations and refreshes run in every
/// process that needs them". A recomputes an expired entry (its body gated, so it holds the
/// recompute lease); B's call on the same expired entry runs B's body and gets its value, not
/// the stale one. Fails if B, finding A's recompute lease, served the stale value.
pub async fn without_cross_process_single_flight_a_held_recomputation_is_not_waited_for() {
    let server = RedisServer::start();
    let solo =
        || config(&server, "solorc", Duration::from_secs(30)).cross_process_single_flight(false);
    let (a, b) = pair(solo).await;
    let opts = stale(Duration::from_millis(300));
    stored_then_expired(&a, "sr", opts).await;
    let gated = Gated::default();
    let body = gated.body(2);
    let recompute = {
        let a = a.clone();
        tokio::spawn(async move {
            let body = async move { Ok::<u64, String>(body.await) };
            a.get_or_try_insert_with_options("sr", &1u64, opts, body)
                .await
        })
    };
    gated.wait_started().await;
    let runs = Arc::new(AtomicUsize::new(0));
    let body = counted(&runs, 3);
    let got =
        b.get_or_try_insert_with_options("sr", &1u64, opts, async move {
            Ok::<u64, String>(body.await)
        })
        .await;
    gated.release();
    assert_eq!(recompute.await.unwrap(), Ok(2));
    assert_eq!(
        got,
        Ok(3),
        "B served the stale value instead of recomputing"
    );
    assert_eq!(runs.load(SeqCst), 1);
}

/// The only recompute lease key (`...\0refresh`) now.
async fn recompute_key(conn: &mut redis::aio::MultiplexedConnection) -> Vec<u8> {
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query_async(conn).await.unwrap();
    let mut found: Vec<_> = keys
        .into_iter()
        .filter(|k| k.ends_with(b"\0refresh"))
        .collect();
    assert_eq!(found.len(), 1, "one recompute lease");
    found.pop().unwrap()
}
