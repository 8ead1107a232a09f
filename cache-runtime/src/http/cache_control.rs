//! `Cache-Control`: what a request asks for, what a response forbids, and the header we send.
//!
//! Directives are parsed properly: several header lines, comma-separated lists, any case,
//! quoted arguments (`max-age="0"`), unknown directives ignored.
//!
//! ```
//! use cache_runtime::http::cache_control::{Freshness, RequestDirectives, Visibility, header_value};
//! use http::{HeaderMap, HeaderValue, header::CACHE_CONTROL};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(CACHE_CONTROL, HeaderValue::from_static("No-Cache, no-store"));
//! let d = RequestDirectives::parse(&headers);
//! assert!(d.no_store && d.no_cache);
//! let fresh = Freshness { max_age: Some(42), ..Freshness::NONE };
//! assert_eq!(header_value(Visibility::Public, &fresh), "public, max-age=42");
//! assert_eq!(header_value(Visibility::Private, &Freshness::NONE), "private, no-cache");
//! ```

use http::header::{CACHE_CONTROL, PRAGMA};
use http::{HeaderMap, HeaderValue};

/// Who may store a response: any cache (`public`) or only the user's browser (`private`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Visibility {
    /// `Cache-Control: public`: shared caches (CDNs, proxies) may store it.
    #[default]
    Public,
    /// `Cache-Control: private`: only the client may store it.
    Private,
}

/// The directives of a request's `Cache-Control` that change what the cache does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestDirectives {
    /// `no-store`: do not read the cache and do not write it.
    pub no_store: bool,
    /// `no-cache` (or `Pragma: no-cache` without `Cache-Control`): run the handler and
    /// refresh the entry.
    pub no_cache: bool,
    /// `max-age=N`: an entry older than `N` seconds is refreshed; `max-age=0` refreshes like
    /// `no-cache`.
    pub max_age: Option<u64>,
    /// `min-fresh=N`: an entry that expires (server TTL) within `N` seconds is refreshed.
    pub min_fresh: Option<u64>,
    /// `max-stale[=N]` (`u64::MAX` without a value): accepted; the server never serves
    /// expired entries, so it changes nothing.
    pub max_stale: Option<u64>,
    /// `only-if-cached`: answer from the cache or with `504 Gateway Timeout`, never run the
    /// handler.
    pub only_if_cached: bool,
}

impl RequestDirectives {
    /// Parses every `Cache-Control` line of `headers`.
    pub fn parse(headers: &HeaderMap) -> Self {
        let mut d = RequestDirectives::default();
        let mut any = false;
        for (name, arg) in directives(headers) {
            any = true;
            match name.as_str() {
                "no-store" => d.no_store = true,
                "no-cache" => d.no_cache = true,
                "max-age" => d.max_age = min_of(d.max_age, arg.as_deref()),
                "min-fresh" => d.min_fresh = max_of(d.min_fresh, arg.as_deref()),
                "max-stale" => {
                    d.max_stale = match arg {
                        None => Some(u64::MAX),
                        Some(a) => a.parse::<u64>().ok().or(d.max_stale),
                    }
                }
                "only-if-cached" => d.only_if_cached = true,
                _ => {}
            }
        }
        if !any
            && headers
                .get_all(PRAGMA)
                .iter()
                .any(|v| v.as_bytes().eq_ignore_ascii_case(b"no-cache"))
        {
            d.no_cache = true;
        }
        d
    }

    /// Whether the client wants a freshly computed response (`no-cache` or `max-age=0`).
    pub fn wants_fresh(&self) -> bool {
        self.no_cache || self.max_age == Some(0)
    }

    /// Whether a stored entry must be checked against `max-age`, `min-fresh` or
    /// `only-if-cached` before it is used.
    pub fn restricts_hits(&self) -> bool {
        self.max_age.is_some() || self.min_fresh.is_some() || self.only_if_cached
    }

