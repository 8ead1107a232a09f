//! Async caching for Rust services: `#[cached]` functions and axum handlers over an embedded
//! moka cache, Redis, Redis Cluster, or both tiered (an in-process L1 kept consistent across
//! processes by an invalidation bus).
//!
//! ```
//! use cache_runtime::{cached, Config};
//!
//! #[derive(Clone, serde::Serialize, serde::Deserialize)]
//! struct User { id: u64, name: String }
//!
//! #[derive(Debug)]
//! struct DbError;
//!
//! #[cached(expire = 60, namespace = "user")]
//! async fn get_user(id: u64) -> Result<User, DbError> {
//!     Ok(User { id, name: format!("user {id}") }) // a slow query, in real life
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), cache_runtime::Error> {
//!     cache_runtime::init(Config::memory()).await?;       // the embedded default
//!     let u = get_user(42).await;                         // miss: the body runs, Ok is stored
//!     let u = get_user(42).await;                         // hit: the body does not run
//!     get_user_invalidate(42).await?;                     // that one entry, everywhere
//!     cache_runtime::invalidate_namespace("user").await?; // every entry of "user"
//!     assert_eq!(cache_runtime::stats().namespace("user").hits, 1);
//!     Ok(())
//! }
//! ```
//!
//! # Backends
//! | config | where entries live | use it for |
//! |---|---|---|
//! | [`Config::memory`] | this process (moka), typed values, no decoding | one process, tests, immutable data |
//! | [`Config::redis`] | one Redis server, shared by every process | several workers or machines |
//! | [`Config::redis_cluster`] | a Redis Cluster | more data or load than one Redis takes |
//! | `…`[`.with_l1(…)`](Config::with_l1) | both: an L1 per process over Redis | hot keys; see [`tiered`] |
//!
//! A cache never makes a call fail: when Redis is down, slow (every call has a timeout, 50 ms
//! by default) or returns bytes it cannot decode, the body runs and its result is returned, a
//! warning is logged (rate-limited) and a counter goes up ([`Stats`]). After repeated failures
//! Redis is skipped for a while (circuit breaker) and probed until it answers again.
//!
//! # The `#[cached]` attribute
//! Put it on an `async fn` (free function or method). The function then builds a key from its
//! arguments, returns the cached value on a hit, and on a miss awaits its body once (concurrent
//! misses on one key share one run, see [`flight`](crate#single-flight)) and stores the
//! *awaited* value.
//!
//! | option | meaning | default |
//! |---|---|---|
//! | `expire = 60` | time to live in seconds | none: kept until evicted or invalidated |
//! | `namespace = "user"` | the group [`invalidate_namespace`] drops | module path + function name |
//! | `key = expr` | the key, from an expression over the arguments (any `Serialize`) | all arguments but `self` and skipped ones |
//! | `skip(db, client)` | arguments left out of the key (pools, handles, state) | none |
//! | `version = 2` | bump when the value's shape or meaning changes: old entries are ignored | 0 |
//! | `cache_none` | also cache `None` (for `Option` outputs) | `None` is not cached |
//! | `http`, `http(...)` | axum handler caching, see the `http` module (feature `axum`) | detected from axum extractors |
//! | `crate = "my_lib::cache"` | the path to this crate, for a crate that re-exports it (as serde's and tokio's `crate`) | `::cache_runtime` |
//!
//! Outputs: `Result<T, E>` caches only `Ok` (errors are returned, never stored); `Option<T>`
//! caches only `Some` unless `cache_none`; any other type is cached as it is. Cached values
//! must be [`CacheValue`]: `Clone + Serialize + DeserializeOwned + Send + Sync + 'static`.
//!
//! Each cached function `f` gets a companion `f_invalidate` taking the same arguments, which
//! drops that call's entry in every process (no hand-written keys), and returns
//! `Result<(), Error>` like every invalidation (see [below](#invalidation-errors)).
//!
//! ```
//! # use cache_runtime::cached;
//! # #[derive(Clone)] struct Pool;
//! # #[derive(Clone, serde::Serialize, serde::Deserialize)] struct Report;
//! #[cached(expire = 300, namespace = "reports", skip(db), version = 2)]
//! async fn monthly_report(db: &Pool, year: u16, month: u8) -> Report {
//!     Report
//! }
//!
//! #[cached(key = format!("{}-{}", lang, slug.to_lowercase()))]
//! async fn page(slug: String, lang: &str, request_id: u64) -> String {
//!     format!("<h1>{slug}</h1>")
//! }
//!
//! struct Repo;
//! impl Repo {
//!     /// `&self` is never part of the key.
//!     #[cached(namespace = "user", cache_none)]
//!     async fn find(&self, email: String) -> Option<u64> {
//!         None
//!     }
//! }
//! # #[tokio::main] async fn main() {
//! # cache_runtime::init(cache_runtime::Config::memory()).await.unwrap();
//! # let _ = monthly_report(&Pool, 2026, 1).await;
//! # monthly_report_invalidate(&Pool, 2026, 1).await.unwrap();
//! # assert_eq!(page("Home".into(), "en", 1).await, page("home".into(), "en", 2).await.replace("home", "Home"));
//! # assert_eq!(Repo.find("a@b.c".into()).await, None);
//! # Repo.find_invalidate("a@b.c".into()).await.unwrap();
//! # }
//! ```
//!
//! Without [`init`] the functions still work, uncached, and one warning is logged.
//!
//! # Resilience: `stale`, `timeout_ms`, `refresh_after`
//! ```
//! # use cache_runtime::cached;
//! # #[derive(Clone, serde::Serialize, serde::Deserialize)] struct Price;
//! # #[derive(Debug)] struct ApiError;
//! #[cached(expire = 60, stale = 3600, timeout_ms = 200, refresh_after = 45, namespace = "prices")]
//! async fn price(sku: u64) -> Result<Price, ApiError> {
//!     // a slow, flaky upstream
//! #   let _ = sku;
//! #   Ok(Price)
//! }
//! ```
//!
//! | option | what it does | default | interaction |
//! |---|---|---|---|
//! | `stale = N` (s) | fail-safe: an entry is kept `N` s past `expire`; a call past `expire` runs the body, and if it fails (an `Err`, a `None` that is not cached, a panic, `timeout_ms` exceeded; a 5xx on a handler) the expired value is returned (as `Ok`/`Some`; `X-Cache: STALE` on a handler), logged and counted in `stale_served` | off | needs `expire`; an invalidation removes stale copies too: an invalidated value is never served |
//! | `timeout_ms = N` | with a stale value at hand, a caller waits at most `N` ms for the body, then gets the stale value; the body goes on in the background (one per key and process, the other callers wait on it) and its value replaces the entry unless invalidated meanwhile. Without a stale value the caller waits | off | needs `stale` (a compile error otherwise: without a stale value it would change nothing); not on handlers; the body must be `Send + 'static`: owned arguments, no `&self` (a borrowed one is a compile error saying what to take) |
//! | `refresh_after = N` (s) | a hit on an entry older than `N` s returns it at once and starts one background refresh of the key (one per cluster on Redis and tiered, counted in `refreshes`; a failure keeps the entry, counted in `refresh_failures`); callers never wait for it | off | must be below `expire`; the body must be `Send + 'static` (on a handler: its future): owned arguments, no `&self` |
//!
//! Retries against a failing source are throttled: after a failure (of the body past `expire`, or
//! of a refresh), that key's stale value is served without running the body for one second
//! ([`BACKOFF`]), in the process and, on Redis and tiered, in the whole cluster (the recompute
//! lease, a key next to the entry, is kept for that second). So a source that is down sees at most
//! about one try per key per second, whatever the load.
//!
//! One body run per key across processes (Redis, tiered): concurrent misses on one key in
//! different processes run the body once in the cluster; the others wait for its value (woken
//! by the holder's notice on the bus when its fill ends, polling the entry as a fallback;
//! counted in `coalesced`) for at most the fill lease term ([`Config::fill_lease`], 5 s).
//! A holder that is cancelled gives its lease back at once, one that dies loses it after the
//! term, and one still running after a waiter has waited the whole term is taken over: either
//! way a waiter takes the key (counted in `lease_takeovers`), runs the body and stores its value. If Redis is unreachable each process falls back to its own
//! single-flight (callers that arrive while a body runs share the next run: see
//! [`Config::cross_process_single_flight`]). An expired entry under `stale` is recomputed once in the cluster, the other
//! processes serve the stale value meanwhile. On by default; turn it off with
//! [`Config::cross_process_single_flight`]`(false)` (each process then runs the body itself instead of
//! waiting; invalidations stay exactly as consistent). The manual API takes the same options:
//! [`Cache::get_or_insert_with_options`] / [`Cache::get_or_try_insert_with_options`] with a [`FillOptions`].
//!
//! Mistakes are compile errors at the offending tokens, all of them in one run: an unknown or
//! malformed option, an argument that cannot be part of a key, an output that cannot be cached
//! (one error at the return type, saying which traits to derive).
//!
//! # Consistency
//! Once an invalidation has returned `Ok` in any process, no call that starts afterwards, in
//! any process, returns a value computed from data read before it, on every backend: fill
//! leases on Redis, generations, acknowledged invalidations and L1 validity leases; the
//! mechanisms, their costs and the exact conditions are in [`tiered`].
//!
//! # Invalidation errors
//! Every invalidation returns `Result<(), Error>`: `f_invalidate`, [`invalidate_namespace`],
//! [`invalidate_all`], `http::invalidate_path` and the `Cache` methods alike. The guarantee
//! above holds only for `Ok`, so the caller must be able to tell: an `Err` means Redis could
//! not be reached (the invalidation is kept, re-applied when it answers, and this process
//! bypasses what it covers meanwhile, but *other* processes may serve the old value until
//! then), or [`Error::NotInitialized`] before [`init`] (no cache was reached at all). Decide
//! what that means for the write that caused it: retry, fail the request, or
//! `let _ = ...` to go on knowingly. An invalidation whose key cannot be built (too large)
//! returns `Ok`: such calls run uncached, so nothing of theirs is stored.
//!
//! # Single-flight
//! Concurrent misses on one key run the body once; see the table in [`flight`] for what the
//! waiting callers get when the running body errors, panics or is cancelled. In short: they
//! never hang; on an error each runs the body itself, on a panic or cancellation one of them
//! takes over.
//!
//! # Cancel safety
//! Every public async fn says what happens when its future is dropped at an `await` (a client
//! disconnect, a timeout layer, `select!`), under "Cancel safety". In short: nothing shared is
//! left wedged (single-flight leaders, fill leases and the circuit breaker's probe slot are
//! held in guards released on drop), invalidations run to completion in a task of their own,
//! and a dropped call never makes a stale value servable. A `#[cached]` call is cancel safe
//! as [`Cache::get_or_insert_with`], its `f_invalidate` as [`Cache::delete`], and a cached
//! axum handler whose request is dropped as a dropped `#[cached]` call.
//! `tests/cancellation.rs` drops every one of them after 1, 2, ... polls and at random
//! moments, with Redis healthy, stalled and killed.
//!
//! # Runtimes
//! A cache may be used from any tokio runtime, including after the runtime that built it is
//! gone (a test suite where one `#[tokio::test]` calls [`init`] and others use it): its Redis
//! connections and background tasks live on one thread the library starts on first use.
//! Calls do not hop to that thread; they send through the connection's channels.
//!
//! # Keys
//! `{prefix}:fn:{namespace}:{function path}:v{version}:{type}:{arguments as JSON}`, e.g.
//! `cache:fn:user:my_app.users.get_user:v0:3b5a1dd4:[42]`: readable in `redis-cli`, stable
//! across processes and builds, hashed when long; see [`key`]. The function path names the
//! module and, for methods, the `impl` type and trait, so functions of one name never share
//! entries. The manual API and cached handlers write to their own key spaces
//! (`{prefix}:manual:…`, `{prefix}:http:…`), which no namespace string can reach.
//!
//! # Manual API
//! [`Cache::get`], [`Cache::set`], [`Cache::delete`], [`Cache::get_or_insert_with`] for
//! cache-aside code that does not fit a function. [`cache()`] gives the global instance.
//!
//! # Features
//! - `axum`: HTTP caching of axum 0.8 handlers (ETag, 304, `Cache-Control`, `Age`, `X-Cache`).
//! - `json`: the JSON codec (`CodecKind::Json`).
//! - `tls`: `rediss://` URLs, with a private CA and client certificates (`Tls`).

#![warn(missing_docs)]

mod backend;
mod background;
mod cache;
/// The codecs behind [`CodecKind`]: chosen with [`Config::codec`], not pluggable (each has an
/// id in the stored envelope), so not a stable API.
#[doc(hidden)]
pub mod codec;
mod config;
mod envelope;
mod epoch;
mod fill_notice;
pub mod flight;
#[cfg(test)]
mod fuzz;
#[cfg(feature = "axum")]
pub mod http;
pub mod key;
mod local_state;
mod namespace;
mod redact;
mod stats;
pub mod tiered;
mod warn;

#[doc(hidden)]
pub mod __private;

use std::sync::OnceLock;

pub use backend::error::{BackendError, BackendErrorKind};
pub use cache::{BACKOFF, Cache, CacheValue, FillOptions};
pub use cache_macros::cached;
pub use codec::CodecKind;
#[cfg(feature = "tls")]
pub use config::Tls;
pub use config::{Config, ConfigError, L1};
pub use error::Error;
pub use redact::redact_url;
pub use stats::{Stats, StatsSnapshot};

mod error;

static GLOBAL: OnceLock<Cache> = OnceLock::new();

/// Sets the global cache used by `#[cached]`. Call it once, early in `main`.
///
/// A second call returns [`Error::AlreadyInitialized`]. With Redis it does not wait for the
/// server: an unreachable server is not an error (the cache fails open until it connects),
/// a malformed URL is.
///
/// # Cancel safety
/// Cancel safe: it completes at its first poll (it waits on no I/O; connections are made in
/// the background). A future dropped before it was polled sets nothing, and `init` can be
/// called again.
pub async fn init(config: Config) -> Result<(), Error> {
    if GLOBAL.get().is_some() {
        return Err(Error::AlreadyInitialized);
    }
    let cache = Cache::new(config).await?;
    GLOBAL.set(cache).map_err(|_| Error::AlreadyInitialized)
}

/// The global cache, or [`Error::NotInitialized`] before [`init`]: the one accessor, for
/// the manual API and for the health getters.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_runtime::Error> {
/// assert!(cache_runtime::cache().is_err());
/// cache_runtime::init(cache_runtime::Config::memory()).await?;
/// let cache = cache_runtime::cache()?;
/// cache.set("user", &1, &"Ada".to_string(), None).await?;
/// # Ok(())
/// # }
/// ```
pub fn cache() -> Result<&'static Cache, Error> {
    GLOBAL.get().ok_or(Error::NotInitialized)
}

