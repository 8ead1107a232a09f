//! Fill leases at their edges. A miss whose lease request reaches Redis after another instance
//! stored the value: the lease script answers with that value, which is served (the miss's
//! body does not run); the moment is made with a loopback proxy that holds the miss's script
//! request until released. A holder whose body outlasts its term keeps its lease renewed (while
//! no one waits for it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use cache_runtime::{Cache, Config};
use cache_tests::{RedisServer, wait_until, within};
use redis::AsyncCommands;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Forwards to a server; once armed, holds the first client request that runs a script
/// (`EVALSHA`/`EVAL`) until `release` is notified.
struct ScriptGate {
    port: u16,
    armed: Arc<AtomicBool>,
    holding: Arc<AtomicBool>,
    release: Arc<Notify>,
}

impl ScriptGate {
    async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gate = ScriptGate {
            port: listener.local_addr().unwrap().port(),
            armed: Arc::default(),
            holding: Arc::default(),
            release: Arc::new(Notify::new()),
        };
        let shared = (
            gate.armed.clone(),
            gate.holding.clone(),
            gate.release.clone(),
        );
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let (mut from_client, to_client) = client.into_split();
                let (mut from_server, mut to_server) = upstream.into_split();
                tokio::spawn(async move {
                    let mut to_client = to_client;
                    let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                });
                let (armed, holding, release) = shared.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match from_client.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let script = buf[..n].windows(4).any(|w| w.eq_ignore_ascii_case(b"EVAL"));
                        if script && armed.swap(false, SeqCst) {
                            holding.store(true, SeqCst);
                            release.notified().await;
                        }
                        if to_server.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        gate
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_stored_between_a_miss_and_its_lease_is_served() {
    within(Duration::from_secs(30), async {
        let server = RedisServer::start();
        let gate = ScriptGate::start(server.port()).await;
        let heartbeat = Duration::from_millis(100);
        // A's write waits (at most its validity term, 2 heartbeats + its timeout) for B's
        // acknowledgement, which B's held connection cannot send; B's request outlasts that.
        let a = Config::redis(server.url()).bus_heartbeat(heartbeat);
        let a = Cache::new(a.timeout(Duration::from_millis(200)))
            .await
            .unwrap();
        let b = Config::redis(format!("redis://127.0.0.1:{}", gate.port)).bus_heartbeat(heartbeat);
        let b = Cache::new(b.timeout(Duration::from_secs(5))).await.unwrap();
        // The namespace's generations exist and B is connected: B's miss goes straight from its
        // lookup to its lease request.
        a.set("race", &0, &"warm".to_owned(), None).await.unwrap();
        assert_eq!(b.get::<String>("race", &0).await.as_deref(), Some("warm"));
        gate.armed.store(true, SeqCst);
        let runs = Arc::new(AtomicU64::new(0));
        let call = {
            let (b, runs) = (b.clone(), runs.clone());
            tokio::spawn(async move {
                let body = async move {
                    runs.fetch_add(1, SeqCst);
                    "b's".to_owned()
                };
                b.get_or_insert_with("race", &1, None, body).await
            })
        };
        wait_until(
            "b's lease request held",
            Duration::from_secs(5),
            async || gate.holding.load(SeqCst),
        )
        .await;
        a.set("race", &1, &"a's".to_owned(), None).await.unwrap();
        gate.release.notify_one();
        assert_eq!(call.await.unwrap(), "a's");
        assert_eq!(runs.load(SeqCst), 0, "b's body did not run");
    })
    .await;
}

/// A holder whose body outlasts its lease term keeps renewing the lease while no one waits for
/// it: the lease is still there three terms after it was taken, and the holder's value is
/// stored. (A waiter that has waited a whole term takes a running fill over instead: see
/// `resilience_redis.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_lease_outlives_its_term_and_the_holder_stores() {
    within(Duration::from_secs(30), async {
        let server = RedisServer::start();
        let term = Duration::from_millis(300);
        let a = Cache::new(Config::redis(server.url()).fill_lease(term))
            .await
            .unwrap();
        let release = Arc::new(Notify::new());
        let started = Arc::new(Notify::new());
        let holder = {
            let (a, release, started) = (a.clone(), release.clone(), started.clone());
            tokio::spawn(async move {
                let body = async move {
                    started.notify_one();
                    release.notified().await;
                    "a's".to_owned()
                };
                a.get_or_insert_with("renew", &1, None, body).await
            })
        };
        started.notified().await;
        let taken = std::time::Instant::now();
        let key = a.key_for::<String>("renew", &1).unwrap();
        let mut conn = server
            .client()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        wait_until("three terms pass", Duration::from_secs(5), async || {
            taken.elapsed() >= term * 3
        })
        .await;
        let pttl: i64 = conn.pttl(&key).await.unwrap();
        assert!(
            pttl > 0,
            "the lease lapsed while its body ran (PTTL {pttl})"
        );
        release.notify_one();
        assert_eq!(holder.await.unwrap(), "a's");
        assert_eq!(
            a.get::<String>("renew", &1).await.as_deref(),
            Some("a's"),
            "the holder's value is stored"
        );
    })
    .await;
}
