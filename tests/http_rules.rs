//! Handlers and scenarios of the client-consistency rules (issue 10): client freshness apart
//! from the server TTL, validators, request directives, invalidation of every variant of a
//! path, percent-escapes in the key. Part of `http_app.rs`, so every backend (memory, Redis, tiered) runs them.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query};
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

/// Two path parameters, with the typed invalidation companion `typed_invalidate`.
#[cached(http(route = "/typed/{kind}/{id}"), expire = 600, namespace = "typed")]
async fn typed(Path((kind, id)): Path<(String, u64)>, uri: Uri) -> String {
    format!("{kind} {id} run {}", run(format!("typed{uri}")))
}

/// Echoes its decoded path parameter and query.
#[cached(http, expire = 600, namespace = "decoded")]
async fn decoded(Path(name): Path<String>, Query(q): Query<BTreeMap<String, String>>) -> String {
    format!("{name} {q:?} run {}", run(format!("decoded/{name}")))
}

/// The routes of these rules.
pub fn routes() -> Router {
    Router::new()
        .route("/fresh", get(fresh))
        .route("/shared-only", get(shared_only))
        .route("/pv", get(pv_list))
        .route("/pv/{id}", get(pv_item))
        .route("/typed/{kind}/{id}", get(typed))
        .route("/decoded/{name}", get(decoded))
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
    cache_runtime::http::invalidate_path("pv", "/pv/1")
        .await
        .unwrap();
    for (path, headers) in &variants[..3] {
        assert_eq!(status(path, headers).await, "MISS", "{path} {headers:?}");
    }
    assert_eq!(status("/pv?sort=name", &[]).await, "HIT", "another path");
    assert_eq!(status("/pv/1?x=1", &[]).await, "HIT", "cached again");

    cache_runtime::http::invalidate_path("pv", "/pv")
        .await
        .unwrap();
    assert_eq!(status("/pv?sort=name", &[]).await, "MISS");
    assert_eq!(status("/pv/1", &de).await, "HIT", "another path");

    cache_runtime::invalidate_namespace("pv").await.unwrap();
    for (path, headers) in variants {
        assert_eq!(status(path, headers).await, "MISS", "{path} {headers:?}");
    }
}

/// `Last-Modified` is the entry's creation time; without `If-None-Match`, `If-Modified-Since`
/// at or after it gives a 304 from the cache.
pub async fn last_modified_and_if_modified_since(c: &Ctx) {
    let first = c.get("/thing/300", &[]).await;
    let lm = header(&first, "last-modified")
        .expect("last-modified")
        .to_owned();
    let created = httpdate::parse_http_date(&lm).unwrap();
    let age = std::time::SystemTime::now()
        .duration_since(created)
        .unwrap();
    assert!(age < std::time::Duration::from_secs(60), "{lm}");
    let r = c.get("/thing/300", &[("if-modified-since", &lm)]).await;
    assert_eq!((r.status().as_u16(), x_cache(&r)), (304, "HIT"));
    assert_eq!(header(&r, "last-modified"), Some(lm.as_str()));
    let earlier = httpdate::fmt_http_date(created - std::time::Duration::from_secs(86_400));
    let r = c
        .get("/thing/300", &[("if-modified-since", &earlier)])
        .await;
    assert_eq!(r.status(), 200, "modified since the day before");
    let r = c
        .get(
            "/thing/300",
            &[("if-modified-since", &lm), ("if-none-match", "\"other\"")],
        )
        .await;
    assert_eq!(r.status(), 200, "If-None-Match decides when present");
    assert_eq!(runs("thing/300"), 1);
}

/// Request `max-age=N` refreshes an entry older than N s; `min-fresh=N` one that expires
/// within N s; `max-stale` is accepted.
pub async fn request_max_age_min_fresh_max_stale(c: &Ctx) {
    let cc = |v| [("cache-control", v)];
    assert_eq!(x_cache(&c.get("/thing/301", &[]).await), "MISS");
    for d in ["max-age=3600", "min-fresh=30", "max-stale", "max-stale=5"] {
        assert_eq!(x_cache(&c.get("/thing/301", &cc(d)).await), "HIT", "{d}");
    }
    let r = c.get("/thing/301", &cc("min-fresh=120")).await;
    assert_eq!(x_cache(&r), "MISS", "the entry expires within 120 s");
    assert_eq!(runs("thing/301"), 2);
    // max-age=1: a hit until the entry is more than a second old, then a refresh.
    cache_tests::wait_until("max-age=1 refreshes", Duration::from_secs(10), async || {
        x_cache(&c.get("/thing/301", &cc("max-age=1")).await) == "MISS"
    })
    .await;
    assert_eq!(runs("thing/301"), 3);
    assert_eq!(x_cache(&c.get("/thing/301", &[]).await), "HIT");
}

/// `only-if-cached`: a stored response, or 504 without running the handler.
pub async fn request_only_if_cached(c: &Ctx) {
    let only = [("cache-control", "only-if-cached")];
    let r = c.get("/thing/303", &only).await;
    assert_eq!(r.status(), 504);
    assert_eq!(runs("thing/303"), 0);
    c.get("/thing/303", &[]).await;
    let r = c.get("/thing/303", &only).await;
    assert_eq!((r.status().as_u16(), x_cache(&r)), (200, "HIT"));
    assert_eq!(runs("thing/303"), 1);
}

/// `http(route = ...)` generates `{fn}_invalidate(Path(..))`: the path from typed parameters.
pub async fn typed_handler_invalidation(c: &Ctx) {
    let status = async |path: &str| x_cache(&c.get(path, &[]).await).to_owned();
    for path in ["/typed/a/1", "/typed/a/1?q=1", "/typed/a/2", "/typed/b/1"] {
        status(path).await;
        assert_eq!(status(path).await, "HIT", "{path}");
    }
    typed_invalidate(Path(("a".to_owned(), 1))).await.unwrap();
    assert_eq!(status("/typed/a/1").await, "MISS");
    assert_eq!(status("/typed/a/1?q=1").await, "MISS");
    assert_eq!(status("/typed/a/2").await, "HIT");
    assert_eq!(status("/typed/b/1").await, "HIT");
}

/// The key is the request as the handler gets it: a path or query spelled with percent-escapes
/// (or `+` for a space), between plain characters, shares the entry of the plain spelling.
pub async fn escapes_share_the_entry(c: &Ctx) {
    let plain = c.get("/decoded/ab?q=x1+y", &[]).await;
    assert_eq!(x_cache(&plain), "MISS");
    let body = plain.text().await.unwrap();
    for spelling in ["/decoded/a%62?q=x1+y", "/decoded/%61b?q=x%31%20y"] {
        let r = c.get(spelling, &[]).await;
        assert_eq!(x_cache(&r), "HIT", "{spelling}");
        assert_eq!(r.text().await.unwrap(), body, "{spelling}");
    }
    assert_eq!(runs("decoded/ab"), 1);
}

/// Runs every scenario of this module.
pub async fn all(c: &Ctx) {
    typed_handler_invalidation(c).await;
    last_modified_and_if_modified_since(c).await;
    request_max_age_min_fresh_max_stale(c).await;
    request_only_if_cached(c).await;
    invalidate_path_drops_every_variant(c).await;
    revalidate_by_default(c).await;
    client_freshness_opt_in(c).await;
    escapes_share_the_entry(c).await;
}
