//! `POST /api/v1/inbound/{source}`: a Standard Webhooks request from a configured sender. Verified and
//! deduplicated by the `hooks` crate; an accepted body with a `correlation_id` resumes the run of the
//! source's owner waiting on this source with that correlation, and a source configured with `workflow =
//! "<username>/<workflow name>"` starts a run of it with the body as input. The dedup claim and all of
//! that commit in one transaction.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, ApiResult, Kind, Problem};
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
///
/// The source belongs to one user: a `correlation_id` resumes only that user's waiting run, and a run
/// the source starts carries the source's scopes. The `webhook-id` is recorded in the same transaction as
/// what the webhook does: a webhook that could not be processed is not a duplicate when retried.
#[utoipa::path(post, path = "/api/v1/inbound/{source}", tag = "inbound", params(("source" = String, Path)),
    request_body(content = Object, description = "Any JSON; `correlation_id` resumes the waiting workflow run of the source's owner"),
    responses((status = 200, body = InboundAnswer),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "invalid_signature or stale_timestamp", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "quota_exceeded: the source's owner stored their bytes for the day; nothing was recorded, retry after Retry-After",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The source's workflow cannot start now (missing, or its owner is at a limit): nothing was recorded, retry later",
            body = Problem, content_type = "application/problem+json")),
    security(()))]
pub async fn receive(State(state): State<AppState>, Path(source): Path<String>, headers: HeaderMap, body: Bytes) -> ApiResult<Json<InboundAnswer>> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let event = state.inbound.verify(&source, &headers, &body, now)?;
    let correlation = match event.payload.get("correlation_id").and_then(|v| v.as_str()) {
        Some(c) if !c.is_empty() && c.len() <= 200 => Some(c.to_string()),
        _ => None,
    };
    // What the webhook stores counts against its source owner's bytes per day; over it, the sender is
    // told to come back later (Standard Webhooks senders retry), and nothing is recorded.
    let owner = state.flows.store().inbound_source(&event.source).map(|s| s.owner.clone());
    let bytes = body.len() as u64;
    if let Some(owner) = &owner {
        state.storage.charge(owner, bytes).await?;
    }
    let recorded = record(&state, &event, &body, correlation.as_deref()).await;
    if let (Some(owner), Ok(None) | Err(_)) = (&owner, &recorded) {
        state.storage.refund(owner, bytes).await;
    }
    let Some(effect) = recorded? else {
        return Ok(Json(InboundAnswer { status: "duplicate".into(), resumed_run: None, started_run: None }));
    };
    let resumed_run = state.flows.after_inbound(&event.source, correlation.as_deref(), &effect).await?;
    Ok(Json(InboundAnswer { status: "accepted".into(), resumed_run: Some(resumed_run), started_run: effect.started_run }))
}

/// Claims the webhook id and applies the webhook's effect in one transaction; `None`: a duplicate.
async fn record(state: &AppState, event: &hooks::InboundEvent, body: &[u8], correlation: Option<&str>) -> ApiResult<Option<flows::InboundEffect>> {
    // The claim first: on SQLite it takes the write lock, so a concurrent copy waits for this
    // transaction and then finds the id taken (or free again, if this one rolled back).
    let mut tx = state.pool.begin().await.map_err(|e| contract::Problem::internal(format!("inbound transaction: {e}")))?;
    if !state.inbound.claim(&mut tx, event, body).await? {
        return Ok(None);
    }
    let effect =
        state.flows.store().receive_inbound(&mut tx, &event.source, &event.webhook_id, correlation, &event.payload).await.map_err(not_processed)?;
    tx.commit().await.map_err(|e| contract::Problem::internal(format!("inbound commit: {e}")))?;
    Ok(Some(effect))
}

/// Why the webhook's effect failed, for the sender, who will retry: nothing was recorded.
fn not_processed(e: flows::FlowsError) -> ApiError {
    match e {
        // The configured workflow is missing (not created yet, or deleted), or its owner is at a limit:
        // the operator's or the owner's to fix, so answer like an outage and let the sender retry.
        flows::FlowsError::NotFound | flows::FlowsError::Quota { .. } => {
            tracing::warn!(error = %e, "inbound webhook not processed: the source's workflow could not start");
            Problem::new(
                Kind::Unavailable,
                "unavailable",
                "This source's workflow cannot start right now; the webhook was not recorded. Retry later.",
            )
            .with_retry_after(60)
        }
        e => ApiError::from(e),
    }
}
