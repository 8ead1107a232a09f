//! The one error type of the crate.

/// Everything that can go wrong in `cache-runtime`.
///
/// Cached functions never return this: a failing cache means "run the body and return its
/// result". It comes from set-up ([`crate::init`], [`crate::Cache::new`]) and from the manual
/// API, where the caller asked for the cache explicitly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// [`crate::init`] was called a second time.
    #[error("cache_runtime::init was already called; the global cache is set once per process")]
    AlreadyInitialized,
    /// The global cache was used before [`crate::init`].
    #[error("cache_runtime::init has not been called; call it once at the start of main")]
    NotInitialized,
    /// A configuration value is out of range or inconsistent.
    #[error("invalid cache configuration: {0}")]
    InvalidConfig(#[source] crate::ConfigError),
    /// A Redis URL could not be parsed.
    #[error("invalid Redis URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given, with its password redacted ([`crate::redact_url`]).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The Redis server answered with an error or the connection failed.
    #[error("redis error: {0}")]
    Backend(#[source] crate::BackendError),
    /// A Redis call did not answer within the configured timeout.
    #[error("redis did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// Redis is not called for a while after repeated failures (circuit breaker open).
    #[error("redis is skipped after repeated failures (circuit breaker open)")]
    CircuitOpen,
    /// Redis is configured but no connection has been made yet.
    #[error("redis is not connected yet")]
    NotConnected,
    /// An invalidation of this key is waiting to reach Redis; nothing is stored until it has.
    #[error("an invalidation of this key is pending; not stored until redis has applied it")]
    InvalidationPending,
    /// The namespace changed while the value was computed (another process created or
    /// replaced its generation); the value is returned but not stored.
    #[error("the namespace was invalidated while the value was computed; not stored")]
    Superseded,
    /// A value could not be encoded or decoded.
    #[error("codec error: {0}")]
    Codec(String),
    /// Stored bytes are not a valid entry (foreign, corrupt or of another format version).
    #[error("stored entry is invalid: {0}")]
    BadEntry(&'static str),
    /// Key arguments could not be serialized into a key.
    #[error("cannot build a cache key: {0}")]
    Key(String),
    /// A key or value is over the configured limit; it is not cached.
    #[error("{what} of {size} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// "key" or "value".
        what: &'static str,
        /// Its size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
}
