//! Entity tags: a strong `ETag` from the body bytes, and `If-None-Match` matching.
//!
//! The tag is the first 128 bits of the BLAKE3 hash of the body, in hex and quoted:
//! the same bytes give the same tag in every process, build and machine.
//!
//! ```
//! use cache_runtime::http::etag;
//! use http::{HeaderMap, HeaderValue, header::IF_NONE_MATCH};
//!
//! let tag = etag::for_body(br#"{"id":1}"#);
//! assert!(tag.to_str().unwrap().starts_with('"'));
//! let mut headers = HeaderMap::new();
//! headers.insert(IF_NONE_MATCH, HeaderValue::from_static(r#""other", W/"x""#));
//! assert!(!etag::none_match_matches(&headers, &tag));
//! headers.append(IF_NONE_MATCH, tag.clone());
//! assert!(etag::none_match_matches(&headers, &tag));
//! ```

use http::header::IF_NONE_MATCH;
use http::{HeaderMap, HeaderValue};

/// The strong `ETag` of `body`: `"` + 32 hex digits + `"`.
pub fn for_body(body: &[u8]) -> HeaderValue {
    let hash = blake3::hash(body);
    let mut text = String::with_capacity(34);
    text.push('"');
    text.push_str(&crate::key::hex(&hash.as_bytes()[..16]));
    text.push('"');
    HeaderValue::from_str(&text).expect("hex digits in quotes are a valid header value")
}

/// Whether the request's `If-None-Match` (every line, each a comma-separated list) matches
/// `etag` by the weak comparison of RFC 9110 (`W/` ignored on both sides), or is `*`.
///
/// A malformed list matches nothing (the full response is sent, which is always safe).
pub fn none_match_matches(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = opaque(etag.as_bytes());
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .any(|line| list_matches(line.as_bytes(), ours))
}

/// The opaque part of a tag: `W/"x"` and `"x"` both give `"x"`.
fn opaque(tag: &[u8]) -> &[u8] {
    tag.strip_prefix(b"W/").unwrap_or(tag)
}

fn list_matches(mut rest: &[u8], ours: &[u8]) -> bool {
    loop {
        rest = trim_start(rest);
        match rest.first() {
            None => return false,
            Some(b',') => rest = &rest[1..],
            Some(b'*') => return true,
            Some(_) => {
                let tag = opaque(rest);
                if tag.first() != Some(&b'"') {
                    return false;
                }
                let Some(end) = tag[1..].iter().position(|&b| b == b'"') else {
                    return false;
                };
                if &tag[..end + 2] == ours {
                    return true;
                }
                rest = &tag[end + 2..];
            }
        }
    }
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let n = bytes
        .iter()
        .take_while(|b| **b == b' ' || **b == b'\t')
        .count();
    &bytes[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(IF_NONE_MATCH, HeaderValue::from_str(l).unwrap());
        }
        h
    }

    #[test]
    fn same_bytes_same_tag_different_bytes_different_tag() {
        assert_eq!(for_body(b"abc"), for_body(b"abc"));
        assert_ne!(for_body(b"abc"), for_body(b"abd"));
        assert_eq!(for_body(b"").to_str().unwrap().len(), 34);
    }

    #[test]
    fn tag_is_stable_across_processes() {
        // Fixed expectation: BLAKE3 of "hello" (first 16 bytes).
        assert_eq!(for_body(b"hello"), "\"ea8f163db38682925e4491c5e58d4bb3\"");
    }

    #[test]
    fn lists_weak_tags_and_star() {
        let tag = for_body(b"x");
        let t = tag.to_str().unwrap();
        assert!(none_match_matches(&req(&[t]), &tag));
        assert!(none_match_matches(&req(&[&format!("W/{t}")]), &tag));
        assert!(none_match_matches(&req(&[&format!("\"a\", {t}")]), &tag));
        assert!(none_match_matches(&req(&["\"a\"", t]), &tag));
        assert!(none_match_matches(&req(&["*"]), &tag));
        assert!(!none_match_matches(&req(&["\"a\", W/\"b\""]), &tag));
        assert!(!none_match_matches(&req(&[]), &tag));
        // A comma inside a tag is part of it.
        assert!(!none_match_matches(&req(&["\"a,b\""]), &tag));
        // Malformed: unquoted or unterminated.
        assert!(!none_match_matches(&req(&[&t[1..t.len() - 1]]), &tag));
        assert!(!none_match_matches(&req(&["\"abc"]), &tag));
    }
}