    /// Whether an entry created at `created_ms` and expiring at `expires_ms` (Unix ms) may
    /// answer this request at `now_ms`: not older than `max-age`, still fresh `min-fresh`
    /// seconds from now.
    ///
    /// ```
    /// use cache_runtime::http::cache_control::RequestDirectives;
    /// let d = RequestDirectives { max_age: Some(10), min_fresh: Some(5), ..Default::default() };
    /// assert!(d.accepts(0, Some(60_000), 9_000));
    /// assert!(!d.accepts(0, Some(60_000), 11_000), "older than max-age");
    /// assert!(!d.accepts(0, Some(12_000), 9_000), "expires within min-fresh");
    /// ```
    pub fn accepts(&self, created_ms: u64, expires_ms: Option<u64>, now_ms: u64) -> bool {
        let age_ok = self
            .max_age
            .is_none_or(|max| now_ms.saturating_sub(created_ms) <= max.saturating_mul(1000));
        let fresh_ok = match (self.min_fresh, expires_ms) {
            (Some(min), Some(at)) => at.saturating_sub(now_ms) >= min.saturating_mul(1000),
            _ => true,
        };
        age_ok && fresh_ok
    }
}

fn seconds(arg: Option<&str>) -> Option<u64> {
    arg.and_then(|a| a.parse::<u64>().ok())
}

/// The stricter of two `max-age`s.
fn min_of(old: Option<u64>, arg: Option<&str>) -> Option<u64> {
    match (old, seconds(arg)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => b.or(a),
    }
}

/// The stricter of two `min-fresh`es.
fn max_of(old: Option<u64>, arg: Option<&str>) -> Option<u64> {
    match (old, seconds(arg)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => b.or(a),
    }
}

/// Whether a handler's response forbids server-side storing: `private`, `no-store` or
/// `no-cache` in its `Cache-Control`.
pub fn forbids_storing(headers: &HeaderMap) -> bool {
    directives(headers)
        .any(|(name, _)| matches!(name.as_str(), "private" | "no-store" | "no-cache"))
}

