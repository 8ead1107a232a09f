//! Handlers and scenarios of the client-consistency rules (issue 10): client freshness apart
//! from the server TTL, validators, request directives, invalidation of every variant of a
//! path. Part of `http_app.rs`, so every backend (memory, Redis, tiered) runs them.

use axum::Router;
use axum::extract::Path;
use axum::http::Uri;
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

/// One item, with query and language variants.
#[cached(http(vary("accept-language")), expire = 600, namespace = "pv")]
async fn pv_item(Path(_id): Path<u64>, uri: Uri) -> String {
    format!("{uri} run {}", run(format!("pv{uri}")))
}

/// The list, with query variants.
#[cached(http, expire = 600, namespace = "pv")]
async fn pv_list(uri: Uri) -> String {
    format!("{uri} run {}", run(format!("pv{uri}")))
}

/// The routes of these rules.
pub fn routes() -> Router {
    Router::new()
        .route("/fresh", get(fresh))
        .route("/shared-only", get(shared_only))
        .route("/pv", get(pv_list))
        .route("/pv/{id}", get(pv_item))
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

/// `invalidate_path` drops every variant of the path (any query, any varied header) and
/// nothing else; a namespace invalidation still drops them all.
pub async fn invalidate_path_drops_every_variant(c: &Ctx) {
    let de = [("accept-language", "de")];
    let variants: [(&str, &[(&str, &str)]); 4] = [
        ("/pv/1", &[]),
        ("/pv/1?x=1", &[]),
        ("/pv/1", &de),
        ("/pv?sort=name", &[]),
    ];
    let status = async |path: &str, headers: &[(&str, &str)]| {
        x_cache(&c.get(path, headers).await).to_owned()
    };
    for (path, headers) in variants {
        status(path, headers).await;
        assert_eq!(status(path, headers).await, "HIT", "{path} {headers:?}");
    }
    cache_runtime::http::invalidate_path("pv", "/pv/1").await;
    for (path, headers) in &variants[..3] {
        assert_eq!(status(path, headers).await, "MISS", "{path} {headers:?}");
    }
    assert_eq!(status("/pv?sort=name", &[]).await, "HIT", "another path");
    assert_eq!(status("/pv/1?x=1", &[]).await, "HIT", "cached again");

    cache_runtime::http::invalidate_path("pv", "/pv").await;
    assert_eq!(status("/pv?sort=name", &[]).await, "MISS");
    assert_eq!(status("/pv/1", &de).await, "HIT", "another path");

    cache_runtime::invalidate_namespace("pv").await;
    for (path, headers) in variants {
        assert_eq!(status(path, headers).await, "MISS", "{path} {headers:?}");
    }
}

/// Runs every scenario of this module.
pub async fn all(c: &Ctx) {
    invalidate_path_drops_every_variant(c).await;
    revalidate_by_default(c).await;
    client_freshness_opt_in(c).await;
}
