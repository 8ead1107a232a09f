//! Handlers and scenarios of resilience on handlers (issue 9): `stale` serves the stored
//! response when the handler fails (a 5xx), marked `STALE`; `refresh_after` refreshes older
//! responses in the background. Part of `http_app.rs`, so every backend runs them.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use cache_runtime::cached;

use super::{Ctx, run, runs, x_cache};

/// How each path of `/h-stale/{id}` answers: `fail` (502), `missing` (404), or normally.
static MODES: Mutex<Option<HashSet<(u64, &'static str)>>> = Mutex::new(None);

fn set_mode(id: u64, mode: &'static str, on: bool) {
    let mut modes = MODES.lock().unwrap();
    let modes = modes.get_or_insert_with(HashSet::new);
    if on {
        modes.insert((id, mode));
    } else {
        modes.remove(&(id, mode));
    }
}

fn mode(id: u64, mode: &'static str) -> bool {
    MODES
        .lock()
        .unwrap()
        .as_ref()
        .is_some_and(|m| m.contains(&(id, mode)))
}

#[cached(http, expire = 1, stale = 600, namespace = "h-stale")]
async fn flaky(Path(id): Path<u64>) -> Result<String, StatusCode> {
    let n = run(format!("h-stale/{id}"));
    if mode(id, "fail") {
        return Err(StatusCode::BAD_GATEWAY);
    }
    if mode(id, "missing") {
        return Err(StatusCode::NOT_FOUND);
    }
    Ok(format!("{id} run {n}"))
}

#[cached(http, expire = 60, refresh_after = 1, namespace = "h-refresh")]
async fn aging(Path(id): Path<u64>) -> String {
    format!("{id} run {}", run(format!("h-refresh/{id}")))
}

pub fn routes() -> Router {
    Router::new()
        .route("/h-stale/{id}", get(flaky))
        .route("/h-refresh/{id}", get(aging))
}

/// Waits until `d` of real time has passed (entries expire on the backend's clock).
async fn pass(d: Duration) {
    let until = Instant::now() + d;
    cache_tests::wait_until("time passes", d * 2, async || Instant::now() >= until).await;
}

async fn text(c: &Ctx, path: &str) -> (u16, String, String) {
    let r = c.get(path, &[]).await;
    let (status, x) = (r.status().as_u16(), x_cache(&r).to_owned());
    (status, x, r.text().await.unwrap())
}

/// Past `expire`, a failing handler (5xx) gets the stored response, marked `STALE`, and is not
/// run again for a moment; a 404 is not a failure (nor backed off from); the handler
/// recovers; an invalidated response is never served stale.
pub async fn stale_serves_the_stored_response_when_the_handler_fails(c: &Ctx) {
    let before = cache_runtime::stats().namespace("h-stale").stale_served;
    assert_eq!(
        text(c, "/h-stale/1").await,
        (200, "MISS".into(), "1 run 1".into())
    );
    assert_eq!(text(c, "/h-stale/2").await.1, "MISS");
    pass(Duration::from_millis(1100)).await;
    set_mode(1, "fail", true);
    assert_eq!(
        text(c, "/h-stale/1").await,
        (200, "STALE".into(), "1 run 1".into())
    );
    assert_eq!(
        text(c, "/h-stale/1").await.1,
        "STALE",
        "within the back-off"
    );
    assert_eq!(
        runs("h-stale/1"),
        2,
        "the failing handler is not retried at once"
    );
    let after = cache_runtime::stats().namespace("h-stale").stale_served;
    assert!(after >= before + 2, "counted: {before} -> {after}");
    // A 404 is an answer, not a failure: passed on, and the handler is not held back by it
    // (on Redis the recompute lease is given back, not kept for the back-off).
    set_mode(2, "missing", true);
    assert_eq!(text(c, "/h-stale/2").await.0, 404);
    set_mode(2, "missing", false);
    let (status, x, _) = text(c, "/h-stale/2").await;
    assert_eq!(
        (status, x.as_str()),
        (200, "MISS"),
        "after a 404 the handler runs again at once"
    );
    // Recovery: after the back-off the handler runs and its response is stored.
    set_mode(1, "fail", false);
    cache_tests::wait_until("recovery", Duration::from_secs(5), async || {
        text(c, "/h-stale/1").await.1 == "MISS"
    })
    .await;
    assert_eq!(text(c, "/h-stale/1").await.1, "HIT");
    // Invalidated past expiry: the stored response is gone, the failure is the answer.
    pass(Duration::from_millis(1100)).await;
    set_mode(1, "fail", true);
    cache_runtime::http::invalidate_path("h-stale", "/h-stale/1")
        .await
        .unwrap();
    assert_eq!(text(c, "/h-stale/1").await.0, 502);
}

/// A hit past `refresh_after` is answered at once (`HIT`) and refreshed once in the background.
pub async fn refresh_after_refreshes_in_the_background(c: &Ctx) {
    let before = cache_runtime::stats().namespace("h-refresh").refreshes;
    assert_eq!(text(c, "/h-refresh/1").await.2, "1 run 1");
    pass(Duration::from_millis(1100)).await;
    let hits: Vec<_> = (0..20)
        .map(|_| {
            let c = Ctx::new(c.base.clone());
            tokio::spawn(async move { text(&c, "/h-refresh/1").await })
        })
        .collect();
    for hit in hits {
        let (status, x, body) = hit.await.unwrap();
        assert_eq!((status, x.as_str()), (200, "HIT"));
        assert!(body == "1 run 1" || body == "1 run 2", "{body}");
    }
    cache_tests::wait_until("the refresh", Duration::from_secs(5), async || {
        text(c, "/h-refresh/1").await.2 == "1 run 2"
    })
    .await;
    assert_eq!(runs("h-refresh/1"), 2, "refreshed once");
    let after = cache_runtime::stats().namespace("h-refresh").refreshes;
    assert_eq!(after, before + 1);
}

/// A client's `no-cache` (a browser's reload) while the handler fails: the stored response
/// (`STALE`), which stays stored (a refresh must not remove it before its replacement is
/// ready); the handler's 502 once the response was invalidated.
pub async fn no_cache_while_the_handler_fails_gets_the_stored_response(c: &Ctx) {
    let no_cache = [("cache-control", "no-cache")];
    let fresh = async |c: &Ctx| {
        let r = c.get("/h-stale/3", &no_cache).await;
        let (status, x) = (r.status().as_u16(), x_cache(&r).to_owned());
        (status, x, r.text().await.unwrap())
    };
    assert_eq!(
        text(c, "/h-stale/3").await,
        (200, "MISS".into(), "3 run 1".into())
    );
    set_mode(3, "fail", true);
    assert_eq!(fresh(c).await, (200, "STALE".into(), "3 run 1".into()));
    assert_eq!(runs("h-stale/3"), 2, "the handler was asked");
    let (status, _, body) = text(c, "/h-stale/3").await;
    assert_eq!((status, body.as_str()), (200, "3 run 1"), "still stored");
    set_mode(3, "fail", false);
    cache_tests::wait_until("recovery", Duration::from_secs(5), async || {
        fresh(c).await.1 == "MISS"
    })
    .await;
    set_mode(3, "fail", true);
    cache_runtime::http::invalidate_path("h-stale", "/h-stale/3")
        .await
        .unwrap();
    assert_eq!(fresh(c).await.0, 502, "invalidated: nothing to serve");
    set_mode(3, "fail", false);
}

pub async fn all(c: &Ctx) {
    stale_serves_the_stored_response_when_the_handler_fails(c).await;
    no_cache_while_the_handler_fails_gets_the_stored_response(c).await;
    refresh_after_refreshes_in_the_background(c).await;
}
