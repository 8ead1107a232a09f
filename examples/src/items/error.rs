//! [`ApiError`]: every failure of the API as a status code and a JSON body `{"error": ...}`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An API failure.
#[derive(Debug)]
pub enum ApiError {
    /// No item with this id (404).
    NotFound(u64),
    /// A body that is not the expected JSON (400, 415 or 422, from axum's rejection).
    BadBody(StatusCode, String),
    /// JSON of the right shape with invalid values (422).
    Invalid(String),
    /// The database failed (500).
    Db(String),
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::BadBody(rejection.status(), rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::NotFound(id) => (StatusCode::NOT_FOUND, format!("no item with id {id}")),
            ApiError::BadBody(status, text) => (status, text),
            ApiError::Invalid(text) => (StatusCode::UNPROCESSABLE_ENTITY, text),
            ApiError::Db(text) => {
                tracing::error!(error = %text, "database error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "database error".to_owned(),
                )
            }
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}
