//! The crate's one error type. Each variant has a stable code and a [`Kind`] (the server maps kinds to
//! statuses); its Display is safe to show a client (storage details are kept for the log, never
//! displayed). Nothing is logged when an error is made: whoever handles it last does that.

use contract::{Kind, PublicError};

pub use contract::FieldError;

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
        FlowsError::Internal(format!("{context}: {e}"))
    }

    /// Field errors for a 422 body (empty for other variants).
    pub fn field_errors(&self) -> &[FieldError] {
        self.fields()
    }
}

impl PublicError for FlowsError {
    fn code(&self) -> &'static str {
        match self {
            FlowsError::BadRequest(_) => "bad_request",
            FlowsError::Invalid(_) => "validation_failed",
            FlowsError::NotFound => "not_found",
            FlowsError::Conflict(_) => "conflict",
            FlowsError::Quota { .. } => "quota_exceeded",
            FlowsError::Internal(_) => "internal",
        }
    }

    fn kind(&self) -> Kind {
        match self {
            FlowsError::BadRequest(_) => Kind::BadRequest,
            FlowsError::Invalid(_) => Kind::Invalid,
            FlowsError::NotFound => Kind::NotFound,
            FlowsError::Conflict(_) => Kind::Conflict,
            FlowsError::Quota { transient: true, .. } => Kind::TooManyRequests,
            FlowsError::Quota { transient: false, .. } => Kind::Invalid,
            FlowsError::Internal(_) => Kind::Internal,
        }
    }

    fn public_message(&self) -> String {
        self.to_string()
    }

    fn fields(&self) -> &[FieldError] {
        match self {
            FlowsError::Invalid(v) => v,
            _ => &[],
        }
    }

    fn internal_detail(&self) -> Option<String> {
        match self {
            FlowsError::Internal(detail) => Some(detail.clone()),
            _ => None,
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

/// Every client sees a [`contract::Problem`]; `?` in a server function or a handler converts.
impl From<FlowsError> for contract::Problem {
    fn from(e: FlowsError) -> Self {
        contract::Problem::from_error(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internals_never_reach_the_display() {
        let e = FlowsError::from(sqlx::Error::Protocol("connection to /secret/path refused".into()));
        assert_eq!(e.to_string(), "internal error");
        assert_eq!(e.kind(), Kind::Internal);
        assert!(e.internal_detail().unwrap().contains("/secret/path"));
    }

    #[test]
    fn each_variant_has_its_kind() {
        assert_eq!(FlowsError::BadRequest("x".into()).kind(), Kind::BadRequest);
        assert_eq!(FlowsError::NotFound.kind(), Kind::NotFound);
        assert_eq!(FlowsError::Conflict("x".into()).kind(), Kind::Conflict);
        assert_eq!(FlowsError::Quota { message: "x".into(), transient: true }.kind(), Kind::TooManyRequests);
        assert_eq!(FlowsError::Quota { message: "x".into(), transient: false }.kind(), Kind::Invalid);
        let e = FlowsError::invalid("steps[2].retry.max_attempts", "must be between 1 and 100");
        assert_eq!((e.kind(), e.code()), (Kind::Invalid, "validation_failed"));
        assert_eq!(e.to_string(), "steps[2].retry.max_attempts: must be between 1 and 100");
        assert_eq!(e.field_errors()[0].field, "steps[2].retry.max_attempts");
    }
}
