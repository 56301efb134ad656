//! Web Push subscriptions (what a browser's `PushSubscription.toJSON()` gives) and the VAPID public key
//! browsers subscribe with: thin handlers over `hooks::push`, which owns the rules (address guard, key
//! checks, a cap per user). A push notification names a subscription's id as its recipient.

use auth::tokens::Scope;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hooks::push::{NewSubscription, Subscription};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiResult, Caller, Problem};
use crate::extract::{ApiJson, IdPath};
use crate::AppState;
use contract::ids::PushSubscriptionId;

pub fn operations() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(vapid_key)).routes(routes!(subscribe, subscriptions)).routes(routes!(unsubscribe))
}

#[derive(Serialize, ToSchema)]
pub struct VapidKey {
    /// `applicationServerKey` for `PushManager.subscribe()`: this server's P-256 public key,
    /// uncompressed, base64url.
    pub public_key: String,
}

/// This server's VAPID public key; 404 when Web Push is not set up here.
#[utoipa::path(get, path = "/api/v1/push/vapid-public-key", tag = "push", responses(
    (status = 200, body = VapidKey), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["notifications:read"])))]
pub async fn vapid_key(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<VapidKey>> {
    caller.require(Scope::NotificationsRead)?;
    let public_key = state.notify.push_public_key().ok_or_else(|| Problem::not_found("Web Push is not set up on this server."))?;
    Ok(Json(VapidKey { public_key }))
}

/// Register a subscription: the endpoint must be an http(s) URL whose host is allowed (as webhook
/// URLs are), `keys.p256dh` a P-256 public key and `keys.auth` 16 bytes. The same endpoint again
/// replaces its keys and keeps its id.
#[utoipa::path(post, path = "/api/v1/push/subscriptions", tag = "push", request_body = NewSubscription, responses(
    (status = 201, body = Subscription), (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["notifications:write"])))]
pub async fn subscribe(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewSubscription>,
) -> ApiResult<(StatusCode, Json<Subscription>)> {
    caller.require(Scope::NotificationsWrite)?;
    Ok((StatusCode::CREATED, Json(state.hooks.create_subscription(caller.owner(), new).await?)))
}

#[derive(Serialize, ToSchema)]
pub struct SubscriptionList {
    pub items: Vec<Subscription>,
}

/// The caller's subscriptions, newest first (at most 100 exist).
#[utoipa::path(get, path = "/api/v1/push/subscriptions", tag = "push", responses((status = 200, body = SubscriptionList)),
    security(("bearer" = ["notifications:read"])))]
pub async fn subscriptions(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<SubscriptionList>> {
    caller.require(Scope::NotificationsRead)?;
    Ok(Json(SubscriptionList { items: state.hooks.list_subscriptions(caller.owner()).await? }))
}

#[utoipa::path(delete, path = "/api/v1/push/subscriptions/{id}", tag = "push", params(("id" = String, Path)), responses(
    (status = 204), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["notifications:write"])))]
pub async fn unsubscribe(State(state): State<AppState>, caller: Caller, IdPath(id): IdPath<PushSubscriptionId>) -> ApiResult<StatusCode> {
    caller.require(Scope::NotificationsWrite)?;
    state.hooks.delete_subscription(caller.owner(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
