//! The small API that `#[cached]` expansions call. Not for direct use: it may change in any
//! release. Keeping the logic here keeps the macro thin and the logic testable.

use std::any::TypeId;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Serialize;

use crate::cache::{Cache, CacheValue, Ctx, Lookup, Mode, type_tag_bytes};
use crate::key;
use crate::namespace::Namespace;
use crate::stats::Counters;

pub use crate::cache::Mode as OutputMode;

/// Caches the whole output.
pub struct ValueMode;
/// Caches `Ok` values of a `Result`; errors are returned and not stored.
pub struct ResultMode;
/// Caches `Some` values of an `Option`; `None` is returned and not stored.
pub struct OptionMode;

// Not looked into by error messages: an uncacheable output is reported as `Mode`'s one
// message, not as one raw error per missing trait.
#[diagnostic::do_not_recommend]
impl<T: CacheValue> Mode<T> for ValueMode {
    type Value = T;
    fn cacheable(output: &T) -> Option<&T> {
        Some(output)
    }
    fn from_value(value: T) -> T {
        value
    }
}

// Not looked into by error messages: an uncacheable output is reported as `Mode`'s one
// message, not as one raw error per missing trait.
#[diagnostic::do_not_recommend]
impl<T: CacheValue, E> Mode<Result<T, E>> for ResultMode {
    type Value = T;
    fn cacheable(output: &Result<T, E>) -> Option<&T> {
        output.as_ref().ok()
    }
    fn from_value(value: T) -> Result<T, E> {
        Ok(value)
    }
}

// Not looked into by error messages: an uncacheable output is reported as `Mode`'s one
// message, not as one raw error per missing trait.
#[diagnostic::do_not_recommend]
impl<T: CacheValue> Mode<Option<T>> for OptionMode {
    type Value = T;
    fn cacheable(output: &Option<T>) -> Option<&T> {
        output.as_ref()
    }
    fn from_value(value: T) -> Option<T> {
        Some(value)
    }
}

/// The value type a mode caches for an output, whatever its traits: building a key needs only
/// its type (for the type tag), so [`key`] does not require the output to be cacheable and an
/// uncacheable output is reported once, by [`call`] (see `Mode`'s message), not also by every
/// key built for it.
pub trait ValueOf<O> {
    /// The same type as `Mode<O>::Value`.
    type Value: ?Sized + 'static;
}
impl<T: 'static> ValueOf<T> for ValueMode {
    type Value = T;
}
impl<T: 'static, E> ValueOf<Result<T, E>> for ResultMode {
    type Value = T;
}
impl<T: 'static> ValueOf<Option<T>> for OptionMode {
    type Value = T;
}

/// What the macro knows about a cached function.
#[derive(Debug)]
pub struct SiteSpec {
    /// The namespace (default: module path and function name).
    pub namespace: &'static str,
    /// The function's name.
    pub function: &'static str,
    /// The [`std::any::type_name_of_val`] of an item nested in the function (or in its
    /// `_invalidate` companion): where the function is declared, for its key (see
    /// [`key::function_identity`]). Called once per site.
    pub locate: fn() -> &'static str,
    /// `version = N`.
    pub version: u32,
    /// `expire = N` seconds; `None` = no TTL.
    pub ttl_secs: Option<u64>,
    /// Whether the function has type parameters (its value type may differ per call).
    pub generic: bool,
    /// `stale = N` seconds kept past `expire` to serve when the body fails.
    pub stale_secs: Option<u64>,
    /// `timeout_ms = N`: with a stale value, answer with it after this long.
    pub timeout_ms: Option<u64>,
    /// `refresh_after = N` seconds: a hit on an older entry refreshes it in the background.
    pub refresh_after_secs: Option<u64>,
}

/// Per-function state, a `static` in the expansion.
pub struct Site {
    spec: SiteSpec,
    state: OnceLock<SiteState>,
}

struct SiteState {
    cache: &'static Cache,
    namespace: Arc<Namespace>,
    /// The fixed part of this function's keys before the type tag (see
    /// [`key::function_stem`]): the full path is found once, here, never per call.
    stem: String,
    /// The key head and type tag of the value type first seen here. A site inside a generic
    /// `impl` (or returning `Self`) can see several value types: others build their own head.
    head: OnceLock<(String, [u8; 4], TypeId)>,
}

