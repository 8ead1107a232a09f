//! A stored response (status, the headers that matter, body bytes, ETag) and the capture of a
//! handler's response into one.
//!
//! What is stored: status codes in the allowed set (2xx but 206 by default), whose response
//! sets no cookie and whose `Cache-Control` says neither `private`, `no-store` nor `no-cache`,
//! with a body no larger than the cache's `max_value_bytes`. Anything else passes through
//! untouched and unbuffered.
//!
//! Headers not stored: hop-by-hop ones (`Connection`, `Transfer-Encoding`, …), `Date`, `Age`,
//! `Content-Length` (recomputed), `Cache-Control`, `Expires`, `Pragma`, `ETag` (ours replace
//! them), `Set-Cookie` (never stored), and the cache status header.

use std::sync::Arc;

use axum::body::{Body, HttpBody};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use serde::de::{Error as _, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::etag;

/// A response as the cache keeps it. Cheap to clone (an `Arc`).
#[derive(Clone, Debug)]
pub struct StoredResponse(Arc<Stored>);

#[derive(Debug)]
struct Stored {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    etag: HeaderValue,
}

impl StoredResponse {
    /// A stored response; its ETag is computed from `body`.
    pub fn new(status: StatusCode, headers: HeaderMap, body: Bytes) -> Self {
        let etag = etag::for_body(&body);
        Self(Arc::new(Stored {
            status,
            headers,
            body,
            etag,
        }))
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The stored headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.0.headers
    }

    /// The body bytes.
    pub fn body(&self) -> &Bytes {
        &self.0.body
    }

    /// The strong ETag of the body.
    pub fn etag(&self) -> &HeaderValue {
        &self.0.etag
    }
}

/// What became of a handler's response.
pub(crate) enum Captured {
    /// Buffered and eligible for storing, ETag and 304.
    Stored(StoredResponse),
    /// Not cacheable: returned as the handler made it.
    Passed(Response),
}

/// What may be stored.
pub(crate) struct StorePolicy<'a> {
    /// Allowed status codes; empty means 2xx except 206.
    pub(crate) statuses: &'a [u16],
    /// The largest body buffered.
    pub(crate) max_body: usize,
    /// The cache status header (never stored).
    pub(crate) status_header: &'a HeaderName,
}

impl StorePolicy<'_> {
    fn status_allowed(&self, status: StatusCode) -> bool {
        if self.statuses.is_empty() {
            status.is_success() && status != StatusCode::PARTIAL_CONTENT
        } else {
            self.statuses.contains(&status.as_u16())
        }
    }
}

/// Buffers `response` if it may be stored; passes it through otherwise.
pub(crate) async fn capture(response: Response, policy: &StorePolicy<'_>) -> Captured {
    let headers = response.headers();
    if !policy.status_allowed(response.status())
        || headers.contains_key(header::SET_COOKIE)
        || super::cache_control::forbids_storing(headers)
        || response.body().size_hint().lower() > policy.max_body as u64
    {
        return Captured::Passed(response);
    }
    let (parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            tracing::warn!(error = %e, "the handler's response body failed");
            return Captured::Passed(StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
    };
    if bytes.len() > policy.max_body {
        // A streamed body larger than announced: serve it, do not store it.
        return Captured::Passed(Response::from_parts(parts, Body::from(bytes)));
    }
    let mut headers = parts.headers;
    for name in NOT_STORED {
        headers.remove(name);
    }
    headers.remove(policy.status_header);
    Captured::Stored(StoredResponse::new(parts.status, headers, bytes))
}

const NOT_STORED: [HeaderName; 13] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::DATE,
    header::AGE,
    header::CONTENT_LENGTH,
    header::CACHE_CONTROL,
    header::EXPIRES,
    header::PRAGMA,
    header::ETAG,
    header::PROXY_AUTHENTICATE,
];

// ----- serde: (status, [(name, value)], body, etag) ------------------------------------------

struct RawBytes<'a>(&'a [u8]);

impl Serialize for RawBytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

