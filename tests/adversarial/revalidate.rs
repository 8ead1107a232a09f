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
use tower_service::Service;

static RUNS: AtomicUsize = AtomicUsize::new(0);
static GATED: AtomicBool = AtomicBool::new(false);
static STARTED: AtomicBool = AtomicBool::new(false);

/// Answers `<id> run <n>`; while `GATED`, it says it started and never answers.
#[cached(http, expire = 1, stale = 600, namespace = "adv-reval")]
async fn page(Path(id): Path<u64>) -> Result<String, StatusCode> {
    let n = RUNS.fetch_add(1, SeqCst) + 1;
    if GATED.load(SeqCst) {
        STARTED.store(true, SeqCst);
        std::future::pending::<()>().await;
    }
    Ok(format!("{id} run {n}"))
}

/// One request through the router: status, `X-Cache`, body.
async fn send(app: &mut Router, no_cache: bool) -> (u16, String, String) {
    let mut req = Request::get("/adv/1");
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
    assert_eq!(send(&mut app, false).await, one);
    GATED.store(true, SeqCst);
    {
        let mut other = app.clone();
        let mut dropped = Box::pin(send(&mut other, true));
        tokio::select! {
            got = &mut dropped => panic!("the gated handler answered: {got:?}"),
            () = wait_until("the handler runs", Duration::from_secs(5), async || STARTED.load(SeqCst)) => {}
        }
    }
    GATED.store(false, SeqCst);
    let (status, _, body) = send(&mut app, false).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "1 run 1"),
        "the stored response is gone"
    );
    let (status, x, body) = send(&mut app, true).await;
    assert_eq!(
        (status, x.as_str(), body.as_str()),
        (200, "MISS", "1 run 3")
    );
    let (status, x, body) = send(&mut app, false).await;
    assert_eq!((status, x.as_str(), body.as_str()), (200, "HIT", "1 run 3"));
}
