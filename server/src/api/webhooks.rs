//! Webhook endpoints (out) and their messages, attempts, replays and notices: thin handlers over the
//! `hooks` crate, which owns every rule (SSRF guard, secrets, rotation, auto-disable).

use auth::tokens::Scope;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hooks::{
    AttemptRecord, CreatedEndpoint, DeliveryRecord, Endpoint, EndpointUpdate, Message, MessageDetail, NewEndpoint, OwnerNotice, PageRequest,
    Recovery, RotatedSecret,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{idempotency, parse_json, ApiError, ApiQuery, ApiResult, Caller, PageQuery, Problem};
use crate::extract::{ApiJson, ApiJsonOrDefault, IdPath};
use crate::AppState;
use contract::ids::{EndpointId, MessageId};

pub fn operations() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(event_types))
        .routes(routes!(create, list))
        .routes(routes!(show, update, remove))
        .routes(routes!(rotate))
        .routes(routes!(enable))
        .routes(routes!(disable))
        .routes(routes!(send_test))
        .routes(routes!(recover))
        .routes(routes!(recoveries))
        .routes(routes!(endpoint_attempts))
        .routes(routes!(messages))
        .routes(routes!(message))
        .routes(routes!(message_attempts))
        .routes(routes!(replay))
        .routes(routes!(notices))
}

fn page(q: &PageQuery) -> ApiResult<PageRequest> {
    Ok(PageRequest { limit: Some(q.checked_limit()?), cursor: q.cursor.clone() })
}

/// One event type of the catalogue (`hooks::events`), with what its deliveries carry.
#[derive(Serialize, ToSchema)]
pub struct EventTypeInfo {
    pub name: String,
    pub description: String,
    /// JSON Schema (draft 2020-12) of the body an endpoint receives: `{"type", "timestamp", "data"}`.
    #[schema(value_type = Object)]
    pub schema: serde_json::Value,
    /// A body of this type, as an endpoint receives it.
    #[schema(value_type = Object)]
    pub example: serde_json::Value,
}

impl From<&hooks::events::EventType> for EventTypeInfo {
    fn from(e: &hooks::events::EventType) -> Self {
        EventTypeInfo { name: e.name.into(), description: e.description.into(), schema: e.schema(), example: e.example() }
    }
}

/// Every event type an endpoint can subscribe to, with the JSON Schema and an example of the body it
/// sends (the same as the document's `webhooks`).
#[utoipa::path(get, path = "/api/v1/webhooks/event-types", tag = "webhooks", responses((status = 200, body = Vec<EventTypeInfo>)),
    security(("bearer" = ["webhooks:read"])))]
pub async fn event_types(caller: Caller) -> ApiResult<Json<Vec<EventTypeInfo>>> {
    caller.require(Scope::WebhooksRead)?;
    Ok(Json(hooks::events::CATALOGUE.iter().map(EventTypeInfo::from).collect()))
}

/// Register an endpoint. The answer carries its `whsec_` secret: the only time it is shown (and to a
/// retry with the same `Idempotency-Key` within 24 hours, from an answer stored sealed, never in clear).
#[utoipa::path(post, path = "/api/v1/webhooks/endpoints", tag = "webhooks", request_body = NewEndpoint,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe creation: a retry gets the first answer again, secret included (stored sealed)")),
    responses((status = 201, body = CreatedEndpoint), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["webhooks:write"])))]
pub async fn create(State(state): State<AppState>, caller: Caller, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = caller.require(Scope::WebhooksWrite) {
        return e.into_response();
    }
    idempotency::once(&state, &caller, &headers, "POST /api/v1/webhooks/endpoints", &body, || async {
        let new: NewEndpoint = match parse_json(&body) {
            Ok(n) => n,
            Err(e) => return e.into_response(),
        };
        match state.hooks.create_endpoint(caller.owner(), new).await {
            Ok(created) => (StatusCode::CREATED, Json(created)).into_response(),
            Err(e) => ApiError::from(e).into_response(),
        }
    })
    .await
}

#[derive(Serialize, ToSchema)]
pub struct EndpointPage {
    pub items: Vec<Endpoint>,
    pub next_cursor: Option<String>,
}

/// The caller's endpoints, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/endpoints", tag = "webhooks", params(PageQuery),
    responses((status = 200, body = EndpointPage)), security(("bearer" = ["webhooks:read"])))]
pub async fn list(State(state): State<AppState>, caller: Caller, ApiQuery(q): ApiQuery<PageQuery>) -> ApiResult<Json<hooks::Page<Endpoint>>> {
    caller.require(Scope::WebhooksRead)?;
    Ok(Json(state.hooks.list_endpoints(caller.owner(), page(&q)?).await?))
}

#[utoipa::path(get, path = "/api/v1/webhooks/endpoints/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = Endpoint), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["webhooks:read"])))]
pub async fn show(State(state): State<AppState>, caller: Caller, IdPath(id): IdPath<EndpointId>) -> ApiResult<Json<Endpoint>> {
    caller.require(Scope::WebhooksRead)?;
    Ok(Json(state.hooks.get_endpoint(caller.owner(), &id).await?))
}

