//! Process-wide defaults of HTTP caching: `public` or `private`, and the cache status header.
//!
//! ```
//! use cache_runtime::http::{HttpConfig, Visibility};
//!
//! let config = HttpConfig::default()
//!     .visibility(Visibility::Private)
//!     .status_header("X-Cache-Status")
//!     .expect("a valid header name");
//! cache_runtime::http::configure(config).expect("before the first request");
//! ```
//!
//! Handlers override both with `#[cached(http(private))]`, `http(public)` and
//! `http(status_header = "...")`.

use std::sync::OnceLock;

use http::HeaderName;

use super::cache_control::Visibility;
use crate::Error;

/// The defaults every cached handler starts from.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub(crate) visibility: Visibility,
    pub(crate) status_header: HeaderName,
}

impl Default for HttpConfig {
    /// `public`, `X-Cache`.
    fn default() -> Self {
        Self {
            visibility: Visibility::Public,
            status_header: HeaderName::from_static("x-cache"),
        }
    }
}

impl HttpConfig {
    /// `Cache-Control: public` (the default) or `private`.
    ///
    /// ```
    /// use cache_runtime::http::{HttpConfig, Visibility};
    /// let config = HttpConfig::default().visibility(Visibility::Private);
    /// ```
    #[must_use]
    pub fn visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = visibility;
        self
    }

    /// The name of the header that says `HIT`, `MISS` or `BYPASS` (default `X-Cache`);
    /// [`Error::InvalidConfig`] if it is not a header name.
    ///
    /// ```
    /// use cache_runtime::http::HttpConfig;
    /// let config = HttpConfig::default().status_header("X-Cache-Status")?;
    /// assert!(HttpConfig::default().status_header("not a header").is_err());
    /// # Ok::<(), cache_runtime::Error>(())
    /// ```
    pub fn status_header(mut self, name: &str) -> Result<Self, Error> {
        self.status_header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::InvalidConfig(crate::ConfigError::HeaderName(name.to_string())))?;
        Ok(self)
    }
}

static CONFIG: OnceLock<HttpConfig> = OnceLock::new();

/// Sets the process-wide HTTP defaults. Call it once, before serving requests:
/// [`Error::AlreadyInitialized`] if they were set, or used, already.
pub fn configure(config: HttpConfig) -> Result<(), Error> {
    CONFIG.set(config).map_err(|_| Error::AlreadyInitialized)
}

/// The defaults in effect (fixed at first use).
pub(crate) fn current() -> &'static HttpConfig {
    CONFIG.get_or_init(HttpConfig::default)
}
