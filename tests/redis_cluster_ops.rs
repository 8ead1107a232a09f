//! Redis Cluster operations under load, as an operator runs them: a master SIGKILLed and
//! replaced by its replica (3 masters + 3 replicas, `cluster-node-timeout 1000`), and slots
//! migrated between masters (`MIGRATING`/`IMPORTING`, `MIGRATE`, `SETSLOT NODE`, so callers
//! meet `ASK` and `MOVED`).
//!
//! 32 callers loop over 1,000 keys while a writer changes the source of truth and invalidates
//! keys. Every read checks that it never returns a value older than the last invalidation that
//! had returned when it started, and every call is timed. After the operation the hit ratio
//! (measured over short windows) must be back above 90% within [`RECOVERY`].
//!
//! One cluster per test (each test starts its own, in about two seconds). The failover's
//! recovery time is printed (`failover recovery: ...`); see BENCHMARKS.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Config};
use cache_tests::{RedisCluster, poll};

/// Keys the callers loop over.
const KEYS: u64 = 1_000;
/// Concurrent callers.
const CALLERS: u64 = 32;
/// The per-call Redis timeout configured in these tests.
const TIMEOUT: Duration = Duration::from_millis(50);
/// How long each body takes.
const BODY: Duration = Duration::from_millis(2);
/// Allowance for scheduling and debug builds on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(400);
/// How soon after the operation the cache must be back above 90% hits.
const RECOVERY: Duration = Duration::from_secs(5);
/// The window hit ratios are measured over.
const WINDOW: Duration = Duration::from_millis(250);
/// Every test under this outer timeout.
const OUTER: Duration = Duration::from_secs(90);

/// The source of truth, the invalidations that returned, and what the callers saw.
#[derive(Default)]
struct Shared {
    /// Current version of each key's data.
    versions: Vec<AtomicU64>,
    /// For each key, the version whose invalidation has returned `Ok`: no read that starts
    /// afterwards may return an older one.
    floor: Vec<AtomicU64>,
    stop: AtomicBool,
    /// Reads that returned a version below their floor.
    violations: AtomicU64,
    /// The slowest call since the last reset, in microseconds.
    slowest_us: AtomicU64,
}

impl Shared {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            versions: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
            floor: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
            ..Self::default()
        })
    }
}

fn config(cluster: &RedisCluster) -> Config {
    Config::redis_cluster(cluster.urls())
        .timeout(TIMEOUT)
        .connect_timeout(Duration::from_millis(500))
}

