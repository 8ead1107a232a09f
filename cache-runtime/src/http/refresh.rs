//! `refresh_after` on a handler: a hit on an older response starts one background refresh of
//! it (per key in this process and, on Redis, in the cluster), run by the request's own handler
//! future; the response it produces replaces the entry unless an invalidation came meanwhile
//! (see [`crate::Cache`]'s refresh path, shared with `#[cached]` functions).

use std::time::Duration;

use super::response::{Captured, StorePolicy, capture};
use super::serve::{Detached, HttpMode};
use super::site::HttpSite;
use crate::cache::EntryMeta;
use crate::cache::{Ctx, DetachedSite, FillOptions, RefreshFrom};

/// Starts the refresh of the response under `key` (read with `meta`, and `bytes` from Redis)
/// with `handler`, unless one is running.
pub(crate) fn start(
    site: &'static HttpSite,
    ctx: &Ctx<'_>,
    key: &str,
    meta: EntryMeta,
    bytes: Option<Vec<u8>>,
    handler: Detached,
) {
    let Some(state) = site.state() else { return };
    let spec = &site.spec;
    let policy = StorePolicy {
        statuses: spec.statuses,
        max_body: state.cache.config().max_value_bytes,
        status_header: &site.resolved().status_header,
    };
    let body = async move { capture(handler.await, &policy).await };
    let detached = DetachedSite {
        namespace: ctx.namespace.clone(),
        path: ctx.path.cloned(),
        ttl: ctx.ttl,
        type_tag: ctx.type_tag,
    };
    let mut opts = FillOptions::new();
    if let Some(ttl) = ctx.ttl {
        opts = opts.ttl(ttl);
    }
    if let Some(stale) = spec.stale_secs {
        opts = opts.stale(Duration::from_secs(stale));
    }
    let from = RefreshFrom::new(meta, bytes);
    state
        .cache
        .start_refresh::<HttpMode, Captured, _>(detached, opts, key.to_owned(), body, from);
}