/// A key built from a call's arguments; `None` inside when the call runs uncached.
pub struct CallKey(Option<(String, [u8; 4])>);

static WARNED_UNINIT: AtomicBool = AtomicBool::new(false);

impl Site {
    /// A site for `spec`.
    pub const fn new(spec: SiteSpec) -> Self {
        Self {
            spec,
            state: OnceLock::new(),
        }
    }

    fn state(&'static self) -> Option<&'static SiteState> {
        if let Some(state) = self.state.get() {
            return Some(state);
        }
        let Some(cache) = crate::global_cache() else {
            if !WARNED_UNINIT.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    function = self.spec.function,
                    "cache_runtime::init was not called: #[cached] functions run uncached"
                );
            }
            return None;
        };
        Some(self.state.get_or_init(|| SiteState {
            cache,
            namespace: cache.namespace(self.spec.namespace),
            stem: key::function_stem(
                &cache.config().prefix,
                self.spec.namespace,
                &key::function_identity((self.spec.locate)(), self.spec.function),
                self.spec.version,
            ),
            head: OnceLock::new(),
        }))
    }

    fn ttl(&self) -> Option<Duration> {
        self.spec.ttl_secs.map(Duration::from_secs)
    }

    fn fill_options(&self) -> crate::FillOptions {
        let mut opts = crate::FillOptions::new();
        opts.ttl = self.ttl();
        opts.stale = self.spec.stale_secs.map(Duration::from_secs);
        opts.timeout = self.spec.timeout_ms.map(Duration::from_millis);
        opts.refresh_after = self.spec.refresh_after_secs.map(Duration::from_secs);
        opts
    }

    fn make_head<V: ?Sized + 'static>(&self, state: &SiteState) -> (String, [u8; 4], TypeId) {
        let tag = type_tag_bytes::<V>();
        let head = key::function_head(&state.stem, &key::hex(&tag));
        (head, tag, TypeId::of::<V>())
    }
}

/// Builds the key of one call from its key arguments.
pub fn key<M: ValueOf<O>, O>(site: &'static Site, args: &(impl Serialize + ?Sized)) -> CallKey {
    let Some(state) = site.state() else {
        return CallKey(None);
    };
    let owned;
    let cached = (!site.spec.generic)
        .then(|| state.head.get_or_init(|| site.make_head::<M::Value>(state)))
        .filter(|cached| cached.2 == TypeId::of::<M::Value>());
    let (head, tag) = match cached {
        Some(cached) => (&cached.0, cached.1),
        None => {
            owned = site.make_head::<M::Value>(state);
            (&owned.0, owned.1)
        }
    };
    match key::build(head, args, state.cache.config().max_key_len) {
        Ok(k) => CallKey(Some((k, tag))),
        Err(e) => key_failed(state, e),
    }
}

fn key_failed(state: &SiteState, e: crate::Error) -> CallKey {
    let counter = match e {
        crate::Error::TooLarge { .. } => &state.namespace.stats.oversized,
        _ => &state.namespace.stats.errors,
    };
    Counters::bump(counter);
    crate::warn::warn_limited!(namespace = %state.namespace.name, error = %e, "cannot build a cache key; running uncached");
    CallKey(None)
}

