//! Live updates for the notifications dashboard: `GET /notifications/runs/{id}/events` streams the run's
//! [`contract::notifications::RunView`] as server-sent events, twice a second while it runs, then once more
//! with its final state, and ends. Only the run's owner may follow it, and only while the session that
//! opened the stream stands: a logout, revocation, password change or expiry, on any instance, ends the
//! stream within [`crate::web_session::SESSION_CHECK_INTERVAL`] (plus one registry query).

use crate::extract::Me;
use contract::{Kind, Problem};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use http::HeaderValue;

use crate::AppState;

/// How often a running run's state is sent.
const INTERVAL: Duration = Duration::from_millis(500);

pub async fn run_events(State(state): State<AppState>, Me(me): Me, Path(id): Path<i64>) -> Response {
    let service = state.notify.clone();
    let owner = contract::Owner::new(me.username.clone());
    let first = match service.run_view(&owner, id).await {
        Ok(Some(view)) => view,
        Ok(None) => return Problem::not_found("No such run.").into_response(),
        Err(e) => return Problem::from(e).into_response(),
    };
    // At most `limits.sse_streams_per_user` open at once: each one polls the queue twice a second.
    let Some(slot) = state.streams.try_take(me.user_id) else {
        let max = state.streams.max();
        let message = format!("You already have {max} live views open. Close one (another tab or window) and try again.");
        return Problem::new(Kind::TooManyRequests, "quota_exceeded", message).into_response();
    };
    let session_ended = state.sessions.ended(me.clone());
    // The state already read is the first event; after it, one read every INTERVAL while the run is
    // running. `None` once the final state has gone out.
    let stream = futures_util::stream::unfold(Some(Some(first)), move |next| {
        let service = service.clone();
        let owner = owner.clone();
        async move {
            let view = match next? {
                Some(view) => view,
                None => {
                    tokio::time::sleep(INTERVAL).await;
                    service.run_view(&owner, id).await.ok()??
                }
            };
            let next = view.is_running().then_some(None);
            let event = Event::default().json_data(&view).unwrap_or_else(|_| Event::default().comment("encoding failed"));
            Some((Ok::<_, Infallible>(event), next))
        }
    });
    let stream = futures_util::StreamExt::take_until(stream, session_ended);
    let stream = crate::limits::holding(stream, slot);
    let mut res = Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response();
    // nginx passes each event on at once instead of buffering the response.
    res.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    res.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `GET /docs/notifications`: the design walk-through the dashboard links to, as text.
pub async fn notifications_doc() -> Response {
    ([(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))], include_str!("../../docs/notifications.md"))
        .into_response()
}
