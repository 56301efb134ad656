//! The crate's one error type. Each variant has a stable code and a [`Kind`] (the server maps kinds to
//! statuses); its Display is safe to show a client (storage details are kept for the log, never shown).
//! Nothing is logged when an error is made: whoever handles it last does that.

use contract::{Kind, PublicError};

pub use contract::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum HooksError {
    /// Bad input, field by field (422).
    #[error("{}", describe(.0))]
    Invalid(Vec<FieldError>),
    /// No such endpoint, message or notice for this owner (also when it belongs to someone else).
    #[error("Not found.")]
    NotFound,
    /// The request is fine but the state does not allow it (e.g. replaying to a disabled endpoint).
    #[error("{0}")]
    Conflict(String),
    /// Inbound: no source by that name is configured.
    #[error("No inbound webhook source by that name.")]
    UnknownSource,
    /// Inbound: missing or ill-formed `webhook-*` headers, or a body that is not JSON.
    #[error("{0}")]
    BadRequest(String),
    /// Inbound: no signature in the header matches the body with the source's secret.
    #[error("The webhook signature does not match.")]
    BadSignature,
    /// Inbound: `webhook-timestamp` is further from now than the tolerance, either way.
    #[error("The webhook timestamp is too old or too far in the future.")]
    StaleTimestamp,
    #[error("The request body is too large.")]
    TooLarge,
    /// The notification queue is over its high-water mark.
    #[error("Too many webhooks are waiting to be sent. Try again in {retry_after_secs} seconds.")]
    Backpressure { retry_after_secs: u64 },
    /// The owner's outbound webhook budget (`outbound_per_sec`) is spent for now.
    #[error("You are sending webhooks faster than {per_sec} a second. Try again in {retry_after_secs} seconds.")]
    RateLimited { per_sec: u32, retry_after_secs: u64 },
    /// Sending is not wired in this process (no notification pipeline), or it is shutting down.
    #[error("Webhook delivery is not available right now.")]
    Unavailable,
    /// Storage or internal failures: logged with detail, shown as a generic message.
    #[error("Something went wrong on our side.")]
    Internal(String),
}

fn describe(errors: &[FieldError]) -> String {
    errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
}

impl HooksError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        HooksError::Invalid(vec![FieldError::new(field, message)])
    }

    pub fn internal(context: &str, e: impl std::fmt::Display) -> Self {
        HooksError::Internal(format!("{context}: {e}"))
    }

    /// Field errors for a 422 body (empty for other variants).
    pub fn field_errors(&self) -> &[FieldError] {
        self.fields()
    }
}

impl PublicError for HooksError {
    fn code(&self) -> &'static str {
        match self {
            HooksError::Invalid(_) => "validation_failed",
            HooksError::NotFound => "not_found",
            HooksError::Conflict(_) => "conflict",
            HooksError::UnknownSource => "unknown_source",
            HooksError::BadRequest(_) => "bad_request",
            HooksError::BadSignature => "invalid_signature",
            HooksError::StaleTimestamp => "stale_timestamp",
            HooksError::TooLarge => "payload_too_large",
            HooksError::Backpressure { .. } | HooksError::RateLimited { .. } => "rate_limited",
            HooksError::Unavailable => "unavailable",
            HooksError::Internal(_) => "internal",
        }
    }

    fn kind(&self) -> Kind {
        match self {
            HooksError::Invalid(_) => Kind::Invalid,
            HooksError::NotFound | HooksError::UnknownSource => Kind::NotFound,
            HooksError::Conflict(_) => Kind::Conflict,
            HooksError::BadRequest(_) => Kind::BadRequest,
            HooksError::BadSignature | HooksError::StaleTimestamp => Kind::Unauthorized,
            HooksError::TooLarge => Kind::TooLarge,
            HooksError::Backpressure { .. } | HooksError::RateLimited { .. } => Kind::TooManyRequests,
            HooksError::Unavailable => Kind::Unavailable,
            HooksError::Internal(_) => Kind::Internal,
        }
    }

    fn public_message(&self) -> String {
        self.to_string()
    }

    fn fields(&self) -> &[FieldError] {
        match self {
            HooksError::Invalid(v) => v,
            _ => &[],
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            HooksError::Backpressure { retry_after_secs } | HooksError::RateLimited { retry_after_secs, .. } => Some(*retry_after_secs),
            _ => None,
        }
    }

    fn internal_detail(&self) -> Option<String> {
        match self {
            HooksError::Internal(detail) => Some(detail.clone()),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for HooksError {
    fn from(e: sqlx::Error) -> Self {
        HooksError::internal("webhooks database error", e)
    }
}

impl From<db::DbError> for HooksError {
    fn from(e: db::DbError) -> Self {
        HooksError::internal("webhooks database error", e)
    }
}

impl From<notify::NotifyError> for HooksError {
    fn from(e: notify::NotifyError) -> Self {
        use notify::NotifyError as N;
        match e {
            N::Backpressure { .. } => HooksError::Backpressure { retry_after_secs: e.retry_after_secs().unwrap_or(1) },
            N::ShuttingDown | N::BackendUnavailable => HooksError::Unavailable,
            N::NotFound => HooksError::NotFound,
            // Anything else is a bug on our side (we build the notifications), not the caller's input.
            other => HooksError::internal("enqueueing webhook deliveries", other),
        }
    }
}

/// Every client sees a [`contract::Problem`]; `?` in a server function or a handler converts.
impl From<HooksError> for contract::Problem {
    fn from(e: HooksError) -> Self {
        contract::Problem::from_error(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_kind_and_a_code_and_hides_internals() {
        let cases = [
            (HooksError::invalid("url", "bad"), 422, "validation_failed"),
            (HooksError::NotFound, 404, "not_found"),
            (HooksError::Conflict("x".into()), 409, "conflict"),
            (HooksError::UnknownSource, 404, "unknown_source"),
            (HooksError::BadRequest("x".into()), 400, "bad_request"),
            (HooksError::BadSignature, 401, "invalid_signature"),
            (HooksError::StaleTimestamp, 401, "stale_timestamp"),
            (HooksError::TooLarge, 413, "payload_too_large"),
            (HooksError::Backpressure { retry_after_secs: 2 }, 429, "rate_limited"),
            (HooksError::Unavailable, 503, "unavailable"),
            (HooksError::Internal("disk full at /var/secret".into()), 500, "internal"),
        ];
        for (e, status, code) in cases {
            assert_eq!(e.kind().status(), status, "{e:?}");
            assert_eq!(e.code(), code);
            assert!(!e.to_string().contains("/var/secret"));
        }
        assert_eq!(HooksError::invalid("url", "bad").field_errors()[0].field, "url");
        assert_eq!(HooksError::Backpressure { retry_after_secs: 2 }.retry_after_secs(), Some(2));
    }

    #[test]
    fn pipeline_backpressure_stays_a_429() {
        let e: HooksError = notify::NotifyError::Backpressure { retry_after: std::time::Duration::from_secs(3) }.into();
        assert_eq!((e.kind(), e.retry_after_secs()), (Kind::TooManyRequests, Some(3)));
    }
}
