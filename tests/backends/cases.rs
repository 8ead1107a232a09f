//! The backend-independent behaviours, through the manual API of `Cache` instances. On Redis
//! backends a second instance stands for another process; on memory it is the same cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_runtime::{Cache, CodecKind};
use cache_tests::backends::{Env, Kind};
use cache_tests::fixtures::{Item, make_item};
use cache_tests::{Db, wait_until};
use tokio::sync::Notify;

/// Counts how often a body runs.
#[derive(Clone, Default)]
struct Runs(Arc<AtomicUsize>);

impl Runs {
    /// A body returning `value` and counting the run.
    fn body<T>(&self, value: T) -> impl Future<Output = T> + use<T> {
        let runs = self.0.clone();
        async move {
            runs.fetch_add(1, SeqCst);
            value
        }
    }

    fn get(&self) -> usize {
        self.0.load(SeqCst)
    }
}

/// The cache-aside read of the suite: the cached value, or `db`'s.
async fn load(cache: &Cache, db: &Db, ns: &str, id: u64) -> String {
    cache
        .get_or_insert_with(ns, &id, None, async { db.get(id) })
        .await
}

pub async fn hit_and_miss(env: &Env) {
    let cache = env.cache().await;
    let runs = Runs::default();
    let first = cache
        .get_or_insert_with("hm", &1, None, runs.body("one".to_owned()))
        .await;
    let second = cache
        .get_or_insert_with("hm", &1, None, runs.body("not this".to_owned()))
        .await;
    assert_eq!(
        (first.as_str(), second.as_str(), runs.get()),
        ("one", "one", 1)
    );

    assert_eq!(cache.get::<String>("hm", &2).await, None);
    cache.set("hm", &2, &"two".to_owned(), None).await.unwrap();
    assert_eq!(cache.get::<String>("hm", &2).await.as_deref(), Some("two"));
    // Another type under the same key is another entry.
    assert_eq!(cache.get::<u64>("hm", &2).await, None);
    // Another instance (process) reads the same entries.
    let other = env.cache().await;
    assert_eq!(other.get::<String>("hm", &1).await.as_deref(), Some("one"));
    assert_eq!(other.get::<String>("hm", &2).await.as_deref(), Some("two"));

    cache.delete::<String>("hm", &2).await.unwrap();
    assert_eq!(cache.get::<String>("hm", &2).await, None);
    assert_eq!(other.get::<String>("hm", &2).await, None);
    assert_eq!(cache.get::<String>("hm", &1).await.as_deref(), Some("one"));
}

pub async fn ttl_expiry(env: &Env) {
    let (cache, other) = (env.cache().await, env.cache().await);
    let ttl = Some(Duration::from_millis(300));
    cache
        .set("ttl", &1, &"short".to_owned(), ttl)
        .await
        .unwrap();
    cache
        .set("ttl", &2, &"kept".to_owned(), None)
        .await
        .unwrap();
    assert_eq!(
        cache.get::<String>("ttl", &1).await.as_deref(),
        Some("short")
    );
    // On tiered, this fills the other instance's L1, whose TTL is 30 s.
    assert_eq!(
        other.get::<String>("ttl", &1).await.as_deref(),
        Some("short")
    );
    wait_until("the entry expires", Duration::from_secs(10), async || {
        cache.get::<String>("ttl", &1).await.is_none()
            && other.get::<String>("ttl", &1).await.is_none()
    })
    .await;
    assert_eq!(
        cache.get::<String>("ttl", &2).await.as_deref(),
        Some("kept")
    );
    let runs = Runs::default();
    let again = cache
        .get_or_insert_with("ttl", &1, ttl, runs.body("again".to_owned()))
        .await;
    assert_eq!((again.as_str(), runs.get()), ("again", 1));
}

