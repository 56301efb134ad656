//! The server's test app: its router over a fresh database (SQLite, or PostgreSQL in the test command's
//! second pass) with `create_user`, `signup`, `login`, `token` and `call`, and request builders for forms
//! (cookie-aware) and the REST API. Ports, Redis and polling come from `testkit`.
#![allow(dead_code)]

use auth::tokens::Scope;
use axum::body::Body;
use axum::http::{header, HeaderMap, Request, Response, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use server::config::Settings;
use server::AppState;
use tower::ServiceExt;

pub const HOST: &str = "app.test";
pub const ORIGIN: &str = "https://app.test";
/// A webhook signing secret of the tests' own: production refuses to start `serve` or `worker` with the
/// public example one.
pub const TEST_WEBHOOK_SECRET: &str = "whsec_licibElcCEEhlFbodz9sdYHreEPXDE6+89Cz4nHfl9Y=";

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub dir: tempfile::TempDir,
}

pub fn leptos_options() -> leptos::config::LeptosOptions {
    leptos::config::LeptosOptions::builder().output_name("implementation-eng").site_root("target/site").build()
}

pub async fn spawn_with(settings: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    spawn_in(dir, settings).await
}

/// Builds the app over `dir/app.db` (so a second call on the same folder is a "restart"). With
/// `APP_TEST_DATABASE=postgres` (the test command runs the router suites a second time so) the app
/// database is a fresh PostgreSQL database instead, remembered in the folder for the restart.
pub async fn spawn_in(dir: tempfile::TempDir, settings: impl FnOnce(&mut Settings)) -> TestApp {
    let mut s = Settings::defaults();
    s.database_url = database_url(dir.path()).await;
    s.notify.queue_url = format!("sqlite://{}", dir.path().join("notify.db").display());
    s.hooks.secret_keys = vec![hooks::Secret::new(server::config::DEV_SECRET_KEY)];
    // No SMTP server or VAPID key beside the router tests unless one sets them: their e-mail and push
    // are simulated (production mode would refuse them; the push tests, `notify`'s own tests and the
    // test stacks send them for real).
    s.notify.email.simulate_when_unset = Some(true);
    s.notify.push.simulate_when_unset = Some(true);
    settings(&mut s);
    let state = AppState::new(s, leptos_options()).await.unwrap();
    let router = server::router(state.clone());
    TestApp { router, state, dir }
}

async fn database_url(dir: &std::path::Path) -> String {
    if std::env::var("APP_TEST_DATABASE").as_deref() != Ok("postgres") {
        return format!("sqlite://{}", dir.join("app.db").display());
    }
    let remembered = dir.join("postgres-url");
    if let Ok(url) = std::fs::read_to_string(&remembered) {
        return url;
    }
    let pg = testkit::postgres().await.expect("APP_TEST_DATABASE=postgres needs APP_TEST_POSTGRES_URL");
    std::fs::write(&remembered, &pg.url).unwrap();
    pg.url
}

pub async fn spawn() -> TestApp {
    spawn_with(|_| {}).await
}

impl TestApp {
    pub async fn create_user(&self, name: &str, password: &str) {
        self.state.auth.create_user(name, SecretString::from(password)).await.unwrap();
    }

    /// Sends a request; a response that does not arrive in time fails the test instead of hanging it.
    pub async fn send(&self, req: Request<Body>) -> Response<Body> {
        tokio::time::timeout(TIMEOUT, self.router.clone().oneshot(req)).await.expect("response timed out").unwrap()
    }

