//! The crate's one error type. Each variant knows its HTTP status; its Display is safe to show a client
//! (storage and network details are logged, never displayed).

use http::StatusCode;
use serde::Serialize;
use std::time::Duration;

/// One problem with one input field, for a 422 answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

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
        tracing::error!(error = %e, "{context}");
        NotifyError::Internal(format!("{context}: {e}"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            NotifyError::Backpressure { .. } | NotifyError::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            NotifyError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            NotifyError::NotFound => StatusCode::NOT_FOUND,
            NotifyError::Conflict(_) => StatusCode::CONFLICT,
            NotifyError::BackendUnavailable | NotifyError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            NotifyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The number for a `Retry-After` header, if this error has one.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            NotifyError::Backpressure { retry_after } | NotifyError::QuotaExceeded { retry_after, .. } => {
                Some(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
            _ => None,
        }
    }

    /// Field errors for a 422 body (empty for other variants).
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            NotifyError::Invalid(v) => v,
            _ => &[],
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internals_never_reach_the_display() {
        let e = NotifyError::Internal("disk I/O error at /secret/path".into());
        assert_eq!(e.to_string(), "Something went wrong on our side.");
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn backpressure_is_429_with_retry_after() {
        let e = NotifyError::Backpressure { retry_after: Duration::from_millis(200) };
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.retry_after_secs(), Some(1));
    }

    #[test]
    fn field_errors_name_the_field() {
        let e = NotifyError::invalid("count", "must be at least 1");
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.to_string(), "count: must be at least 1");
        assert_eq!(e.field_errors()[0].field, "count");
    }
}