/// The manual API stores any value, `None` included; `get_or_try_insert_with` stores only `Ok`.
pub async fn option_and_result_values(env: &Env) {
    let cache = env.cache().await;
    let runs = Runs::default();
    for _ in 0..2 {
        let v: Option<u64> = cache
            .get_or_insert_with("opt", &1, None, runs.body(None))
            .await;
        assert_eq!(v, None);
    }
    assert_eq!(runs.get(), 1, "a None value is a value");

    let runs = Runs::default();
    for _ in 0..2 {
        let v: Result<u64, String> = cache
            .get_or_try_insert_with("res", &1, None, runs.body(Err("down".to_owned())))
            .await;
        assert_eq!(v, Err("down".to_owned()));
    }
    assert_eq!(runs.get(), 2, "an Err is not stored");
    for _ in 0..2 {
        let v: Result<u64, String> = cache
            .get_or_try_insert_with("res", &1, None, runs.body(Ok(5)))
            .await;
        assert_eq!(v, Ok(5));
    }
    assert_eq!(runs.get(), 3, "the Ok is stored");
}

/// Key, namespace and whole-cache invalidation through one instance, seen at once (when the
/// call has returned) by the other.
pub async fn invalidation_of_key_namespace_and_all(env: &Env) {
    let (a, b) = (env.cache().await, env.cache().await);
    let db = Db::default();
    for id in 0..3 {
        db.put(id, "old");
        for ns in ["x", "y"] {
            assert_eq!(load(&a, &db, ns, id).await, "old");
            assert_eq!(load(&b, &db, ns, id).await, "old");
        }
        db.put(id, "new");
    }
    // Served from the cache until invalidated.
    assert_eq!(load(&b, &db, "x", 0).await, "old");

    a.delete::<String>("x", &0).await.unwrap();
    assert_eq!(load(&b, &db, "x", 0).await, "new", "the key");
    assert_eq!(load(&b, &db, "x", 1).await, "old", "only the key");

    b.invalidate_namespace("x").await.unwrap();
    assert_eq!(load(&a, &db, "x", 1).await, "new", "the namespace");
    assert_eq!(load(&a, &db, "x", 2).await, "new", "the namespace");
    assert_eq!(load(&a, &db, "y", 0).await, "old", "only the namespace");

    a.invalidate_all().await.unwrap();
    // A write right after it (under a whole-cache generation created anew) is dropped by the
    // next one.
    a.set("x", &9, &"written".to_owned(), None).await.unwrap();
    assert_eq!(b.get::<String>("x", &9).await.as_deref(), Some("written"));
    for id in 0..3 {
        assert_eq!(load(&b, &db, "y", id).await, "new", "everything");
    }
    b.invalidate_all().await.unwrap();
    assert_eq!(a.get::<String>("x", &9).await, None, "everything, again");
}

/// Concurrent misses on one key run the body once: callers of one instance share its flight;
/// on Redis, callers of another instance wait for the fill lease's holder.
pub async fn single_flight_in_process_and_across_instances(env: &Env) {
    let instances = [env.cache().await, env.cache().await];
    let (runs, started, gate) = (Runs::default(), Runs::default(), Arc::new(Notify::new()));
    let callers: Vec<_> = (0..8)
        .map(|i| {
            let cache = instances[i % 2].clone();
            let (runs, started, gate) = (runs.clone(), started.clone(), gate.clone());
            tokio::spawn(async move {
                started.0.fetch_add(1, SeqCst);
                cache
                    .get_or_insert_with("sf", &1, None, async move {
                        runs.0.fetch_add(1, SeqCst);
                        gate.notified().await;
                        "shared".to_owned()
                    })
                    .await
            })
        })
        .collect();
    wait_until("every caller started", Duration::from_secs(5), async || {
        started.get() == 8 && runs.get() >= 1
    })
    .await;
    // Not a synchronisation: the result is the same whenever callers arrive (a late one is a
    // hit); this only gives a broken single-flight time to show, by running the body again.
    tokio::time::sleep(Duration::from_millis(100)).await;
    gate.notify_waiters();
    gate.notify_one();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), "shared");
    }
    assert_eq!(runs.get(), 1, "one run for 8 concurrent misses");
}

