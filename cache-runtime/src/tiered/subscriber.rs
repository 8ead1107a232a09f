//! The bus tasks of a tiered cache: the subscriber (applies and acknowledges other processes'
//! invalidations, times its own heartbeats), the heartbeat sender, and the watchdog that
//! flushes the L1 when its validity lease has lapsed.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;

use super::{Message, channel, distrust, drop_local, term};
use crate::cache::Inner;
use crate::stats::Counters;
use crate::warn::warn_limited;

/// Publishes one heartbeat, remembering when it was sent.
async fn send_heartbeat(inner: &Inner) {
    let Some(remote) = &inner.remote else { return };
    let seq = inner.bus.heartbeat_seq.fetch_add(1, SeqCst);
    inner.bus.validity.sending(seq);
    let message = Message::Heartbeat {
        source: inner.bus.source,
        seq,
    };
    let _ = remote.publish(&channel(inner), &message.encode()).await;
}

pub(super) async fn heartbeat(weak: Weak<Inner>) {
    loop {
        let interval = {
            let Some(inner) = weak.upgrade() else { return };
            send_heartbeat(&inner).await;
            inner.config.bus_heartbeat
        };
        tokio::time::sleep(interval).await;
    }
}

/// Notices a lapsed validity lease (for the log, the counter and to free the L1's memory);
/// reads do not depend on it: each checks the lease itself.
pub(super) async fn watchdog(weak: Weak<Inner>) {
    loop {
        let period = {
            let Some(inner) = weak.upgrade() else { return };
            if !inner.bus.healthy() && inner.bus.healthy.swap(false, SeqCst) {
                distrust(&inner);
                Counters::bump(&inner.counters.errors);
                tracing::warn!(
                    "invalidation bus silent or down; L1 flushed and bypassed until it is back"
                );
            }
            (inner.config.bus_heartbeat / 5).max(Duration::from_millis(1))
        };
        tokio::time::sleep(period).await;
    }
}

async fn connect(
    clients: &[redis::Client],
    chan: &str,
    timeout: Duration,
) -> Option<redis::aio::PubSub> {
    for client in clients {
        let attempt = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(chan).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        if let Ok(Ok(pubsub)) = tokio::time::timeout(timeout, attempt).await {
            return Some(pubsub);
        }
    }
    None
}

pub(super) async fn subscriber(weak: Weak<Inner>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let (clients, chan, connect_timeout, silence) = {
            let Some(inner) = weak.upgrade() else { return };
            let Some(remote) = &inner.remote else { return };
            (
                remote.pubsub_clients.clone(),
                channel(&inner),
                inner.config.connect_timeout,
                term(&inner.config),
            )
        };
        let Some(pubsub) = connect(&clients, &chan, connect_timeout).await else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
            continue;
        };
        backoff = Duration::from_millis(50);
        {
            let Some(inner) = weak.upgrade() else { return };
            inner.bus.subscribed.store(true, SeqCst);
            send_heartbeat(&inner).await;
        }
        let mut stream = pubsub.into_on_message();
        // Our own heartbeats arrive every `bus_heartbeat`: a subscription silent for a whole
        // term is dead or stuck (a vanished peer without a reset), so it is rebuilt.
        while let Ok(Some(msg)) = tokio::time::timeout(silence, stream.next()).await {
            let Some(inner) = weak.upgrade() else { return };
            handle(&inner, msg.get_payload_bytes()).await;
        }
        let Some(inner) = weak.upgrade() else { return };
        inner.bus.subscribed.store(false, SeqCst);
        inner.bus.validity.revoke();
        inner.bus.healthy.store(false, SeqCst);
        // Messages are being missed from now on: flush at once.
        distrust(&inner);
        Counters::bump(&inner.counters.errors);
        warn_limited!("invalidation bus subscription dropped or silent; L1 flushed; resubscribing");
    }
}

async fn handle(inner: &Arc<Inner>, payload: &[u8]) {
    let bus = &inner.bus;
    let message = match Message::decode(payload) {
        Ok(message) => message,
        Err(_) => {
            warn_limited!("bus message of an unknown format (another version?); flushing the L1");
            distrust(inner);
            return;
        }
    };
    let own = message.source() == bus.source;
    if !own {
        bus.acks.heard(message.source());
    }
    match message {
        Message::Heartbeat { seq, .. } if own => {
            let Some((until, lapsed)) = bus.validity.echoed(seq, term(&inner.config)) else {
                return;
            };
            if lapsed || !bus.healthy.load(SeqCst) {
                // Flush first: anything read while the lease was lapsed may have missed a
                // message.
                distrust(inner);
                if !bus.healthy.swap(true, SeqCst) {
                    tracing::info!("invalidation bus up; L1 in use");
                }
            }
            bus.validity.extend(until);
            if bus.pending.any() {
                bus.pending.wake.notify_one();
            }
        }
        Message::Heartbeat { .. } => {}
        Message::Invalidate { seq, .. } if own => {
            if seq != 0 {
                bus.acks.echoed(seq, term(&inner.config));
            }
        }
        Message::Invalidate { source, seq, op } => {
            drop_local(inner, &op).await;
            if seq != 0 {
                acknowledge(inner, source, seq);
            }
        }
        Message::Ack {
            source,
            origin,
            seq,
        } => {
            if origin == bus.source {
                bus.acks.acked(source, seq);
            }
        }
    }
}

/// Tells `origin` that its invalidation `seq` was applied here (in a task of its own, so the
/// subscriber goes on with the next message at once).
fn acknowledge(inner: &Arc<Inner>, origin: u64, seq: u64) {
    let inner = inner.clone();
    crate::background::spawn(async move {
        let Some(remote) = &inner.remote else { return };
        let ack = Message::Ack {
            source: inner.bus.source,
            origin,
            seq,
        };
        let _ = remote.publish(&channel(&inner), &ack.encode()).await;
    });
}
