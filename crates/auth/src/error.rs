//! The crate's one error type. Each variant knows its HTTP status and a message that is safe to show.

use http::StatusCode;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Same message for an unknown user and a wrong password, so it reveals nothing.
    #[error("Invalid username or password.")]
    InvalidCredentials,
    /// An API token that is malformed, unknown, revoked or expired: one answer for all, like above.
    #[error("Invalid, expired or revoked API token.")]
    InvalidToken,
    /// A valid API token without the scope the request needs.
    #[error("This API token does not have the {scope} scope.")]
    MissingScope { scope: &'static str },
    #[error("Too many sign-in attempts. Try again in {} seconds.", retry_after.as_secs().max(1))]
    Throttled { retry_after: Duration },
    /// Every password-hashing slot stayed taken for the whole wait: the server is busy, not broken.
    #[error("The server is busy. Try again in a moment.")]
    Busy { retry_after: Duration },
    #[error("{0}")]
    InvalidInput(String),
    #[error("That username is already taken.")]
    UsernameTaken,
    #[error("Not found.")]
    NotFound,
    /// Storage or hashing failures: logged with detail, shown as a generic message.
    #[error("Something went wrong on our side.")]
    Internal(String),
}

impl AuthError {
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            AuthError::InvalidToken => StatusCode::UNAUTHORIZED,
            AuthError::MissingScope { .. } => StatusCode::FORBIDDEN,
            AuthError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            AuthError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::InvalidInput(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AuthError::UsernameTaken => StatusCode::CONFLICT,
            AuthError::NotFound => StatusCode::NOT_FOUND,
            AuthError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The number for a `Retry-After` header, if this error has one.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            AuthError::Throttled { retry_after } | AuthError::Busy { retry_after } => Some(retry_after.as_secs().max(1)),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for AuthError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "database error");
        AuthError::Internal(e.to_string())
    }
}

impl From<db::DbError> for AuthError {
    fn from(e: db::DbError) -> Self {
        match e {
            db::DbError::BadUrl(m) => AuthError::InvalidInput(m),
            other => {
                tracing::error!(error = %other, "database error");
                AuthError::Internal(other.to_string())
            }
        }
    }
}

impl From<sqlx::migrate::MigrateError> for AuthError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        tracing::error!(error = %e, "migration error");
        AuthError::Internal(e.to_string())
    }
}
