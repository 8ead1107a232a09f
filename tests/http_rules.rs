//! Handlers and scenarios of the client-consistency rules (issue 10): client freshness apart
//! from the server TTL, validators, request directives, invalidation of every variant of a
//! path. Part of `http_app.rs`, so every backend (memory, Redis, tiered) runs them.

use axum::Router;
use axum::routing::get;
use cache_runtime::cached;

use super::{Ctx, header, run, runs, x_cache};

#[cached(
    http(
        max_age = 30,
        s_maxage = 60,
        stale_while_revalidate = 5,
        stale_if_error = 100,
        immutable
    ),
    expire = 600,
    namespace = "fresh"
)]
async fn fresh() -> String {
    format!("fresh run {}", run("fresh"))
}

#[cached(http(s_maxage = 20), namespace = "shared-only")]
async fn shared_only() -> &'static str {
    "shared"
}

/// The routes of these rules.
pub fn routes() -> Router {
    Router::new()
        .route("/fresh", get(fresh))
        .route("/shared-only", get(shared_only))
}

/// Without `max_age` clients must revalidate every time (`no-cache`), and a revalidation is a
/// 304 answered from the server's cache without running the handler.
pub async fn revalidate_by_default(c: &Ctx) {
    let first = c.get("/thing/200", &[]).await;
    assert_eq!(header(&first, "cache-control"), Some("public, no-cache"));
    let tag = header(&first, "etag").unwrap().to_owned();
    let again = c.get("/thing/200", &[("if-none-match", &tag)]).await;
    assert_eq!(again.status(), 304);
    assert_eq!(x_cache(&again), "HIT");
    assert_eq!(header(&again, "cache-control"), Some("public, no-cache"));
    assert_eq!(runs("thing/200"), 1);
}

/// `http(max_age = ..., ...)` opts in to client and shared-cache freshness, independent of
/// `expire`.
pub async fn client_freshness_opt_in(c: &Ctx) {
    let r = c.get("/fresh", &[]).await;
    assert_eq!(
        header(&r, "cache-control"),
        Some(
            "public, max-age=30, s-maxage=60, stale-while-revalidate=5, stale-if-error=100, \
             immutable"
        )
    );
    let r = c.get("/shared-only", &[]).await;
    assert_eq!(
        header(&r, "cache-control"),
        Some("public, max-age=0, s-maxage=20")
    );
}

/// Runs every scenario of this module.
pub async fn all(c: &Ctx) {
    revalidate_by_default(c).await;
    client_freshness_opt_in(c).await;
}
