//! Dropping cached responses from code, e.g. in the `PUT` handler that changed an item.
//!
//! - [`invalidate_path`] drops every cached response of one path of a namespace, in every
//!   process, in O(1): `invalidate_path("items", "/items/1")` drops `/items/1`,
//!   `/items/1?x=1` and every varied-header variant. Each (namespace, path) has its own
//!   generation (an internal namespace, `__http_path:{namespace}:{path}`), read in the same
//!   lookup as the entry (one Redis `MGET`); invalidating it is a namespace invalidation, with
//!   its guarantees (announced on the bus, acknowledged by every process).
//! - [`crate::invalidate_namespace`] drops every response of a namespace in O(1).
//!
//! Both go through the cache, so they work on every backend: the memory backend, Redis (other
//! processes read Redis) and tiered (the invalidation bus drops other processes' L1 copies).

use crate::{Cache, Error};

/// Drops every cached response of `path` (for example `/items/1`; a query string is ignored:
/// all of them go) in `namespace`, in the global cache, in every process. Errors as every
/// invalidation (see [the convention](crate#invalidation-errors)).
///
/// # Cancel safety
/// Cancel safe, as [`crate::Cache::invalidate_namespace`]: once polled, the path's responses
/// stop being served in this process and the invalidation completes in a task of its own.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_runtime::Error> {
/// cache_runtime::init(cache_runtime::Config::memory()).await?;
/// cache_runtime::http::invalidate_path("items", "/items/1").await?;
/// # Ok(())
/// # }
/// ```
pub async fn invalidate_path(namespace: &str, path: &str) -> Result<(), Error> {
    invalidate_path_in(crate::cache()?, namespace, path).await
}

/// [`invalidate_path`] on a given cache, with the error.
///
/// # Cancel safety
/// Cancel safe, as [`invalidate_path`].
pub async fn invalidate_path_in(cache: &Cache, namespace: &str, path: &str) -> Result<(), Error> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let path_ns = path_namespace(namespace, &super::key::normalize_path(path));
    cache
        .invalidate_namespace_counted(&path_ns, namespace)
        .await
}

/// The internal namespace whose generation every cached response of `path` (normalized) in
/// `namespace` depends on, besides `namespace`'s own.
pub(crate) fn path_namespace(namespace: &str, path: &str) -> String {
    format!(
        "{}{}:{path}",
        crate::key::HTTP_PATH_NAMESPACE,
        crate::key::segment(namespace)
    )
}
