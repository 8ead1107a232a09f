//! The cache key of a request: method, path, query in canonical order, varied header values.
//!
//! `{prefix}:http:{namespace}:["GET","/items/1",[["a","1"],["b","2"]],[…vary values…]]`
//! (the namespace escaped and the request hashed when long, like every key, see
//! [`crate::key`]). HEAD uses GET's key: both are
//! answered from one entry.
//!
//! - The path is percent-decoded, except `%2F` (an encoded `/` is not a segment separator),
//!   so `/items/%31` and `/items/1` share an entry, as they reach the handler alike.
//! - The query is split into decoded `name=value` pairs (`+` is a space), sorted by name;
//!   repeated names keep their order. `?b=2&a=1` and `?a=1&b=%32` share an entry.
//! - Each varied header present in the request gives its `[name, value]` (lines joined with
//!   `, `); absent ones give nothing, so the request without any of them has the same key for
//!   every handler (the one [`super::invalidate_path`] drops).
//!
//! ```
//! use cache_runtime::http::key::{canonical_query, normalize_path};
//! assert_eq!(normalize_path("/items/%31"), "/items/1");
//! assert_eq!(normalize_path("/a%2fb"), "/a%2Fb");
//! assert_eq!(
//!     canonical_query(Some("b=2&a=x+y&&a=%31")),
//!     vec![("a".into(), "x y".into()), ("a".into(), "1".into()), ("b".into(), "2".into())]
//! );
//! ```

use std::borrow::Cow;

use http::{HeaderMap, HeaderName};
use serde::Serialize;

use crate::Error;

/// The path with percent-escapes decoded (except `%2F`, kept as `%2F`).
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = decode_escape(&bytes[i..])
        {
            if byte == b'/' {
                out.extend_from_slice(b"%2F");
            } else {
                out.push(byte);
            }
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    // Escapes that do not decode to UTF-8 keep the original spelling (stable, unambiguous).
    Cow::Owned(String::from_utf8(out).unwrap_or_else(|_| path.to_owned()))
}

/// The query's decoded `(name, value)` pairs, stably sorted by name.
pub fn canonical_query(query: Option<&str>) -> Vec<(String, String)> {
    let Some(query) = query else {
        return Vec::new();
    };
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            (decode_component(name), decode_component(value))
        })
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs
}

fn decode_component(s: &str) -> String {
    if !s.contains(['%', '+']) {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                if let Some(byte) = decode_escape(&bytes[i..]) {
                    out.push(byte);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

fn decode_escape(bytes: &[u8]) -> Option<u8> {
    let hi = (*bytes.get(1)? as char).to_digit(16)?;
    let lo = (*bytes.get(2)? as char).to_digit(16)?;
    Some((hi * 16 + lo) as u8)
}

/// The `(name, value)` of each varied header present in `headers`, in the order given.
pub fn vary_values(headers: &HeaderMap, vary: &[HeaderName]) -> Vec<(String, String)> {
    vary.iter()
        .filter_map(|name| {
            let mut lines = headers.get_all(name).iter().peekable();
            lines.peek()?;
            let joined: Vec<String> = lines
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            Some((name.as_str().to_owned(), joined.join(", ")))
        })
        .collect()
}

#[derive(Serialize)]
struct KeyParts<'a>(
    &'static str,
    &'a str,
    &'a [(String, String)],
    &'a [(String, String)],
);

/// The fixed part of the keys of `namespace`: `{prefix}:http:{namespace}:` (the namespace
/// escaped by [`crate::key::segment`]).
pub fn head(prefix: &str, namespace: &str) -> String {
    crate::key::http_head(prefix, namespace)
}

/// The key of `GET path?query` with these varied values, in `namespace`.
pub fn request_key(
    prefix: &str,
    namespace: &str,
    max_len: usize,
    path: &str,
    query: Option<&str>,
    vary_values: &[(String, String)],
) -> Result<String, Error> {
    key_with_head(&head(prefix, namespace), max_len, path, query, vary_values)
}

/// The key of `GET path?query` with these varied values, under a head built by [`head`].
pub(crate) fn key_with_head(
    head: &str,
    max_len: usize,
    path: &str,
    query: Option<&str>,
    vary_values: &[(String, String)],
) -> Result<String, Error> {
    let path = normalize_path(path);
    let query = canonical_query(query);
    crate::key::build(head, &KeyParts("GET", &path, &query, vary_values), max_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(path: &str, query: Option<&str>) -> String {
        request_key("cache", "ns", 250, path, query, &[]).unwrap()
    }

    #[test]
    fn query_order_and_encoding_do_not_matter() {
        assert_eq!(k("/x", Some("b=2&a=1")), k("/x", Some("a=1&b=%32")));
        assert_eq!(k("/x", Some("")), k("/x", None));
        assert_ne!(k("/x", Some("a=1")), k("/x", Some("a=2")));
        assert_ne!(k("/x", Some("a=1&a=2")), k("/x", Some("a=2&a=1")));
        assert_ne!(k("/x", Some("a=1")), k("/x", None));
        assert_eq!(k("/x", None), r#"cache:http:ns:["GET","/x",[],[]]"#);
        // Plain characters, `+` and escapes mixed in one component.
        let mixed = canonical_query(Some("q=a+b%21c"));
        assert_eq!(mixed, vec![("q".to_owned(), "a b!c".to_owned())]);
    }

    #[test]
    fn paths_normalize_without_merging_segments() {
        assert_eq!(k("/items/%31", None), k("/items/1", None));
        assert_ne!(k("/a%2Fb", None), k("/a/b", None));
        assert_eq!(k("/a%2fb", None), k("/a%2Fb", None));
        // Escapes early in the path and one after another are each read once.
        assert_eq!(normalize_path("/%61/b%2f%63"), "/a/b%2Fc");
        assert_eq!(normalize_path("/bad%zz"), "/bad%zz");
        assert_eq!(normalize_path("/bad%ff"), "/bad%ff");
    }

    #[test]
    fn varied_values_split_entries() {
        let name = HeaderName::from_static("accept-language");
        let mut h = HeaderMap::new();
        let absent = vary_values(&h, std::slice::from_ref(&name));
        h.insert(&name, "de".parse().unwrap());
        let de = vary_values(&h, std::slice::from_ref(&name));
        assert_eq!(absent, vec![]);
        assert_eq!(de, vec![("accept-language".into(), "de".into())]);
        let a = request_key("c", "ns", 250, "/x", None, &absent).unwrap();
        let b = request_key("c", "ns", 250, "/x", None, &de).unwrap();
        assert_ne!(a, b);
    }
}
