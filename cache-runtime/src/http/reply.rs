//! The answer to one request to a cached handler: the stored or fresh response with its
//! validators (`ETag`, `Last-Modified`), `Cache-Control`, `Vary`, `Age` and the status header
//! (`X-Cache`), or a `304 Not Modified`.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use http::header::{self, HeaderValue};

use super::cache_control::Visibility;
use super::request::RequestParts;
use super::response::Captured;
use super::serve::Status;
use super::site::Resolved;
use crate::cache::EntryMeta;
use crate::warn::now_ms;

/// Builds the answer to one request.
pub(super) struct Reply<'a> {
    pub(super) r: &'a Resolved,
    pub(super) req: &'a RequestParts,
    pub(super) is_head: bool,
}

impl Reply<'_> {
    pub(super) fn send(
        &self,
        captured: Captured,
        status: Status,
        meta: Option<EntryMeta>,
        visibility: Visibility,
    ) -> Response {
        let stored = match captured {
            Captured::Stored(stored) => stored,
            Captured::Passed(mut response) => {
                if let Some(value) = self.status_value(status) {
                    response
                        .headers_mut()
                        .insert(self.r.status_header.clone(), value);
                }
                return response;
            }
        };
        let now = now_ms();
        let age = match (status, meta) {
            (Status::Hit | Status::Stale, Some(m)) => Some(now.saturating_sub(m.created_ms) / 1000),
            (Status::Hit, None) => Some(0),
            _ => None,
        };
        let etag = stored.etag().clone();
        let created_ms = meta.map(|m| m.created_ms);
        let cache_control = match visibility {
            Visibility::Private if self.r.visibility != Visibility::Private => {
                self.r.cache_control_private.clone()
            }
            _ => self.r.cache_control.clone(),
        };
        let not_modified = super::validators::not_modified(&self.req.headers, &etag, created_ms);
        let mut response = if not_modified {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            response
        } else {
            let mut response = if self.is_head {
                Response::new(Body::empty())
            } else {
                Response::new(Body::from(stored.body().clone()))
            };
            *response.status_mut() = stored.status();
            *response.headers_mut() = stored.headers().clone();
            if self.is_head {
                response.headers_mut().insert(
                    header::CONTENT_LENGTH,
                    HeaderValue::from(stored.body().len()),
                );
            }
            response
        };
        let headers = response.headers_mut();
        headers.insert(header::ETAG, etag);
        if let Some(created_ms) = created_ms {
            let value = super::validators::last_modified(created_ms);
            headers.insert(header::LAST_MODIFIED, value);
        }
        headers.insert(header::CACHE_CONTROL, cache_control);
        if let Some(vary) = &self.r.vary_header {
            headers.append(header::VARY, vary.clone());
        }
        if let Some(age) = age {
            headers.insert(header::AGE, HeaderValue::from(age));
        }
        if let Some(value) = self.status_value(status) {
            headers.insert(self.r.status_header.clone(), value);
        }
        response
    }

    /// `only-if-cached` without a stored response: `504 Gateway Timeout` (RFC 9111 5.2.1.7).
    pub(super) fn gateway_timeout(&self) -> Response {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
        if let Some(value) = self.status_value(Status::Miss) {
            response
                .headers_mut()
                .insert(self.r.status_header.clone(), value);
        }
        response
    }

    fn status_value(&self, status: Status) -> Option<HeaderValue> {
        Some(HeaderValue::from_static(match status {
            Status::Hit => "HIT",
            Status::Miss => "MISS",
            Status::Stale => "STALE",
            Status::Bypass => "BYPASS",
            Status::None => return None,
        }))
    }
}