/// What clients and shared caches may do with a response without asking the server again:
/// `#[cached(http(max_age = N, s_maxage = N, stale_while_revalidate = N, stale_if_error = N,
/// immutable))]`. Independent of `expire` (how long the server keeps the entry).
///
/// The default (all `None`) sends `no-cache`: caches may store the response but revalidate it
/// on every use, which the server answers with a 304 from its own cache. Since writes
/// invalidate server entries, clients then never see a response older than the last write.
/// `max_age = N` lets a client reuse a response for `N` seconds without asking: after a
/// write it may show the old one for up to `N` seconds (`s_maxage`: the same for shared
/// caches, CDNs and proxies).
///
/// ```
/// use cache_runtime::http::cache_control::{Freshness, Visibility, header_value};
/// let f = Freshness { max_age: Some(30), stale_if_error: Some(300), ..Freshness::NONE };
/// assert_eq!(header_value(Visibility::Public, &f), "public, max-age=30, stale-if-error=300");
/// assert_eq!(header_value(Visibility::Public, &Freshness::NONE), "public, no-cache");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Freshness {
    /// `max-age=N`: clients may reuse the response for `N` seconds without revalidating.
    pub max_age: Option<u64>,
    /// `s-maxage=N`: shared caches may reuse it for `N` seconds.
    pub s_maxage: Option<u64>,
    /// `stale-while-revalidate=N`: a cache may serve it up to `N` seconds stale while it
    /// revalidates in the background.
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error=N`: a cache may serve it up to `N` seconds stale when the server fails.
    pub stale_if_error: Option<u64>,
    /// `immutable`: the response never changes while fresh (no revalidation on reload).
    pub immutable: bool,
}

impl Freshness {
    /// No client freshness: revalidate every time (`no-cache`).
    pub const NONE: Freshness = Freshness {
        max_age: None,
        s_maxage: None,
        stale_while_revalidate: None,
        stale_if_error: None,
        immutable: false,
    };
}

/// The `Cache-Control` we send: `public|private` then `no-cache` (the default: revalidate on
/// every use) or `max-age=N` (`max-age=0` when only `s-maxage` is given), then the other
/// directives of `freshness`.
pub fn header_value(visibility: Visibility, freshness: &Freshness) -> HeaderValue {
    use std::fmt::Write;
    let mut text = String::from(match visibility {
        Visibility::Public => "public",
        Visibility::Private => "private",
    });
    match (freshness.max_age, freshness.s_maxage) {
        (Some(secs), _) => write!(text, ", max-age={secs}").unwrap(),
        (None, Some(_)) => text.push_str(", max-age=0"),
        (None, None) => text.push_str(", no-cache"),
    }
    let extra = [
        ("s-maxage", freshness.s_maxage),
        ("stale-while-revalidate", freshness.stale_while_revalidate),
        ("stale-if-error", freshness.stale_if_error),
    ];
    for (name, value) in extra {
        if let Some(secs) = value {
            write!(text, ", {name}={secs}").unwrap();
        }
    }
    if freshness.immutable {
        text.push_str(", immutable");
    }
    HeaderValue::from_str(&text).expect("ascii")
}

/// Every directive of every `Cache-Control` line: lowercased name, argument without quotes.
fn directives(headers: &HeaderMap) -> impl Iterator<Item = (String, Option<String>)> + '_ {
    headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(split_list)
}

/// Splits one line on commas outside quotes.
fn split_list(line: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let bytes = line.as_bytes();
    for i in 0..=bytes.len() {
        let at_end = i == bytes.len();
        if !at_end && bytes[i] == b'"' {
            quoted = !quoted;
        }
        if at_end || (bytes[i] == b',' && !quoted) {
            let item = line[start..i].trim();
            start = i + 1;
            if item.is_empty() {
                continue;
            }
            let (name, arg) = match item.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"').to_owned())),
                None => (item, None),
            };
            out.push((name.to_ascii_lowercase(), arg));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: http::HeaderName, lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(name.clone(), HeaderValue::from_str(l).unwrap());
        }
        h
    }

    #[test]
    fn request_directives() {
        let d = RequestDirectives::parse(&headers(CACHE_CONTROL, &["no-cache, no-store"]));
        assert!(d.no_cache && d.no_store);
        let d = RequestDirectives::parse(&headers(CACHE_CONTROL, &["MAX-AGE=0"]));
        assert!(d.wants_fresh() && !d.no_store);
        let d = RequestDirectives::parse(&headers(CACHE_CONTROL, &["max-age=\"0\""]));
        assert_eq!(d.max_age, Some(0));
        let d = RequestDirectives::parse(&headers(CACHE_CONTROL, &["max-age=60", "no-store"]));
        assert!(!d.wants_fresh() && d.no_store);
        let d = RequestDirectives::parse(&headers(CACHE_CONTROL, &["foo=\"a,no-store\""]));
        assert_eq!(d, RequestDirectives::default());
        let d = RequestDirectives::parse(&headers(
            CACHE_CONTROL,
            &["min-fresh=5, max-stale, Only-If-Cached", "min-fresh=9"],
        ));
        assert_eq!(
            (d.min_fresh, d.max_stale, d.only_if_cached),
            (Some(9), Some(u64::MAX), true)
        );
        let d = RequestDirectives::parse(&headers(CACHE_CONTROL, &["max-stale=30"]));
        assert_eq!(d.max_stale, Some(30));
        let d = RequestDirectives::parse(&headers(PRAGMA, &["no-cache"]));
        assert!(d.no_cache);
        assert_eq!(
            RequestDirectives::parse(&HeaderMap::new()),
            RequestDirectives::default()
        );
    }

    #[test]
    fn response_forbids() {
        assert!(forbids_storing(&headers(CACHE_CONTROL, &["Private"])));
        assert!(forbids_storing(&headers(
            CACHE_CONTROL,
            &["max-age=5, no-store"]
        )));
        assert!(forbids_storing(&headers(
            CACHE_CONTROL,
            &["private=\"set-cookie\""]
        )));
        assert!(!forbids_storing(&headers(
            CACHE_CONTROL,
            &["public, max-age=5"]
        )));
        assert!(!forbids_storing(&HeaderMap::new()));
    }
}
