//! The crate's one error type. Each variant knows its HTTP status; its Display is safe to show a client
//! (storage details are logged, never displayed).

use http::StatusCode;
use serde::Serialize;

/// One problem with one input field (`steps[2].retry.max_attempts`), for a 422 answer.
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
pub enum FlowsError {
    /// The request itself is malformed (bad cursor, unknown format name).
    #[error("{0}")]
    BadRequest(String),
    /// A definition or a run input that does not validate, field by field.
    #[error("{}", describe(.0))]
    Invalid(Vec<FieldError>),
    #[error("Not found.")]
    NotFound,
    /// The run or definition is not in a state that allows this (retrying a completed run, a name taken).
    #[error("{0}")]
    Conflict(String),
    /// A per-owner limit is reached. `transient` (active runs: wait for some to finish) answers 429,
    /// otherwise (stored definitions: delete one first) 422; either way the message says which limit.
    #[error("{message}")]
    Quota { message: String, transient: bool },
    /// Storage or internal failures: logged with detail, shown as a generic message.
    #[error("internal error")]
    Internal(String),
}

fn describe(errors: &[FieldError]) -> String {
    errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
}

impl FlowsError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        FlowsError::Invalid(vec![FieldError::new(field, message)])
    }

    pub fn internal(context: &str, e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "{context}");
        FlowsError::Internal(format!("{context}: {e}"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            FlowsError::BadRequest(_) => StatusCode::BAD_REQUEST,
            FlowsError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            FlowsError::NotFound => StatusCode::NOT_FOUND,
            FlowsError::Conflict(_) => StatusCode::CONFLICT,
            FlowsError::Quota { transient: true, .. } => StatusCode::TOO_MANY_REQUESTS,
            FlowsError::Quota { transient: false, .. } => StatusCode::UNPROCESSABLE_ENTITY,
            FlowsError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable code for the problem answer.
    pub fn code(&self) -> &'static str {
        match self {
            FlowsError::BadRequest(_) => "bad_request",
            FlowsError::Invalid(_) => "validation_failed",
            FlowsError::NotFound => "not_found",
            FlowsError::Conflict(_) => "conflict",
            FlowsError::Quota { .. } => "quota_exceeded",
            FlowsError::Internal(_) => "internal",
        }
    }

    /// Field errors for a 422 body (empty for other variants).
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            FlowsError::Invalid(v) => v,
            _ => &[],
        }
    }
}

impl From<sqlx::Error> for FlowsError {
    fn from(e: sqlx::Error) -> Self {
        FlowsError::internal("workflow database error", e)
    }
}

impl From<db::DbError> for FlowsError {
    fn from(e: db::DbError) -> Self {
        FlowsError::internal("workflow database error", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internals_never_reach_the_display() {
        let e = FlowsError::from(sqlx::Error::Protocol("connection to /secret/path refused".into()));
        assert_eq!(e.to_string(), "internal error");
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn each_variant_has_its_status() {
        assert_eq!(FlowsError::BadRequest("x".into()).status(), StatusCode::BAD_REQUEST);
        assert_eq!(FlowsError::NotFound.status(), StatusCode::NOT_FOUND);
        assert_eq!(FlowsError::Conflict("x".into()).status(), StatusCode::CONFLICT);
        let e = FlowsError::invalid("steps[2].retry.max_attempts", "must be between 1 and 100");
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.to_string(), "steps[2].retry.max_attempts: must be between 1 and 100");
        assert_eq!(e.field_errors()[0].field, "steps[2].retry.max_attempts");
    }
}
