//! [`BackendError`]: what Redis, or the connection to it, reported, in this crate's own types
//! (no redis-rs type in the public API, so a redis-rs upgrade is not a breaking change here).

/// A failure reported by Redis or by the connection to it ([`crate::Error::Backend`]).
///
/// ```
/// use cache_runtime::{BackendErrorKind, Error};
///
/// fn describe(e: &Error) -> String {
///     match e {
///         Error::Backend(b) if b.kind() == BackendErrorKind::Server => {
///             format!("redis refused: {} ({})", b, b.code().unwrap_or("?"))
///         }
///         Error::Backend(b) => format!("redis unreachable: {b}"),
///         other => other.to_string(),
///     }
/// }
/// # let _ = describe;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError {
    kind: BackendErrorKind,
    code: Option<String>,
    message: String,
}

/// What kind of failure a [`BackendError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// Redis answered with an error reply (e.g. `WRONGTYPE`, `OOM`, `NOSCRIPT`, `CROSSSLOT`);
    /// its code is [`BackendError::code`].
    Server,
    /// The connection could not be made, was lost, or the client gave up waiting.
    Connection,
    /// Anything else the client reported (an unexpected reply, a client-side failure).
    Client,
}

impl BackendError {
    /// What kind of failure this is.
    ///
    /// ```
    /// # fn f(e: &cache_runtime::BackendError) {
    /// let transient = e.kind() == cache_runtime::BackendErrorKind::Connection;
    /// # }
    /// ```
    pub fn kind(&self) -> BackendErrorKind {
        self.kind
    }

    /// The error code of a server reply (`"WRONGTYPE"`, `"OOM"`, ...), if Redis sent one.
    ///
    /// ```
    /// # fn f(e: &cache_runtime::BackendError) {
    /// let out_of_memory = e.code() == Some("OOM");
    /// # }
    /// ```
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// Classifies a redis-rs error.
    pub(crate) fn from_redis(e: &redis::RedisError) -> Self {
        let kind = if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || e.is_unrecoverable_error()
        {
            BackendErrorKind::Connection
        } else if e.code().is_some() {
            BackendErrorKind::Server
        } else {
            BackendErrorKind::Client
        };
        Self {
            kind,
            code: e.code().map(str::to_owned),
            message: e.to_string(),
        }
    }
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BackendError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_errors_are_classified() {
        let io =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let io = BackendError::from_redis(&io);
        assert_eq!((io.kind(), io.code()), (BackendErrorKind::Connection, None));
        let no_script = redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::NoScript),
            "no such script",
        ));
        let no_script = BackendError::from_redis(&no_script);
        assert_eq!(no_script.kind(), BackendErrorKind::Server);
        assert_eq!(no_script.code(), Some("NOSCRIPT"));
        assert!(no_script.to_string().contains("no such script"));
        let client = redis::RedisError::from((redis::ErrorKind::Client, "odd reply"));
        assert_eq!(
            BackendError::from_redis(&client).kind(),
            BackendErrorKind::Client
        );
    }
}
