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
pub mod ops;
pub mod push;
pub mod runs;
pub mod webhooks;
pub mod workflows;

use auth::sessions::SignedIn;
use auth::tokens::Scope;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use axum::routing::get;
use axum::{Json, Router};
use contract::Owner;
use serde::{Deserialize, Serialize};
use utoipa::OpenApi;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// Largest JSON body the API reads (workflow definitions are the big ones: 64 KiB of source).
pub const MAX_API_BODY: usize = 256 * 1024;

/// Every REST operation, each declared once with its OpenAPI entry (`routes!` reads the path and the
/// method from the handler's `#[utoipa::path]`): the router and the document come from this one list,
/// so an operation cannot be served undocumented or documented unserved. Handlers that share a path
/// are declared together.
pub fn operations() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(me))
        .merge(runs::operations())
        .merge(webhooks::operations())
        .merge(push::operations())
        .merge(workflows::operations())
        .routes(routes!(inbound::receive))
        .merge(ops::operations())
}

pub fn router() -> Router<AppState> {
    let (operations, _) = operations().split_for_parts();
    operations
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/docs", get(docs_page::page))
        // Any other /api/v1 path is a problem, not the app's HTML 404 page.
        .route("/api/v1/{*rest}", axum::routing::any(not_found))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_API_BODY))
}

async fn not_found() -> ApiError {
    Problem::not_found("No such API route.")
}

// ---------------------------------------------------------------------------------------------------
// Problem details

/// An API failure is a [`Problem`] (RFC 9457, the one error shape of every route); domain errors
/// convert with `?`, and the response, its status and `Retry-After` come from `contract`.
pub use contract::{FieldError, Kind, Problem};
pub type ApiError = Problem;

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
    /// The username, as the owner every domain crate files this user's things under.
    pub owner: Owner,
    pub via: Via,
}

impl Caller {
    /// Whose things this caller works on.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    pub fn require(&self, scope: Scope) -> ApiResult<()> {
        match &self.via {
            Via::Session => Ok(()),
            Via::Token { scopes, .. } if scopes.contains(&scope) => Ok(()),
            Via::Token { .. } => Err(Problem::new(Kind::Forbidden, "forbidden", format!("This token lacks the {} scope.", scope.as_str()))),
        }
    }

    /// Operators only (`APP_OPERATORS`, checked now, so a name taken off the list stops its tokens at
    /// once), with a session or an `ops:read` token.
    pub fn require_operator(&self, state: &AppState) -> ApiResult<()> {
        if !state.settings.is_operator(&self.owner) {
            return Err(Problem::new(Kind::Forbidden, "forbidden", "Only operators may read this."));
        }
        self.require(Scope::OpsRead)
    }

    /// What this credential may do: a token's scopes; a session's user's (the operators' too for an
    /// operator).
    pub fn scopes(&self, state: &AppState) -> Vec<Scope> {
        match &self.via {
            Via::Token { scopes, .. } => scopes.clone(),
            Via::Session => Scope::ALL.into_iter().filter(|s| !s.is_operators() || state.settings.is_operator(&self.owner)).collect(),
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
                owner: Owner::new(user.username),
                via: Via::Token { token_id: principal.token_id, scopes: principal.scopes },
            });
        }
        match parts.extensions.get::<SignedIn>() {
            Some(s) => Ok(Caller { user_id: s.user_id, owner: Owner::new(s.username.clone()), via: Via::Session }),
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
            Err(Problem::unauthorized("Your current password is not correct.")
                .with_field("current_password", "Your current password is not correct."))
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

#[derive(Serialize, ToSchema)]
pub struct Me {
    pub user_id: i64,
    pub username: String,
    /// `token` or `session`.
    pub auth: String,
    /// The token's scopes (for a session, every scope its user may have).
    pub scopes: Vec<String>,
}

/// Who am I: the authenticated user and what this credential may do.
#[utoipa::path(get, path = "/api/v1/me", tag = "account", responses(
    (status = 200, body = Me), (status = 401, body = Problem, content_type = "application/problem+json")
), security(("bearer" = []), ("session" = [])))]
pub async fn me(axum::extract::State(state): axum::extract::State<AppState>, caller: Caller) -> Json<Me> {
    let auth = match &caller.via {
        Via::Token { .. } => "token",
        Via::Session => "session",
    };
    let scopes = caller.scopes(&state).iter().map(|s| s.as_str().to_string()).collect();
    Json(Me { user_id: caller.user_id, username: caller.owner.to_string(), auth: auth.into(), scopes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
    }

    #[test]
    fn bad_json_is_a_validation_problem_naming_the_body() {
        let e = parse_json::<Body>(b"{").unwrap_err();
        assert_eq!((e.status, e.code.as_str(), e.errors[0].field.as_str()), (422, "validation_failed", "body"));
        assert_eq!(parse_json::<Body>(b"").unwrap_err().errors[0].message, "a JSON body is required");
    }
}
