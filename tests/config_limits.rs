//! Every setting, whatever its value, either works or is a clear `ConfigError` from
//! `Cache::new`: never a panic (duration overflows, huge capacities), for memory, Redis,
//! Cluster and tiered configurations; and a tiered cache at the largest accepted values works
//! against a real Redis.

use std::time::Duration;

use cache_runtime::{Cache, Config, Error, L1};
use cache_tests::{RedisServer, free_port};

const DURATIONS: [Duration; 9] = [
    Duration::ZERO,
    Duration::from_nanos(1),
    Duration::from_millis(1),
    Duration::from_secs(3_600),
    Duration::from_secs(86_400),
    Duration::from_secs(365 * 86_400),
    Duration::from_secs(u32::MAX as u64),
    Duration::from_secs(u64::MAX),
    Duration::MAX,
];
const U64S: [u64; 5] = [0, 1, u32::MAX as u64, u64::MAX / 2, u64::MAX];
const U32S: [u32; 3] = [0, 1, u32::MAX];
const USIZES: [usize; 6] = [0, 1, 63, 64, 1 << 20, usize::MAX];

type Setter = Box<dyn Fn(Config) -> Config + Send + Sync>;
/// A backend's configuration, given a Redis URL.
type Base = fn(&str) -> Config;

/// Every setter with every extreme value, named for the failure message.
fn setters() -> Vec<(String, Setter)> {
    let mut all: Vec<(String, Setter)> = Vec::new();
    let long = "p".repeat(10_000);
    for p in ["", " ", "\t", "a b", "x", "é", long.as_str()] {
        let p = p.to_owned();
        all.push((
            format!("prefix({:.20?})", p),
            Box::new(move |c| c.prefix(p.clone())),
        ));
    }
    for n in U64S {
        all.push((
            format!("max_entries({n})"),
            Box::new(move |c| c.max_entries(n)),
        ));
        all.push((format!("max_bytes({n})"), Box::new(move |c| c.max_bytes(n))));
        for d in DURATIONS {
            let l1 = L1::new(n, d);
            all.push((
                format!("with_l1({n}, {d:?})"),
                Box::new(move |c| c.with_l1(l1)),
            ));
        }
    }
    for d in DURATIONS {
        all.push((format!("timeout({d:?})"), Box::new(move |c| c.timeout(d))));
        all.push((
            format!("connect_timeout({d:?})"),
            Box::new(move |c| c.connect_timeout(d)),
        ));
        all.push((
            format!("bus_heartbeat({d:?})"),
            Box::new(move |c| c.bus_heartbeat(d)),
        ));
        all.push((
            format!("fill_lease({d:?})"),
            Box::new(move |c| c.fill_lease(d)),
        ));
        for n in U32S {
            let f = move |c: Config| c.circuit_breaker(n, d);
            all.push((format!("circuit_breaker({n}, {d:?})"), Box::new(f)));
        }
    }
    for n in USIZES {
        all.push((
            format!("max_value_bytes({n})"),
            Box::new(move |c| c.max_value_bytes(n)),
        ));
        all.push((
            format!("max_key_len({n})"),
            Box::new(move |c| c.max_key_len(n)),
        ));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_setting_at_every_extreme_is_ok_or_a_config_error() {
    // Nothing listens there: building a Redis cache does not wait for the server.
    let url = format!("redis://127.0.0.1:{}", free_port());
    let bases: [(&str, Base); 4] = [
        ("memory", |_| Config::memory()),
        ("redis", |url| Config::redis(url)),
        ("cluster", |url| Config::redis_cluster([url])),
        ("tiered", |url| Config::redis(url).with_l1(L1::default())),
    ];
    let mut panics = Vec::new();
    let (mut ok, mut rejected) = (0, 0);
    for (name, setter) in setters() {
        for (kind, base) in bases {
            let config = setter(base(&url));
            let built = tokio::spawn(async move {
                let result = Cache::new(config).await;
                if let Ok(cache) = &result {
                    let _ = cache.staleness_bound();
                    if kind == "memory" {
                        // Err(TooLarge) with a small max_value_bytes: fine, no panic.
                        let _ = cache.set("ns", &1, &"one".to_owned(), None).await;
                        let _ = cache.get::<String>("ns", &1).await;
                    }
                }
                result.map(drop)
            })
            .await;
            match built {
                Err(e) if e.is_panic() => panics.push(format!("{kind} {name}")),
                Err(e) => panic!("{kind} {name}: {e}"),
                Ok(Ok(())) => ok += 1,
                Ok(Err(Error::InvalidConfig(e))) => {
                    assert!(!e.to_string().is_empty());
                    rejected += 1;
                }
                Ok(Err(e)) => panic!("{kind} {name}: not a ConfigError: {e:?}"),
            }
        }
    }
    assert!(panics.is_empty(), "panicked: {panics:#?}");
    assert!(ok > 0 && rejected > 0, "{ok} accepted, {rejected} rejected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiered_cache_at_the_largest_accepted_values_works() {
    let server = RedisServer::start();
    let hour = Duration::from_secs(3_600);
    let day = Duration::from_secs(86_400);
    let largest = || {
        Config::redis(server.url())
            .max_entries(u64::MAX)
            .max_bytes(u64::MAX)
            .timeout(hour)
            .connect_timeout(hour)
            .bus_heartbeat(hour)
            .circuit_breaker(u32::MAX, day)
            .fill_lease(day)
            .max_value_bytes(usize::MAX)
            .max_key_len(usize::MAX)
    };
    let tiered = Cache::new(largest().with_l1(L1::new(u64::MAX, day * 365)))
        .await
        .unwrap();
    assert_eq!(tiered.staleness_bound(), hour * 3);
    tiered.set("ns", &1, &"one".to_owned(), None).await.unwrap();
    assert_eq!(tiered.get::<String>("ns", &1).await.as_deref(), Some("one"));
    let plain = Cache::new(largest()).await.unwrap();
    assert_eq!(
        plain.get::<String>("ns", &1).await.as_deref(),
        Some("one"),
        "in Redis"
    );
}
