//! [`serve`]: one request to a cached handler, from the request's headers to the response.
//!
//! 1. Not GET or HEAD: the handler runs and its response is returned untouched.
//! 2. `validate_only`: the handler runs; a cacheable response gets an ETag and may become a
//!    304. Nothing is stored.
//! 3. Bypass (no cache read or write, `X-Cache: BYPASS`): request `Cache-Control: no-store`;
//!    `Authorization` or `Cookie` on a handler that neither varies on them nor opts in with
//!    `allow_credentials` (the response is then `private`); no [`crate::init`].
//! 4. Request `no-cache` or `max-age=0`: the handler runs and its response replaces the entry
//!    (`MISS`). With `stale`, the stored response stays in place until then, and a failing
//!    handler gets it instead (`STALE`, as in step 6, back-off included).
//! 5. Otherwise a lookup: a hit is answered without running the handler (`HIT`, with `Age`);
//!    a miss runs it once for all concurrent requests of the key (`MISS`).
//! 6. With `stale = N`, a response past `expire` is kept `N` s more; when the handler then
//!    fails (a 5xx, e.g. an `Err` turned into one), the stored response is served instead
//!    (`STALE`, counted in `stale_served`, logged), and the handler is not run again for that
//!    key for [`crate::cache::resil::BACKOFF`]. With `refresh_after = N`, a hit on a response
//!    older than `N` s is answered at once and refreshed once in the background
//!    ([`serve_detachable`]). An invalidation removes stale copies too.
//!
//! Every cacheable answer carries `ETag`, `Cache-Control` (`public|private, no-cache` or the
//! handler's freshness options) and `Vary` (when the handler varies on headers); when `If-None-Match` matches, it is
//! a `304 Not Modified` with those headers and no body, on hits and misses alike. HEAD gets
//! the headers (with the body's `Content-Length`) and no body.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::response::Response;
use http::Method;
use http::header;

use super::cache_control::{RequestDirectives, Visibility};
use super::reply::Reply;
use super::request::RequestParts;
use super::response::{Captured, StorePolicy, StoredResponse, capture};
use super::site::{HttpSite, Resolved, SiteState};
use crate::cache::EntryMeta;
use crate::cache::{Ctx, Lookup, Mode, Revalidated};
use crate::stats::Counters;
use crate::warn::now_ms;

/// How a response relates to the cache, for the status header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    Hit,
    Miss,
    /// `stale`: the handler failed and the stored response (past `expire`) was served.
    Stale,
    Bypass,
    /// `validate_only`: no status header.
    None,
}

impl Status {
    /// The status of an answer from the miss path (`Cache::run_from`): a hit on an entry past
    /// its expiry at `now_ms` was served stale; any other hit (the entry found after all, or a
    /// follower given the leader's response, without its entry's meta) was answered without
    /// running the handler; the rest ran it.
    fn of_miss_path(meta: Option<&EntryMeta>, hit: bool, now_ms: u64) -> Self {
        match meta {
            Some(m) if hit && m.expires_ms.is_some_and(|at| at <= now_ms) => Status::Stale,
            _ if hit => Status::Hit,
            _ => Status::Miss,
        }
    }
}

/// A handler's future, boxed to finish in the background (`refresh_after`).
pub(crate) type Detached = Pin<Box<dyn Future<Output = Response> + Send>>;

/// The output mode of a handler: the stored value is the buffered response.
pub(crate) struct HttpMode;

impl Mode<Captured> for HttpMode {
    type Value = StoredResponse;
    fn cacheable(output: &Captured) -> Option<&StoredResponse> {
        match output {
            Captured::Stored(s) => Some(s),
            Captured::Passed(_) => None,
        }
    }
    fn from_value(value: StoredResponse) -> Captured {
        Captured::Stored(value)
    }
    /// Only a server error is a failure: `stale` serves the stored response instead. Other
    /// uncacheable responses (a 404, a `Set-Cookie`, a body over the limit) are passed on.
    fn failed(output: &Captured) -> bool {
        matches!(output, Captured::Passed(r) if r.status().is_server_error())
    }
}

static WARNED_UNINIT: AtomicBool = AtomicBool::new(false);