/// Change the URL, description or event types (absent fields stay as they are).
#[utoipa::path(patch, path = "/api/v1/webhooks/endpoints/{id}", tag = "webhooks", params(("id" = String, Path)), request_body = EndpointUpdate,
    responses((status = 200, body = Endpoint), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["webhooks:write"])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<EndpointId>,
    ApiJson(update): ApiJson<EndpointUpdate>,
) -> ApiResult<Json<Endpoint>> {
    caller.require(Scope::WebhooksWrite)?;
    Ok(Json(state.hooks.update_endpoint(caller.owner(), &id, update).await?))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/endpoints/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["webhooks:write"])))]
pub async fn remove(State(state): State<AppState>, caller: Caller, IdPath(id): IdPath<EndpointId>) -> ApiResult<StatusCode> {
    caller.require(Scope::WebhooksWrite)?;
    state.hooks.delete_endpoint(caller.owner(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// Required when calling with the browser session (cookie): the user's current password. A bearer
    /// token caller sends no body (or `{}`).
    #[schema(format = Password)]
    pub current_password: Option<String>,
}

/// A new secret, returned once; the old one keeps signing beside it until `previous_secret_until_ms`.
/// With the browser session the body must carry `current_password` (a wrong one is a 401 and counts as a
/// failed sign-in; 429 once the account is locked); a bearer token needs none.
#[utoipa::path(post, path = "/api/v1/webhooks/endpoints/{id}/rotate-secret", tag = "webhooks", params(("id" = String, Path)),
    request_body(content = Option<RotateRequest>),
    responses((status = 200, body = RotatedSecret), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["webhooks:write"]), ("session" = [])))]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<EndpointId>,
    ApiJsonOrDefault(req): ApiJsonOrDefault<RotateRequest>,
) -> ApiResult<Json<RotatedSecret>> {
    caller.require(Scope::WebhooksWrite)?;
    if matches!(caller.via, super::Via::Session) {
        // Someone else's or an unknown endpoint is a 404 before any password is checked.
        state.hooks.get_endpoint(caller.owner(), &id).await?;
        super::confirm_session_password(&state, &caller, req.current_password).await?;
    }
    Ok(Json(state.hooks.rotate_secret(caller.owner(), &id).await?))
}

#[utoipa::path(post, path = "/api/v1/webhooks/endpoints/{id}/enable", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = Endpoint)), security(("bearer" = ["webhooks:write"])))]
pub async fn enable(State(state): State<AppState>, caller: Caller, IdPath(id): IdPath<EndpointId>) -> ApiResult<Json<Endpoint>> {
    caller.require(Scope::WebhooksWrite)?;
    Ok(Json(state.hooks.set_enabled(caller.owner(), &id, true).await?))
}

#[utoipa::path(post, path = "/api/v1/webhooks/endpoints/{id}/disable", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = Endpoint)), security(("bearer" = ["webhooks:write"])))]
pub async fn disable(State(state): State<AppState>, caller: Caller, IdPath(id): IdPath<EndpointId>) -> ApiResult<Json<Endpoint>> {
    caller.require(Scope::WebhooksWrite)?;
    Ok(Json(state.hooks.set_enabled(caller.owner(), &id, false).await?))
}

/// Send a `test.ping` event to this endpoint only.
#[utoipa::path(post, path = "/api/v1/webhooks/endpoints/{id}/test", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 202, body = Message)), security(("bearer" = ["webhooks:write"])))]
pub async fn send_test(State(state): State<AppState>, caller: Caller, IdPath(id): IdPath<EndpointId>) -> ApiResult<(StatusCode, Json<Message>)> {
    caller.require(Scope::WebhooksWrite)?;
    Ok((StatusCode::ACCEPTED, Json(state.hooks.send_test(caller.owner(), &id).await?)))
}

#[derive(Serialize, ToSchema)]
pub struct AttemptPage {
    pub items: Vec<AttemptRecord>,
    pub next_cursor: Option<String>,
}

/// Every delivery attempt to this endpoint, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/endpoints/{id}/attempts", tag = "webhooks", params(("id" = String, Path), PageQuery),
    responses((status = 200, body = AttemptPage)), security(("bearer" = ["webhooks:read"])))]
pub async fn endpoint_attempts(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<EndpointId>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<hooks::Page<AttemptRecord>>> {
    caller.require(Scope::WebhooksRead)?;
    Ok(Json(state.hooks.endpoint_attempts(caller.owner(), &id, page(&q)?).await?))
}

#[derive(Serialize, ToSchema)]
pub struct MessagePage {
    pub items: Vec<Message>,
    pub next_cursor: Option<String>,
}

/// The caller's event messages, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/messages", tag = "webhooks", params(PageQuery),
    responses((status = 200, body = MessagePage)), security(("bearer" = ["webhooks:read"])))]
