//! [`HttpSite`]: what the macro knows about one cached handler, and its lazily resolved state.

use std::sync::{Arc, OnceLock};

use http::{HeaderName, HeaderValue};

use super::cache_control::{Freshness, Visibility, header_value};
use crate::Cache;
use crate::namespace::Namespace;

/// A handler's options, written by the macro from `#[cached(..., http(...))]`.
#[derive(Debug)]
pub struct HandlerSpec {
    /// The namespace of its entries.
    pub namespace: &'static str,
    /// The handler's name (for logs).
    pub function: &'static str,
    /// `expire = N`.
    pub ttl_secs: Option<u64>,
    /// `http(vary("accept-language", ...))`: request headers that select the response.
    pub vary: &'static [&'static str],
    /// `http(public)` / `http(private)`; `None` = the [`super::HttpConfig`] default.
    pub visibility: Option<Visibility>,
    /// `http(status_header = "...")`; `None` = the [`super::HttpConfig`] default.
    pub status_header: Option<&'static str>,
    /// `http(validate_only)`: ETag and 304, nothing stored.
    pub validate_only: bool,
    /// `http(allow_credentials)`: requests with `Authorization` or `Cookie` may use and fill
    /// the shared entry.
    pub allow_credentials: bool,
    /// `http(statuses(200, 404))`; empty = 2xx except 206.
    pub statuses: &'static [u16],
    /// `http(max_age = N, ...)`: client and shared-cache freshness.
    pub freshness: Freshness,
    /// `stale = N`: a response is kept `N` s past `expire`, served (`STALE`) when the handler
    /// fails (a 5xx).
    pub stale_secs: Option<u64>,
    /// `refresh_after = N`: a hit on a response older than `N` s refreshes it in the
    /// background.
    pub refresh_after_secs: Option<u64>,
}

/// Per-handler state, a `static` in the expansion.
pub struct HttpSite {
    pub(crate) spec: HandlerSpec,
    resolved: OnceLock<Resolved>,
    state: OnceLock<SiteState>,
}

/// The spec turned into header names and values, once.
pub(crate) struct Resolved {
    pub(crate) vary: Vec<HeaderName>,
    pub(crate) vary_header: Option<HeaderValue>,
    pub(crate) visibility: Visibility,
    pub(crate) status_header: HeaderName,
    /// Whether the key holds the credentials (vary on `Authorization` or `Cookie`), so an
    /// entry is per user.
    pub(crate) keyed_by_credentials: bool,
    /// The `Cache-Control` sent with `visibility`, and with `private` (credentialed bypass).
    pub(crate) cache_control: HeaderValue,
    pub(crate) cache_control_private: HeaderValue,
}

pub(crate) struct SiteState {
    pub(crate) cache: &'static Cache,
    pub(crate) namespace: Arc<Namespace>,
    /// `{prefix}:{namespace}:http:`.
    pub(crate) key_head: String,
    /// The type tag of [`super::StoredResponse`].
    pub(crate) type_tag: [u8; 4],
}

impl HttpSite {
    /// A site for `spec`.
    pub const fn new(spec: HandlerSpec) -> Self {
        Self {
            spec,
            resolved: OnceLock::new(),
            state: OnceLock::new(),
        }
    }

    pub(crate) fn resolved(&self) -> &Resolved {
        self.resolved.get_or_init(|| {
            let config = super::config::current();
            let vary: Vec<HeaderName> = self
                .spec
                .vary
                .iter()
                .filter_map(|name| match HeaderName::from_bytes(name.as_bytes()) {
                    Ok(h) => Some(h),
                    Err(_) => {
                        tracing::warn!(
                            function = self.spec.function,
                            name,
                            "not a header name in vary(...); ignored"
                        );
                        None
                    }
                })
                .collect();
            let vary_header = (!vary.is_empty()).then(|| {
                let joined: Vec<&str> = vary.iter().map(HeaderName::as_str).collect();
                HeaderValue::from_str(&joined.join(", ")).expect("header names are valid values")
            });
            let keyed_by_credentials = vary
                .iter()
                .any(|h| h == http::header::AUTHORIZATION || h == http::header::COOKIE);
            let status_header = self
                .spec
                .status_header
                .and_then(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                .unwrap_or_else(|| config.status_header.clone());
            let visibility = match self.spec.visibility {
                Some(v) => v,
                None if keyed_by_credentials => Visibility::Private,
                None => config.visibility,
            };
            Resolved {
                cache_control: header_value(visibility, &self.spec.freshness),
                cache_control_private: header_value(Visibility::Private, &self.spec.freshness),
                vary,
                vary_header,
                visibility,
                status_header,
                keyed_by_credentials,
            }
        })
    }

    /// The global cache and this handler's namespace; `None` before [`crate::init`].
    pub(crate) fn state(&self) -> Option<&SiteState> {
        if let Some(state) = self.state.get() {
            return Some(state);
        }
        let cache = crate::global_cache()?;
        Some(self.state.get_or_init(|| SiteState {
            cache,
            namespace: cache.namespace(self.spec.namespace),
            key_head: super::key::head(&cache.config().prefix, self.spec.namespace),
            type_tag: crate::cache::type_tag_bytes::<super::StoredResponse>(),
        }))
    }
}
