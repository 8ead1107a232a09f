//! The Redis hit path through `#[cached]` against its floor: a raw redis-rs `GET` on a
//! `ConnectionManager` plus a bincode-2 decode of the same ~200-byte value, in the same run, on
//! the same throwaway `redis-server`.
//!
//! - latency at concurrency 1 (target: cached <= 1.15x raw);
//! - throughput at concurrency 64 (target: cached >= 0.9x raw).
//!
//! `cargo bench -p cache-tests --bench redis_hit`; the ratios are printed at the end.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use cache_runtime::{Config, cached};
use cache_tests::RedisServer;
use criterion::{Criterion, Throughput};
use redis::aio::ConnectionManager;

use cache_tests::fixtures::{Item, make_item};

#[cached(namespace = "bench")]
async fn cached_item(id: u64) -> Item {
    make_item(id)
}

const RAW_KEY: &str = "bench:raw:item:1";
const CONCURRENCY: usize = 64;

async fn raw_item(conn: &mut ConnectionManager) -> Item {
    let bytes: Vec<u8> = redis::cmd("GET")
        .arg(RAW_KEY)
        .query_async(conn)
        .await
        .expect("raw GET");
    let (item, _) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).expect("raw decode");
    item
}

/// Calls per alternation between the two paths.
const CHUNK: u64 = 32;

/// Which path a benchmark reports; both always run, interleaved.
#[derive(Clone, Copy, PartialEq)]
enum Report {
    Cached,
    Raw,
}

/// Paired totals of one group: every chunk adds the time of `n` cached and `n` raw calls made
/// back to back, so the ratio compares the two paths under the same machine conditions (this
/// box is shared; load that comes and goes between two criterion benchmarks would skew it).
struct Tally {
    cached_ns: AtomicU64,
    raw_ns: AtomicU64,
}

impl Tally {
    const fn new() -> Self {
        Self {
            cached_ns: AtomicU64::new(0),
            raw_ns: AtomicU64::new(0),
        }
    }

    /// cached time / raw time over all paired chunks.
    fn ratio(&self) -> f64 {
        self.cached_ns.load(Relaxed) as f64 / self.raw_ns.load(Relaxed).max(1) as f64
    }
}

static LATENCY: Tally = Tally::new();
static THROUGHPUT: Tally = Tally::new();

/// Runs `iters` units of each path in alternating chunks of [`CHUNK`] (which goes first
/// alternates too), tallies both, and returns the time of the reported path. A unit is one
/// call (concurrency 1) or one round of [`CONCURRENCY`] concurrent calls.
async fn paired<C, CF, R, RF>(
    iters: u64,
    cached: C,
    raw: R,
    concurrent: bool,
    report: Report,
) -> Duration
where
    C: Fn() -> CF + Clone + Send + 'static,
    CF: Future<Output = ()> + Send,
    R: Fn() -> RF + Clone + Send + 'static,
    RF: Future<Output = ()> + Send,
{
    let tally = if concurrent { &THROUGHPUT } else { &LATENCY };
    let (mut spent_cached, mut spent_raw) = (Duration::ZERO, Duration::ZERO);
    let mut left = iters;
    let mut cached_first = true;
    while left > 0 {
        let n = left.min(CHUNK);
        for turn in [cached_first, !cached_first] {
            if turn {
                spent_cached += units(n, &cached, concurrent).await;
            } else {
                spent_raw += units(n, &raw, concurrent).await;
            }
        }
        cached_first = !cached_first;
        left -= n;
    }
    tally
        .cached_ns
        .fetch_add(spent_cached.as_nanos() as u64, Relaxed);
    tally.raw_ns.fetch_add(spent_raw.as_nanos() as u64, Relaxed);
    match report {
        Report::Cached => spent_cached,
        Report::Raw => spent_raw,
    }
}

/// `n` sequential calls, or [`CONCURRENCY`] tasks making `n` calls each; the wall time.
async fn units<F, Fut>(n: u64, call: &F, concurrent: bool) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let start = Instant::now();
    if !concurrent {
        for _ in 0..n {
            call().await;
        }
        return start.elapsed();
    }
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let call = call.clone();
        tasks.spawn(async move {
            for _ in 0..n {
                call().await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("bench task");
    }
    start.elapsed()
}

fn main() {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let raw = rt.block_on(async {
        cache_runtime::init(Config::redis(server.url()).timeout(Duration::from_secs(1)))
            .await
            .expect("init");
        let mut conn = ConnectionManager::new(server.client())
            .await
            .expect("raw connection");
        let mut bytes = Vec::new();
        bincode::serde::encode_into_std_write(
            make_item(1),
            &mut bytes,
            bincode::config::standard(),
        )
        .expect("encode");
        eprintln!("value: {} bytes of bincode", bytes.len());
        redis::cmd("SET")
            .arg(RAW_KEY)
            .arg(&bytes)
            .query_async::<()>(&mut conn)
            .await
            .expect("raw SET");
        // Fill the cache and check both paths return the same value.
        assert_eq!(cached_item(1).await, make_item(1));
        assert_eq!(cached_item(1).await, raw_item(&mut conn).await);
        conn
    });
    let hits_before = cache_runtime::stats().total.hits;

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args();

    let raw_call = move || {
        let mut conn = raw.clone();
        async move {
            std::hint::black_box(raw_item(&mut conn).await);
        }
    };
    let cached_call = || async {
        std::hint::black_box(cached_item(1).await);
    };
    {
        let mut g = c.benchmark_group("redis_hit_latency");
        g.bench_function("raw_get_decode", |b| {
            b.to_async(&rt).iter_custom(|iters| {
                paired(iters, cached_call, raw_call.clone(), false, Report::Raw)
            })
        });
        g.bench_function("cached_macro", |b| {
            b.to_async(&rt).iter_custom(|iters| {
                paired(iters, cached_call, raw_call.clone(), false, Report::Cached)
            })
        });
        g.finish();
    }
    {
        let mut g = c.benchmark_group("redis_hit_throughput_c64");
        g.throughput(Throughput::Elements(CONCURRENCY as u64));
        g.bench_function("raw_get_decode", |b| {
            b.to_async(&rt).iter_custom(|iters| {
                paired(iters, cached_call, raw_call.clone(), true, Report::Raw)
            })
        });
        g.bench_function("cached_macro", |b| {
            b.to_async(&rt).iter_custom(|iters| {
                paired(iters, cached_call, raw_call.clone(), true, Report::Cached)
            })
        });
        g.finish();
    }
    c.final_summary();

    let stats = cache_runtime::stats().total;
    assert_eq!(
        stats.misses, 1,
        "every benchmarked call was a hit: {stats:?}"
    );
    assert!(stats.hits > hits_before && stats.errors == 0, "{stats:?}");

    println!();
    println!(
        "latency at concurrency 1: cached / raw = {:.3}x (target <= 1.15x)",
        LATENCY.ratio()
    );
    println!(
        "throughput at concurrency 64: cached / raw = {:.3}x (target >= 0.9x)",
        1.0 / THROUGHPUT.ratio()
    );
}