pub async fn codecs_read_back(env: &Env) {
    for (codec, ns) in [(CodecKind::Bincode, "bincode"), (CodecKind::Json, "json")] {
        let config = || env.config().codec(codec);
        let a = env.cache_with(config()).await;
        // Memory: one instance (typed values; the codec only weighs them).
        let b = match env.kind {
            Kind::Memory => a.clone(),
            _ => env.cache_with(config()).await,
        };
        let item = make_item(7);
        a.set(ns, &7, &item, None).await.unwrap();
        // b's L1 (tiered) does not hold it: decoded from Redis.
        assert_eq!(b.get::<Item>(ns, &7).await, Some(item.clone()), "{ns}");
        let runs = Runs::default();
        let got = b
            .get_or_insert_with(ns, &8, None, runs.body(make_item(8)))
            .await;
        assert_eq!(got, make_item(8));
        assert_eq!(a.get::<Item>(ns, &8).await, Some(make_item(8)), "{ns}");
        if env.kind.is_redis() && codec == CodecKind::Json {
            let raw = raw_get(env, &a.key_for::<Item>(ns, &7).unwrap()).await;
            let text = String::from_utf8_lossy(&raw);
            assert!(
                text.contains(r#""name":"item number 7""#),
                "JSON in Redis: {text}"
            );
        }
    }
}

/// The bytes Redis holds under `key`.
async fn raw_get(env: &Env, key: &str) -> Vec<u8> {
    let cmd = redis::cmd("GET").arg(key).clone();
    let urls = env.kind.urls();
    let value: Option<Vec<u8>> = if matches!(env.kind, Kind::Cluster | Kind::TieredCluster) {
        let client = redis::cluster::ClusterClient::new(urls).unwrap();
        let mut conn = client.get_async_connection().await.unwrap();
        cmd.query_async(&mut conn).await.unwrap()
    } else {
        let client = redis::Client::open(urls[0].as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        cmd.query_async(&mut conn).await.unwrap()
    };
    value.expect("the entry is in Redis")
}

/// An invalidation (key, namespace, all) while a body runs: the call returns the body's value,
/// but it is not stored.
pub async fn invalidation_while_the_body_runs(env: &Env) {
    let (a, b) = (env.cache().await, env.cache().await);
    for how in ["key", "namespace", "all"] {
        let ns = format!("race-{how}");
        let (started, gate) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let call = {
            let (a, ns, started, gate) = (a.clone(), ns.clone(), started.clone(), gate.clone());
            tokio::spawn(async move {
                a.get_or_insert_with(&ns, &1, None, async move {
                    started.notify_one();
                    gate.notified().await;
                    "read before".to_owned()
                })
                .await
            })
        };
        started.notified().await;
        match how {
            "key" => b.delete::<String>(&ns, &1).await,
            "namespace" => b.invalidate_namespace(&ns).await,
            _ => b.invalidate_all().await,
        }
        .unwrap();
        gate.notify_one();
        assert_eq!(call.await.unwrap(), "read before", "{how}: returned");
        assert_eq!(a.get::<String>(&ns, &1).await, None, "{how}: not stored");
        assert_eq!(b.get::<String>(&ns, &1).await, None, "{how}: not stored");
        let runs = Runs::default();
        let next = a
            .get_or_insert_with(&ns, &1, None, runs.body("read after".to_owned()))
            .await;
        assert_eq!((next.as_str(), runs.get()), ("read after", 1), "{how}");
    }
}

/// `max_value_bytes`: a value whose stored size is exactly the limit is stored, one byte more
/// is not (the call still returns `TooLarge`, nothing is cached). The stored size is what the
/// backend holds: the codec's encoding in memory, the whole entry's bytes on Redis.
pub async fn max_value_bytes_is_inclusive(env: &Env) {
    use cache_runtime::codec::{Bincode, Codec};
    let value = "x".repeat(100);
    let probe = env.cache().await;
    probe.set("limit", &1, &value, None).await.unwrap();
    let size = if env.kind.is_redis() {
        raw_get(env, &probe.key_for::<String>("limit", &1).unwrap())
            .await
            .len()
    } else {
        let mut bytes = Vec::new();
        Bincode::encode_into(&value, &mut bytes).unwrap();
        bytes.len()
    };
    for (limit, stored) in [(size, true), (size - 1, false)] {
        let cache = env.cache_with(env.config().max_value_bytes(limit)).await;
        let set = cache.set("limit", &2, &value, None).await;
        assert_eq!(set.is_ok(), stored, "limit {limit}, size {size}: {set:?}");
        if !stored {
            assert!(matches!(set, Err(cache_runtime::Error::TooLarge { .. })));
        }
        let got = cache.get::<String>("limit", &2).await;
        assert_eq!(got.is_some(), stored, "limit {limit}, size {size}");
        cache.delete::<String>("limit", &2).await.unwrap();
    }
}
