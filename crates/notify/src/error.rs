//! The crate's one error type. Each variant has a stable code and a [`Kind`] (the server maps kinds to
//! statuses); its Display is safe to show a client (storage and network details are kept for the log,
//! never displayed). Nothing is logged when an error is made: whoever handles it last does that.

use contract::{Kind, PublicError};
use std::time::Duration;

pub use contract::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The backlog is over its high-water mark: try again later.
    #[error("The notification queue is full. Try again in {} seconds.", retry_after.as_secs().max(1))]
    Backpressure { retry_after: Duration },
    /// One of the user's quotas is used up (see [`Quotas`](crate::Quotas)); the message says which and when.
    #[error("{message}")]
    QuotaExceeded { message: String, retry_after: Duration },
    /// Bad input, field by field.
    #[error("{}", describe(.0))]
    Invalid(Vec<FieldError>),
    #[error("Not found.")]
    NotFound,
    /// The run is not in a state that allows this (e.g. cancelling a finished run).
    #[error("{0}")]
    Conflict(String),
    /// The Redis backend was asked for but is not configured.
    #[error("The Redis backend is not configured on this server.")]
    BackendUnavailable,
    /// The pipeline is shutting down and takes no more work.
    #[error("The notification service is shutting down.")]
    ShuttingDown,
    /// Storage, network or internal failures: logged with detail, shown as a generic message.
    #[error("Something went wrong on our side.")]
    Internal(String),
}

fn describe(errors: &[FieldError]) -> String {
    errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
}

impl NotifyError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        NotifyError::Invalid(vec![FieldError::new(field, message)])
    }

    pub fn internal(context: &str, e: impl std::fmt::Display) -> Self {
        NotifyError::Internal(format!("{context}: {e}"))
    }

    /// Field errors for a 422 body (empty for other variants).
    pub fn field_errors(&self) -> &[FieldError] {
        self.fields()
    }
}

impl PublicError for NotifyError {
    fn code(&self) -> &'static str {
        match self {
            // A busy pipeline is not one user's doing: `rate_limited`. A user's own allowance: `quota_exceeded`.
            NotifyError::Backpressure { .. } => "rate_limited",
            NotifyError::QuotaExceeded { .. } => "quota_exceeded",
            NotifyError::Invalid(_) => "validation_failed",
            NotifyError::NotFound => "not_found",
            NotifyError::Conflict(_) => "conflict",
            NotifyError::BackendUnavailable | NotifyError::ShuttingDown => "unavailable",
            NotifyError::Internal(_) => "internal",
        }
    }

    fn kind(&self) -> Kind {
        match self {
            NotifyError::Backpressure { .. } | NotifyError::QuotaExceeded { .. } => Kind::TooManyRequests,
            NotifyError::Invalid(_) => Kind::Invalid,
            NotifyError::NotFound => Kind::NotFound,
            NotifyError::Conflict(_) => Kind::Conflict,
            NotifyError::BackendUnavailable | NotifyError::ShuttingDown => Kind::Unavailable,
            NotifyError::Internal(_) => Kind::Internal,
        }
    }

    fn public_message(&self) -> String {
        self.to_string()
    }

    fn fields(&self) -> &[FieldError] {
        match self {
            NotifyError::Invalid(v) => v,
            _ => &[],
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            NotifyError::Backpressure { retry_after } | NotifyError::QuotaExceeded { retry_after, .. } => {
                Some(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
            _ => None,
        }
    }

    fn internal_detail(&self) -> Option<String> {
        match self {
            NotifyError::Internal(detail) => Some(detail.clone()),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for NotifyError {
    fn from(e: rusqlite::Error) -> Self {
        NotifyError::internal("queue database error", e)
    }
}

impl From<redis::RedisError> for NotifyError {
    fn from(e: redis::RedisError) -> Self {
        NotifyError::internal("redis error", e)
    }
}

/// Every client sees a [`contract::Problem`]; `?` in a server function or a handler converts.
impl From<NotifyError> for contract::Problem {
    fn from(e: NotifyError) -> Self {
        contract::Problem::from_error(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internals_never_reach_the_display() {
        let e = NotifyError::Internal("disk I/O error at /secret/path".into());
        assert_eq!(e.to_string(), "Something went wrong on our side.");
        assert_eq!((e.kind(), e.code()), (Kind::Internal, "internal"));
        assert_eq!(e.internal_detail().as_deref(), Some("disk I/O error at /secret/path"));
    }

    #[test]
    fn backpressure_is_429_with_retry_after() {
        let e = NotifyError::Backpressure { retry_after: Duration::from_millis(200) };
        assert_eq!((e.kind(), e.code(), e.retry_after_secs()), (Kind::TooManyRequests, "rate_limited", Some(1)));
        let q = NotifyError::QuotaExceeded { message: "x".into(), retry_after: Duration::from_secs(2) };
        assert_eq!((q.kind(), q.code(), q.retry_after_secs()), (Kind::TooManyRequests, "quota_exceeded", Some(2)));
    }

    #[test]
    fn field_errors_name_the_field() {
        let e = NotifyError::invalid("count", "must be at least 1");
        assert_eq!((e.kind(), e.code()), (Kind::Invalid, "validation_failed"));
        assert_eq!(e.to_string(), "count: must be at least 1");
        assert_eq!(e.field_errors()[0].field, "count");
    }
}
