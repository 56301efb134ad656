//! The form routes behind the login, sign-up, password-change and success pages. Each works as a plain HTML form post (answering
//! with a redirect, or the re-rendered page with the error) and, when the request asks for JSON, as the
//! fetch endpoint of the hydrated page.

use app::account_api::FormFailure;
use app::api::LoginFailure;
use auth::sessions::SignedIn;
use auth::{AuthError, LoginAttempt};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use secrecy::SecretString;
use serde::Deserialize;
use tower_sessions::Session;

use crate::error::AppError;
use crate::extract::Me;
use crate::form::StrictForm;
use crate::middleware::{login_path, ClientAddr};
use crate::state::AppState;
use contract::{Kind, Problem, PublicError};

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
    Extension(ClientAddr(ip)): Extension<ClientAddr>,
    headers: HeaderMap,
    form: Result<StrictForm<LoginForm>, AppError>,
) -> Response {
    let json = wants_json(&headers);
    let form = match form {
        Ok(StrictForm(f)) => f,
        Err(e) => return e.into_response(),
    };
    let next = app::safe_next(form.next.as_deref());
    let attempt = LoginAttempt { username: form.username.clone(), password: SecretString::from(form.password), client_ip: ip };
    let outcome = match state.auth.login(attempt).await {
        Ok(user) => sign_in(&state, &session, &user, &headers, ip).await,
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

/// Signs `user` in on this session with a fresh id (login, sign-up, password change all come here).
async fn sign_in(state: &AppState, session: &Session, user: &auth::User, headers: &HeaderMap, ip: Option<std::net::IpAddr>) -> Result<(), AppError> {
    let ua = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ip_text = ip.map(|i| i.to_string()).unwrap_or_default();
    state.sessions.establish(session, user, ua, &ip_text).await.map(|_| ())
}

/// Renders `/login` with the error, with the error's status (and `Retry-After`), for browsers without
/// JavaScript. The page reads the failure from the request extensions.
async fn rerender_login(state: &AppState, headers: HeaderMap, next: &str, failure: LoginFailure, e: &AppError) -> Response {
    let uri: Uri = login_path(next).parse().unwrap_or_else(|_| Uri::from_static("/login"));
    rerender(state, headers, uri, failure, status_of(e.status()), e.retry_after_secs()).await
}

/// Renders the page at `uri` as a GET with `failure` in the request extensions (where the page reads
/// it), with `status` and `Retry-After`: the answer to a plain form post that failed.
async fn rerender<F: Clone + Send + Sync + 'static>(
    state: &AppState,
    headers: HeaderMap,
    uri: Uri,
    failure: F,
    status: StatusCode,
    retry_after: Option<u64>,
) -> Response {
    let mut req = Request::builder().method(Method::GET).uri(uri).body(Body::empty()).expect("valid request");
    for (k, v) in headers.iter() {
        if k != header::CONTENT_LENGTH && k != header::CONTENT_TYPE {
            req.headers_mut().append(k, v.clone());
        }
    }
    req.extensions_mut().insert(failure);
    let mut res = crate::render_page(state, req).await;
    *res.status_mut() = status;
    if let Some(secs) = retry_after {
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

fn status_of(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A refused form post: for fetch, the problem (its `errors` name the inputs); for a plain form, the
/// page at `page` re-rendered with the message under its field.
struct Refusal {
    problem: Problem,
    username: String,
}

impl Refusal {
    /// A refusal about input `field` (`None`: the whole form).
    fn new(kind: Kind, field: Option<&str>, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut problem = Problem::new(kind, kind.code(), message.clone());
        if let Some(field) = field {
            problem = problem.with_field(field, message);
        }
        Refusal { problem, username: String::new() }
    }

    /// An error from the domain, about `field` unless it is not about the input (a limit, our fault).
    fn from_error(e: AppError, field: Option<&str>) -> Self {
        let mut problem = Problem::from(e);
        let about_input = !matches!(problem.kind(), Kind::Internal | Kind::TooManyRequests | Kind::Unavailable);
        if let (Some(field), true, true) = (field, about_input, problem.errors.is_empty()) {
            let message = problem.detail.clone();
            problem = problem.with_field(field, message);
        }
        Refusal { problem, username: String::new() }
    }

    fn keeping_username(mut self, username: &str) -> Self {
        self.username = username.to_string();
        self
    }

    async fn answer(self, state: &AppState, headers: HeaderMap, page: &'static str) -> Response {
        if wants_json(&headers) {
            return self.problem.into_response();
        }
        let p = self.problem;
        let failure = FormFailure { message: p.detail.clone(), field: p.errors.first().map(|f| f.field.clone()), username: self.username };
        rerender(state, headers, Uri::from_static(page), failure, status_of(p.status), p.retry_after).await
    }
}

#[derive(Deserialize)]
pub struct SignupForm {
    username: String,
    password: String,
}

/// `POST /signup`: creates an account under the new-password policy and signs it in, as a login would
/// (new session id). Off unless `signup.enabled` (404, as the page is). Every attempt counts towards
/// the per-address limit, whatever its outcome, so probing which usernames are taken is as slow as the
/// limit says.
pub async fn signup(
    State(state): State<AppState>,
    session: Session,
    Extension(ClientAddr(ip)): Extension<ClientAddr>,
    headers: HeaderMap,
    form: Result<StrictForm<SignupForm>, AppError>,
) -> Response {
    if !state.settings.signup_enabled() {
        return AppError::refused(Kind::NotFound, "Sign-up is turned off on this server.").into_response();
    }
    let form = match form {
        Ok(StrictForm(f)) => f,
        Err(e) => return e.into_response(),
    };
    let allowed = match state.signup_limit.check(ip).await {
        Ok(allowed) => allowed,
        Err(e) => return AppError::from(e).into_response(),
    };
    if let Err(wait) = allowed {
        let secs = wait.as_secs().max(1);
        tracing::info!("sign-up refused: too many from this address");
        let mut refusal = Refusal::new(Kind::TooManyRequests, None, format!("Too many sign-ups from your address. Try again in {secs} seconds."));
        refusal.problem.retry_after = Some(secs);
        return refusal.keeping_username(&form.username).answer(&state, headers, "/signup").await;
    }
    // The username's shape first, so a message from `sign_up` after it is about the password (or
    // says the name is taken, which `sign_up` only gets to once the password passed the policy).
    if let Err(e) = auth::users::validate_username(&form.username) {
        return Refusal::from_error(e.into(), Some("username")).keeping_username(&form.username).answer(&state, headers, "/signup").await;
    }
    let created = match state.auth.sign_up(&form.username, SecretString::from(form.password)).await {
        Ok(user) => sign_in(&state, &session, &user, &headers, ip).await,
        Err(e) => Err(e.into()),
    };
    match created {
        Ok(()) => {
            tracing::info!(username = %form.username, "signed up");
            go_to(wants_json(&headers), app::DEFAULT_AFTER_LOGIN)
        }
        Err(e) => {
            let field = match &e {
                AppError::Auth(AuthError::UsernameTaken) => Some("username"),
                _ => Some("password"),
            };
            Refusal::from_error(e, field).keeping_username(&form.username).answer(&state, headers, "/signup").await
        }
    }
}

#[derive(Deserialize)]
pub struct PasswordChangeForm {
    current_password: String,
    new_password: String,
    confirm_password: String,
}

/// `POST /settings/password`: changes the signed-in user's password, ends their other sessions and
/// gives this one a new id (it stays signed in). A wrong current password counts as a failed sign-in
/// for the account's throttle. Success goes back to the page with how many sessions were ended.
pub async fn change_password(
    State(state): State<AppState>,
    session: Session,
    me: Option<Extension<SignedIn>>,
    Extension(ClientAddr(ip)): Extension<ClientAddr>,
    headers: HeaderMap,
    form: Result<StrictForm<PasswordChangeForm>, AppError>,
) -> Response {
    const PAGE: &str = "/settings/password";
    let Some(Extension(me)) = me else {
        if wants_json(&headers) {
            return AppError::sign_in_first().into_response();
        }
        return Redirect::to(&login_path(PAGE)).into_response();
    };
    let form = match form {
        Ok(StrictForm(f)) => f,
        Err(e) => return e.into_response(),
    };
    let unprocessable = Kind::Invalid;
    if form.current_password.is_empty() {
        return Refusal::new(unprocessable, Some("current_password"), "Enter your current password.").answer(&state, headers, PAGE).await;
    }
    if let Err(e) = auth::users::validate_password(&form.current_password) {
        return Refusal::from_error(e.into(), Some("current_password")).answer(&state, headers, PAGE).await;
    }
    if form.new_password != form.confirm_password {
        return Refusal::new(unprocessable, Some("confirm_password"), "The two new passwords are not the same. Type the new one again.")
            .answer(&state, headers, PAGE)
            .await;
    }
    let changed = state
        .auth
        .change_password_ending_other_sessions(
            me.user_id,
            &me.handle,
            SecretString::from(form.current_password),
            SecretString::from(form.new_password),
        )
        .await;
    let ended = match changed {
        Ok(store_ids) => store_ids,
        Err(AuthError::InvalidCredentials) => {
            tracing::info!(user_id = me.user_id, "password change: wrong current password");
            return Refusal::new(Kind::Unauthorized, Some("current_password"), "Your current password is not correct.")
                .answer(&state, headers, PAGE)
                .await;
        }
        Err(e) => return Refusal::from_error(e.into(), Some("new_password")).answer(&state, headers, PAGE).await,
    };
    state.sessions.delete_ended(me.user_id, &ended).await;
    // This session stays signed in, under a new id: the one the password change was made from may have
    // been seen by whoever made the change necessary.
    let user = match state.auth.users.find_by_id(me.user_id).await {
        Ok(Some(user)) => user,
        Ok(None) => return AppError::sign_in_first().into_response(),
        Err(e) => return AppError::Auth(e).into_response(),
    };
    if let Err(e) = sign_in(&state, &session, &user, &headers, ip).await {
        return e.into_response();
    }
    go_to(wants_json(&headers), &format!("{PAGE}?changed={}", ended.len()))
}

pub async fn logout(State(state): State<AppState>, session: Session, headers: HeaderMap) -> Result<Response, AppError> {
    state.sessions.end_current(&session).await?;
    Ok(go_to(wants_json(&headers), "/login"))
}

#[derive(Deserialize)]
pub struct RevokeForm {
    handle: String,
}

pub async fn revoke_session(
    State(state): State<AppState>,
    Me(me): Me,
    headers: HeaderMap,
    StrictForm(form): StrictForm<RevokeForm>,
) -> Result<Response, AppError> {
    state.sessions.revoke(&me, &form.handle).await?;
    Ok(go_to(wants_json(&headers), "/success"))
}

pub async fn revoke_other_sessions(State(state): State<AppState>, Me(me): Me, headers: HeaderMap) -> Result<Response, AppError> {
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

/// `POST /api/crypto`: runs one lab method natively (the Python examples and other clients use it),
/// through the lab's gate: crypto failures (bad hex, wrong key, tampering) and an Argon2 cost over the
/// server's ceiling are 422 with a stable `code`; too many requests from this address 429, no free
/// permit within 2 s 503, both with `Retry-After`.
pub async fn crypto_lab(
    State(state): State<AppState>,
    Extension(ClientAddr(ip)): Extension<ClientAddr>,
    body: Result<Json<crypto::lab::LabRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(rejection) => {
            return Problem::of_status(rejection.status().as_u16(), format!("The request could not be read: {}", rejection.body_text()))
                .into_response()
        }
    };
    match state.lab.run(req, ip).await {
        Ok(out) => Json(out).into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// `GET /api/crypto/methods`: what each method is for and when not to use it.
pub async fn crypto_methods() -> Json<&'static [crypto::MethodInfo]> {
    Json(crypto::methods())
}
