//! The server's error type: each variant knows its status; internals are logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error("{0}")]
    BadRequest(String),
    #[error("{1}")]
    Status(StatusCode, String),
    #[error("Something went wrong on our side.")]
    Internal(String),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Auth(e) => e.status(),
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Status(s, _) => *s,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message a client may see.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Auth(e) => e.to_string(),
            AppError::Internal(_) => "Something went wrong on our side.".into(),
            other => other.to_string(),
        }
    }

    /// The message for whoever runs the server (start-up and CLI errors): the detail, which clients
    /// never see.
    pub fn operator_message(&self) -> String {
        match self {
            AppError::Internal(detail) => detail.clone(),
            AppError::Auth(auth::AuthError::Internal(detail)) => detail.clone(),
            other => other.to_string(),
        }
    }

    pub fn retry_after(&self) -> Option<u64> {
        match self {
            AppError::Auth(e) => e.retry_after_secs(),
            _ => None,
        }
    }
}

impl From<tower_sessions::session::Error> for AppError {
    fn from(e: tower_sessions::session::Error) -> Self {
        AppError::Internal(format!("session: {e}"))
    }
}

/// JSON body `{"error": "...", "retry_after": N}` with the right status and `Retry-After`.
impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(detail) | AppError::Auth(auth::AuthError::Internal(detail)) = &self {
            tracing::error!(%detail, "internal error");
        }
        let status = self.status();
        let retry_after = self.retry_after();
        let body = serde_json::json!({ "error": self.public_message(), "retry_after": retry_after });
        let mut res = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}