/// The global cache, if [`init`] was called (for the crate's own paths that run uncached
/// without it).
pub(crate) fn global_cache() -> Option<&'static Cache> {
    GLOBAL.get()
}

/// Drops every entry of `namespace` from the global cache, in every process; see
/// [`Cache::invalidate_namespace`] and [the error convention](crate#invalidation-errors).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_runtime::Error> {
/// cache_runtime::init(cache_runtime::Config::memory()).await?;
/// cache_runtime::invalidate_namespace("user").await?;
/// # Ok(())
/// # }
/// ```
///
/// # Cancel safety
/// Cancel safe, as [`Cache::invalidate_namespace`]: once polled, it is in effect in this
/// process and runs to completion in a task of its own.
pub async fn invalidate_namespace(namespace: &str) -> Result<(), Error> {
    cache()?.invalidate_namespace(namespace).await
}

/// Drops every entry of the global cache, in every process; see [`Cache::invalidate_all`] and
/// [the error convention](crate#invalidation-errors).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_runtime::Error> {
/// cache_runtime::init(cache_runtime::Config::memory()).await?;
/// cache_runtime::invalidate_all().await?;
/// # Ok(())
/// # }
/// ```
///
/// # Cancel safety
/// Cancel safe, as [`Cache::invalidate_all`].
pub async fn invalidate_all() -> Result<(), Error> {
    cache()?.invalidate_all().await
}

/// Statistics of the global cache (all zeros before [`init`]); see [`Cache::stats`].
///
/// ```
/// assert_eq!(cache_runtime::stats().total.hits, 0);
/// ```
#[must_use]
pub fn stats() -> Stats {
    match global_cache() {
        Some(cache) => cache.stats(),
        None => Stats::default(),
    }
}
