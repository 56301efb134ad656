//! The one way notifications are enqueued ([`enqueue_owned`], for the REST API's
//! `POST /api/v1/notifications` and workflow steps), and `GET /metrics`, the pipeline's Prometheus
//! metrics. (The session-only `POST /api/notifications` of earlier versions is retired: the versioned
//! route takes the same bodies, with a session cookie or a token, and answers problems.)
//!
//! `/metrics` carries no secrets but is operational detail: keep it off the public internet (nginx
//! should answer it only from the monitoring network, e.g. `location = /metrics { allow 127.0.0.1; deny all; ... }`).

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use notify::{Backend, NotifyError};

use crate::AppState;

/// Largest enqueue request body: the server's (and nginx's) 1 MiB ceiling, above the API's usual
/// 256 KiB, so a full batch of small notifications fits.
pub const MAX_ENQUEUE_BYTES: usize = 1024 * 1024;

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

pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut res = (state.notify.metrics_text() + &state.retention.render() + &state.sessions.cache.render_metrics()).into_response();
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
