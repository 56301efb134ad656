//! What operators see of the machine: storage per store (rows, bytes, the oldest row, retention and
//! the next pass). Sizes only, never a row: still, only operators (`APP_OPERATORS`) may read it, with
//! a session or an `ops:read` token.

use axum::extract::State;
use axum::Json;
use contract::ops::StorageReport;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiResult, Caller, Problem};
use crate::AppState;

pub fn operations() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(storage))
}

/// Storage per store as of this instance's last retention pass, and when the next one starts.
#[utoipa::path(get, path = "/api/v1/ops/storage", tag = "ops", responses(
    (status = 200, body = StorageReport),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "Not an operator, or the token lacks `ops:read`", body = Problem, content_type = "application/problem+json"),
), security(("bearer" = ["ops:read"]), ("session" = [])))]
pub async fn storage(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<StorageReport>> {
    caller.require_operator(&state)?;
    Ok(Json(state.retention.report()))
}
