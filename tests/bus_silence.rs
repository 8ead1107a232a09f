//! A bus subscription that falls silent without being closed (a vanished peer, a black-holed
//! route) is rebuilt: the tiered cache turns its L1 off within the silence bound and back on
//! once a new subscription echoes its heartbeats. A frozen server (SIGSTOP) is recovered from
//! within a stated bound after SIGCONT.
//!
//! The silent subscription is made with a loopback proxy owned by the test: it forwards
//! everything, until told to swallow (in both directions, keeping both sockets open) the
//! traffic of the subscriber connections open at that moment.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Config, L1};
use cache_tests::{RedisServer, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const HEARTBEAT: Duration = Duration::from_millis(100);
const TIMEOUT: Duration = Duration::from_millis(100);

/// See the module docs.
struct Proxy {
    port: u16,
    next_id: Arc<AtomicU64>,
    /// Subscriber connections with a lower id are black-holed.
    cut_below: Arc<AtomicU64>,
}

impl Proxy {
    async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            port: listener.local_addr().unwrap().port(),
            next_id: Arc::new(AtomicU64::new(0)),
            cut_below: Arc::new(AtomicU64::new(0)),
        };
        let (next_id, cut) = (proxy.next_id.clone(), proxy.cut_below.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let id = next_id.fetch_add(1, SeqCst);
                let subscriber = Arc::new(AtomicBool::new(false));
                let (cr, cw) = client.into_split();
                let (ur, uw) = upstream.into_split();
                let link = (id, subscriber, cut.clone());
                tokio::spawn(pump(cr, uw, link.clone(), true));
                tokio::spawn(pump(ur, cw, link, false));
            }
        });
        proxy
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// From now on, the subscriber connections open now neither send nor receive anything.
    fn black_hole_subscribers(&self) {
        self.cut_below.store(self.next_id.load(SeqCst), SeqCst);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    (id, subscriber, cut): (u64, Arc<AtomicBool>, Arc<AtomicU64>),
    from_client: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if from_client
            && buf[..n]
                .windows(9)
                .any(|w| w.eq_ignore_ascii_case(b"SUBSCRIBE"))
        {
            subscriber.store(true, SeqCst);
        }
        if subscriber.load(SeqCst) && id < cut.load(SeqCst) {
            continue; // swallowed: the connection stays open and silent
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

fn config(url: String) -> Config {
    Config::redis(url)
        .prefix("silence")
        .timeout(TIMEOUT)
        .connect_timeout(Duration::from_millis(500))
        .bus_heartbeat(HEARTBEAT)
        .with_l1(L1::new(1000, Duration::from_secs(60)))
}

async fn bus_up(cache: &Cache, within: Duration, what: &str) -> Duration {
    let start = Instant::now();
    wait_until(what, within, async || cache.bus_healthy()).await;
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_subscription_is_rebuilt() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let server = RedisServer::start();
        let proxy = Proxy::start(server.port()).await;
        let cache = Cache::new(config(proxy.url())).await.unwrap();
        bus_up(&cache, Duration::from_secs(10), "bus up").await;

        proxy.black_hole_subscribers();
        let bound = cache.staleness_bound();
        wait_until("the L1 is turned off", bound * 3, async || {
            !cache.bus_healthy()
        })
        .await;
        // Rebuilt: the silence window (already past), a new connection and one heartbeat.
        let took = bus_up(&cache, bound * 2 + Duration::from_secs(2), "bus back").await;
        eprintln!("bus back {took:?} after the L1 was turned off");
    })
    .await
    .expect("within 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_is_recovered_from_after_sigcont() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let server = RedisServer::start();
        let cache = Cache::new(config(server.url())).await.unwrap();
        bus_up(&cache, Duration::from_secs(10), "bus up").await;
        server.pause();
        let bound = cache.staleness_bound();
        wait_until("the L1 is turned off", bound * 3, async || {
            !cache.bus_healthy()
        })
        .await;
        // Long enough for the subscriber to give up on its subscription and retry.
        let frozen = Instant::now();
        wait_until("frozen for a while", bound * 4, async || {
            frozen.elapsed() > bound * 2
        })
        .await;
        server.resume();
        // A subscription attempt under way may wait for its connect timeout (500 ms), then
        // one backoff (at most 1 s), then one heartbeat round trip.
        let took = bus_up(&cache, Duration::from_secs(3), "bus back after SIGCONT").await;
        eprintln!("bus back {took:?} after SIGCONT");
    })
    .await
    .expect("within 60 s");
}

/// Connections the server has accepted so far (`INFO stats`).
fn connections_received(server: &RedisServer) -> u64 {
    let info = cache_tests::raw_command(server.port(), "INFO stats").expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("total_connections_received:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("total_connections_received")
}

/// A quiet, healthy bus stays trusted on the same subscription: over ten validity terms without
/// any traffic the L1 is in use at (nearly) every moment, and no connection is rebuilt, because
/// heartbeats keep extending the lease. Without them the subscription looks silent after each
/// term and is rebuilt (a new connection per term).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_bus_keeps_its_l1_trusted_on_one_subscription() {
    let server = RedisServer::start();
    let config = Config::redis(server.url())
        .prefix("quiet")
        .with_l1(L1::new(100, Duration::from_secs(60)));
    let cache = Cache::new(config).await.unwrap();
    cache_tests::within(Duration::from_secs(60), async {
        wait_until("bus up", Duration::from_secs(10), async || {
            cache.bus_healthy()
        })
        .await;
        let connected = connections_received(&server);
        let span = cache.staleness_bound() * 10;
        let start = Instant::now();
        let (mut samples, mut healthy) = (0u32, 0u32);
        while start.elapsed() < span {
            samples += 1;
            healthy += u32::from(cache.bus_healthy());
            // The sampling interval, not a synchronisation.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // A loaded machine may delay an echo now and then: 90%.
        assert!(
            healthy * 10 >= samples * 9,
            "the L1 was trusted in {healthy} of {samples} samples over {span:?}"
        );
        // Our own INFO connections count too (one per call): at most one more besides them.
        let new = connections_received(&server) - connected - 1;
        assert!(new <= 1, "{new} connections rebuilt over {span:?}");
    })
    .await;
}
