//! `Cache-Control`: what a request asks for, what a response forbids, and the header we send.
//!
//! Directives are parsed properly: several header lines, comma-separated lists, any case,
//! quoted arguments (`max-age="0"`), unknown directives ignored.
//!
//! ```
//! use cache_runtime::http::cache_control::{RequestDirectives, Visibility, header_value};
//! use http::{HeaderMap, HeaderValue, header::CACHE_CONTROL};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(CACHE_CONTROL, HeaderValue::from_static("No-Cache, no-store"));
//! let d = RequestDirectives::parse(&headers);
//! assert!(d.no_store && d.no_cache);
//! assert_eq!(header_value(Visibility::Public, Some(42)), "public, max-age=42");
//! assert_eq!(header_value(Visibility::Private, None), "private, no-cache");
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
    /// `max-age=N`; `max-age=0` refreshes like `no-cache`.
    pub max_age: Option<u64>,
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
                "max-age" => {
                    if let Some(secs) = arg.and_then(|a| a.parse::<u64>().ok()) {
                        d.max_age = Some(d.max_age.map_or(secs, |m| m.min(secs)));
                    }
                }
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
}

/// Whether a handler's response forbids server-side storing: `private`, `no-store` or
/// `no-cache` in its `Cache-Control`.
pub fn forbids_storing(headers: &HeaderMap) -> bool {
    directives(headers)
        .any(|(name, _)| matches!(name.as_str(), "private" | "no-store" | "no-cache"))
}

/// The `Cache-Control` we send: `public, max-age=N`, or `…, no-cache` when the entry has no
/// TTL (clients may keep it but must revalidate, which costs them a 304).
pub fn header_value(visibility: Visibility, max_age: Option<u64>) -> HeaderValue {
    let vis = match visibility {
        Visibility::Public => "public",
        Visibility::Private => "private",
    };
    let text = match max_age {
        Some(secs) => format!("{vis}, max-age={secs}"),
        None => format!("{vis}, no-cache"),
    };
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