/// Serves one request to a cached handler; `handler` is its body, already turned into a
/// [`Response`]. See the module docs for the steps.
pub async fn serve<F>(site: &'static HttpSite, req: RequestParts, handler: F) -> Response
where
    F: Future<Output = Response>,
{
    serve_with(site, req, handler, None::<fn(F) -> Detached>).await
}

/// [`serve`] for handlers with `refresh_after`: a hit on an older response is answered at
/// once and refreshed in the background by this request's handler future, which must therefore
/// be `Send + 'static` (the macro selects this entry point only for `refresh_after`).
pub async fn serve_detachable<F>(site: &'static HttpSite, req: RequestParts, handler: F) -> Response
where
    F: Future<Output = Response> + Send + 'static,
{
    let detach = |handler: F| -> Detached { Box::pin(handler) };
    serve_with(site, req, handler, Some(detach)).await
}

async fn serve_with<F, D>(
    site: &'static HttpSite,
    req: RequestParts,
    handler: F,
    detach: Option<D>,
) -> Response
where
    F: Future<Output = Response>,
    D: FnOnce(F) -> Detached,
{
    let is_head = req.method == Method::HEAD;
    if req.method != Method::GET && !is_head {
        return handler.await;
    }
    let r = site.resolved();
    let spec = &site.spec;
    let state = site.state();
    let max_body = state.map_or(1 << 20, |s| s.cache.config().max_value_bytes);
    let policy = StorePolicy {
        statuses: spec.statuses,
        max_body,
        status_header: &r.status_header,
    };
    let reply = Reply {
        r,
        req: &req,
        is_head,
    };
    if spec.validate_only {
        let captured = capture(handler.await, &policy).await;
        return reply.send(captured, Status::None, None, r.visibility);
    }
    let directives = RequestDirectives::parse(&req.headers);
    let credentialed = !spec.allow_credentials
        && !r.keyed_by_credentials
        && (req.headers.contains_key(header::AUTHORIZATION)
            || req.headers.contains_key(header::COOKIE));
    if state.is_none() && !WARNED_UNINIT.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            function = spec.function,
            "cache_runtime::init was not called: cached handlers run uncached"
        );
    }
    let key = request_key(state, r, &req, directives.no_store || credentialed);
    let Some((state, key)) = key else {
        let captured = capture(handler.await, &policy).await;
        let visibility = if credentialed {
            Visibility::Private
        } else {
            r.visibility
        };
        return reply.send(captured, Status::Bypass, None, visibility);
    };
    let path_ns = state.cache.namespace(&super::invalidate::path_namespace(
        spec.namespace,
        &super::key::normalize_path(req.uri.path()),
    ));
    let ctx = Ctx {
        namespace: &state.namespace,
        path: Some(&path_ns),
        ttl: spec.ttl_secs.map(std::time::Duration::from_secs),
        type_tag: state.type_tag,
    };
    let call = Call {
        site,
        state,
        ctx: &ctx,
        key: &key,
        policy: &policy,
        reply: &reply,
    };
    call.answer(&directives, handler, detach).await
}

/// The cache key of a request to `state`'s cache: `None` when there is no cache, when the
/// request is `uncacheable` (`no-store`, or credentials the key does not hold) or when its key
/// is over `max_key_len`.
fn request_key<'s>(
    state: Option<&'s SiteState>,
    r: &Resolved,
    req: &RequestParts,
    uncacheable: bool,
) -> Option<(&'s SiteState, String)> {
    match state {
        Some(state) if !uncacheable => {
            let values = super::key::vary_values(&req.headers, &r.vary);
            super::key::key_with_head(
                &state.key_head,
                state.cache.config().max_key_len,
                req.uri.path(),
                req.uri.query(),
                &values,
            )
            .ok()
            .map(|key| (state, key))
        }
        _ => None,
    }
}

/// One cacheable request: what [`Call::answer`] needs.
struct Call<'a> {
    site: &'static HttpSite,
    state: &'static SiteState,
    ctx: &'a Ctx<'a>,
    key: &'a str,
    policy: &'a StorePolicy<'a>,
    reply: &'a Reply<'a>,
}

