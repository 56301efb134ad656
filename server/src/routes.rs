//! The form routes behind the login and success pages. Each works as a plain HTML form post (answering
//! with a redirect, or the re-rendered page with the error) and, when the request asks for JSON, as the
//! fetch endpoint of the hydrated page.

use app::api::LoginFailure;
use auth::sessions::SignedIn;
use auth::{AuthError, LoginAttempt};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use secrecy::SecretString;
use serde::Deserialize;
use std::net::SocketAddr;
use tower_sessions::Session;

use crate::error::AppError;
use crate::form::StrictForm;
use crate::middleware::{client_ip, login_path};
use crate::state::AppState;

/// The form's fields and their strict decoding are auth's (fuzzed there, see fuzz/).
pub use auth::LoginForm;

fn wants_json(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("application/json"))
}

/// Where to go next: JSON `{ "redirect": ... }` for fetch, 303 for a plain form.
fn go_to(json: bool, to: &str) -> Response {
    if json {
        Json(serde_json::json!({ "redirect": to })).into_response()
    } else {
        Redirect::to(to).into_response()
    }
}

pub async fn login(
    State(state): State<AppState>,
    session: Session,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    form: Result<StrictForm<LoginForm>, AppError>,
) -> Response {
    let json = wants_json(&headers);
    let form = match form {
        Ok(StrictForm(f)) => f,
        Err(e) => return e.into_response(),
    };
    let next = app::safe_next(form.next.as_deref());
    let ip = client_ip(&headers, peer.as_ref().map(|Extension(c)| c), state.settings.trust_proxy_headers);
    let attempt = LoginAttempt {
        username: form.username.clone(),
        password: SecretString::from(form.password),
        client_ip: ip,
    };
    let outcome = match state.auth.login(attempt).await {
        Ok(user) => {
            let ua = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
            let ip_text = ip.map(|i| i.to_string()).unwrap_or_default();
            state.sessions.establish(&session, &user, ua, &ip_text).await.map(|_| ())
        }
        Err(e) => Err(AppError::Auth(e)),
    };
    match outcome {
        Ok(()) => {
            tracing::info!(username = %form.username, "signed in");
            go_to(json, &next)
        }
        Err(e) if json => e.into_response(),
        Err(e) => {
            if matches!(e, AppError::Auth(AuthError::InvalidCredentials)) {
                tracing::info!("failed sign-in");
            }
            let failure = LoginFailure { message: e.public_message(), username: form.username };
            rerender_login(&state, headers, &next, failure, &e).await
        }
    }
}

/// Renders `/login` with the error, with the error's status (and `Retry-After`), for browsers without
/// JavaScript. The page reads the failure from the request extensions.
async fn rerender_login(state: &AppState, headers: HeaderMap, next: &str, failure: LoginFailure, e: &AppError) -> Response {
    let uri: Uri = login_path(next).parse().unwrap_or_else(|_| Uri::from_static("/login"));
    let mut req = Request::builder().method(Method::GET).uri(uri).body(Body::empty()).expect("valid request");
    for (k, v) in headers.iter() {
        if k != header::CONTENT_LENGTH && k != header::CONTENT_TYPE {
            req.headers_mut().append(k, v.clone());
        }
    }
    req.extensions_mut().insert(failure);
    let mut res = crate::render_page(state, req).await;
    *res.status_mut() = e.status();
    if let Some(secs) = e.retry_after() {
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

pub async fn logout(State(state): State<AppState>, session: Session, headers: HeaderMap) -> Result<Response, AppError> {
    state.sessions.end_current(&session).await?;
    Ok(go_to(wants_json(&headers), "/login"))
}

#[derive(Deserialize)]
pub struct RevokeForm {
    handle: String,
}

fn signed_in(me: Option<Extension<SignedIn>>) -> Result<SignedIn, AppError> {
    me.map(|Extension(s)| s).ok_or_else(|| AppError::Status(StatusCode::UNAUTHORIZED, "Sign in first.".into()))
}

pub async fn revoke_session(
    State(state): State<AppState>,
    me: Option<Extension<SignedIn>>,
    headers: HeaderMap,
    form: Result<StrictForm<RevokeForm>, AppError>,
) -> Result<Response, AppError> {
    let me = signed_in(me)?;
    let StrictForm(form) = form?;
    state.sessions.revoke(&me, &form.handle).await?;
    Ok(go_to(wants_json(&headers), "/success"))
}

pub async fn revoke_other_sessions(
    State(state): State<AppState>,
    me: Option<Extension<SignedIn>>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let me = signed_in(me)?;
    let ended = state.sessions.revoke_others(&me).await?;
    tracing::info!(user_id = me.user_id, ended, "ended other sessions");
    Ok(go_to(wants_json(&headers), "/success"))
}

/// Liveness: the process answers. Says nothing about its dependencies (see [`readyz`]).
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the app database answers and, when configured, Redis does. 200 with each check, or 503
/// naming the one that failed (a load balancer stops sending traffic; details stay in the log).
pub async fn readyz(State(state): State<AppState>) -> Response {
    let database = match tokio::time::timeout(std::time::Duration::from_secs(1), sqlx::query("SELECT 1").execute(&state.pool)).await {
        Ok(Ok(_)) => "ok",
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database");
            "unavailable"
        }
        Err(_) => "unavailable",
    };
    // The pipeline's Redis and the session store's (usually the same server) must both answer.
    let pipeline = if state.notify.has_redis() { Some(state.notify.ready().await.is_ok()) } else { None };
    let sessions = state.session_store.redis_ready().await;
    let redis = match (pipeline, sessions) {
        (None, None) => "not configured",
        (a, b) if a.unwrap_or(true) && b.unwrap_or(true) => "ok",
        _ => "unavailable",
    };
    let ready = database == "ok" && redis != "unavailable";
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(serde_json::json!({ "ready": ready, "database": database, "redis": redis }))).into_response()
}

/// `POST /api/crypto`: runs one lab method natively (the Python examples and other clients use it).
/// Crypto failures (bad hex, wrong key, tampering) are 422 with a stable `code`.
pub async fn crypto_lab(body: Result<Json<crypto::lab::LabRequest>, axum::extract::rejection::JsonRejection>) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(rejection) => {
            return AppError::Status(rejection.status(), format!("The request could not be read: {}", rejection.body_text()))
                .into_response()
        }
    };
    match app::crypto_api::ssr::run_on_server(req).await {
        Ok(out) => Json(out).into_response(),
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, Json(serde_json::json!({ "error": e.message, "code": e.code }))).into_response(),
    }
}

/// `GET /api/crypto/methods`: what each method is for and when not to use it.
pub async fn crypto_methods() -> Json<&'static [crypto::MethodInfo]> {
    Json(crypto::methods())
}