/// One caller: loops over the keys, checking each value against its floor and timing it.
async fn caller(cache: Cache, shared: Arc<Shared>, id: u64) {
    let mut i = id * (KEYS / CALLERS);
    while !shared.stop.load(Ordering::Relaxed) {
        let k = (i % KEYS) as usize;
        i += 1;
        let floor = shared.floor[k].load(Ordering::SeqCst);
        let start = Instant::now();
        let source = shared.clone();
        let v: u64 = cache
            .get_or_insert_with("ops", &k, Some(Duration::from_secs(600)), async move {
                tokio::time::sleep(BODY).await;
                source.versions[k].load(Ordering::SeqCst)
            })
            .await;
        let took = start.elapsed().as_micros() as u64;
        shared.slowest_us.fetch_max(took, Ordering::Relaxed);
        if v < floor {
            shared.violations.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The writer: bumps a key's version, invalidates it, and on `Ok` raises its floor.
async fn writer(cache: Cache, shared: Arc<Shared>) {
    let mut k = 0usize;
    while !shared.stop.load(Ordering::Relaxed) {
        k = (k + 397) % KEYS as usize;
        let v = shared.versions[k].fetch_add(1, Ordering::SeqCst) + 1;
        if cache.delete::<u64>("ops", &k).await.is_ok() {
            shared.floor[k].fetch_max(v, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts the callers and the writer.
fn start_load(cache: &Cache, shared: &Arc<Shared>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks: Vec<_> = (0..CALLERS)
        .map(|id| tokio::spawn(caller(cache.clone(), shared.clone(), id)))
        .collect();
    tasks.push(tokio::spawn(writer(cache.clone(), shared.clone())));
    tasks
}

/// The hit ratio over the next [`WINDOW`].
async fn window_ratio(cache: &Cache) -> f64 {
    let before = cache.stats().total;
    tokio::time::sleep(WINDOW).await;
    let after = cache.stats().total;
    let hits = after.hits - before.hits;
    let lookups = hits + after.misses - before.misses;
    if lookups == 0 {
        0.0
    } else {
        hits as f64 / lookups as f64
    }
}

/// Waits until a window's hit ratio is above 90%; returns how long that took (the end of
/// the first good window), or panics after `within`.
async fn until_hits_recover(cache: &Cache, what: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let ratio = window_ratio(cache).await;
        if ratio > 0.9 {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{what}: hit ratio {ratio:.2} still, {within:?} after"
        );
    }
}

/// Stops the load and checks the values the callers saw.
async fn stop_load(shared: &Shared, tasks: Vec<tokio::task::JoinHandle<()>>) {
    shared.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("a load task panicked");
    }
    assert_eq!(
        shared.violations.load(Ordering::Relaxed),
        0,
        "a read returned a value older than an invalidation that had returned"
    );
}

/// The slowest call may cost a lookup, a lease and a store, each bounded by the timeout, and
/// the body.
fn bound() -> Duration {
    TIMEOUT * 3 + BODY + SLACK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_under_load_recovers_hits_within_seconds() {
    tokio::time::timeout(OUTER, failover())
        .await
        .expect("outer timeout");
}

async fn failover() {
    let mut cluster = tokio::task::spawn_blocking(RedisCluster::start_with_replicas)
        .await
        .unwrap();
    let cache = Cache::new(config(&cluster)).await.unwrap();
    let shared = Shared::new();
    let tasks = start_load(&cache, &shared);
    until_hits_recover(&cache, "warm-up", Duration::from_secs(20)).await;

    // Redis does not replicate its script cache: after the failover the new master must be
    // taught the lease scripts again (`NOSCRIPT`, then `SCRIPT LOAD`).
    for i in 0..cluster.nodes.len() {
        if cluster.role(i).as_deref() == Some("slave") {
            cluster.cli(i, &["SCRIPT", "FLUSH"]).expect("SCRIPT FLUSH");
        }
    }
    let victim = cluster.masters()[0];
    let witness = (0..cluster.nodes.len()).find(|&i| i != victim).unwrap();
    let victim_id = cluster.node_id(victim);
    cluster.nodes[victim].kill();
    let killed = Instant::now();
    let cluster = tokio::task::spawn_blocking(move || {
        poll("the replica promoted", Duration::from_secs(20), || {
            cluster.failed_over_from(witness, &victim_id)
        });
        cluster
    })
    .await
    .unwrap();
    let promoted = killed.elapsed();
    shared.slowest_us.store(0, Ordering::Relaxed);
    let recovery = until_hits_recover(&cache, "after the promotion", RECOVERY).await;
    println!(
        "failover recovery: promoted {promoted:?} after the kill, hits above 90% {recovery:?} \
         after the promotion (window {WINDOW:?})"
    );
    let slowest = Duration::from_micros(shared.slowest_us.load(Ordering::Relaxed));
    stop_load(&shared, tasks).await;
    assert!(
        slowest <= bound(),
        "a call took {slowest:?} after the promotion (bound {:?})",
        bound()
    );
    new_keys_are_stored(&cache).await;
    drop(cluster);
}

/// New entries are stored on every slot (through the lease scripts): a second round over
/// fresh keys hits every time.
async fn new_keys_are_stored(cache: &Cache) {
    const FRESH: u64 = 300;
    let mut round = 0u64;
    cache_tests::wait_until("every fresh key stored", RECOVERY, async || {
        round += 1;
        let before = cache.stats().namespace("fresh").hits;
        for k in 0..FRESH {
            let v = cache
                .get_or_insert_with("fresh", &k, None, async move { k + 1 })
                .await;
            assert_eq!(v, k + 1);
        }
        round > 1 && cache.stats().namespace("fresh").hits - before == FRESH
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_migration_under_load_keeps_values_right_and_hits_recover() {
    tokio::time::timeout(OUTER, migration())
        .await
        .expect("outer timeout");
}

async fn migration() {
    let cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .unwrap();
    let cache = Cache::new(config(&cluster)).await.unwrap();
    let shared = Shared::new();
    let tasks = start_load(&cache, &shared);
    until_hits_recover(&cache, "warm-up", Duration::from_secs(20)).await;

    let moved = migrate_every_slot_with_keys(&cluster, 0, 1).await;
    assert!(moved > 50, "only {moved} keys moved");
    shared.slowest_us.store(0, Ordering::Relaxed);
    let recovery = until_hits_recover(&cache, "after the migration", RECOVERY).await;
    println!("migration: {moved} keys moved; hits above 90% {recovery:?} after it");
    let slowest = Duration::from_micros(shared.slowest_us.load(Ordering::Relaxed));
    stop_load(&shared, tasks).await;
    assert!(
        slowest <= bound(),
        "a call took {slowest:?} after the migration (bound {:?})",
        bound()
    );
    new_keys_are_stored(&cache).await;
}

/// Moves every slot of node `from` that holds keys to node `to`, one slot at a time, the
/// way `redis-cli --cluster reshard` does: `IMPORTING` on the target, `MIGRATING` on the
/// source, `MIGRATE` of its keys, then `SETSLOT NODE` on every master. Returns the number of
/// keys moved.
async fn migrate_every_slot_with_keys(cluster: &RedisCluster, from: usize, to: usize) -> usize {
    let conn = |i: usize| {
        let client = cluster.nodes[i].client();
        async move { client.get_multiplexed_async_connection().await.unwrap() }
    };
    let (mut src, mut dst) = (conn(from).await, conn(to).await);
    let mut others = Vec::new();
    for i in (0..cluster.nodes.len()).filter(|&i| i != from && i != to) {
        others.push(conn(i).await);
    }
    let (src_id, dst_id) = (cluster.node_id(from), cluster.node_id(to));
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut src)
        .await
        .unwrap();
    let mut slots = std::collections::BTreeSet::new();
    for key in &keys {
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut src)
            .await
            .unwrap();
        slots.insert(slot);
    }
    let mut moved = 0;
    for slot in slots {
        let setslot = |state: &str, id: &str| {
            let mut cmd = redis::cmd("CLUSTER");
            cmd.arg("SETSLOT").arg(slot).arg(state).arg(id);
            cmd
        };
        let _: () = setslot("IMPORTING", &src_id)
            .query_async(&mut dst)
            .await
            .unwrap();
        let _: () = setslot("MIGRATING", &dst_id)
            .query_async(&mut src)
            .await
            .unwrap();
        loop {
            let batch: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(100)
                .query_async(&mut src)
                .await
                .unwrap();
            if batch.is_empty() {
                break;
            }
            moved += batch.len();
            let _: redis::Value = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(cluster.nodes[to].port())
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&batch)
                .query_async(&mut src)
                .await
                .unwrap();
        }
        let _: () = setslot("NODE", &dst_id)
            .query_async(&mut dst)
            .await
            .unwrap();
        let _: () = setslot("NODE", &dst_id)
            .query_async(&mut src)
            .await
            .unwrap();
        for other in &mut others {
            let _: () = setslot("NODE", &dst_id).query_async(other).await.unwrap();
        }
    }
    moved
}
