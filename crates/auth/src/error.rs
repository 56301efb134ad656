//! The crate's one error type. Each variant has a stable code, a [`Kind`] (the server maps kinds to
//! statuses) and a message that is safe to show. Nothing is logged when an error is made: whoever
//! handles it last does that.

use contract::{Kind, PublicError};
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
    /// A refused input, by the name the caller gave it (`name`, `scopes`, `expires_at`).
    #[error("{}", .0.message)]
    InvalidField(contract::FieldError),
    #[error("That username is already taken.")]
    UsernameTaken,
    #[error("Not found.")]
    NotFound,
    /// Storage or hashing failures: logged with detail, shown as a generic message.
    #[error("Something went wrong on our side.")]
    Internal(String),
}

impl From<contract::FieldError> for AuthError {
    fn from(f: contract::FieldError) -> Self {
        AuthError::InvalidField(f)
    }
}

impl AuthError {
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        AuthError::InvalidField(contract::FieldError::new(field, message))
    }
}

impl PublicError for AuthError {
    fn code(&self) -> &'static str {
        match self {
            AuthError::InvalidCredentials => "invalid_credentials",
            AuthError::InvalidToken => "unauthorized",
            AuthError::MissingScope { .. } => "forbidden",
            AuthError::Throttled { .. } => "rate_limited",
            AuthError::Busy { .. } => "unavailable",
            AuthError::InvalidInput(_) | AuthError::InvalidField(_) => "validation_failed",
            AuthError::UsernameTaken => "username_taken",
            AuthError::NotFound => "not_found",
            AuthError::Internal(_) => "internal",
        }
    }

    fn kind(&self) -> Kind {
        match self {
            AuthError::InvalidCredentials | AuthError::InvalidToken => Kind::Unauthorized,
            AuthError::MissingScope { .. } => Kind::Forbidden,
            AuthError::Throttled { .. } => Kind::TooManyRequests,
            AuthError::Busy { .. } => Kind::Unavailable,
            AuthError::InvalidInput(_) | AuthError::InvalidField(_) => Kind::Invalid,
            AuthError::UsernameTaken => Kind::Conflict,
            AuthError::NotFound => Kind::NotFound,
            AuthError::Internal(_) => Kind::Internal,
        }
    }

    fn public_message(&self) -> String {
        self.to_string()
    }

    fn fields(&self) -> &[contract::FieldError] {
        match self {
            AuthError::InvalidField(f) => std::slice::from_ref(f),
            _ => &[],
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            AuthError::Throttled { retry_after } | AuthError::Busy { retry_after } => Some(retry_after.as_secs().max(1)),
            _ => None,
        }
    }

    fn internal_detail(&self) -> Option<String> {
        match self {
            AuthError::Internal(detail) => Some(detail.clone()),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for AuthError {
    fn from(e: sqlx::Error) -> Self {
        AuthError::Internal(format!("database error: {e}"))
    }
}

impl From<db::DbError> for AuthError {
    fn from(e: db::DbError) -> Self {
        match e {
            db::DbError::BadUrl(m) => AuthError::InvalidInput(m),
            other => AuthError::Internal(format!("database error: {other}")),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for AuthError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        AuthError::Internal(format!("migration error: {e}"))
    }
}

/// Every client sees a [`contract::Problem`]; `?` in a server function or a handler converts.
impl From<AuthError> for contract::Problem {
    fn from(e: AuthError) -> Self {
        contract::Problem::from_error(&e)
    }
}