/// Runs a cached call: lookup, single-flight miss, store.
pub async fn call<M, O, Fut>(site: &'static Site, key: CallKey, body: Fut) -> O
where
    M: Mode<O>,
    Fut: Future<Output = O>,
{
    let (Some(state), CallKey(Some((key, type_tag)))) = (site.state.get(), key) else {
        return body.await;
    };
    let ctx = Ctx {
        namespace: &state.namespace,
        path: None,
        ttl: site.ttl(),
        type_tag,
    };
    if let Some(value) = state.cache.local_hit::<M::Value>(&ctx, &key).await {
        return M::from_value(value);
    }
    // Redis: look up here, so a hit does not allocate the (large) boxed miss path either.
    let first = match state.cache.inner.remote {
        Some(_) => {
            let seen = state.cache.lookup_full::<M::Value>(&ctx, &key).await;
            if let Lookup::Hit(value, _) = seen.lookup {
                Counters::bump(&state.namespace.stats.hits);
                return M::from_value(value);
            }
            Some(seen)
        }
        None => None,
    };
    let opts = site.fill_options();
    // The miss path's state is large: boxed, it does not weigh on every hit.
    Box::pin(
        state
            .cache
            .run_from::<M, O, Fut>(&ctx, &opts, &key, body, first),
    )
    .await
    .0
}

/// [`call`] for functions with `timeout_ms` or `refresh_after`: their body may go on (or
/// start) in the background after the caller has its answer, so it must be `Send + 'static`
/// (arguments taken by value, no borrowed `self`). The macro selects this entry point only
/// when one of those options is given.
pub async fn call_detachable<M, O, Fut>(site: &'static Site, key: CallKey, body: Fut) -> O
where
    M: Mode<O>,
    O: Send + 'static,
    Fut: Future<Output = O> + Send + 'static,
{
    let (Some(state), CallKey(Some((key, type_tag)))) = (site.state.get(), key) else {
        return body.await;
    };
    let detached = crate::cache::DetachedSite {
        namespace: state.namespace.clone(),
        path: None,
        ttl: site.ttl(),
        type_tag,
    };
    state
        .cache
        .run_detachable::<M, O, Fut>(detached, site.fill_options(), key, body)
        .await
}

/// Invalidates the entry of one call's arguments (the generated `<fn>_invalidate`): see the
/// crate docs' error convention. A key that could not be built is `Ok`: that call runs
/// uncached.
pub async fn invalidate(site: &'static Site, key: CallKey) -> Result<(), crate::Error> {
    let Some(state) = site.state.get() else {
        return Err(crate::Error::NotInitialized);
    };
    let CallKey(Some((key, _))) = key else {
        return Ok(());
    };
    state.cache.invalidate_key_in(&state.namespace, &key).await
}

/// Serializes a key expression given with `key = ...`.
pub fn key_expr<T: Serialize + ?Sized>(value: &T) -> &T {
    value
}

/// A value that can be part of a cache key: any `serde::Serialize`. It exists for the compile
/// error, which the expansion points at the offending argument.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cache key: it does not implement `serde::Serialize`",
    label = "this argument is part of the key",
    note = "leave it out of the key with `skip(name)` (pools, clients, state), derive `serde::Serialize` for it, or give the key with `key = ...`"
)]
pub trait KeyPart: Serialize {}
impl<T: Serialize + ?Sized> KeyPart for T {}

/// One argument of the default key (see [`KeyPart`]).
pub fn key_part<T: KeyPart + ?Sized>(value: &T) -> &T {
    value
}

/// What the expansion of `#[cached]` on an axum handler calls (feature `axum`); see
/// [`crate::http`].
#[cfg(feature = "axum")]
pub mod http {
    pub use crate::http::__reexport::{IntoResponse, Response};
    pub use crate::http::cache_control::Freshness;
    pub use crate::http::{
        HandlerSpec, HttpSite, RequestParts, Visibility, serve, serve_detachable,
    };

    /// Implemented when the `axum` feature is on (see the other cfg).
    pub trait AxumFeature {}
    impl AxumFeature for () {}
    /// Compiles only with the `axum` feature.
    pub fn require_axum_feature<T: AxumFeature>() {}

    /// Turns a handler's output into a response.
    pub fn into_response<T: IntoResponse>(output: T) -> Response {
        output.into_response()
    }
}

/// Without the `axum` feature a cached handler fails to compile with this message.
#[cfg(not(feature = "axum"))]
pub mod http {
    /// Implemented only when the `axum` feature is on.
    #[diagnostic::on_unimplemented(
        message = "#[cached] on an axum handler needs the `axum` feature of cache-runtime",
        label = "add `features = [\"axum\"]` to the cache-runtime dependency"
    )]
    pub trait AxumFeature {}
    /// Fails to compile without the `axum` feature.
    pub fn require_axum_feature<T: AxumFeature>() {}
}
