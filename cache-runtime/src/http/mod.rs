//! HTTP caching of axum 0.8 handlers (feature `axum`): `#[cached]` on a handler stores its
//! response and speaks HTTP caching (ETag, 304, `Cache-Control`, `Age`, `X-Cache`).
//!
//! ```
//! use axum::{Json, Router, extract::{Path, State}, http::StatusCode, routing::get};
//! use cache_runtime::cached;
//!
//! #[derive(Clone)]
//! struct Db;
//!
//! #[derive(serde::Serialize)]
//! struct Item { id: u64, name: String }
//!
//! #[cached(http, expire = 60, namespace = "items")]
//! async fn get_item(Path(id): Path<u64>, State(db): State<Db>) -> Json<Item> {
//!     Json(Item { id, name: format!("item {id}") })
//! }
//!
//! async fn put_item(Path(id): Path<u64>) -> StatusCode {
//!     // ... write the item, then drop its cached responses (every query and header
//!     // variant), in every process:
//!     match cache_runtime::http::invalidate_path("items", &format!("/items/{id}")).await {
//!         Ok(()) => StatusCode::NO_CONTENT,
//!         // Redis unreachable: the invalidation is kept and re-applied when it answers.
//!         Err(_) => StatusCode::ACCEPTED,
//!     }
//! }
//!
//! let app: Router = Router::new()
//!     .route("/items/{id}", get(get_item).put(put_item))
//!     .with_state(Db);
//! ```
//!
//! # Handlers are explicit
//! `#[cached]` caches an `async fn` as an axum handler only when the attribute says `http` or
//! `http(...)`; nothing is inferred from argument or type names (a type of yours called
//! `State` is a plain argument). Without `http`, an extractor pattern of the extractor's own
//! type (`Path(id): Path<u64>`, `State(db): State<Db>`, ...) or an `impl Trait` return type
//! is a compile error that says to add `http`: such a function cannot be a plain cached one.
//!
//! A handler's key is the
//! request, never its arguments: extractors such as `State` and database pools are not part
//! of it, so `key = ...`, `skip(...)`, `cache_none` and `version` are compile errors on a
//! handler. The expansion adds one extractor argument ([`RequestParts`]: method, URI,
//! headers) before the handler's own, and returns an [`axum::response::Response`]; the body
//! runs unchanged when the cache has to run it.
//!
//! # `http(...)` options
//! | option | meaning | default |
//! |---|---|---|
//! | `vary("accept-language", ...)` | request headers that select the response: part of the key, sent in `Vary` | none |
//! | `public` / `private` | `Cache-Control` visibility | [`HttpConfig`] (`public`) |
//! | `status_header = "X-Cache-Status"` | the `HIT` / `MISS` / `BYPASS` header | [`HttpConfig`] (`X-Cache`) |
//! | `validate_only` | ETag and 304 only, nothing stored (the handler always runs) | off |
//! | `allow_credentials` | requests with `Authorization` / `Cookie` may use the shared entry | off |
//! | `statuses(200, 404)` | status codes that may be stored | 2xx except 206 |
//! | `max_age = N` | clients may reuse a response `N` s without asking (`max-age=N`) | `no-cache` |
//! | `s_maxage = N` | shared caches (CDNs, proxies) may reuse it `N` s (`s-maxage=N`) | none |
//! | `stale_while_revalidate = N` | `stale-while-revalidate=N` | none |
//! | `stale_if_error = N` | `stale-if-error=N` | none |
//! | `immutable` | `immutable` | off |
//! | `route = "/items/{id}"` | the handler's full route: generates `{fn}_invalidate(Path(..))`, taking the handler's `Path` arguments, which drops every response of that path (see [`invalidate_path`]) | none |
//!
//! `stale = N` and `refresh_after = N` (top-level options, as on functions) apply to handlers
//! too: a handler that fails (a 5xx) past `expire` gets the stored response, marked
//! `X-Cache: STALE`; a hit older than `refresh_after` is refreshed in the background (the
//! handler's future must then be `Send + 'static`, as axum handlers taking their extractors by
//! value are). `timeout_ms` does not apply to handlers.
//!
//! `expire = N` is how long the **server** keeps an entry; `namespace` groups entries for
//! [`crate::invalidate_namespace`] and [`invalidate_path`]. What **clients and shared caches**
//! may do is separate (`http(max_age = ..)` and the other freshness options): by default responses say
//! `Cache-Control: public, no-cache` with an `ETag`, so browsers, nginx and CDNs may store
//! them but ask every time; the server answers that from its own cache with a bodiless 304
//! (no handler run), and since writes invalidate the server's entries nobody sees a response
//! older than the last write. `max_age = N` buys fewer requests at the price of staleness:
//! after a write a client may keep showing the old response for up to `N` seconds (`s_maxage`:
//! the same for shared caches), and no invalidation reaches it.
//!
//! ```
//! # use axum::{Json, http::HeaderMap};
//! # use cache_runtime::cached;
//! // One entry per language, announced in `Vary: accept-language`; browsers only, which may
//! // reuse it for a minute without asking (and show it up to a minute after a change).
//! #[cached(expire = 300, namespace = "home", http(vary("accept-language"), private, max_age = 60))]
//! async fn home(headers: HeaderMap) -> Json<String> {
//!     let lang = headers.get("accept-language").and_then(|v| v.to_str().ok()).unwrap_or("en");
//!     Json(format!("hello ({lang})"))
//! }
//!
//! // Only validation: the body always runs, a matching If-None-Match gets a 304.
//! #[cached(http(validate_only))]
//! async fn report() -> String {
//!     "a large report".to_owned()
//! }
//! # let _: axum::Router = axum::Router::new()
//! #     .route("/", axum::routing::get(home))
//! #     .route("/report", axum::routing::get(report));
//! ```
//!
//! # Behaviour
//! - **Methods**: GET and HEAD are served from the cache (HEAD from GET's entry, headers
//!   only); any other method runs the handler and returns its response untouched.
//! - **What is stored**: status, the headers that matter and the body bytes, for 2xx
//!   responses (but 206) that set no cookie and whose `Cache-Control` says neither `private`,
//!   `no-store` nor `no-cache`. Everything else passes through.
//! - **ETag**: strong, quoted, BLAKE3 of the body bytes, the same in every process
//!   (a hash of the body). `If-None-Match` (a list, weak comparison, `*`) that matches gives `304 Not
//!   Modified` with `ETag`, `Last-Modified`, `Cache-Control` and no body, on a hit without
//!   running the handler, and on a miss too.
//! - **Headers we send**: `Cache-Control: public|private, no-cache` (or the `max_age`, ...
//!   options), `Age` on hits, `Vary` for varied headers, and `X-Cache: HIT|MISS|BYPASS`.
//! - **Validators**: `ETag` and `Last-Modified` (the entry's creation time).
//!   `If-None-Match` decides when present; otherwise `If-Modified-Since` at or after
//!   `Last-Modified` gives a 304 (RFC 9110 13.1.3).
//! - **Request `Cache-Control`** (RFC 9111 5.2.1): `no-store` means no read
//!   and no write (`BYPASS`); `no-cache` or `max-age=0` run the handler and refresh the entry
//!   (`MISS`); `max-age=N` refreshes an entry older than `N` s and `min-fresh=N` one whose
//!   server TTL ends within `N` s; `max-stale[=N]` is accepted and changes nothing (the server
//!   never serves an expired entry); `only-if-cached` answers from the cache or with `504
//!   Gateway Timeout`, never running the handler. Lists such as `no-cache, no-store` work.
//! - **Key**: GET, the path, the query in canonical order, and the values of the
//!   varied headers.
//! - **Credentials**: a request with `Authorization` or `Cookie` is never answered from, nor
//!   stored into, a shared entry (`BYPASS`, `Cache-Control: private`), unless the handler
//!   opts in with `allow_credentials`, or varies on `authorization` / `cookie` (one entry per
//!   credential, sent `private`).
//! - **Failures**: the cache never fails a request: a backend error serves the handler's
//!   response (`MISS`), logged and counted.
//!
//! # Invalidation
//! With `http(route = "/items/{id}")` the macro adds a typed companion next to the handler,
//! taking the handler's `Path` arguments: `get_item_invalidate(Path(id)).await?` drops every
//! cached response of `/items/{id}` (any query, any varied header). The placeholders must be
//! named like the `Path` bindings (a compile error says so), and the route is the full path
//! the client requests (include a `Router::nest` prefix).
//!
//! ```
//! # use axum::{Json, extract::Path};
//! # use cache_runtime::cached;
//! #[cached(http(route = "/items/{id}"), expire = 60, namespace = "items")]
//! async fn get_item(Path(id): Path<u64>) -> Json<u64> {
//!     Json(id)
//! }
//!
//! async fn put_item(Path(id): Path<u64>) -> axum::http::StatusCode {
//!     // ... write, then:
//!     match get_item_invalidate(Path(id)).await {
//!         Ok(()) => axum::http::StatusCode::NO_CONTENT,
//!         Err(_) => axum::http::StatusCode::ACCEPTED, // kept, re-applied later
//!     }
//! }
//! # let _: axum::Router = axum::Router::new()
//! #     .route("/items/{id}", axum::routing::get(get_item).put(put_item));
//! ```
//!
//! [`invalidate_path`] does the same from a string, [`crate::invalidate_namespace`] drops
//! all responses of a namespace. All work on every backend, across processes, in O(1).

// The HTTP rules' building blocks: hidden (not a stable API), public for their tests.
#[doc(hidden)]
pub mod cache_control;
mod config;
#[doc(hidden)]
pub mod etag;
mod invalidate;
#[doc(hidden)]
pub mod key;
mod refresh;
mod reply;
mod request;
#[doc(hidden)]
pub mod response;
mod serve;
mod site;
#[doc(hidden)]
pub mod validators;

pub use cache_control::Visibility;
pub use config::{HttpConfig, configure};
pub use invalidate::{invalidate_path, invalidate_path_in};
pub use request::RequestParts;
pub use response::StoredResponse;
#[doc(hidden)]
pub use serve::{serve, serve_detachable};
#[doc(hidden)]
pub use site::{HandlerSpec, HttpSite};

/// Re-exports for the expansion: the user's crate need not name `axum` itself.
#[doc(hidden)]
pub mod __reexport {
    pub use axum::response::{IntoResponse, Response};
}
