//! The notification API: `POST /api/notifications` enqueues one notification or a batch for a signed-in
//! user (202 with the ids; 422 with field errors; 429 + `Retry-After` when the queue is over its
//! high-water mark), and `GET /metrics` serves the pipeline's Prometheus metrics.
//!
//! `/metrics` carries no secrets but is operational detail: keep it off the public internet (nginx
//! should answer it only from the monitoring network, e.g. `location = /metrics { allow 127.0.0.1; deny all; ... }`).

use auth::sessions::SignedIn;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use notify::{Backend, NotifyError};
use serde::Deserialize;

use crate::AppState;

/// Largest enqueue request body (a full batch of small notifications fits).
const MAX_ENQUEUE_BYTES: usize = 4 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/notifications", post(enqueue).layer(DefaultBodyLimit::max(MAX_ENQUEUE_BYTES))).route("/metrics", get(metrics))
}

/// A [`NotifyError`] as an HTTP answer: `{"error": ..., "fields": [...]}`, with `Retry-After` for 429.
pub struct NotifyResponse(pub NotifyError);

impl IntoResponse for NotifyResponse {
    fn into_response(self) -> Response {
        let e = self.0;
        let body = serde_json::json!({
            "error": e.to_string(),
            "fields": e.field_errors(),
            "retry_after": e.retry_after_secs(),
        });
        let mut res = (e.status(), Json(body)).into_response();
        if let Some(secs) = e.retry_after_secs() {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

#[derive(Deserialize)]
pub struct EnqueueQuery {
    backend: Option<String>,
}

/// The body parser lives in notify (fuzzed there, see fuzz/); re-exported for the API routes.
pub use notify::parse_batch;

/// The bytes a batch adds to storage: each notification's recipient, payload and idempotency key.
pub fn stored_bytes(batch: &[notify::NewNotification]) -> u64 {
    batch.iter().map(|n| (n.recipient.len() + n.payload.to_string().len() + n.idempotency_key.as_ref().map_or(0, String::len)) as u64).sum()
}

/// Enqueues `owner`'s batch against their stored bytes per day (given back when the enqueue fails):
/// the one way in for the session route, the REST API and workflow steps.
pub async fn enqueue_owned(
    notify: &notify::NotifyService,
    storage: Option<&crate::limits::Storage>,
    owner: &str,
    backend: Backend,
    batch: Vec<notify::NewNotification>,
) -> Result<Vec<notify::NotificationId>, NotifyError> {
    let bytes = stored_bytes(&batch);
    if let Some(s) = storage {
        s.charge(owner, bytes).await?;
    }
    let result = notify.enqueue_for(Some(owner), backend, batch).await;
    if let (Err(_), Some(s)) = (&result, storage) {
        s.refund(owner, bytes).await;
    }
    result
}

pub async fn enqueue(State(state): State<AppState>, me: Option<Extension<SignedIn>>, Query(query): Query<EnqueueQuery>, body: Bytes) -> Response {
    let Some(Extension(me)) = me else {
        return (StatusCode::UNAUTHORIZED, Json(serde_json::json!({ "error": "Sign in first." }))).into_response();
    };
    let backend = match query.backend.as_deref().map(str::parse::<Backend>) {
        None => Backend::Embedded,
        Some(Ok(b)) => b,
        Some(Err(m)) => return NotifyResponse(NotifyError::invalid("backend", m)).into_response(),
    };
    let batch = match parse_batch(&body) {
        Ok(b) => b,
        Err(e) => return NotifyResponse(e).into_response(),
    };
    match enqueue_owned(&state.notify, Some(&state.storage), &me.username, backend, batch).await {
        Ok(ids) => {
            tracing::debug!(user_id = me.user_id, n = ids.len(), "notifications enqueued");
            (StatusCode::ACCEPTED, Json(serde_json::json!({ "ids": ids }))).into_response()
        }
        Err(e) => NotifyResponse(e).into_response(),
    }
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut res = state.notify.metrics_text().into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_come_in_three_shapes_and_bad_items_are_named() {
        let one = parse_batch(br#"{"recipient":"a@b","channel":"email"}"#).unwrap();
        assert_eq!(one.len(), 1);
        let list = parse_batch(br#"[{"recipient":"a","channel":"sms"},{"recipient":"b","channel":"push"}]"#).unwrap();
        assert_eq!(list.len(), 2);
        let wrapped = parse_batch(br#"{"notifications":[{"recipient":"a","channel":"noop"}]}"#).unwrap();
        assert_eq!(wrapped.len(), 1);
        let e = parse_batch(br#"[{"recipient":"a","channel":"sms"},{"recipient":"b","channel":"fax"}]"#).unwrap_err();
        assert_eq!(e.field_errors()[0].field, "notifications[1]");
        assert!(e.field_errors()[0].message.contains("fax"));
        assert_eq!(parse_batch(b"\xff").unwrap_err().field_errors()[0].field, "body");
        assert_eq!(parse_batch(b"42").unwrap_err().field_errors()[0].field, "body");
    }
}
