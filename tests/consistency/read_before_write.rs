//! A lookup that read Redis before a write of the same process must not fill the L1 after
//! that write did: the write retires the key's older tickets, so the late fill is never served.
//!
//! The lookup is held between its Redis read and its L1 fill by its own value: decoding a
//! [`Gated`] blocks its thread until the test opens the gate.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use cache_runtime::{Config, L1};
use cache_tests::{RedisServer, wait_until, within};

/// The receiver the next decoding blocks on (taken by the first one).
static GATE: Mutex<Option<mpsc::Receiver<()>>> = Mutex::new(None);
static HELD: AtomicBool = AtomicBool::new(false);

/// A string whose decoding waits at the gate while one is set.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
struct Gated(String);

impl<'de> serde::Deserialize<'de> for Gated {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let gate = GATE.lock().unwrap().take();
        if let Some(gate) = gate {
            HELD.store(true, SeqCst);
            // Deliberately blocking: the lookup stands still between its read and its fill.
            let _ = gate.recv();
        }
        String::deserialize(d).map(Gated)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lookup_that_read_before_a_write_does_not_refill_the_l1_after_it() {
    let server = RedisServer::start();
    let config = || {
        Config::redis(server.url())
            .prefix("rbw")
            .bus_heartbeat(Duration::from_millis(200))
            .with_l1(L1::new(100, Duration::from_secs(60)))
    };
    let (cache, other) = cache_tests::bus_up_pair(config).await;
    within(Duration::from_secs(60), async {
        // Stored by another process: this one's L1 does not hold it.
        let old = Gated("old".to_owned());
        other.set("item", &1, &old, None).await.unwrap();

        let (open, gate) = mpsc::channel::<()>();
        *GATE.lock().unwrap() = Some(gate);
        let lookup = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get::<Gated>("item", &1).await }
        });
        wait_until(
            "the lookup read Redis",
            Duration::from_secs(5),
            async || HELD.load(SeqCst),
        )
        .await;

        let new = Gated("new".to_owned());
        cache.set("item", &1, &new, None).await.unwrap();
        open.send(()).unwrap();
        assert_eq!(lookup.await.unwrap(), Some(old), "it read before the write");
        for read in 0..3 {
            assert_eq!(
                cache.get::<Gated>("item", &1).await,
                Some(new.clone()),
                "read {read} after the write returned"
            );
        }
    })
    .await;
}
