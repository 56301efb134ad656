//! The server's own error type, for the form routes and start-up. Like every domain error it is a
//! [`PublicError`]; its answer is the problem every client gets. Internals are logged once, by the
//! `problems` middleware, never sent.

use axum::response::{IntoResponse, Response};
use contract::{Kind, Problem, PublicError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// The request cannot be read (a malformed form).
    #[error("{0}")]
    BadRequest(String),
    /// A refusal already in its public shape.
    #[error("{0}")]
    Refused(Problem),
    #[error("Something went wrong on our side.")]
    Internal(String),
}

impl AppError {
    /// A refusal of `kind` with that kind's code.
    pub fn refused(kind: Kind, message: impl Into<String>) -> Self {
        AppError::Refused(Problem::new(kind, kind.code(), message))
    }

    pub fn sign_in_first() -> Self {
        AppError::Refused(Problem::unauthorized("Sign in first."))
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
}

impl PublicError for AppError {
    fn code(&self) -> &'static str {
        match self {
            AppError::Auth(e) => e.code(),
            AppError::BadRequest(_) => "bad_request",
            // Its kind's code; `From<AppError> for Problem` keeps a refusal's own (`cross_site`, …).
            AppError::Refused(p) => p.kind().code(),
            AppError::Internal(_) => "internal",
        }
    }

    fn kind(&self) -> Kind {
        match self {
            AppError::Auth(e) => e.kind(),
            AppError::BadRequest(_) => Kind::BadRequest,
            AppError::Refused(p) => p.kind(),
            AppError::Internal(_) => Kind::Internal,
        }
    }

    fn public_message(&self) -> String {
        match self {
            AppError::Auth(e) => e.public_message(),
            AppError::Refused(p) => p.detail.clone(),
            other => other.to_string(),
        }
    }

    fn fields(&self) -> &[contract::FieldError] {
        match self {
            AppError::Refused(p) => &p.errors,
            _ => &[],
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            AppError::Auth(e) => e.retry_after_secs(),
            AppError::Refused(p) => p.retry_after,
            _ => None,
        }
    }

    fn internal_detail(&self) -> Option<String> {
        match self {
            AppError::Auth(e) => e.internal_detail(),
            AppError::Internal(detail) => Some(detail.clone()),
            _ => None,
        }
    }
}

impl From<AppError> for Problem {
    fn from(e: AppError) -> Self {
        match e {
            // Keep a refusal's own code (`cross_site`, `signup_disabled`, …) as it was made.
            AppError::Refused(p) => p,
            other => Problem::from_error(&other),
        }
    }
}

impl From<tower_sessions::session::Error> for AppError {
    fn from(e: tower_sessions::session::Error) -> Self {
        AppError::Internal(format!("session: {e}"))
    }
}

/// The problem of [`PublicError`], with its status and `Retry-After`.
impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}
