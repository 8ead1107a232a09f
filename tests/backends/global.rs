//! The part of the suite that needs the global cache: `#[cached]` functions (`cache_none`,
//! `version`, `_invalidate`, the global invalidations) and axum handlers (every scenario of
//! `http_app.rs`, path invalidation, `Age` counting up, single-flight on a handler). The global
//! is set once per process, so each backend runs it in a child process of its own.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use cache_runtime::cached;
use cache_tests::backends::{Env, Kind};
use cache_tests::wait_until;
use tokio::sync::Notify;

use super::http_app::{self, Ctx, header, x_cache};

/// The parent side: runs this binary's `child_process` test with `env`'s backend.
pub async fn cached_functions_and_handlers_in_a_child_process(env: &Env) {
    let exe = std::env::current_exe().expect("the test binary");
    let out = tokio::process::Command::new(exe)
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(env.kind.child_env())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run the child process");
    assert!(
        out.status.success(),
        "the child process on {} failed:\n{}\n{}",
        env.kind.name(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("child_process ... ok")
            || String::from_utf8_lossy(&out.stdout).contains("test result: ok. 1 passed"),
        "the child ran its test"
    );
}

/// The child side: sets the global cache on `kind` and runs every part.
pub async fn child(kind: Kind) {
    let env = Env::new(kind, "global");
    cache_runtime::init(env.config()).await.unwrap();
    let cache = cache_runtime::cache().unwrap();
    if kind.is_redis() {
        wait_until("the bus is up", Duration::from_secs(10), async || {
            cache.bus_healthy()
        })
        .await;
    }
    functions().await;
    versions().await;
    let ctx = Ctx::new(serve(http_app::app().merge(extra_routes())).await);
    http_app::all(&ctx).await;
    age_counts_up(&ctx).await;
    single_flight_on_a_handler(&ctx).await;
    let stats = cache_runtime::stats();
    assert_eq!(stats.total.errors, 0, "{stats:?}");
}

static FIND: AtomicUsize = AtomicUsize::new(0);
static FIND_NONE: AtomicUsize = AtomicUsize::new(0);
static DOUBLE: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "g_option")]
async fn find(id: u64) -> Option<u64> {
    FIND.fetch_add(1, SeqCst);
    id.is_multiple_of(2).then_some(id)
}

#[cached(namespace = "g_option_none", cache_none)]
async fn find_cache_none(id: u64) -> Option<u64> {
    FIND_NONE.fetch_add(1, SeqCst);
    id.is_multiple_of(2).then_some(id)
}

#[cached(namespace = "g_double", expire = 60)]
async fn double(x: u64) -> u64 {
    DOUBLE.fetch_add(1, SeqCst);
    x * 2
}

/// `cache_none`, `_invalidate`, and the global namespace and whole-cache invalidations.
async fn functions() {
    for _ in 0..2 {
        assert_eq!(find(1).await, None);
        assert_eq!(find_cache_none(1).await, None);
        assert_eq!(find_cache_none(2).await, Some(2));
    }
    assert_eq!(FIND.load(SeqCst), 2, "None is not stored");
    assert_eq!(
        FIND_NONE.load(SeqCst),
        2,
        "cache_none stores None (and Some)"
    );

    let runs = || DOUBLE.load(SeqCst);
    assert_eq!(
        (double(1).await, double(1).await, double(2).await),
        (2, 2, 4)
    );
    assert_eq!(runs(), 2);
    double_invalidate(1).await.unwrap();
    assert_eq!((double(1).await, double(2).await, runs()), (2, 4, 3));
    cache_runtime::invalidate_namespace("g_double")
        .await
        .unwrap();
    assert_eq!((double(1).await, double(2).await, runs()), (2, 4, 5));
    cache_runtime::invalidate_all().await.unwrap();
    assert_eq!((double(1).await, double(2).await, runs()), (2, 4, 7));
    assert_eq!((double(1).await, runs()), (2, 7));
}

