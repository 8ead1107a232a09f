//! The memory-backend hit path through `#[cached]` against its floor, in the same run:
//!
//! - `memory_hit/cached_macro`: a hit of a `#[cached]` function (key built from the argument,
//!   namespace generation check, typed value cloned out);
//! - `memory_hit/raw_moka_get`: `moka::future::Cache::get` of the same value under a prebuilt
//!   key (the floor; target: cached <= 2x this);
//! - `memory_hit/raw_moka_get_format_key`: the same with the key built by `format!` per call,
//!   which is what hand-written cache-aside code pays;
//! - `memory_cold_1000/*`: 1,000 concurrent callers of one key, cold (the body runs exactly
//!   once per batch: checked) against the same 1,000 callers on a warm key.
//!
//! `cargo bench -p cache-tests --bench memory_hit`; the ratios are printed at the end.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cache_runtime::{Config, cached};
use criterion::{Criterion, Throughput};

use cache_tests::fixtures::{Item, make_item};

#[cached(namespace = "bench_memory")]
async fn cached_item(id: u64) -> Item {
    make_item(id)
}

static STAMPEDE_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(namespace = "bench_stampede")]
async fn stampede_item(id: u64) -> Item {
    STAMPEDE_RUNS.fetch_add(1, SeqCst);
    tokio::task::yield_now().await; // let the other callers pile up behind this one
    make_item(id)
}

const CALLERS: usize = 1000;

/// `CALLERS` tasks calling `stampede_item(id)` at once; returns the wall time of the batch.
async fn batch(id: u64) -> Duration {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CALLERS {
        tasks.spawn(stampede_item(id));
    }
    while let Some(done) = tasks.join_next().await {
        assert_eq!(done.expect("caller").id, id);
    }
    start.elapsed()
}

fn estimate_ns(group: &str, name: &str) -> Option<f64> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/criterion")
        .join(group)
        .join(name)
        .join("new/estimates.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

fn main() {
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let raw: moka::future::Cache<String, Item> =
        moka::future::Cache::builder().max_capacity(10_000).build();
    let raw_key = "cache:bench_memory:cached_item:v0:00000000:[1]".to_owned();
    single.block_on(async {
        cache_runtime::init(Config::memory()).await.expect("init");
        raw.insert(raw_key.clone(), make_item(1)).await;
        // Fill the cache and check both paths return the same value.
        assert_eq!(cached_item(1).await, make_item(1));
        assert_eq!(Some(cached_item(1).await), raw.get(&raw_key).await);
    });
    let before = cache_runtime::stats().namespace("bench_memory");

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args();

    {
        let mut g = c.benchmark_group("memory_hit");
        g.bench_function("raw_moka_get", |b| {
            b.to_async(&single).iter(|| raw.get(&raw_key))
        });
        g.bench_function("raw_moka_get_format_key", |b| {
            b.to_async(&single).iter(|| {
                let id = std::hint::black_box(1u64);
                let key = format!("cache:bench_memory:cached_item:v0:00000000:[{id}]");
                let raw = &raw;
                async move { raw.get(&key).await }
            })
        });
        g.bench_function("cached_macro", |b| {
            b.to_async(&single)
                .iter(|| cached_item(std::hint::black_box(1)))
        });
        g.finish();
    }

    let next_id = AtomicU64::new(1_000_000);
    let cold_batches = AtomicU64::new(0);
    {
        let mut g = c.benchmark_group("memory_cold_1000");
        g.sample_size(10);
        g.throughput(Throughput::Elements(CALLERS as u64));
        g.bench_function("cold_key", |b| {
            b.to_async(&multi).iter_custom(|iters| {
                let (next_id, cold_batches) = (&next_id, &cold_batches);
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += batch(next_id.fetch_add(1, SeqCst)).await;
                        cold_batches.fetch_add(1, SeqCst);
                    }
                    total
                }
            })
        });
        multi.block_on(stampede_item(1));
        g.bench_function("warm_key", |b| {
            b.to_async(&multi).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += batch(1).await;
                }
                total
            })
        });
        g.finish();
    }
    c.final_summary();

    let after = cache_runtime::stats().namespace("bench_memory");
    assert_eq!(after.misses, before.misses, "every benchmarked call hit");
    assert!(after.hits > before.hits);
    let batches = cold_batches.load(SeqCst);
    assert_eq!(
        STAMPEDE_RUNS.load(SeqCst),
        batches + 1,
        "the body ran once per cold batch of {CALLERS} callers (+1 to warm the warm key)"
    );

    // Interleaved rounds: on a shared machine, load changes between criterion's groups; the
    // median of per-round ratios taken back to back is steadier.
    let (raw_ns, cached_ns, ratio_median) = interleaved(&single, &raw, &raw_key);
    println!();
    println!(
        "interleaved ({ROUNDS} rounds of {ROUND_CALLS} calls): raw moka get {raw_ns:.0} ns, \
         cached {cached_ns:.0} ns, median per-round ratio {ratio_median:.2}x (target <= 2x)"
    );

    let ratio =
        |group: &str, a: &str, b: &str| Some(estimate_ns(group, a)? / estimate_ns(group, b)?);
    println!();
    if let Some(r) = ratio("memory_hit", "cached_macro", "raw_moka_get") {
        println!("hit: cached / raw moka get = {r:.2}x (target <= 2x)");
    }
    if let Some(r) = ratio("memory_hit", "cached_macro", "raw_moka_get_format_key") {
        println!("hit: cached / raw moka get with a format! key = {r:.2}x");
    }
    if let Some(r) = ratio("memory_cold_1000", "cold_key", "warm_key") {
        println!(
            "{CALLERS} callers: cold key / warm key = {r:.2}x; body runs per cold batch: 1 ({batches} batches)"
        );
    }
}

const ROUNDS: usize = 30;
const ROUND_CALLS: u32 = 20_000;

/// Medians of raw ns/call, cached ns/call and of the per-round ratio cached / raw.
fn interleaved(
    rt: &tokio::runtime::Runtime,
    raw: &moka::future::Cache<String, Item>,
    raw_key: &String,
) -> (f64, f64, f64) {
    let per_call = |d: Duration| d.as_nanos() as f64 / f64::from(ROUND_CALLS);
    let (mut raws, mut cacheds, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let (r, c) = rt.block_on(async {
            let start = Instant::now();
            for _ in 0..ROUND_CALLS {
                std::hint::black_box(raw.get(raw_key).await);
            }
            let r = per_call(start.elapsed());
            let start = Instant::now();
            for _ in 0..ROUND_CALLS {
                std::hint::black_box(cached_item(std::hint::black_box(1)).await);
            }
            (r, per_call(start.elapsed()))
        });
        raws.push(r);
        cacheds.push(c);
        ratios.push(c / r);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(&mut raws), median(&mut cacheds), median(&mut ratios))
}
