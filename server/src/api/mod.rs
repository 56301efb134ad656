//! The versioned REST API under `/api/v1`: notification runs, webhook endpoints and messages, workflows
//! and their runs, inbound webhooks. JSON in and out; errors are RFC 9457 problem details
//! ([`ApiError`]); callers authenticate with a scoped API token (`Authorization: Bearer ie_…`) or, from
//! the browser, with the session cookie ([`Caller`]). POSTs that create honour `Idempotency-Key`
//! ([`idempotency`]). The OpenAPI document is generated from these handlers ([`openapi`]).

pub mod docs_page;
pub mod host;
pub mod idempotency;
pub mod inbound;
pub mod openapi;
pub mod runs;
pub mod webhooks;
pub mod workflows;

use auth::sessions::SignedIn;
use auth::tokens::Scope;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;

/// Largest JSON body the API reads (workflow definitions are the big ones: 64 KiB of source).
pub const MAX_API_BODY: usize = 256 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/docs", get(docs_page::page))
        .merge(runs::router())
        .merge(webhooks::router())
        .merge(workflows::router())
        .route("/api/v1/inbound/{source}", post(inbound::receive))
        // Any other /api/v1 path is a problem, not the app's HTML 404 page.
        .route("/api/v1/{*rest}", axum::routing::any(not_found))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_API_BODY))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such API route.")
}

// ---------------------------------------------------------------------------------------------------
// Problem details

/// One field that was refused, by its path in the request (`steps[2].retry.max_attempts`).
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct ProblemField {
    pub field: String,
    pub message: String,
}

/// RFC 9457 problem details, `application/problem+json`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// `/api/v1/problems/<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code, e.g. `validation_failed`, `not_found`, `invalid_signature`.
    pub code: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemField>,
}

/// An API failure; its response is a [`Problem`]. Internal details are logged, never sent.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub detail: String,
    pub errors: Vec<ProblemField>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self { status, code: code.into(), detail: detail.into(), errors: vec![], retry_after: None }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "The request has invalid fields.");
        e.errors.push(ProblemField { field: field.into(), message: message.into() });
        e
    }

    pub fn internal(context: &str, e: impl std::fmt::Display) -> Self {
        tracing::error!(context, error = %e, "API internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Something went wrong on our side.")
    }

    pub fn unauthorized(detail: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("/api/v1/problems/{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_string(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.clone(),
            errors: self.errors.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(self.problem())).into_response();
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"api\""));
        }
        res
    }
}

impl From<hooks::HooksError> for ApiError {
    fn from(e: hooks::HooksError) -> Self {
        let status = e.status();
        let detail = if status.is_server_error() { "Something went wrong on our side.".to_string() } else { e.to_string() };
        // One code for refused fields across the API.
        let code = if e.code() == "invalid_request" { "validation_failed" } else { e.code() };
        let mut out = ApiError::new(status, code, detail);
        out.errors = e.field_errors().iter().map(|f| ProblemField { field: f.field.clone(), message: f.message.clone() }).collect();
        out.retry_after = e.retry_after_secs();
        out
    }
}

impl From<flows::FlowsError> for ApiError {
    fn from(e: flows::FlowsError) -> Self {
        let status = e.status();
        let code = e.code();
        let detail = if status.is_server_error() { "Something went wrong on our side.".to_string() } else { e.to_string() };
        let mut out = ApiError::new(status, code, detail);
        out.errors = e.field_errors().iter().map(|f| ProblemField { field: f.field.clone(), message: f.message.clone() }).collect();
        out
    }
}

impl From<notify::NotifyError> for ApiError {
    fn from(e: notify::NotifyError) -> Self {
        let status = e.status();
        let code = match status {
            // A user's own allowance, the same code as the workflows' and the inbound webhooks'.
            _ if matches!(e, notify::NotifyError::QuotaExceeded { .. }) => "quota_exceeded",
            StatusCode::TOO_MANY_REQUESTS => "rate_limited",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => "validation_failed",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ => "internal",
        };
        let detail = if status.is_server_error() { "Something went wrong on our side.".to_string() } else { e.to_string() };
        let mut out = ApiError::new(status, code, detail);
        out.errors = e.field_errors().iter().map(|f| ProblemField { field: f.field.clone(), message: f.message.clone() }).collect();
        out.retry_after = e.retry_after_secs();
        out
    }
}

impl From<auth::AuthError> for ApiError {
    fn from(e: auth::AuthError) -> Self {
        let status = e.status();
        let code = match &e {
            auth::AuthError::InvalidCredentials | auth::AuthError::InvalidToken => "unauthorized",
            auth::AuthError::MissingScope { .. } => "forbidden",
            auth::AuthError::Throttled { .. } => "rate_limited",
            auth::AuthError::Busy { .. } => "unavailable",
            auth::AuthError::InvalidInput(_) => "validation_failed",
            auth::AuthError::UsernameTaken => "conflict",
            auth::AuthError::NotFound => "not_found",
            _ => "internal",
        };
        let hidden = status.is_server_error() && !matches!(e, auth::AuthError::Busy { .. });
        let mut out = ApiError::new(status, code, if hidden { "Something went wrong on our side.".into() } else { e.to_string() });
        out.retry_after = e.retry_after_secs();
        out
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Reads a JSON body, refusing anything else with a problem that says what was wrong.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    if body.is_empty() {
        return Err(ApiError::invalid("body", "a JSON body is required"));
    }
    serde_json::from_slice(body).map_err(|e| {
        let message = e.to_string();
        // serde names unknown and missing fields in its message; keep it short and free of input echoes.
        let message: String = message.chars().take(200).collect();
        ApiError::invalid("body", message)
    })
}

// ---------------------------------------------------------------------------------------------------
// Who is calling

/// How the caller authenticated.
#[derive(Debug, Clone)]
pub enum Via {
    Token { token_id: i64, scopes: Vec<Scope> },
    Session,
}

/// The authenticated caller of an API route. A bearer token wins over a cookie, and a bad token is a
/// 401 (never a fall-back to the cookie). Browser sessions may do everything their user may do.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: i64,
    pub username: String,
    pub via: Via,
}

