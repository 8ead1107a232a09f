//! [`RequestParts`]: the parts of a request the cache needs, taken by an axum extractor that
//! the macro adds to a cached handler's arguments.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, OriginalUri};
use http::request::Parts;
use http::{HeaderMap, Method, Uri};

/// Method, URI (the original one, before `Router::nest` stripped a prefix) and headers.
#[derive(Debug, Clone)]
pub struct RequestParts {
    /// The request method.
    pub method: Method,
    /// The URI the client asked for.
    pub uri: Uri,
    /// The request headers.
    pub headers: HeaderMap,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestParts {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        let uri = match parts.extensions.get::<OriginalUri>() {
            Some(OriginalUri(uri)) => uri.clone(),
            None => parts.uri.clone(),
        };
        Ok(Self {
            method: parts.method.clone(),
            uri,
            headers: parts.headers.clone(),
        })
    }
}
