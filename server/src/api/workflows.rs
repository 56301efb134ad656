//! Workflow definitions (TOML or JSON, stored per user; the built-in onboarding example is installed
//! for every user on their first write, or their first look with a credential that may write: a
//! read-only token's GET changes nothing) and their runs with timelines, retry and cancel: thin handlers
//! over the `flows` crate. A run carries who started it ([`started_by`]): its steps may do what that
//! credential may, checked when each step executes.

use auth::tokens::Scope;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use flows::{DefinitionRecord, RunRecord, Timeline};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{idempotency, parse_json, ApiError, ApiQuery, ApiResult, Caller, PageQuery, Problem, Via};
use crate::extract::IdPath;
use crate::AppState;
use contract::ids::{WorkflowId, WorkflowRunId};

pub fn operations() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, replace, remove))
        .routes(routes!(start))
        .routes(routes!(runs))
        .routes(routes!(run))
        .routes(routes!(retry))
        .routes(routes!(cancel))
}

/// The definition text and its format: `application/toml` bodies are TOML, anything else JSON.
fn source_of(headers: &HeaderMap, body: &[u8]) -> ApiResult<(String, flows::Format)> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let text = std::str::from_utf8(body).map_err(|_| ApiError::invalid("body", "must be UTF-8"))?;
    if text.trim().is_empty() {
        return Err(ApiError::invalid("body", "a workflow definition is required"));
    }
    let format = if ct.starts_with("application/toml") || ct.starts_with("text/toml") { flows::Format::Toml } else { flows::Format::Json };
    Ok((text.to_string(), format))
}

/// Who a run started (or retried) by `caller` runs as: a browser session may do everything its user
/// may; a token, what its scopes allow while it stays valid.
pub fn started_by(caller: &Caller) -> flows::StartedBy {
    match &caller.via {
        Via::Session => flows::StartedBy::session(),
        Via::Token { token_id, scopes } => flows::StartedBy::token(*token_id, scopes.iter().map(|s| s.as_str())),
    }
}

#[derive(Serialize, ToSchema)]
pub struct DefinitionPage {
    pub items: Vec<DefinitionRecord>,
    pub next_cursor: Option<String>,
}

/// The caller's workflow definitions (the built-in examples included).
#[utoipa::path(get, path = "/api/v1/workflows", tag = "workflows", params(PageQuery),
    responses((status = 200, body = DefinitionPage)), security(("bearer" = ["workflows:read"])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<flows::Paged<DefinitionRecord>>> {
    caller.require(Scope::WorkflowsRead)?;
    let store = state.flows.store();
    // A read changes nothing: only a caller who may write gets the built-in examples installed here.
    if q.cursor.is_none() && caller.require(Scope::WorkflowsWrite).is_ok() {
        store.install_builtins(caller.owner()).await?;
    }
    let page = flows::Page { limit: Some(q.checked_limit()?), cursor: q.cursor.clone() };
    Ok(Json(store.list_definitions(caller.owner(), page).await?))
}

/// Store a definition: a JSON body, or TOML with `Content-Type: application/toml`.
#[utoipa::path(post, path = "/api/v1/workflows", tag = "workflows",
    request_body(content = Object, description = "A workflow definition (JSON, or TOML with Content-Type application/toml)"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe creation")),
    responses((status = 201, body = DefinitionRecord), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed (e.g. a wait on another user's inbound source, a system event type), or quota_exceeded",
            body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["workflows:write"])))]
pub async fn create(State(state): State<AppState>, caller: Caller, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = caller.require(Scope::WorkflowsWrite) {
        return e.into_response();
    }
    idempotency::once(&state, &caller, &headers, "POST /api/v1/workflows", &body, || async {
        let (source, format) = match source_of(&headers, &body) {
            Ok(s) => s,
            Err(e) => return e.into_response(),
        };
        // The user's first write brings the built-in examples along (a read-only look never does).
        let created = async {
            state.flows.store().install_builtins(caller.owner()).await?;
            state.flows.store().create_definition(caller.owner(), &source, format).await
        };
        match created.await {
            Ok(d) => (StatusCode::CREATED, Json(d)).into_response(),
            Err(e) => ApiError::from(e).into_response(),
        }
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/workflows/{id}", tag = "workflows", params(("id" = i64, Path)),
    responses((status = 200, body = DefinitionRecord), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["workflows:read"])))]
pub async fn show(State(state): State<AppState>, caller: Caller, IdPath(id): IdPath<WorkflowId>) -> ApiResult<Json<DefinitionRecord>> {
    caller.require(Scope::WorkflowsRead)?;
    Ok(Json(state.flows.store().get_definition(caller.owner(), id.get()).await?))
}

/// Replace a definition (its version goes up; running runs keep the version they started with).
#[utoipa::path(put, path = "/api/v1/workflows/{id}", tag = "workflows", params(("id" = i64, Path)),
    request_body(content = Object, description = "The new definition (JSON, or TOML with Content-Type application/toml)"),
    responses((status = 200, body = DefinitionRecord), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["workflows:write"])))]
pub async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<WorkflowId>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<DefinitionRecord>> {
    caller.require(Scope::WorkflowsWrite)?;
    let id = id.get();
    let (source, format) = source_of(&headers, &body)?;
    Ok(Json(state.flows.store().update_definition(caller.owner(), id, &source, format).await?))
}

