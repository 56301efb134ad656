//! `POST /api/v1/inbound/{source}`: a Standard Webhooks request from a configured sender. Verified and
//! deduplicated by the `hooks` crate; an accepted body with a `correlation_id` resumes the workflow run
//! waiting on this source with that correlation, and a source configured with `workflow =
//! "<username>/<workflow name>"` starts a run of it with the body as input.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, ApiResult, Problem};
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct InboundAnswer {
    /// `accepted`, or `duplicate` for a `webhook-id` seen before (nothing is done again).
    pub status: String,
    /// The workflow run this webhook resumed (null if none); absent on a duplicate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_run: Option<Option<String>>,
    /// The workflow run this webhook started, when its source is configured to start one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_run: Option<String>,
}

/// Receive a signed webhook (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`).
#[utoipa::path(post, path = "/api/v1/inbound/{source}", tag = "inbound", params(("source" = String, Path)),
    request_body(content = Object, description = "Any JSON; `correlation_id` resumes the waiting workflow run"),
    responses((status = 200, body = InboundAnswer),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "invalid_signature or stale_timestamp", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")),
    security(()))]
pub async fn receive(State(state): State<AppState>, Path(source): Path<String>, headers: HeaderMap, body: Bytes) -> ApiResult<Json<InboundAnswer>> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let event = match state.inbound.receive(&source, &headers, &body, now).await? {
        hooks::Inbound::Accepted(e) => e,
        hooks::Inbound::Duplicate { .. } => {
            return Ok(Json(InboundAnswer { status: "duplicate".into(), resumed_run: None, started_run: None }));
        }
    };
    let resumed_run = match event.payload.get("correlation_id").and_then(|v| v.as_str()) {
        Some(c) if !c.is_empty() && c.len() <= 200 => state.flows.deliver_inbound(&event.source, c, &event.payload).await?,
        _ => None,
    };
    let started_run = match event.workflow.as_deref().and_then(|w| w.split_once('/')) {
        Some((owner, name)) if resumed_run.is_none() => {
            let new = flows::NewRun {
                definition: flows::DefinitionRef::Name(name.to_string()),
                input: event.payload.clone(),
                // The same webhook never starts two runs.
                idempotency_key: Some(format!("inbound:{}:{}", event.source, event.webhook_id)),
            };
            Some(state.flows.start_run(owner, new).await.map_err(ApiError::from)?)
        }
        _ => None,
    };
    Ok(Json(InboundAnswer { status: "accepted".into(), resumed_run: Some(resumed_run), started_run }))
}