impl Call<'_> {
    /// The cached answer: a refresh (`no-cache`), a hit, or a miss that runs the handler; with
    /// `max-age`, `min-fresh` or `only-if-cached`, the entry is checked first. With `stale`, a
    /// failing handler (5xx) past `expire` gets the stored response (`STALE`); with
    /// `refresh_after`, an older hit is refreshed in the background (see [`super::refresh`]).
    async fn answer<F, D>(
        self,
        directives: &RequestDirectives,
        handler: F,
        detach: Option<D>,
    ) -> Response
    where
        F: Future<Output = Response>,
        D: FnOnce(F) -> Detached,
    {
        let (cache, ctx, key, reply) = (self.state.cache, self.ctx, self.key, self.reply);
        let vis = reply.r.visibility;
        let policy = self.policy;
        let body = move |handler: F| async move { capture(handler.await, policy).await };
        if directives.wants_fresh() && !directives.only_if_cached {
            return self.refresh(body(handler)).await;
        }
        let seen = if directives.restricts_hits() {
            let seen = cache.lookup_full::<StoredResponse>(ctx, key).await;
            let accepted = match &seen.lookup {
                Lookup::Hit(_, meta) => {
                    !directives.wants_fresh()
                        && directives.accepts(meta.created_ms, meta.expires_ms, now_ms())
                }
                _ => false,
            };
            if !accepted && directives.only_if_cached {
                return reply.gateway_timeout();
            }
            if !accepted && matches!(seen.lookup, Lookup::Hit(..)) {
                return self.refresh(body(handler)).await;
            }
            seen
        } else if let Some((stored, meta)) =
            cache.local_hit_with_meta::<StoredResponse>(ctx, key).await
        {
            // The in-process hit path first: it does not pay for the miss path's (boxed) state.
            return self.hit(stored, meta, None, handler, detach);
        } else {
            cache.lookup_full::<StoredResponse>(ctx, key).await
        };
        if let Lookup::Hit(stored, meta) = seen.lookup {
            Counters::bump(&self.state.namespace.stats.hits);
            return self.hit(stored, meta, seen.bytes, handler, detach);
        }
        let mut opts = crate::cache::FillOptions::new();
        if let Some(stale) = self.site.spec.stale_secs {
            opts = opts.stale(Duration::from_secs(stale));
        }
        let run =
            cache.run_from::<HttpMode, Captured, _>(ctx, &opts, key, body(handler), Some(seen));
        let (captured, meta, hit) = Box::pin(run).await;
        let status = Status::of_miss_path(meta.as_ref(), hit, now_ms());
        reply.send(captured, status, meta, vis)
    }

    /// A refresh the request asked for (`no-cache`, or a stored response older than its
    /// `max-age`): the handler runs and its response replaces the entry. With `stale`, the
    /// entry stays in place meanwhile and answers a failing handler (`STALE`), as it does past
    /// `expire`.
    async fn refresh(&self, body: impl Future<Output = Captured>) -> Response {
        let (cache, ctx, key, reply) = (self.state.cache, self.ctx, self.key, self.reply);
        let vis = reply.r.visibility;
        let Some(stale) = self.site.spec.stale_secs else {
            let (captured, meta) = cache.refresh::<HttpMode, Captured, _>(ctx, key, body).await;
            return reply.send(captured, Status::Miss, meta, vis);
        };
        let opts = crate::cache::FillOptions::new().stale(Duration::from_secs(stale));
        match cache
            .revalidate::<HttpMode, Captured, _>(ctx, &opts, key, body)
            .await
        {
            Revalidated::Source(captured, meta) => reply.send(captured, Status::Miss, meta, vis),
            Revalidated::Stored(captured, meta) => reply.send(captured, Status::Stale, meta, vis),
        }
    }

    /// A hit; past `refresh_after` it starts a background refresh with this request's handler.
    fn hit<F, D>(
        &self,
        stored: StoredResponse,
        meta: EntryMeta,
        bytes: Option<Vec<u8>>,
        handler: F,
        detach: Option<D>,
    ) -> Response
    where
        D: FnOnce(F) -> Detached,
    {
        let after = self.site.spec.refresh_after_secs.map(Duration::from_secs);
        let age = Duration::from_millis(now_ms().saturating_sub(meta.created_ms));
        if let (Some(after), Some(detach)) = (after, detach)
            && age >= after
        {
            super::refresh::start(self.site, self.ctx, self.key, meta, bytes, detach(handler));
        }
        self.reply.send(
            Captured::Stored(stored),
            Status::Hit,
            Some(meta),
            self.reply.r.visibility,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miss_path_answer_is_stale_only_for_a_hit_past_its_expiry() {
        let now = 5_000;
        let meta = |expires_ms| EntryMeta {
            created_ms: 1_000,
            expires_ms,
        };
        let (expired, fresh, forever) = (meta(Some(now)), meta(Some(now + 1)), meta(None));
        let of = Status::of_miss_path;
        assert_eq!(of(Some(&expired), true, now), Status::Stale);
        assert_eq!(of(Some(&fresh), true, now), Status::Hit);
        assert_eq!(of(Some(&forever), true, now), Status::Hit);
        assert_eq!(of(None, true, now), Status::Hit, "a follower");
        // The handler ran: a miss, whatever the entry's expiry.
        assert_eq!(of(Some(&expired), false, now), Status::Miss);
        assert_eq!(of(Some(&fresh), false, now), Status::Miss);
        assert_eq!(of(None, false, now), Status::Miss);
    }
}
