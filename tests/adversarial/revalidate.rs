//! A `no-cache` request under `stale` (`cache/revalidate.rs`, `Call::refresh`) dropped while its
//! handler runs: the stored response must stay in place and stay refreshable. The only probe
//! of this binary on the global cache (`cache_runtime::init`, Redis).

use super::*;
use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use cache_runtime::cached;
use std::sync::atomic::AtomicU64;
use tower_service::Service;

static RUNS: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());
/// The id whose handler waits for `RELEASE` (0: none), and whether it then fails (502).
static GATED: AtomicU64 = AtomicU64::new(0);
static FAIL: AtomicBool = AtomicBool::new(false);
static STARTED: AtomicBool = AtomicBool::new(false);
static RELEASE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Answers `<id> run <n>` (`n` counts the runs for `id`); the `GATED` id says it started and
/// waits for `RELEASE`, then fails if `FAIL`.
#[cached(http, expire = 1, stale = 600, namespace = "adv-reval")]
async fn page(Path(id): Path<u64>) -> Result<String, StatusCode> {
    let n = {
        let mut runs = RUNS.lock().unwrap();
        runs.push(id);
        runs.iter().filter(|r| **r == id).count()
    };
    if GATED.load(SeqCst) == id {
        STARTED.store(true, SeqCst);
        RELEASE.notified().await;
        if FAIL.load(SeqCst) {
            return Err(StatusCode::BAD_GATEWAY);
        }
    }
    Ok(format!("{id} run {n}"))
}

/// One request through the router: status, `X-Cache`, body.
async fn send(app: &mut Router, id: u64, no_cache: bool) -> (u16, String, String) {
    let mut req = Request::get(format!("/adv/{id}"));
    if no_cache {
        req = req.header("cache-control", "no-cache");
    }
    let resp = app.call(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let x = resp
        .headers()
        .get("x-cache")
        .map_or("<none>", |v| v.to_str().unwrap());
    let x = x.to_owned();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, x, String::from_utf8(body.to_vec()).unwrap())
}

/// The stored response (run 1); a `no-cache` request whose handler hangs is dropped mid-handler.
/// A plain request still gets run 1 from the cache (on Redis the forced fill lease of the
/// former refresh replaced the entry, and dropping it deleted it); a later `no-cache` request
/// runs the handler (no back-off was recorded) and its response replaces the entry.
pub async fn a_no_cache_request_dropped_mid_handler_keeps_the_stored_response() {
    let server = RedisServer::start();
    cache_runtime::init(Config::redis(server.url()).prefix("reval"))
        .await
        .unwrap();
    let mut app = Router::new().route("/adv/{id}", get(page));
    let one = (200, "MISS".to_owned(), "1 run 1".to_owned());
    assert_eq!(send(&mut app, 1, false).await, one);
    GATED.store(1, SeqCst);
    {
        let mut other = app.clone();
        let mut dropped = Box::pin(send(&mut other, 1, true));
        tokio::select! {
            got = &mut dropped => panic!("the gated handler answered: {got:?}"),
            () = wait_until("the handler runs", Duration::from_secs(5), async || STARTED.load(SeqCst)) => {}
        }
    }
    GATED.store(0, SeqCst);
    let (status, _, body) = send(&mut app, 1, false).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "1 run 1"),
        "the stored response is gone"
    );
    let (status, x, body) = send(&mut app, 1, true).await;
    assert_eq!(
        (status, x.as_str(), body.as_str()),
        (200, "MISS", "1 run 3")
    );
    let (status, x, body) = send(&mut app, 1, false).await;
    assert_eq!((status, x.as_str(), body.as_str()), (200, "HIT", "1 run 3"));
    invalidated_mid_handler(&app, 2, false).await;
    invalidated_mid_handler(&app, 3, true).await;
}

/// A `no-cache` request for `id` whose handler is gated; the path is invalidated (Ok) while it
/// runs. Released, a handler that succeeds answers but does not store (the next plain request
/// runs it again); one that fails (`fail`) gets its 502: the invalidated response is not served.
async fn invalidated_mid_handler(app: &Router, id: u64, fail: bool) {
    let mut app = app.clone();
    let first = (200, "MISS".to_owned(), format!("{id} run 1"));
    assert_eq!(send(&mut app, id, false).await, first);
    STARTED.store(false, SeqCst);
    FAIL.store(fail, SeqCst);
    GATED.store(id, SeqCst);
    let refresh = {
        let mut app = app.clone();
        tokio::spawn(async move { send(&mut app, id, true).await })
    };
    wait_until("the handler runs", Duration::from_secs(5), async || {
        STARTED.load(SeqCst)
    })
    .await;
    let path = format!("/adv/{id}");
    cache_runtime::http::invalidate_path("adv-reval", &path)
        .await
        .unwrap();
    GATED.store(0, SeqCst);
    RELEASE.notify_one();
    let got = refresh.await.unwrap();
    if fail {
        assert_eq!(got.0, 502, "an invalidated response was served: {got:?}");
        return;
    }
    assert_eq!(got, (200, "MISS".to_owned(), format!("{id} run 2")));
    let after = send(&mut app, id, false).await;
    assert_eq!(
        after,
        (200, "MISS".to_owned(), format!("{id} run 3")),
        "stored across an invalidation"
    );
}
