//! Validators of a cached response: its `ETag` (see [`super::etag`]) and `Last-Modified`, the
//! time the entry was created, as an HTTP date; and the request's conditions on them.
//!
//! `If-None-Match` decides when present; only without it does `If-Modified-Since` count
//! (RFC 9110 13.1.3): a response created at or before that date is `304 Not Modified`.
//! Dates are formatted and parsed by the `httpdate` crate (IMF-fixdate, and the obsolete
//! RFC 850 and asctime forms a client may still send).
//!
//! ```
//! use cache_runtime::http::validators::{last_modified, not_modified};
//! use http::{HeaderMap, HeaderValue, header::IF_MODIFIED_SINCE};
//!
//! let created_ms = 1_700_000_000_123;
//! let lm = last_modified(created_ms);
//! assert_eq!(lm, "Tue, 14 Nov 2023 22:13:20 GMT");
//! let mut headers = HeaderMap::new();
//! headers.insert(IF_MODIFIED_SINCE, lm.clone());
//! let etag = HeaderValue::from_static("\"x\"");
//! assert!(not_modified(&headers, &etag, Some(created_ms)));
//! assert!(!not_modified(&headers, &etag, Some(created_ms + 1000)));
//! ```

use std::time::{Duration, UNIX_EPOCH};

use http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH};
use http::{HeaderMap, HeaderValue};

/// `Last-Modified` for an entry created at `created_ms` (Unix ms; whole seconds are sent).
pub fn last_modified(created_ms: u64) -> HeaderValue {
    let text = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(created_ms));
    HeaderValue::from_str(&text).expect("an HTTP date is a valid header value")
}

/// Whether the request's conditions make the answer a 304: `If-None-Match` matching `etag`
/// when present, else `If-Modified-Since` not before the entry's creation (`created_ms`,
/// compared in whole seconds; no entry time means no date match).
pub fn not_modified(headers: &HeaderMap, etag: &HeaderValue, created_ms: Option<u64>) -> bool {
    if headers.contains_key(IF_NONE_MATCH) {
        return super::etag::none_match_matches(headers, etag);
    }
    let (Some(created_ms), Some(since)) = (created_ms, headers.get(IF_MODIFIED_SINCE)) else {
        return false;
    };
    let Some(since) = since
        .to_str()
        .ok()
        .and_then(|s| httpdate::parse_http_date(s).ok())
    else {
        return false;
    };
    let since_secs = since.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    created_ms / 1000 <= since_secs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_modified_is_the_creation_time_as_an_http_date() {
        assert_eq!(last_modified(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            last_modified(1_000_000_000_999),
            "Sun, 09 Sep 2001 01:46:40 GMT"
        );
    }

    fn headers(pairs: &[(http::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(n.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn if_none_match_wins_over_if_modified_since() {
        let etag = HeaderValue::from_static("\"a\"");
        let date = "Tue, 14 Nov 2023 22:13:20 GMT";
        let created = Some(1_700_000_000_000);
        let h = headers(&[(IF_NONE_MATCH, "\"b\""), (IF_MODIFIED_SINCE, date)]);
        assert!(!not_modified(&h, &etag, created));
        let h = headers(&[(IF_MODIFIED_SINCE, "Tue, 14 Nov 2023 22:13:19 GMT")]);
        assert!(!not_modified(&h, &etag, created), "modified after");
        let h = headers(&[(IF_MODIFIED_SINCE, "Tuesday, 14-Nov-23 22:13:20 GMT")]);
        assert!(not_modified(&h, &etag, created), "RFC 850 form");
        let h = headers(&[(IF_MODIFIED_SINCE, "yesterday")]);
        assert!(!not_modified(&h, &etag, created));
        assert!(!not_modified(
            &headers(&[(IF_MODIFIED_SINCE, date)]),
            &etag,
            None
        ));
    }
}