struct ByteBuf(Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ByteBuf, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(ByteBuf(out))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

impl Serialize for StoredResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let headers: Vec<(&str, RawBytes<'_>)> = self
            .0
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), RawBytes(v.as_bytes())))
            .collect();
        (
            self.0.status.as_u16(),
            headers,
            RawBytes(&self.0.body),
            RawBytes(self.0.etag.as_bytes()),
        )
            .serialize(s)
    }
}

impl<'de> Deserialize<'de> for StoredResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (status, pairs, body, etag): (u16, Vec<(String, ByteBuf)>, ByteBuf, ByteBuf) =
            Deserialize::deserialize(d)?;
        let status = StatusCode::from_u16(status).map_err(D::Error::custom)?;
        let mut headers = HeaderMap::with_capacity(pairs.len());
        for (name, value) in pairs {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(D::Error::custom)?;
            let value = HeaderValue::from_bytes(&value.0).map_err(D::Error::custom)?;
            headers.append(name, value);
        }
        let etag = HeaderValue::from_bytes(&etag.0).map_err(D::Error::custom)?;
        Ok(Self(Arc::new(Stored {
            status,
            headers,
            body: Bytes::from(body.0),
            etag,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &HeaderName) -> StorePolicy<'_> {
        StorePolicy {
            statuses: &[],
            max_body: 1024,
            status_header: name,
        }
    }

    async fn cap(resp: Response) -> Option<StoredResponse> {
        let name = HeaderName::from_static("x-cache");
        match capture(resp, &policy(&name)).await {
            Captured::Stored(s) => Some(s),
            Captured::Passed(_) => None,
        }
    }

    #[tokio::test]
    async fn stores_2xx_and_drops_volatile_headers() {
        let resp = Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .header("date", "x")
            .header("etag", "\"theirs\"")
            .header("x-cache", "HIT")
            .body(Body::from("{}"))
            .unwrap();
        let s = cap(resp).await.expect("stored");
        assert_eq!(s.body().as_ref(), b"{}");
        assert_eq!(s.headers()["content-type"], "application/json");
        assert!(s.headers().get("date").is_none());
        assert!(s.headers().get("x-cache").is_none());
        assert_eq!(s.etag(), &etag::for_body(b"{}"));
    }

    #[tokio::test]
    async fn passes_what_must_not_be_stored() {
        let build = |status: u16, header: Option<(&str, &str)>, body: &str| {
            let mut b = Response::builder().status(status);
            if let Some((n, v)) = header {
                b = b.header(n, v);
            }
            b.body(Body::from(body.to_owned())).unwrap()
        };
        assert!(cap(build(404, None, "x")).await.is_none());
        assert!(cap(build(206, None, "x")).await.is_none());
        assert!(cap(build(500, None, "x")).await.is_none());
        assert!(
            cap(build(200, Some(("set-cookie", "a=1")), "x"))
                .await
                .is_none()
        );
        assert!(
            cap(build(200, Some(("cache-control", "private")), "x"))
                .await
                .is_none()
        );
        assert!(
            cap(build(200, Some(("cache-control", "no-store")), "x"))
                .await
                .is_none()
        );
        assert!(cap(build(200, None, &"x".repeat(2000))).await.is_none());
        assert!(cap(build(204, None, "")).await.is_some());
    }

    #[test]
    fn serde_round_trips_through_both_codecs() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        let s = StoredResponse::new(StatusCode::CREATED, headers, Bytes::from_static(b"\x00hi"));
        let json = serde_json::to_vec(&s).unwrap();
        let back: StoredResponse = serde_json::from_slice(&json).unwrap();
        assert_eq!(back.status(), StatusCode::CREATED);
        assert_eq!(back.body(), s.body());
        assert_eq!(back.etag(), s.etag());
        assert_eq!(back.headers(), s.headers());
        let bin = bincode::serde::encode_to_vec(&s, bincode::config::standard()).unwrap();
        let (back, _): (StoredResponse, usize) =
            bincode::serde::decode_from_slice(&bin, bincode::config::standard()).unwrap();
        assert_eq!(back.body(), s.body());
        assert_eq!(back.headers(), s.headers());
    }
}
