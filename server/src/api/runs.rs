//! Notification runs (the load simulator) and single notifications, over the API.

use crate::extract::IdPath;
use auth::tokens::Scope;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use contract::ids::NotificationRunId;
use contract::notifications::{RunRow, RunView};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use super::{idempotency, ApiError, ApiQuery, ApiResult, Caller, Problem};
use crate::AppState;

pub fn operations() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start, list))
        .routes(routes!(show))
        .routes(routes!(cancel))
        // Batches are bigger than other API bodies (a full batch of small notifications fits).
        .routes(routes!(enqueue).layer(axum::extract::DefaultBodyLimit::max(crate::notifications::MAX_ENQUEUE_BYTES)))
}

/// What `POST /api/v1/runs` takes (the simulator's parameters).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // documentation only: the body is validated by notify's own parser
pub struct NewRun {
    /// How many notifications.
    #[schema(minimum = 1, maximum = 10_000_000)]
    count: u64,
    /// `max`, or `<n>-per-hour` (`1m-per-hour`, `500k-per-hour`, `2500-per-hour`), at most 100m per hour.
    #[schema(pattern = "^(max|[1-9][0-9]{0,8}-per-hour|[1-9][0-9]{0,5}k-per-hour|[1-9][0-9]{0,2}m-per-hour)$")]
    rate: String,
    /// Relative weights per channel, e.g. `{"email": 1, "sms": 1}`.
    #[schema(value_type = Object)]
    mix: serde_json::Value,
    /// Share of simulated-provider attempts that fail.
    #[schema(minimum = 0.0, maximum = 1.0)]
    failure_rate: Option<f64>,
    /// Simulated provider latency, milliseconds.
    #[schema(minimum = 0, maximum = 60_000)]
    latency_ms: Option<u64>,
    /// `embedded` (default) or `redis` (when the server has Redis).
    #[schema(pattern = "^(embedded|redis)$")]
    backend: Option<String>,
    /// Each notification's time to live, seconds (none by default): those still waiting then end
    /// `expired`, unsent.
    #[schema(minimum = 1, maximum = 2_592_000)]
    ttl_secs: Option<u64>,
}

/// What `POST /api/v1/notifications` takes, in the `{"notifications": [...]}` form (one notification
/// object alone, or a bare list of them, is taken too).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documentation only: the body is read by notify's own parser
pub struct NotificationBatch {
    #[schema(min_items = 1, max_items = 10_000)]
    notifications: Vec<NewNotification>,
}

/// One notification to send.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct NewNotification {
    /// Who it goes to (an address, a number, a device; for a webhook, a label the receiver sees).
    #[schema(min_length = 1, max_length = 320)]
    recipient: String,
    /// `webhook`, `email`, `sms`, `push` or `noop`.
    #[schema(pattern = "^(webhook|email|sms|push|noop)$")]
    channel: String,
    /// Any JSON, at most 16 KiB: the `data` of the webhook body, or what the provider gets.
    #[schema(value_type = Option<Object>)]
    payload: Option<serde_json::Value>,
    /// A repeat with the same key (yours alone) returns the first one's id and adds nothing.
    #[schema(min_length = 1, max_length = 200)]
    idempotency_key: Option<String>,
    /// `high` (sent before anything else waiting), `normal` (the default) or `bulk`.
    #[schema(pattern = "^(high|normal|bulk)$")]
    priority: Option<String>,
    /// How long it is worth sending, seconds: one still waiting then ends `expired`, unsent.
    #[schema(minimum = 1, maximum = 2_592_000)]
    ttl_secs: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct RunList {
    pub items: Vec<RunRow>,
    /// Always null: the newest 100 runs are listed at once.
    pub next_cursor: Option<String>,
}

async fn view(state: &AppState, caller: &Caller, id: i64) -> ApiResult<RunView> {
    state.notify.run_view(caller.owner(), id).await?.ok_or_else(|| contract::Problem::not_found("No such run."))
}

/// Start a simulation run. Per-user quotas (`APP_NOTIFY__QUOTAS__*`): at most `notifications_per_run`
/// notifications (422 on `count`), `concurrent_runs` runs at once and `notifications_per_day` a day
/// (429 with `Retry-After`).
#[utoipa::path(post, path = "/api/v1/runs", tag = "notifications", request_body = NewRun,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe creation")),
    responses((status = 201, body = RunView), (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["notifications:write"])))]