/// Three deployments of one function (declared in sibling blocks, where they have the same
/// path, as one function has in successive builds): the old code, the new code with
/// `version = 2`, and the old code again without a bump, which shares the old entries.
async fn profile(deployment: u8, id: u64) -> String {
    match deployment {
        0 => {
            #[cached(namespace = "g_version")]
            async fn profile(id: u64) -> String {
                format!("v0 shape {id}")
            }
            profile(id).await
        }
        2 => {
            #[cached(namespace = "g_version", version = 2)]
            async fn profile(id: u64) -> String {
                format!("v2 shape {id}")
            }
            profile(id).await
        }
        _ => {
            #[cached(namespace = "g_version")]
            async fn profile(id: u64) -> String {
                format!("v0 again {id}")
            }
            profile(id).await
        }
    }
}

async fn versions() {
    assert_eq!(profile(0, 1).await, "v0 shape 1");
    assert_eq!(profile(2, 1).await, "v2 shape 1", "v2 ignores v0 entries");
    assert_eq!(profile(2, 1).await, "v2 shape 1");
    assert_eq!(
        profile(1, 1).await,
        "v0 shape 1",
        "without a bump, the same function in another build shares the entries"
    );
}

static SLOW: AtomicUsize = AtomicUsize::new(0);
static SLOW_GATE: Notify = Notify::const_new();

#[cached(http, expire = 60, namespace = "g_slow")]
async fn slow(Path(id): Path<u64>) -> String {
    SLOW.fetch_add(1, SeqCst);
    SLOW_GATE.notified().await;
    format!("slow {id}")
}

#[cached(http, expire = 60, namespace = "g_aged")]
async fn aged() -> &'static str {
    "aged"
}

fn extra_routes() -> Router<()> {
    Router::new()
        .route("/g/slow/{id}", get(slow))
        .route("/g/aged", get(aged))
}

/// Serves `app` on a free loopback port; returns the base URL.
async fn serve(app: Router<()>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A hit's `Age` is the entry's age in seconds: it counts up while the entry is served.
async fn age_counts_up(c: &Ctx) {
    assert_eq!(x_cache(&c.get("/g/aged", &[]).await), "MISS");
    let mut last = 0;
    wait_until("Age reaches 2", Duration::from_secs(10), async || {
        let r = c.get("/g/aged", &[]).await;
        assert_eq!(x_cache(&r), "HIT");
        let age: u64 = header(&r, "age").expect("Age on a hit").parse().unwrap();
        assert!(age >= last, "Age went down from {last} to {age}");
        last = age;
        age >= 2
    })
    .await;
}

/// Eight concurrent requests for one uncached response run the handler once: the request that
/// ran it is the one `MISS`, the others were answered without running it (`HIT`).
async fn single_flight_on_a_handler(c: &Ctx) {
    let requests: Vec<_> = (0..8)
        .map(|_| {
            let (client, url) = (c.client.clone(), format!("{}/g/slow/1", c.base));
            tokio::spawn(async move { client.get(url).send().await.unwrap() })
        })
        .collect();
    wait_until("the handler runs", Duration::from_secs(5), async || {
        SLOW.load(SeqCst) >= 1
    })
    .await;
    // Not a synchronisation (late requests are hits): time for a broken single-flight to show.
    tokio::time::sleep(Duration::from_millis(100)).await;
    SLOW_GATE.notify_waiters();
    SLOW_GATE.notify_one();
    let mut misses = 0;
    for r in requests {
        let r = r.await.unwrap();
        assert_eq!(r.status(), 200);
        misses += usize::from(x_cache(&r) == "MISS");
        assert_eq!(r.text().await.unwrap(), "slow 1");
    }
    assert_eq!(SLOW.load(SeqCst), 1, "one run for 8 concurrent requests");
    assert_eq!(misses, 1, "only the request that ran the handler is a MISS");
}
