//! HTTP load benchmark: a cache hit of `GET /items/1` (items_server's router, memory backend)
//! against an uncached handler returning the same bytes, on the same server in the same run,
//! and the 304 path (`If-None-Match` matching). Load comes from `wrk` when it is on the PATH
//! (`apt-get install -y wrk`), else from an in-process keep-alive client.
//!
//! `cargo bench -p cache-tests --bench http_load` (`HTTP_BENCH_SECS=5` per measurement and
//! `HTTP_BENCH_ROUNDS=6` by default; rounds alternate the order of the endpoints and the
//! median of the per-round ratios is reported).

use std::process::Command;
use std::time::{Duration, Instant};

use axum::http::header;
use axum::routing::get;

fn secs() -> u64 {
    std::env::var("HTTP_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
}

/// CPU time this process (the server, not wrk) has used, in seconds (`/proc/self/stat`).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name.
    (ticks(11) + ticks(12)) / 100.0
}

/// One measurement: requests per second, and the server's CPU microseconds per request.
#[derive(Clone, Copy, Default)]
struct Measure {
    rps: f64,
    cpu_us: f64,
}

/// Loads `GET url` with `headers`, by wrk (a separate process) or the in-process client.
fn load(rt: &tokio::runtime::Runtime, url: &str, headers: &[(&str, &str)]) -> Measure {
    let cpu = cpu_secs();
    let rps = match wrk(url, headers) {
        Some(rps) => rps,
        None => rt.block_on(in_process(url, headers)),
    };
    let used = cpu_secs() - cpu;
    Measure {
        rps,
        cpu_us: used * 1e6 / (rps * secs() as f64),
    }
}

fn wrk(url: &str, headers: &[(&str, &str)]) -> Option<f64> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t1", "-c16", &format!("-d{}s", secs()), "--latency"]);
    for (n, v) in headers {
        cmd.args(["-H", &format!("{n}: {v}")]);
    }
    let out = cmd.arg(url).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") && !headers.iter().any(|(n, _)| *n == "If-None-Match") {
        panic!("errors under load:\n{text}");
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

async fn in_process(url: &str, headers: &[(&str, &str)]) -> f64 {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(secs());
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let client = client.clone();
        let url = url.to_owned();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let mut req = client.get(&url);
                for (k, v) in &headers {
                    req = req.header(k, v);
                }
                let r = req.send().await.unwrap();
                let _ = r.bytes().await.unwrap();
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / secs() as f64
}

fn main() {
    // Server: one worker thread, so the load client (wrk) has the other core.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (base, bytes, etag) = rt.block_on(async {
        cache_runtime::init(cache_runtime::Config::memory())
            .await
            .unwrap();
        let db = cache_examples::items::Db::open(None).unwrap();
        let first = {
            // Fetch the cached response's bytes once, through a temporary server.
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let app = cache_examples::items::router(db.clone());
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            reqwest::get(format!("http://{addr}/items/1"))
                .await
                .unwrap()
        };
        let etag = first.headers()["etag"].to_str().unwrap().to_owned();
        let bytes = first.bytes().await.unwrap();
        let same = bytes.clone();
        let app = cache_examples::items::router(db).route(
            "/uncached/items/1",
            get(move || {
                let body = same.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), bytes, etag)
    });
    println!(
        "body {} bytes, etag {etag}; load: {}",
        bytes.len(),
        if wrk(&format!("{base}/stats"), &[]).is_some() {
            "wrk -t1 -c16"
        } else {
            "in-process reqwest, 32 connections"
        }
    );
    // Rounds alternate the order (ABC, CBA, ...) so drift from other load on the machine
    // hits every endpoint alike; the median of the per-round ratios is the figure.
    let rounds: usize = std::env::var("HTTP_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let (mut hit_ratios, mut nm_ratios, mut hit_cpu, mut nm_cpu) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let run = |which: usize| match which {
            0 => load(&rt, &format!("{base}/uncached/items/1"), &[]),
            1 => load(&rt, &format!("{base}/items/1"), &[]),
            _ => load(&rt, &format!("{base}/items/1"), &[("If-None-Match", &etag)]),
        };
        let mut m = [Measure::default(); 3];
        let order: [usize; 3] = if round % 2 == 1 { [0, 1, 2] } else { [2, 1, 0] };
        for which in order {
            m[which] = run(which);
        }
        let [u, h, n] = m;
        println!(
            "round {round}: uncached {:.0} req/s {:.1} us cpu | hit {:.0} req/s ({:.2}x) {:.1} us cpu ({:.2}x) | 304 {:.0} req/s ({:.2}x) {:.1} us cpu ({:.2}x)",
            u.rps,
            u.cpu_us,
            h.rps,
            h.rps / u.rps,
            h.cpu_us,
            u.cpu_us / h.cpu_us,
            n.rps,
            n.rps / u.rps,
            n.cpu_us,
            u.cpu_us / n.cpu_us,
        );
        hit_ratios.push(h.rps / u.rps);
        nm_ratios.push(n.rps / u.rps);
        hit_cpu.push(u.cpu_us / h.cpu_us);
        nm_cpu.push(u.cpu_us / n.cpu_us);
    }
    println!(
        "median over {rounds} rounds, relative to the uncached handler (higher is better):\n  \
         throughput: cache hit {:.2}x, 304 {:.2}x\n  \
         server CPU per request (uncached / cached): cache hit {:.2}x, 304 {:.2}x",
        median(&mut hit_ratios),
        median(&mut nm_ratios),
        median(&mut hit_cpu),
        median(&mut nm_cpu),
    );
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
