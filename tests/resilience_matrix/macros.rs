//! `#[cached]` functions and handlers on the global memory cache: `None` and panics served
//! stale, `timeout_ms`, the generated `_invalidate` and `invalidate_all` removing stale copies,
//! and handlers that panic or return an error type that renders a 500. One sequential test:
//! `invalidate_all` would race the others in this process.

use std::sync::atomic::{AtomicU8, Ordering::SeqCst};

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cache_runtime::cached;

use super::*;

const OK: u8 = 0;
const FAIL: u8 = 1;
const PANIC: u8 = 2;
const SLOW: u8 = 3;

static MODE: AtomicU8 = AtomicU8::new(OK);
static GATE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// The source's answer under [`MODE`]: `Some(id * 10 + round)`.
async fn source(id: u64, round: u64) -> Option<u64> {
    match MODE.load(SeqCst) {
        FAIL => None,
        PANIC => panic!("the source panicked"),
        SLOW => {
            GATE.notified().await;
            Some(id * 10 + round)
        }
        _ => Some(id * 10 + round),
    }
}

static ROUND: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[cached(expire = 1, stale = 600, namespace = "pm_opt")]
async fn maybe(id: u64) -> Option<u64> {
    source(id, ROUND.load(SeqCst)).await
}

#[cached(expire = 1, stale = 600, timeout_ms = 100, namespace = "pm_slow")]
async fn slow(id: u64) -> Option<u64> {
    source(id, ROUND.load(SeqCst)).await
}

#[cached(expire = 1, stale = 600, namespace = "pm_res")]
async fn res(id: u64) -> Result<u64, String> {
    source(id, ROUND.load(SeqCst)).await.ok_or("down".into())
}

/// An error type whose response is a 500.
struct ApiError;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, "internal").into_response()
    }
}

#[cached(http, expire = 1, stale = 600, namespace = "ph_res")]
async fn h_res(Path(id): Path<u64>) -> Result<String, ApiError> {
    let v = source(id, ROUND.load(SeqCst)).await.ok_or(ApiError)?;
    Ok(v.to_string())
}

#[cached(
    http(route = "/h-route/{id}"),
    expire = 1,
    stale = 600,
    namespace = "ph_route"
)]
async fn h_route(Path(id): Path<u64>) -> Result<String, ApiError> {
    let v = source(id, ROUND.load(SeqCst)).await.ok_or(ApiError)?;
    Ok(v.to_string())
}

static STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Reads [`ROUND`] first; under `SLOW` then waits for [`GATE`].
#[cached(
    http(route = "/h-rf/{id}"),
    expire = 60,
    refresh_after = 1,
    namespace = "ph_rf"
)]
async fn h_rf(Path(id): Path<u64>) -> String {
    let round = ROUND.load(SeqCst);
    if MODE.load(SeqCst) == SLOW {
        STARTED.store(true, SeqCst);
        GATE.notified().await;
    }
    (id * 10 + round).to_string()
}

