//! The axum app and the scenarios shared by the HTTP caching tests (`http`, `http_redis`,
//! `http_tiered`): one handler per rule, each counting its runs, and one async scenario per
//! rule that talks to a real server over loopback with reqwest.
//!
//! This root holds the app (handlers, routes, run counters) and the client; the scenarios are
//! in `http_app/scenarios.rs`, re-exported here.

#![allow(dead_code)] // each test binary uses a part of it

#[path = "http_rules.rs"]
pub mod rules;

#[path = "http_resil.rs"]
pub mod resil;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use cache_runtime::cached;
use reqwest::Response;
use serde_json::{Value, json};

#[path = "http_app/scenarios.rs"]
mod scenarios;

pub use scenarios::*;

static RUNS: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);

/// Counts a run of the handler for `label`; returns the run number.
pub(crate) fn run(label: impl Into<String>) -> u64 {
    let mut guard = RUNS.lock().unwrap();
    let n = guard
        .get_or_insert_with(HashMap::new)
        .entry(label.into())
        .or_default();
    *n += 1;
    *n
}

/// How many times the handler for `label` ran.
pub fn runs(label: &str) -> u64 {
    RUNS.lock()
        .unwrap()
        .as_ref()
        .and_then(|m| m.get(label).copied())
        .unwrap_or(0)
}

/// State that is not `Serialize`: it cannot be part of any key.
#[derive(Clone)]
pub struct AppState {
    _pool: std::sync::Arc<()>,
}

#[cached(http, expire = 60, namespace = "things")]
async fn thing(Path(id): Path<u64>, State(_state): State<AppState>) -> Json<Value> {
    Json(json!({ "id": id, "run": run(format!("thing/{id}")) }))
}

/// Requested by `http.rs`'s statistics test only: a namespace no other scenario fills.
#[cached(http, expire = 60, namespace = "counted")]
async fn counted(Path(id): Path<u64>) -> String {
    format!("counted {id}")
}

#[cached(http, expire = 60, namespace = "ns-things")]
async fn ns_thing(Path(id): Path<u64>) -> Json<Value> {
    Json(json!({ "id": id, "run": run(format!("ns-thing/{id}")) }))
}

#[cached(http, expire = 60, namespace = "query")]
async fn query(Query(params): Query<BTreeMap<String, String>>) -> String {
    format!("{params:?} run {}", run("query"))
}

#[cached(expire = 60, namespace = "lang", http(vary("accept-language")))]
async fn lang(headers: HeaderMap) -> String {
    let lang = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_owned();
    format!("{lang} run {}", run(format!("lang/{lang}")))
}

#[cached(http, expire = 60, namespace = "status")]
async fn status(Path(code): Path<u16>) -> impl IntoResponse {
    let n = run(format!("status/{code}"));
    (StatusCode::from_u16(code).unwrap(), format!("run {n}"))
}

#[cached(expire = 60, namespace = "status-404", http(statuses(200, 404)))]
async fn status_404(Path(code): Path<u16>) -> impl IntoResponse {
    let n = run(format!("status-404/{code}"));
    (StatusCode::from_u16(code).unwrap(), format!("run {n}"))
}

#[cached(http, expire = 60, namespace = "refusals")]
async fn refusal(Path(kind): Path<String>) -> impl IntoResponse {
    let n = run(format!("refusal/{kind}"));
    let (name, value) = match kind.as_str() {
        "cookie" => (header::SET_COOKIE, "session=1"),
        "private" => (header::CACHE_CONTROL, "private, max-age=10"),
        _ => (header::CACHE_CONTROL, "no-store"),
    };
    ([(name, value)], format!("run {n}"))
}

#[cached(http(validate_only))]
async fn validate() -> String {
    run("validate");
    "the same bytes every time".to_owned()
}

#[cached(http, expire = 60, namespace = "auth")]
async fn auth() -> Json<Value> {
    Json(json!({ "run": run("auth") }))
}

#[cached(expire = 60, namespace = "auth-shared", http(allow_credentials))]
async fn auth_shared() -> Json<Value> {
    Json(json!({ "run": run("auth-shared") }))
}

#[cached(expire = 60, namespace = "auth-vary", http(vary("authorization")))]
async fn auth_vary(headers: HeaderMap) -> String {
    let who = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    format!("{who} run {}", run(format!("auth-vary/{who}")))
}

#[cached(
    expire = 60,
    namespace = "custom",
    http(private, status_header = "X-Cache-Status")
)]
async fn custom() -> &'static str {
    run("custom");
    "custom"
}

#[cached(namespace = "no-ttl", http)]
async fn no_ttl() -> &'static str {
    run("no-ttl");
    "kept until invalidated"
}

/// The app: one route per rule.
pub fn app() -> Router {
    Router::new()
        .route("/thing/{id}", get(thing).post(thing).put(thing))
        .route("/ns-thing/{id}", get(ns_thing))
        .route("/counted/{id}", get(counted))
        .route("/query", get(query))
        .route("/lang", get(lang))
        .route("/status/{code}", get(status))
        .route("/status-404/{code}", get(status_404))
        .route("/refusal/{kind}", get(refusal))
        .route("/validate", get(validate))
        .route("/auth", get(auth))
        .route("/auth-shared", get(auth_shared))
        .route("/auth-vary", get(auth_vary))
        .route("/custom", get(custom))
        .route("/no-ttl", get(no_ttl))
        .with_state(AppState {
            _pool: std::sync::Arc::new(()),
        })
        .merge(rules::routes())
        .merge(resil::routes())
}

/// Serves [`app`] on a free loopback port (on the current runtime); returns the base URL.
pub async fn serve() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app()).await.unwrap() });
    format!("http://{addr}")
}

/// A client and the server's base URL.
pub struct Ctx {
    pub base: String,
    pub client: reqwest::Client,
}

impl Ctx {
    pub fn new(base: String) -> Self {
        Self {
            base,
            client: reqwest::Client::new(),
        }
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.send(reqwest::Method::GET, path, headers).await
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        req.send().await.unwrap()
    }
}

pub fn header<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).map(|v| v.to_str().unwrap())
}

pub fn x_cache(resp: &Response) -> &str {
    header(resp, "x-cache").unwrap_or("<none>")
}

/// Runs every scenario in order (one process-global cache per test binary).
pub async fn all(c: &Ctx) {
    miss_then_hit(c).await;
    if_none_match(c).await;
    head_shares_get(c).await;
    other_methods_pass_through(c).await;
    request_no_store(c).await;
    request_no_cache_refreshes(c).await;
    query_in_canonical_order(c).await;
    vary_on_headers(c).await;
    only_2xx_stored(c).await;
    handler_refusals_not_stored(c).await;
    credentials(c).await;
    validate_only(c).await;
    invalidation(c).await;
    handler_overrides(c).await;
    rules::all(c).await;
    resil::all(c).await;
}