    /// Logs in with a plain form post and returns the session cookie (`name=value`).
    pub async fn login(&self, user: &str, password: &str) -> String {
        let res = self.send(post_form("/login", &[("username", user), ("password", password)], None)).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "login should redirect");
        session_cookie(&res).expect("login sets a session cookie")
    }

    /// Signs up through the form, as a browser would (sign-up must be open: `s.signup.enabled`).
    pub async fn signup(&self, user: &str, password: &str) -> Response<Body> {
        self.send(signup_form(user, password)).await
    }

    /// A new API token of `user` (who exists) with `scopes`: its id and its secret.
    pub async fn token(&self, user: &str, scopes: &[Scope]) -> (i64, String) {
        let u = self.state.auth.users.find_by_username(user).await.unwrap().expect("the token's user exists");
        let (info, secret) = self.state.tokens.create(u.id, "test", scopes, None).await.unwrap();
        (info.id, secret.expose_secret().to_string())
    }

    /// Sends a request and reads the answer: status, headers, and the body as JSON (a body that is not
    /// JSON as a JSON string, an empty one as null).
    pub async fn call(&self, req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
        let res = self.send(req).await;
        let (status, headers) = (res.status(), res.headers().clone());
        let text = body_text(res).await;
        let value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, headers, value)
    }
}

/// A REST API request: a bearer token and a JSON body when given.
pub fn api(method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path).header(header::HOST, HOST);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    with_json(b, body)
}

/// Finishes a request with a JSON body, or none.
pub fn with_json(b: axum::http::request::Builder, body: Option<Value>) -> Request<Body> {
    match body {
        Some(v) => b.header(header::CONTENT_TYPE, "application/json").body(Body::from(v.to_string())).unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

pub fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path).header(header::HOST, HOST);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::empty()).unwrap()
}

pub fn encode(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish()
}

/// Now, in unix seconds (a webhook's timestamp).
pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A webhook to the inbound source `source`, signed with `secret` at `ts` (unix seconds) as the
/// Standard Webhooks spec says.
pub fn signed_inbound(source: &str, secret: &str, id: &str, ts: i64, body: &str) -> Request<Body> {
    let key = notify::signature::SigningKey::from_secret(secret).unwrap();
    Request::post(format!("/api/v1/inbound/{source}"))
        .header(header::HOST, HOST)
        .header(header::CONTENT_TYPE, "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", key.sign(id, ts, body.as_bytes()))
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// A crypto lab request (`POST /api/crypto`) from the app's own pages.
pub fn lab_request(body: &str) -> Request<Body> {
    Request::post("/api/crypto")
        .header(header::HOST, HOST)
        .header(header::ORIGIN, ORIGIN)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// The sign-up form's post.
pub fn signup_form(user: &str, password: &str) -> Request<Body> {
    post_form("/signup", &[("username", user), ("password", password)], None)
}

/// A same-site form post, as a browser would send it.
pub fn post_form(path: &str, fields: &[(&str, &str)], cookie: Option<&str>) -> Request<Body> {
    post_raw(path, encode(fields).into_bytes(), cookie, &[("sec-fetch-site", "same-origin")])
}

pub fn post_raw(path: &str, body: Vec<u8>, cookie: Option<&str>, extra: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::post(path)
        .header(header::HOST, HOST)
        .header(header::ORIGIN, ORIGIN)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::USER_AGENT, "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36");
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::from(body)).unwrap()
}

/// The session cookie set by a response, as `name=value`.
pub fn session_cookie(res: &Response<Body>) -> Option<String> {
    set_cookie_header(res).map(|h| h.split(';').next().unwrap().trim().to_string())
}

pub fn set_cookie_header(res: &Response<Body>) -> Option<String> {
    res.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-session=") || v.starts_with("session="))
        .map(str::to_string)
}

pub fn location(res: &Response<Body>) -> String {
    res.headers().get(header::LOCATION).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

pub async fn body_text(res: Response<Body>) -> String {
    let bytes = tokio::time::timeout(TIMEOUT, res.into_body().collect()).await.expect("body timed out").unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Runs a test on one multi-threaded runtime shared by every test in the binary, as in production.
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()).block_on(fut)
}

pub use testkit::{free_port, Reaped, Redis};