async fn serve() -> String {
    let app = Router::new()
        .route("/h-res/{id}", get(h_res))
        .route("/h-route/{id}", get(h_route))
        .route("/h-rf/{id}", get(h_rf));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// `(status, x-cache, body)` of a GET, or `(0, "", error)` when the connection failed.
async fn get_text(base: &str, path: &str) -> (u16, String, String) {
    get_with(base, path, &[]).await
}

/// [`get_text`] with request headers.
async fn get_with(base: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut request = reqwest::Client::new().get(format!("{base}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let Ok(r) = request.send().await else {
        return (0, String::new(), "no response".into());
    };
    let x = r
        .headers()
        .get("x-cache")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        r.status().as_u16(),
        x.unwrap_or_default(),
        r.text().await.unwrap(),
    )
}

async fn past_expire() {
    pass(Duration::from_millis(1100)).await;
}

/// The global memory cache, once per process.
async fn init() {
    static INIT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    INIT.get_or_init(|| async { cache_runtime::init(Config::memory()).await.unwrap() })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn macros_and_handlers_on_memory() {
    within(Duration::from_secs(60), async {
        init().await;
        functions().await;
        handlers().await;
        handler_refresh().await;
        invalidations().await;
    })
    .await;
}

/// `None` and a panic past expiry: the stale `Some`; `timeout_ms`: the stale value in time,
/// the late one stored.
async fn functions() {
    assert_eq!(
        (maybe(1).await, maybe(2).await, slow(1).await),
        (Some(10), Some(20), Some(10))
    );
    past_expire().await;
    ROUND.store(1, SeqCst);
    MODE.store(FAIL, SeqCst);
    assert_eq!(maybe(1).await, Some(10), "None: stale");
    MODE.store(PANIC, SeqCst);
    assert_eq!(maybe(2).await, Some(20), "panic: stale");
    assert_eq!(cache_runtime::stats().namespace("pm_opt").stale_served, 2);
    MODE.store(SLOW, SeqCst);
    let started = Instant::now();
    assert_eq!(slow(1).await, Some(10), "timeout_ms: stale");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    MODE.store(OK, SeqCst);
    GATE.notify_one();
    wait_until("the late value", Duration::from_secs(5), async || {
        slow(1).await == Some(11)
    })
    .await;
}

/// A handler whose error renders a 500, and one that panics, past expiry: `X-Cache: STALE`.
async fn handlers() {
    let base = serve().await;
    ROUND.store(2, SeqCst);
    assert_eq!(
        get_text(&base, "/h-res/1").await,
        (200, "MISS".into(), "12".into())
    );
    assert_eq!(
        get_text(&base, "/h-res/2").await,
        (200, "MISS".into(), "22".into())
    );
    past_expire().await;
    MODE.store(FAIL, SeqCst);
    assert_eq!(
        get_text(&base, "/h-res/1").await,
        (200, "STALE".into(), "12".into())
    );
    MODE.store(PANIC, SeqCst);
    assert_eq!(
        get_text(&base, "/h-res/2").await,
        (200, "STALE".into(), "22".into()),
        "a panicking handler past expiry"
    );
    MODE.store(OK, SeqCst);
}

/// The generated `_invalidate` (function and route) and `invalidate_all` remove stale copies.
async fn invalidations() {
    let base = serve().await;
    ROUND.store(3, SeqCst);
    assert_eq!((res(1).await, res(2).await), (Ok(13), Ok(23)));
    assert_eq!(get_text(&base, "/h-route/1").await.2, "13");
    past_expire().await;
    MODE.store(FAIL, SeqCst);
    res_invalidate(1).await.unwrap();
    h_route_invalidate(Path(1)).await.unwrap();
    assert_eq!(res(1).await, Err("down".into()), "f_invalidate");
    assert_eq!(
        get_text(&base, "/h-route/1").await.0,
        500,
        "route invalidate"
    );
    cache_runtime::invalidate_all().await.unwrap();
    assert_eq!(res(2).await, Err("down".into()), "invalidate_all");
    MODE.store(OK, SeqCst);
}

/// A handler refresh (`refresh_after`) that read the source before the route was invalidated:
/// its response is never served.
async fn handler_refresh() {
    let base = serve().await;
    ROUND.store(5, SeqCst);
    assert_eq!(
        get_text(&base, "/h-rf/1").await,
        (200, "MISS".into(), "15".into())
    );
    past_expire().await;
    ROUND.store(6, SeqCst);
    MODE.store(SLOW, SeqCst);
    assert_eq!(
        get_text(&base, "/h-rf/1").await,
        (200, "HIT".into(), "15".into())
    );
    wait_until("the refresh runs", Duration::from_secs(5), async || {
        STARTED.load(SeqCst)
    })
    .await;
    let stats = || {
        let s = cache_runtime::stats().namespace("ph_rf");
        s.inserts + s.superseded
    };
    let before = stats();
    h_rf_invalidate(Path(1)).await.unwrap();
    ROUND.store(7, SeqCst);
    MODE.store(OK, SeqCst);
    GATE.notify_one();
    wait_until("the refresh ends", Duration::from_secs(5), async || {
        stats() > before
    })
    .await;
    assert_eq!(
        get_text(&base, "/h-rf/1").await,
        (200, "MISS".into(), "17".into()),
        "a refresh that read before the invalidation was served"
    );
}
