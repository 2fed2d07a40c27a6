//! [`ApiError`]: every way a request can fail, answered as Flink's REST API answers
//! errors: a status code and `{"errors": ["..."]}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A failed request.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// No such path, job or vertex (404).
    NotFound(String),
    /// The request is malformed (400), or its body too large (413), or another
    /// client error with its own status.
    Client(StatusCode, String),
    /// The request would change the job and carries no valid bearer token (401).
    Unauthorized,
    /// The job cannot do this in its state, e.g. cancel a finished job (409).
    Conflict(String),
}

impl ApiError {
    /// A 400.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::Client(StatusCode::BAD_REQUEST, message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::NotFound(m) => (StatusCode::NOT_FOUND, m),
            Self::Client(status, m) => (status, m),
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "this request changes the job and needs 'Authorization: Bearer <token>'".into(),
            ),
            Self::Conflict(m) => (StatusCode::CONFLICT, m),
        };
        let mut response = (status, Json(json!({ "errors": [message] }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