pub async fn messages(State(state): State<AppState>, caller: Caller, ApiQuery(q): ApiQuery<PageQuery>) -> ApiResult<Json<hooks::Page<Message>>> {
    caller.require(Scope::WebhooksRead)?;
    Ok(Json(state.hooks.list_messages(caller.owner(), page(&q)?).await?))
}

/// One message: the exact body sent and its deliveries.
#[utoipa::path(get, path = "/api/v1/webhooks/messages/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = MessageDetail), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["webhooks:read"])))]
pub async fn message(State(state): State<AppState>, caller: Caller, IdPath(id): IdPath<MessageId>) -> ApiResult<Json<MessageDetail>> {
    caller.require(Scope::WebhooksRead)?;
    Ok(Json(state.hooks.get_message(caller.owner(), &id).await?))
}

#[utoipa::path(get, path = "/api/v1/webhooks/messages/{id}/attempts", tag = "webhooks", params(("id" = String, Path), PageQuery),
    responses((status = 200, body = AttemptPage)), security(("bearer" = ["webhooks:read"])))]
pub async fn message_attempts(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<MessageId>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<hooks::Page<AttemptRecord>>> {
    caller.require(Scope::WebhooksRead)?;
    Ok(Json(state.hooks.message_attempts(caller.owner(), &id, page(&q)?).await?))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Only to this endpoint (default: every endpoint the message went to).
    pub endpoint_id: Option<String>,
}

/// Send a message again, with the same `webhook-id` (receivers deduplicate on it).
#[utoipa::path(post, path = "/api/v1/webhooks/messages/{id}/replay", tag = "webhooks", params(("id" = String, Path)),
    request_body(content = Option<ReplayRequest>), responses((status = 202, body = Vec<DeliveryRecord>)),
    security(("bearer" = ["webhooks:write"])))]
pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<MessageId>,
    ApiJsonOrDefault(req): ApiJsonOrDefault<ReplayRequest>,
) -> ApiResult<(StatusCode, Json<Vec<DeliveryRecord>>)> {
    caller.require(Scope::WebhooksWrite)?;
    Ok((StatusCode::ACCEPTED, Json(state.hooks.replay(caller.owner(), &id, req.endpoint_id.as_deref()).await?)))
}

#[derive(Serialize, ToSchema)]
pub struct NoticePage {
    pub items: Vec<OwnerNotice>,
    pub next_cursor: Option<String>,
}

/// What the caller should know (e.g. an endpoint disabled after repeated failures).
#[utoipa::path(get, path = "/api/v1/webhooks/notices", tag = "webhooks", params(PageQuery),
    responses((status = 200, body = NoticePage)), security(("bearer" = ["webhooks:read"])))]
pub async fn notices(State(state): State<AppState>, caller: Caller, ApiQuery(q): ApiQuery<PageQuery>) -> ApiResult<Json<hooks::Page<OwnerNotice>>> {
    caller.require(Scope::WebhooksRead)?;
    Ok(Json(state.hooks.notices(caller.owner(), page(&q)?).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverRequest {
    /// Recover every message the endpoint missed since this time (RFC 3339, e.g. `2026-12-01T00:00:00Z`).
    #[schema(format = DateTime)]
    pub since: String,
}

/// Send this endpoint, once each and in the background, every message it missed since a time: those
/// that failed there and those made while it was disabled. Paced by the owner's outbound budget; the
/// answer's `total` is how many, and `GET …/recoveries` shows the progress.
#[utoipa::path(post, path = "/api/v1/webhooks/endpoints/{id}/recover", tag = "webhooks", params(("id" = String, Path)),
    request_body = RecoverRequest,
    responses((status = 202, body = Recovery), (status = 409, description = "The endpoint is disabled, or a recovery of it is running", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["webhooks:write"])))]
pub async fn recover(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<EndpointId>,
    ApiJson(req): ApiJson<RecoverRequest>,
) -> ApiResult<(StatusCode, Json<Recovery>)> {
    caller.require(Scope::WebhooksWrite)?;
    let since = time::OffsetDateTime::parse(req.since.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|_| ApiError::invalid("since", "must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z"))?;
    let since_ms = (since.unix_timestamp_nanos() / 1_000_000) as i64;
    Ok((StatusCode::ACCEPTED, Json(state.hooks.recover(caller.owner(), &id, since_ms).await?)))
}

#[derive(Serialize, ToSchema)]
pub struct RecoveryList {
    pub items: Vec<Recovery>,
}

/// The endpoint's latest recoveries (10), newest first, with their progress.
#[utoipa::path(get, path = "/api/v1/webhooks/endpoints/{id}/recoveries", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = RecoveryList)), security(("bearer" = ["webhooks:read"])))]
pub async fn recoveries(State(state): State<AppState>, caller: Caller, IdPath(id): IdPath<EndpointId>) -> ApiResult<Json<RecoveryList>> {
    caller.require(Scope::WebhooksRead)?;
    Ok(Json(RecoveryList { items: state.hooks.recoveries(caller.owner(), &id).await? }))
}
