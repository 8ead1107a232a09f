//! One process of the cross-process stampede tests and bench (`tests/stampede.rs`,
//! `benches/resilience.rs`): a real process with its own global cache on a shared Redis.
//!
//! `stampede_worker <redis-url> <callers> <body-ms> <fill-lease-ms> <key>`: initialises the global
//! cache, waits until it can use Redis and hear the bus, prints `ready`, then waits for a line
//! on stdin. It then runs `<callers>` concurrent calls of a `#[cached]` function on the cold
//! `<key>`, whose body counts its runs cluster-wide (`INCR stampede:runs`), prints `body`, and takes
//! `<body-ms>` ms. Per call it prints `call <value> <micros>` (the value it got, the latency),
//! then `stats <coalesced> <lease_takeovers>`, and exits.

use std::io::{BufRead, Write};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cache_runtime::{Config, cached};

static BODY: OnceLock<Duration> = OnceLock::new();
static COUNTER: OnceLock<redis::Client> = OnceLock::new();

/// The cold key's source: a run counted in Redis, `<pid>-<run>` as its value.
#[cached(expire = 60, namespace = "stampede")]
async fn cold(key: u64) -> String {
    let client = COUNTER.get().expect("set in main");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("the counter's Redis");
    let run: u64 = redis::cmd("INCR")
        .arg("stampede:runs")
        .query_async(&mut conn)
        .await
        .expect("INCR");
    say("body");
    tokio::time::sleep(*BODY.get().expect("set in main")).await;
    format!("{}-{run}-{key}", std::process::id())
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> T {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("argument {i}: {what}"))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url: String = arg(&args, 1, "the Redis URL");
    let callers: usize = arg(&args, 2, "the number of callers");
    BODY.set(Duration::from_millis(arg(&args, 3, "the body in ms")))
        .unwrap();
    let lease = Duration::from_millis(arg(&args, 4, "the fill lease in ms"));
    let key: u64 = arg(&args, 5, "the key");
    COUNTER
        .set(redis::Client::open(url.as_str()).unwrap())
        .unwrap();
    // A Redis timeout a burst of concurrent calls on a loaded 2-core machine does not reach
    // (the default 50 ms may open the breaker, and the process then runs its own flights).
    let config = Config::redis(&url)
        .prefix("stampede")
        .timeout(Duration::from_secs(2))
        .fill_lease(lease);
    cache_runtime::init(config).await.expect("init");
    let cache = cache_runtime::cache().expect("initialised above");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(cache.set("warm", &0, &0u8, None).await.is_ok() && cache.bus_healthy()) {
        assert!(
            Instant::now() < deadline,
            "Redis and the bus not usable in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    say("ready");
    let mut go = String::new();
    std::io::stdin().lock().read_line(&mut go).expect("stdin");
    let gate = std::sync::Arc::new(tokio::sync::Barrier::new(callers));
    let calls: Vec<_> = (0..callers)
        .map(|_| {
            let gate = gate.clone();
            tokio::spawn(async move {
                gate.wait().await;
                let start = Instant::now();
                let value = cold(key).await;
                (value, start.elapsed())
            })
        })
        .collect();
    for call in calls {
        let (value, took) = call.await.expect("a call");
        say(&format!("call {value} {}", took.as_micros()));
    }
    let stats = cache.stats().namespace("stampede");
    say(&format!(
        "stats {} {}",
        stats.coalesced, stats.lease_takeovers
    ));
}
