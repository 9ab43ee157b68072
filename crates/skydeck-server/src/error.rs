//! HTTP errors: one type, one `{"detail": …}` envelope, as FastAPI answers.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use skydeck_store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: serde_json::Value,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<serde_json::Value>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail.into())
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail.into())
    }

    /// The caller is known but may not do this (the official client raises
    /// `PermissionDeniedError` with the detail).
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail.into())
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail.into())
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, detail.into())
    }

    /// A failure the caller cannot fix. The detail goes to the log once; the
    /// caller gets a generic message (no internals leak).
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal server error; the API server log has the details.",
        )
    }

    /// The detail as one line of text, for a page to show.
    pub fn message(&self) -> String {
        match &self.detail {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        }
    }

    /// FastAPI's 422 for a body or query that does not validate: a list of
    /// `{loc, msg, type}` so a client can point at the field.
    pub fn validation(loc: Vec<serde_json::Value>, msg: impl Into<String>, kind: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            serde_json::json!([{"loc": loc, "msg": msg.into(), "type": kind}]),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({"detail": self.detail})),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        // Out of connections or the database went away: tell the client to
        // back off and retry rather than fail its command.
        if err.is_unavailable() {
            tracing::warn!(error = %err, "database unavailable");
            return Self::unavailable("The API server's database is busy; retry shortly.");
        }
        Self::internal(err)
    }
}