pub async fn start(State(state): State<AppState>, caller: Caller, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = caller.require(Scope::NotificationsWrite) {
        return e.into_response();
    }
    idempotency::once(&state, &caller, &headers, "POST /api/v1/runs", &body, || async {
        let value: serde_json::Value = match super::parse_json(&body) {
            Ok(v) => v,
            Err(e) => return e.into_response(),
        };
        let params = match notify::SimParams::from_value(&value) {
            Ok(p) => p,
            Err(e) => return ApiError::from(e).into_response(),
        };
        match state.notify.start_run(caller.owner(), params).await {
            Ok(id) => match view(&state, &caller, id).await {
                Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
                Err(e) => e.into_response(),
            },
            Err(e) => ApiError::from(e).into_response(),
        }
    })
    .await
}

/// The caller's runs, newest first.
#[utoipa::path(get, path = "/api/v1/runs", tag = "notifications",
    responses((status = 200, body = RunList)), security(("bearer" = ["notifications:read"])))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<RunList>> {
    caller.require(Scope::NotificationsRead)?;
    let runs = state.notify.list_runs(caller.owner()).await?;
    Ok(Json(RunList { items: runs.into_iter().map(Into::into).collect(), next_cursor: None }))
}

/// One run, live: counters, latency percentiles, throughput.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "notifications", params(("id" = i64, Path)),
    responses((status = 200, body = RunView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["notifications:read"])))]
pub async fn show(State(state): State<AppState>, caller: Caller, IdPath(id): IdPath<NotificationRunId>) -> ApiResult<Json<RunView>> {
    caller.require(Scope::NotificationsRead)?;
    Ok(Json(view(&state, &caller, id.get()).await?))
}

/// Stop producing; what is queued is dropped.
#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "notifications", params(("id" = i64, Path)),
    responses((status = 200, body = RunView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["notifications:write"])))]
pub async fn cancel(State(state): State<AppState>, caller: Caller, IdPath(id): IdPath<NotificationRunId>) -> ApiResult<Json<RunView>> {
    caller.require(Scope::NotificationsWrite)?;
    let id = id.get();
    view(&state, &caller, id).await?; // someone else's run is not found
    state.notify.cancel_run(caller.owner(), id).await?;
    Ok(Json(view(&state, &caller, id).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EnqueueQuery {
    /// `embedded` (default) or `redis`.
    backend: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Enqueued {
    pub ids: Vec<String>,
}

/// Enqueue one notification (`{"recipient", "channel", "payload"?, "idempotency_key"?, "priority"?,
/// "ttl_secs"?}`), a list, or `{"notifications": [...]}`; at most 10,000. An idempotency key is the
/// caller's own: another user's same key is a different notification. `priority` is `high` (one-time
/// codes, account mail: sent before anything else waiting), `normal` (the default) or `bulk`;
/// `ttl_secs` (1 to 2,592,000) is how long it is worth sending: one still waiting then, first attempt
/// or retry, ends `expired`, unsent. 429 with `Retry-After` past the caller's own backlog cap
/// (`backlog_per_owner` waiting at once), the machine's high-water mark or a per-user quota
/// (`enqueue_per_sec`, `notifications_per_day`, `limits.stored_bytes_per_day`).
#[utoipa::path(post, path = "/api/v1/notifications", tag = "notifications", params(EnqueueQuery),
    request_body(content = NotificationBatch, description = "{\"notifications\": [...]}, a list of notifications, or one notification"),
    responses((status = 202, body = Enqueued), (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["notifications:write"])))]
pub async fn enqueue(State(state): State<AppState>, caller: Caller, ApiQuery(q): ApiQuery<EnqueueQuery>, body: Bytes) -> ApiResult<Response> {
    caller.require(Scope::NotificationsWrite)?;
    let backend = match q.backend.as_deref().map(str::parse::<notify::Backend>) {
        None => notify::Backend::Embedded,
        Some(Ok(b)) => b,
        Some(Err(m)) => return Err(ApiError::invalid("backend", m)),
    };
    let batch = crate::notifications::parse_batch(&body)?;
    let ids = crate::notifications::enqueue_owned(&state.notify, Some(&state.storage), caller.owner(), backend, batch).await?;
    Ok((StatusCode::ACCEPTED, Json(Enqueued { ids: ids.into_iter().map(|i| i.to_string()).collect() })).into_response())
}
