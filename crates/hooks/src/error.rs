//! The crate's one error type. Each variant knows its HTTP status and a stable machine code (for RFC 9457
//! problem details); its Display is safe to show a client (storage details are logged, never shown).

use http::StatusCode;

pub use notify::FieldError;

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
        tracing::error!(error = %e, "{context}");
        HooksError::Internal(format!("{context}: {e}"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            HooksError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            HooksError::NotFound | HooksError::UnknownSource => StatusCode::NOT_FOUND,
            HooksError::Conflict(_) => StatusCode::CONFLICT,
            HooksError::BadRequest(_) => StatusCode::BAD_REQUEST,
            HooksError::BadSignature | HooksError::StaleTimestamp => StatusCode::UNAUTHORIZED,
            HooksError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            HooksError::Backpressure { .. } | HooksError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            HooksError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            HooksError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable machine-readable code (the `type` suffix of a problem-details answer).
    pub fn code(&self) -> &'static str {
        match self {
            HooksError::Invalid(_) => "invalid_request",
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

    /// Field errors for a 422 body (empty for other variants).
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            HooksError::Invalid(v) => v,
            _ => &[],
        }
    }

    /// The number for a `Retry-After` header, if this error has one.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            HooksError::Backpressure { retry_after_secs } | HooksError::RateLimited { retry_after_secs, .. } => Some(*retry_after_secs),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_status_and_a_code_and_hides_internals() {
        let cases = [
            (HooksError::invalid("url", "bad"), 422, "invalid_request"),
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
            assert_eq!(e.status().as_u16(), status, "{e:?}");
            assert_eq!(e.code(), code);
            assert!(!e.to_string().contains("/var/secret"));
        }
        assert_eq!(HooksError::invalid("url", "bad").field_errors()[0].field, "url");
        assert_eq!(HooksError::Backpressure { retry_after_secs: 2 }.retry_after_secs(), Some(2));
    }

    #[test]
    fn pipeline_backpressure_stays_a_429() {
        let e: HooksError = notify::NotifyError::Backpressure { retry_after: std::time::Duration::from_secs(3) }.into();
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.retry_after_secs(), Some(3));
    }
}
