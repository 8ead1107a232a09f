//! Dropping cached responses from code, e.g. in the `PUT` handler that changed an item.
//!
//! - [`invalidate_path`] drops the entry of one URL (path and optional query) of a namespace,
//!   in every process: `invalidate_path("items", "/items/1")`. It drops the variant requested
//!   without the varied headers (the usual one); to drop every query and header variant of a
//!   handler, give it its own namespace and use [`crate::invalidate_namespace`].
//! - [`crate::invalidate_namespace`] drops every response of a namespace in O(1).
//!
//! Both go through the cache, so they work on every backend: the memory backend, Redis (other
//! processes read Redis) and tiered (the invalidation bus drops other processes' L1 copies).

use crate::{Cache, Error};

/// Drops the cached response of `path` (for example `/items/1`, or `/items?page=2`; the
/// query's order and encoding do not matter) in `namespace`, in the global cache, in every
/// process. Failures are logged and counted, and with Redis kept and re-applied when it
/// answers; [`invalidate_path_in`] returns them.
pub async fn invalidate_path(namespace: &str, path: &str) {
    match crate::global() {
        Some(cache) => {
            let _ = invalidate_path_in(cache, namespace, path).await;
        }
        None => tracing::warn!(
            namespace,
            path,
            "invalidate_path before cache_runtime::init; nothing to do"
        ),
    }
}

/// [`invalidate_path`] on a given cache, with the error.
pub async fn invalidate_path_in(cache: &Cache, namespace: &str, path: &str) -> Result<(), Error> {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let config = cache.config();
    let key = super::key::request_key(
        &config.prefix,
        namespace,
        config.max_key_len,
        path,
        query,
        &[],
    )?;
    let ns = cache.namespace(namespace);
    cache.invalidate_key_in(&ns, &key).await
}
