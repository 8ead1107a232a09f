//! The bus tasks of a tiered cache: the subscriber (applies and acknowledges other processes'
//! invalidations, times its own heartbeats), the heartbeat sender, and the watchdog that
//! flushes the L1 when its validity lease has lapsed.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;

use super::{Host, Message, channel, drop_local, term};
use crate::fill_notice::{self, Notice};
use crate::stats::Counters;
use crate::warn::warn_limited;

/// Publishes one heartbeat, remembering when it was sent.
async fn send_heartbeat(host: &dyn Host) {
    let Some(remote) = host.remote() else { return };
    let seq = host.bus().heartbeat_seq.fetch_add(1, SeqCst);
    host.bus().validity.sending(seq);
    let message = Message::Heartbeat {
        source: host.bus().source,
        seq,
    };
    let _ = remote
        .publish(&channel(host.config()), &message.encode())
        .await;
}

pub(super) async fn heartbeat<H: Host>(weak: Weak<H>) {
    loop {
        let interval = {
            let Some(host) = weak.upgrade() else { return };
            send_heartbeat(&*host).await;
            host.config().bus_heartbeat
        };
        tokio::time::sleep(interval).await;
    }
}

/// Notices a lapsed validity lease (for the log, the counter and to free the L1's memory);
/// reads do not depend on it: each checks the lease itself.
pub(super) async fn watchdog<H: Host>(weak: Weak<H>) {
    loop {
        let period = {
            let Some(host) = weak.upgrade() else { return };
            if !host.bus().healthy() && host.bus().healthy.swap(false, SeqCst) {
                host.local().distrust();
                Counters::bump(&host.counters().errors);
                tracing::warn!(
                    "invalidation bus silent or down; L1 flushed and bypassed until it is back"
                );
            }
            (host.config().bus_heartbeat / 5).max(Duration::from_millis(1))
        };
        tokio::time::sleep(period).await;
    }
}

/// Subscribes to the bus channel `chan` and to the fill notices' `fill_chan`.
async fn connect(
    clients: &[redis::Client],
    (chan, fill_chan): (&str, &str),
    timeout: Duration,
) -> Option<redis::aio::PubSub> {
    for client in clients {
        let attempt = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(chan).await?;
            pubsub.subscribe(fill_chan).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        if let Ok(Ok(pubsub)) = tokio::time::timeout(timeout, attempt).await {
            return Some(pubsub);
        }
    }
    None
}

pub(super) async fn subscriber<H: Host>(weak: Weak<H>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let (clients, chan, fill_chan, connect_timeout, silence) = {
            let Some(host) = weak.upgrade() else { return };
            let Some(remote) = host.remote() else { return };
            (
                remote.pubsub_clients.clone(),
                channel(host.config()),
                fill_notice::channel(&host.config().prefix),
                host.config().connect_timeout,
                term(host.config()),
            )
        };
        let channels = (chan.as_str(), fill_chan.as_str());
        let Some(pubsub) = connect(&clients, channels, connect_timeout).await else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
            continue;
        };
        backoff = Duration::from_millis(50);
        {
            let Some(host) = weak.upgrade() else { return };
            host.bus().subscribed.store(true, SeqCst);
            send_heartbeat(&*host).await;
        }
        let mut stream = pubsub.into_on_message();
        // Our own heartbeats arrive every `bus_heartbeat`: a subscription silent for a whole
        // term is dead or stuck (a vanished peer without a reset), so it is rebuilt.
        while let Ok(Some(msg)) = tokio::time::timeout(silence, stream.next()).await {
            let Some(host) = weak.upgrade() else { return };
            if msg.get_channel_name() == fill_chan {
                if let Some(notice) = Notice::decode(msg.get_payload_bytes()) {
                    host.notices().heard(notice);
                }
                continue;
            }
            handle(&host, msg.get_payload_bytes()).await;
        }
        let Some(host) = weak.upgrade() else { return };
        host.bus().subscribed.store(false, SeqCst);
        host.bus().validity.revoke();
        host.bus().healthy.store(false, SeqCst);
        // Messages are being missed from now on: flush at once.
        host.local().distrust();
        Counters::bump(&host.counters().errors);
        warn_limited!("invalidation bus subscription dropped or silent; L1 flushed; resubscribing");
    }
}

async fn handle<H: Host>(host: &Arc<H>, payload: &[u8]) {
    let bus = &host.bus();
    let message = match Message::decode(payload) {
        Ok(message) => message,
        Err(_) => {
            warn_limited!("bus message of an unknown format (another version?); flushing the L1");
            host.local().distrust();
            return;
        }
    };
    let own = message.source() == bus.source;
    if !own {
        bus.acks.heard(message.source());
    }
    match message {
        Message::Heartbeat { seq, .. } if own => {
            let Some((until, lapsed)) = bus.validity.echoed(seq, term(host.config())) else {
                return;
            };
            if lapsed || !bus.healthy.load(SeqCst) {
                // Flush first: anything read while the lease was lapsed may have missed a
                // message.
                host.local().distrust();
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
                bus.acks.echoed(seq, term(host.config()));
            }
        }
        Message::Invalidate { source, seq, op } => {
            drop_local(host.local(), &op).await;
            if seq != 0 {
                acknowledge(host, source, seq);
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
fn acknowledge<H: Host>(host: &Arc<H>, origin: u64, seq: u64) {
    let host = host.clone();
    crate::background::spawn(async move {
        let Some(remote) = host.remote() else { return };
        let ack = Message::Ack {
            source: host.bus().source,
            origin,
            seq,
        };
        let _ = remote.publish(&channel(host.config()), &ack.encode()).await;
    });
}