impl Caller {
    /// The owner string every domain crate files this user's things under.
    pub fn owner(&self) -> &str {
        &self.username
    }

    pub fn require(&self, scope: Scope) -> ApiResult<()> {
        match &self.via {
            Via::Session => Ok(()),
            Via::Token { scopes, .. } if scopes.contains(&scope) => Ok(()),
            Via::Token { .. } => Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("This token lacks the {} scope.", scope.as_str()))),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| ApiError::unauthorized("Authorization must be `Bearer <token>`."))?;
            let principal = state.tokens.authenticate(token).await.map_err(|e| match e {
                auth::AuthError::Internal(_) => ApiError::from(e),
                _ => ApiError::unauthorized("The token is unknown, revoked or expired."),
            })?;
            let user =
                state.auth.users.find_by_id(principal.user_id).await?.ok_or_else(|| ApiError::unauthorized("The token's user no longer exists."))?;
            return Ok(Caller {
                user_id: user.id,
                username: user.username,
                via: Via::Token { token_id: principal.token_id, scopes: principal.scopes },
            });
        }
        match parts.extensions.get::<SignedIn>() {
            Some(s) => Ok(Caller { user_id: s.user_id, username: s.username.clone(), via: Via::Session }),
            None => Err(ApiError::unauthorized("Send an API token (Authorization: Bearer …) or sign in.")),
        }
    }
}

/// A browser session minting a credential (a webhook signing secret) confirms the user's password first,
/// as the settings pages do: a stolen cookie alone must not be enough. Missing: 422 naming
/// `current_password`; wrong: 401 (counted by the login throttle; 429 once locked).
pub async fn confirm_session_password(state: &AppState, caller: &Caller, password: Option<String>) -> ApiResult<()> {
    let password = password.unwrap_or_default();
    if password.is_empty() {
        return Err(ApiError::invalid("current_password", "Enter your current password to confirm (required with a browser session)."));
    }
    match state.auth.confirm_password(caller.user_id, secrecy::SecretString::from(password)).await {
        Ok(()) => Ok(()),
        Err(auth::AuthError::InvalidCredentials) => {
            let mut e = ApiError::unauthorized("Your current password is not correct.");
            e.errors.push(ProblemField { field: "current_password".into(), message: "Your current password is not correct.".into() });
            Err(e)
        }
        Err(e) => Err(e.into()),
    }
}

/// `Query` whose refusal is a problem (axum's own is plain text).
pub struct ApiQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(e) => {
                let text = e.body_text();
                let message = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text);
                let (field, message) = message.split_once(": ").unwrap_or(("query", message));
                Err(ApiError::invalid(field, message.chars().take(200).collect::<String>()))
            }
        }
    }
}

/// `?limit=&cursor=` on every list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[1-9][0-9]{0,17}$")]
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn checked_limit(&self) -> ApiResult<u32> {
        match self.limit {
            None => Ok(20),
            Some(n @ 1..=100) => Ok(n),
            Some(_) => Err(ApiError::invalid("limit", "must be from 1 to 100")),
        }
    }
}

/// Path segments are ids we made; anything long or odd is simply not found.
pub fn id_segment(Path(id): Path<String>) -> ApiResult<String> {
    if id.is_empty() || id.len() > 100 || id.chars().any(|c| c.is_control()) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "Not found."));
    }
    Ok(id)
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    pub user_id: i64,
    pub username: String,
    /// `token` or `session`.
    pub auth: String,
    /// The token's scopes (every scope for a session).
    pub scopes: Vec<String>,
}

/// Who am I: the authenticated user and what this credential may do.
#[utoipa::path(get, path = "/api/v1/me", tag = "account", responses(
    (status = 200, body = Me), (status = 401, body = Problem, content_type = "application/problem+json")
), security(("bearer" = []), ("session" = [])))]
pub async fn me(caller: Caller) -> Json<Me> {
    let (auth, scopes) = match &caller.via {
        Via::Token { scopes, .. } => ("token", scopes.iter().map(|s| s.as_str().to_string()).collect()),
        Via::Session => ("session", Scope::ALL.iter().map(|s| s.as_str().to_string()).collect()),
    };
    Json(Me { user_id: caller.user_id, username: caller.username, auth: auth.into(), scopes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_have_the_documented_shape() {
        let mut e = ApiError::invalid("steps[0].name", "must not be empty");
        e.retry_after = None;
        let p = serde_json::to_value(e.problem()).unwrap();
        assert_eq!(p["type"], "/api/v1/problems/validation_failed");
        assert_eq!(p["status"], 422);
        assert_eq!(p["code"], "validation_failed");
        assert_eq!(p["errors"][0]["field"], "steps[0].name");
        let p = serde_json::to_value(ApiError::unauthorized("no").problem()).unwrap();
        assert!(p.get("errors").is_none(), "no empty errors list");
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
    }

    #[test]
    fn bad_json_is_a_validation_problem_naming_the_body() {
        let e = parse_json::<Body>(b"{").unwrap_err();
        assert_eq!((e.status, e.code.as_str(), e.errors[0].field.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "body"));
        assert_eq!(parse_json::<Body>(b"").unwrap_err().errors[0].message, "a JSON body is required");
    }
}