#[utoipa::path(delete, path = "/api/v1/workflows/{id}", tag = "workflows", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["workflows:write"])))]
pub async fn remove(State(state): State<AppState>, caller: Caller, IdPath(id): IdPath<WorkflowId>) -> ApiResult<StatusCode> {
    caller.require(Scope::WorkflowsWrite)?;
    state.flows.store().delete_definition(caller.owner(), id.get()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The run body and its defaults are flows' (fuzzed there, see fuzz/).
pub use flows::StartRun;

/// Start a run of this workflow. With `Idempotency-Key`, a repeat returns the same run.
#[utoipa::path(post, path = "/api/v1/workflows/{id}/runs", tag = "workflows", params(("id" = i64, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "A repeat returns the same run")),
    request_body = StartRun,
    responses((status = 201, body = RunRecord), (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "quota_exceeded: too many active runs", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["workflows:write"])))]
pub async fn start(State(state): State<AppState>, caller: Caller, IdPath(id): IdPath<WorkflowId>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = caller.require(Scope::WorkflowsWrite) {
        return e.into_response();
    }
    let id = id.get();
    let route = format!("POST /api/v1/workflows/{id}/runs");
    idempotency::once(&state, &caller, &headers, &route, &body, || async {
        let req: StartRun = match parse_json(&body) {
            Ok(r) => r,
            Err(e) => return e.into_response(),
        };
        let input = req.into_input();
        let new = flows::NewRun { definition: flows::DefinitionRef::Id(id), input, idempotency_key: None, started_by: started_by(&caller) };
        let started = async {
            let run_id = state.flows.start_run(caller.owner(), new).await?;
            state.flows.get_run(caller.owner(), &run_id).await
        };
        match started.await {
            Ok(run) => (StatusCode::CREATED, Json(run)).into_response(),
            Err(e) => ApiError::from(e).into_response(),
        }
    })
    .await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// Only runs in this status.
    #[param(inline, value_type = Option<flows::RunStatus>)]
    pub status: Option<String>,
    /// Only runs of this workflow (by name).
    pub workflow: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    #[param(pattern = "^[1-9][0-9]{0,17}$")]
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RunPage {
    pub items: Vec<RunRecord>,
    pub next_cursor: Option<String>,
}

/// The caller's workflow runs, newest first.
#[utoipa::path(get, path = "/api/v1/workflow-runs", tag = "workflows", params(RunQuery),
    responses((status = 200, body = RunPage), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["workflows:read"])))]
pub async fn runs(State(state): State<AppState>, caller: Caller, ApiQuery(q): ApiQuery<RunQuery>) -> ApiResult<Json<flows::Paged<RunRecord>>> {
    caller.require(Scope::WorkflowsRead)?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(flows::RunStatus::parse(s).ok_or_else(|| ApiError::invalid("status", "is not a run status"))?),
    };
    let limit = PageQuery { limit: q.limit, cursor: None }.checked_limit()?;
    let filter = flows::RunFilter { status, workflow: q.workflow.filter(|w| !w.is_empty()) };
    Ok(Json(state.flows.list_runs(caller.owner(), &filter, flows::Page { limit: Some(limit), cursor: q.cursor }).await?))
}

#[derive(Serialize, ToSchema)]
pub struct RunDetail {
    pub run: RunRecord,
    /// Steps in the order they happened (compensations included), each with its attempts.
    pub timeline: Vec<flows::TimelineEntry>,
}

fn detail(t: Timeline) -> RunDetail {
    RunDetail { run: t.run, timeline: t.entries }
}

/// One run with its timeline.
#[utoipa::path(get, path = "/api/v1/workflow-runs/{id}", tag = "workflows", params(("id" = String, Path)),
    responses((status = 200, body = RunDetail), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["workflows:read"])))]
pub async fn run(State(state): State<AppState>, caller: Caller, IdPath(id): IdPath<WorkflowRunId>) -> ApiResult<Json<RunDetail>> {
    caller.require(Scope::WorkflowsRead)?;
    Ok(Json(detail(state.flows.timeline(caller.owner(), &id).await?)))
}

/// Retry a failed run from its failed step (or resume a failed compensation). The run goes on with the
/// retrier's rights (`started_by`).
#[utoipa::path(post, path = "/api/v1/workflow-runs/{id}/retry", tag = "workflows", params(("id" = String, Path)),
    responses((status = 200, body = RunRecord), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "quota_exceeded: too many active runs", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["workflows:write"])))]
pub async fn retry(State(state): State<AppState>, caller: Caller, IdPath(id): IdPath<WorkflowRunId>) -> ApiResult<Json<RunRecord>> {
    caller.require(Scope::WorkflowsWrite)?;
    Ok(Json(state.flows.retry_run(caller.owner(), &id, &started_by(&caller)).await?))
}

/// Cancel a run: its completed steps are compensated.
#[utoipa::path(post, path = "/api/v1/workflow-runs/{id}/cancel", tag = "workflows", params(("id" = String, Path)),
    responses((status = 200, body = RunRecord), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["workflows:write"])))]
pub async fn cancel(State(state): State<AppState>, caller: Caller, IdPath(id): IdPath<WorkflowRunId>) -> ApiResult<Json<RunRecord>> {
    caller.require(Scope::WorkflowsWrite)?;
    Ok(Json(state.flows.cancel_run(caller.owner(), &id).await?))
}
