//! The tiered cache against its floors, in one run on a throwaway loopback `redis-server`:
//!
//! - **propagation**: two `Cache` instances (`a`, `b`), each with an L1, share the Redis; `b`
//!   holds a key in its L1; `a.delete(...)` invalidates it. Measured: how long after the call
//!   returned `b` still answered from its L1 (`b` polls in a loop on another worker thread),
//!   and the whole delay from the call's start to `b` dropping the entry. p50, p99, max over
//!   2,000 invalidations. Target: p99 < 5 ms.
//! - **L1 hit**: a hit of a `#[cached]` function on a tiered global cache (key built from the
//!   argument, bus-health and generation checks, typed value cloned out, no decoding) against
//!   `moka::future::Cache::get` of the same ~200-byte value under a prebuilt key. Target:
//!   at most 2x. Also the manual `Cache::get` (which serializes its key argument each call).
//!
//! `cargo bench -p cache-tests --bench tiered` (prints a table; no criterion: the
//! propagation needs a custom loop and the hit ratio is best taken from interleaved rounds).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Config, L1, cached};
use cache_tests::RedisServer;

use cache_tests::fixtures::{Item, make_item};

#[cached(namespace = "bench_tiered")]
async fn cached_item(id: u64) -> Item {
    make_item(id)
}

fn tiered(server: &RedisServer) -> Config {
    Config::redis(server.url()).with_l1(L1::new(10_000, Duration::from_secs(60)))
}

async fn wait_healthy(caches: &[&Cache]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !caches.iter().all(|c| c.bus_healthy()) {
        assert!(Instant::now() < deadline, "bus did not come up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn fmt(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

async fn propagation(server: &RedisServer) {
    const N: usize = 2_000;
    let a = Cache::new(tiered(server)).await.unwrap();
    let b = Cache::new(tiered(server)).await.unwrap();
    wait_healthy(&[&a, &b]).await;
    let mut after_return = Vec::with_capacity(N);
    let mut end_to_end = Vec::with_capacity(N);
    let mut unhealthy = 0;
    for i in 0..N as u64 {
        a.set("prop", &i, &make_item(i), None).await.unwrap();
        // Into b's L1 (its L2 read fills it), checked by a hit.
        assert!(b.get::<Item>("prop", &i).await.is_some());
        if !b.bus_healthy() {
            unhealthy += 1;
            wait_healthy(&[&a, &b]).await;
            continue;
        }
        // b polls from its own thread, from before the call until it misses, sleeping 20 us
        // between polls: a spinning poller would take a whole core of this 2-core machine
        // from Redis and the bus, and measure the OS scheduler's time slices instead.
        let gone = Arc::new(AtomicBool::new(false));
        let poller = {
            let (b, gone) = (b.clone(), gone.clone());
            let runtime = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                while runtime.block_on(b.get::<Item>("prop", &i)).is_some() {
                    std::thread::sleep(Duration::from_micros(20));
                }
                gone.store(true, SeqCst);
                Instant::now()
            })
        };
        let start = Instant::now();
        a.delete::<Item>("prop", &i).await.unwrap();
        let returned = Instant::now();
        let dropped = poller.await.unwrap();
        end_to_end.push(dropped - start);
        after_return.push(dropped.saturating_duration_since(returned));
    }
    after_return.sort();
    end_to_end.sort();
    println!(
        "\n## propagation of an invalidation, {} samples",
        after_return.len()
    );
    println!("| measure | p50 | p99 | max |");
    println!("|---|---|---|---|");
    for (name, v) in [
        ("old value served after the call returned", &after_return),
        ("call start to the other instance's L1 drop", &end_to_end),
    ] {
        println!(
            "| {name} | {} | {} | {} |",
            fmt(percentile(v, 0.5)),
            fmt(percentile(v, 0.99)),
            fmt(*v.last().unwrap())
        );
    }
    if unhealthy > 0 {
        println!("({unhealthy} rounds skipped: the bus was unhealthy)");
    }
}

/// ns per call of `f`, median of interleaved rounds.
async fn per_call<F: AsyncFnMut()>(rounds: &mut [Vec<f64>], which: usize, iters: u32, f: &mut F) {
    let start = Instant::now();
    for _ in 0..iters {
        f().await;
    }
    rounds[which].push(start.elapsed().as_nanos() as f64 / f64::from(iters));
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn l1_hit(server: &RedisServer) {
    cache_runtime::init(tiered(server)).await.unwrap();
    let global = cache_runtime::cache().unwrap();
    wait_healthy(&[global]).await;
    std::hint::black_box(cached_item(7).await); // miss: stored in Redis and the L1
    global
        .set("bench_manual", &7u64, &make_item(7), None)
        .await
        .unwrap();
    assert!(global.get::<Item>("bench_manual", &7u64).await.is_some());

    let moka: moka::future::Cache<String, Arc<Item>> = moka::future::Cache::new(10_000);
    let key = "cache:bench_tiered:cached_item:v0:Item:7".to_string();
    moka.insert(key.clone(), Arc::new(make_item(7))).await;

    let before = global.stats().total;
    let iters = 20_000;
    let mut rounds = vec![Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..30 {
        per_call(&mut rounds, 0, iters, &mut async || {
            std::hint::black_box(cached_item(std::hint::black_box(7)).await);
        })
        .await;
        per_call(&mut rounds, 1, iters, &mut async || {
            let v = moka.get(std::hint::black_box(&key)).await.unwrap();
            std::hint::black_box(Item::clone(&v));
        })
        .await;
        per_call(&mut rounds, 2, iters, &mut async || {
            std::hint::black_box(global.get::<Item>("bench_manual", &7u64).await);
        })
        .await;
    }
    let after = global.stats().total;
    let [macro_ns, moka_ns, manual_ns] = [0, 1, 2].map(|i| median(&mut rounds[i]));
    println!("\n## L1 hit path (~200-byte value), median of 30 interleaved rounds");
    println!("| path | ns/call | vs raw moka get |");
    println!("|---|---|---|");
    println!("| raw `moka::future::Cache::get` + clone (floor) | {moka_ns:.0} | 1.00x |");
    println!(
        "| `#[cached]` fn, tiered L1 hit | {macro_ns:.0} | {:.2}x |",
        macro_ns / moka_ns
    );
    println!(
        "| `Cache::get` (manual API), tiered L1 hit | {manual_ns:.0} | {:.2}x |",
        manual_ns / moka_ns
    );
    let misses = after.misses - before.misses;
    println!(
        "(misses during the hit rounds: {misses}; the bus stayed healthy: {})",
        global.bus_healthy()
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = RedisServer::start();
    runtime.block_on(async {
        propagation(&server).await;
        l1_hit(&server).await;
    });
}
