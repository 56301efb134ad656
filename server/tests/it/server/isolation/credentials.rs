//! Issue 14, credentials (items 10 to 14) through the real router: a password change revokes API tokens;
//! a browser session mints a token or rotates a webhook secret only with the current password (a bearer
//! token needs none); tokens have a maximum lifetime; idempotent answers are stored sealed; the one-time
//! secret cookie is `__Host-` and `Secure` over HTTPS; production disables the public demo account; and
//! a server-sent event stream ends within 5 s of its session ending, on every instance.

use super::call;
use crate::common::*;
use auth::tokens::Scope;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use contract::Owner;
use http_body_util::BodyExt;
use leptos::server_fn::ServerFn;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const PW: &str = "cora-password-1";

async fn app_with_user() -> (TestApp, String) {
    let app = spawn_with(|s| s.hooks.allow_networks = vec!["127.0.0.1/32".into()]).await;
    app.create_user("cora", PW).await;
    let cookie = app.login("cora", PW).await;
    (app, cookie)
}

async fn user_id(app: &TestApp, name: &str) -> i64 {
    app.state.auth.users.find_by_username(name).await.unwrap().unwrap().id
}

fn api(method: &str, path: &str, bearer: Option<&str>, cookie: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path).header(header::HOST, HOST).header(header::ORIGIN, ORIGIN);
    if let Some(t) = bearer {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c).header("sec-fetch-site", "same-origin");
    }
    crate::common::with_json(b, body)
}

async fn new_endpoint(app: &TestApp) -> String {
    let created = app
        .state
        .hooks
        .create_endpoint(
            &Owner::from("cora"),
            hooks::NewEndpoint { url: "http://127.0.0.1:9/hook".into(), description: String::new(), event_types: vec![], rate_limit_per_sec: None },
        )
        .await
        .unwrap();
    created.endpoint.id
}

#[test]
fn a_password_change_revokes_the_users_api_tokens() {
    block_on(async {
        let (app, cookie) = app_with_user().await;
        let (_, token) = app.state.tokens.create(user_id(&app, "cora").await, "script", &Scope::USER, None).await.unwrap();
        let token = token.expose_secret().to_string();
        assert_eq!(call(&app, api("GET", "/api/v1/me", Some(&token), None, None)).await.0, StatusCode::OK);

        let fields = [("current_password", PW), ("new_password", "a fresh passphrase 2026"), ("confirm_password", "a fresh passphrase 2026")];
        let res = app.send(post_form("/settings/password", &fields, Some(&cookie))).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{}", body_text(res).await);
        let (status, body) = call(&app, api("GET", "/api/v1/me", Some(&token), None, None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "the token died with the old password: {body}");
    })
}

/// The settings page's server function, as the hydrated page calls it (or, `plain`, as a browser
/// without JavaScript posts the form).
fn create_token_call(cookie: &str, fields: &[(&str, &str)], extra: &[(&str, &str)]) -> Request<Body> {
    let mut headers = vec![("sec-fetch-site", "same-origin")];
    headers.extend_from_slice(extra);
    post_raw(app::tokens_api::CreateApiToken::PATH, encode(fields).into_bytes(), Some(cookie), &headers)
}

#[test]
fn a_session_mints_a_token_only_with_the_current_password() {
    block_on(async {
        let (app, cookie) = app_with_user().await;
        let form = |pw: Option<&'static str>| {
            let mut f = vec![("name", "ci"), ("scopes[0]", "webhooks:read"), ("expires_days", "30")];
            if let Some(pw) = pw {
                f.push(("current_password", pw));
            }
            f
        };
        let res = app.send(create_token_call(&cookie, &form(None), &[])).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body_text(res).await.contains("Enter your current password"));
        let res = app.send(create_token_call(&cookie, &form(Some("not-the-password")), &[])).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(body_text(res).await.contains("Your current password is not correct."));
        assert!(app.state.tokens.list(user_id(&app, "cora").await).await.unwrap().is_empty(), "no token was made");

        let res = app.send(create_token_call(&cookie, &form(Some(PW)), &[])).await;
        assert_eq!(res.status(), StatusCode::OK);
        let created: app::tokens_api::CreatedToken = serde_json::from_str(&body_text(res).await).unwrap();
        let token = created.token;
        assert!(token.starts_with("ie_"), "the token is shown once");
        let (status, me) = call(&app, api("GET", "/api/v1/me", Some(&token), None, None)).await;
        assert_eq!((status, me["auth"].as_str()), (StatusCode::OK, Some("token")));
    })
}

#[test]
fn wrong_confirmation_passwords_count_towards_the_login_throttle() {
    block_on(async {
        let app = spawn_with(|s| s.throttle.account_burst = 2).await;
        app.create_user("cora", PW).await;
        let cookie = app.login("cora", PW).await;
        let form = [("name", "ci"), ("scopes[0]", "webhooks:read"), ("current_password", "guess")];
        for _ in 0..2 {
            assert_eq!(app.send(create_token_call(&cookie, &form, &[])).await.status(), StatusCode::UNAUTHORIZED);
        }
        let right = [("name", "ci"), ("scopes[0]", "webhooks:read"), ("current_password", PW)];
        assert_eq!(app.send(create_token_call(&cookie, &right, &[])).await.status(), StatusCode::TOO_MANY_REQUESTS);
    })
}

#[test]
fn rotating_a_webhook_secret_from_a_session_asks_for_the_password_and_a_token_does_not() {
    block_on(async {
        let (app, cookie) = app_with_user().await;
        let id = new_endpoint(&app).await;
        let path = format!("/api/v1/webhooks/endpoints/{id}/rotate-secret");

        // REST with the session cookie.
        let (status, body) = call(&app, api("POST", &path, None, Some(&cookie), None)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["errors"][0]["field"], "current_password");
        let (status, body) = call(&app, api("POST", &path, None, Some(&cookie), Some(json!({"current_password": "nope"})))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let (status, body) = call(&app, api("POST", &path, None, Some(&cookie), Some(json!({"current_password": PW})))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["secret"].as_str().unwrap().starts_with("whsec_"));

        // A bearer token with the scope needs no password.
        let (_, token) = app.state.tokens.create(user_id(&app, "cora").await, "ops", &[Scope::WebhooksWrite], None).await.unwrap();
        let (status, body) = call(&app, api("POST", &path, Some(token.expose_secret()), None, None)).await;
        assert_eq!(status, StatusCode::OK, "{body}");

        // The settings page's server function.
        let rotate = |fields: &[(&str, &str)]| {
            post_raw(app::webhooks_api::RotateWebhookSecret::PATH, encode(fields).into_bytes(), Some(&cookie), &[("sec-fetch-site", "same-origin")])
        };
        let res = app.send(rotate(&[("id", &id)])).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let res = app.send(rotate(&[("id", &id), ("current_password", "nope")])).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let res = app.send(rotate(&[("id", &id), ("current_password", PW)])).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(body_text(res).await.contains("whsec_"));
    })
}

#[test]
fn tokens_live_no_longer_than_the_configured_maximum() {
    block_on(async {
        let app = spawn_with(|s| s.auth.token_max_lifetime_days = 30).await;
        app.create_user("cora", PW).await;
        let cookie = app.login("cora", PW).await;
        let form = [("name", "ci"), ("scopes[0]", "webhooks:read"), ("expires_days", "90"), ("current_password", PW)];
        let res = app.send(create_token_call(&cookie, &form, &[])).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "a refusal is a problem, not a token");
        let problem: contract::Problem = serde_json::from_str(&body_text(res).await).unwrap();
        assert!(problem.field("expires_days").is_some_and(|m| m.contains("30 days")), "{problem:?}");
        // Without an expiry (the CLI's default) the maximum applies.
        let (info, _) = app.state.tokens.create(user_id(&app, "cora").await, "cli", &Scope::USER, None).await.unwrap();
        let in_30_days = auth::now_unix() + 30 * 86_400;
        assert!((in_30_days - 5..=in_30_days).contains(&info.expires_at.unwrap()), "{info:?}");
    })
}

#[test]
fn a_stored_idempotent_answer_holds_no_secret_and_a_retry_still_gets_it() {
    block_on(async {
        let (app, _) = app_with_user().await;
        let (_, token) = app.state.tokens.create(user_id(&app, "cora").await, "ci", &[Scope::WebhooksWrite], None).await.unwrap();
        let create = || {
            let mut r = api("POST", "/api/v1/webhooks/endpoints", Some(token.expose_secret()), None, Some(json!({"url": "http://127.0.0.1:9/hook"})));
            r.headers_mut().insert("idempotency-key", "endpoint-1".parse().unwrap());
            r
        };
        let res = app.send(create()).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let first: Value = serde_json::from_str(&body_text(res).await).unwrap();
        let secret = first["secret"].as_str().unwrap().to_string();
        assert!(secret.starts_with("whsec_"));

        let (body,): (String,) =
            sqlx::query_as("SELECT body FROM api_idempotency WHERE idem_key = 'endpoint-1'").fetch_one(&app.state.pool).await.unwrap();
        assert!(!body.contains("whsec_") && !body.contains(&secret[6..]), "stored in clear: {body}");
        assert!(body.starts_with("sealed:v1:"), "{body}");

        // The documented replay: the same answer, secret included, marked as replayed.
        let res = app.send(create()).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(res.headers()["idempotency-replayed"], "true");
        let again: Value = serde_json::from_str(&body_text(res).await).unwrap();
        assert_eq!(again, first);
        // Sealed to its owner and key: copied under another key, it does not open.
        sqlx::query("UPDATE api_idempotency SET idem_key = 'endpoint-2' WHERE idem_key = 'endpoint-1'").execute(&app.state.pool).await.unwrap();
        let mut other = create();
        other.headers_mut().insert("idempotency-key", "endpoint-2".parse().unwrap());
        let res = app.send(other).await;
        assert_eq!(res.status(), StatusCode::CONFLICT);
        assert!(!body_text(res).await.contains("whsec_"));
    })
}

#[test]
fn the_one_time_secret_cookie_is_host_prefixed_and_secure_over_https() {
    block_on(async {
        let (app, cookie) = app_with_user().await;
        let form = [("name", "plain"), ("scopes[0]", "webhooks:read"), ("current_password", PW)];
        // A browser without JavaScript posts the form itself (Accept: text/html), over nginx's TLS.
        let res = app
            .send(create_token_call(
                &cookie,
                &form,
                &[("accept", "text/html,application/xhtml+xml"), ("referer", "https://app.test/settings/tokens"), ("x-forwarded-proto", "https")],
            ))
            .await;
        let set: Vec<String> =
            res.headers().get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).filter(|c| c.contains("shown-once")).collect();
        assert_eq!(set.len(), 1, "{set:?}");
        let c = &set[0];
        assert!(c.starts_with("__Host-shown-once="), "{c}");
        for attribute in ["; Secure", "; Path=/", "; HttpOnly", "; SameSite=Strict", "; Max-Age=60"] {
            assert!(c.contains(attribute), "{attribute} missing: {c}");
        }
        assert!(!c.to_ascii_lowercase().contains("domain="), "{c}");

        // The page the browser is sent back to shows it once and clears the cookie, Secure again.
        let pair = c.split(';').next().unwrap();
        let mut page = get("/settings/tokens", Some(&format!("{cookie}; {pair}")));
        page.headers_mut().insert("x-forwarded-proto", "https".parse().unwrap());
        let res = app.send(page).await;
        let cleared: Vec<String> = res.headers().get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).collect();
        assert!(cleared.iter().any(|c| c.starts_with("__Host-shown-once=;") && c.contains("Max-Age=0") && c.contains("; Secure")), "{cleared:?}");
        assert!(body_text(res).await.contains("ie_"), "the token is on the page");
    })
}

#[test]
fn production_disables_the_demo_account_with_its_public_password() {
    block_on(async {
        let app = spawn_with(|s| s.mode = server::config::Mode::Production).await;
        app.create_user("demo", server::config::DEMO_PASSWORD).await;
        let session = {
            // Signed in before the switch to production.
            let res = app.send(post_form("/login", &[("username", "demo"), ("password", server::config::DEMO_PASSWORD)], None)).await;
            assert_eq!(res.status(), StatusCode::SEE_OTHER);
            session_cookie(&res).unwrap()
        };
        server::state::ensure_demo_user(&app.state).await;
        let res = app.send(post_form("/login", &[("username", "demo"), ("password", server::config::DEMO_PASSWORD)], None)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the public password no longer signs in");
        let res = app.send(get("/success", Some(&session))).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "its sessions ended");
    })
}

// ---------------------------------------------------------------------------------------------------
// Server-sent event streams end with their session.

fn slow_run() -> notify::SimParams {
    notify::SimParams {
        count: 100_000,
        rate: notify::Rate::PerHour(3_600),
        mix: notify::ChannelMix::only(notify::Channel::Noop),
        ..Default::default()
    }
}

/// Opens the run's event stream, reads its first event, and returns a task that resolves when the
/// stream ends.
async fn open_stream(app: &TestApp, cookie: &str) -> tokio::task::JoinHandle<()> {
    let id = app.state.notify.start_run(&Owner::from("cora"), slow_run()).await.unwrap();
    let res = app.send(get(&format!("/notifications/runs/{id}/events"), Some(cookie))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame()).await.expect("first event").unwrap().unwrap();
    assert!(String::from_utf8_lossy(first.data_ref().unwrap()).contains("data:"));
    tokio::spawn(async move { while let Some(Ok(_)) = body.frame().await {} })
}

async fn ends_within(stream: tokio::task::JoinHandle<()>, limit: Duration, what: &str) {
    let started = Instant::now();
    tokio::time::timeout(limit, stream).await.unwrap_or_else(|_| panic!("the stream outlived its session ({what}) by {limit:?}")).unwrap();
    eprintln!("{what}: stream ended {:?} after", started.elapsed());
}

#[test]
fn a_stream_opened_on_one_instance_ends_within_5s_of_a_logout_on_the_other() {
    block_on(async {
        let shared = tempfile::tempdir().unwrap();
        let database = match db::testing::postgres().await {
            Some(pg) => pg.url,
            None => format!("sqlite://{}", shared.path().join("shared.db").display()),
        };
        let instance = |url: String| spawn_with(move |s| s.database_url = url);
        let one = instance(database.clone()).await;
        let two = instance(database).await;
        one.create_user("cora", PW).await;

        // Logout on the other instance.
        let cookie = one.login("cora", PW).await;
        let stream = open_stream(&one, &cookie).await;
        let res = two.send(post_form("/logout", &[], Some(&cookie))).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        ends_within(stream, Duration::from_secs(5), "logout on instance 2").await;

        // "End all other sessions" on the other instance.
        let watched = one.login("cora", PW).await;
        let stream = open_stream(&one, &watched).await;
        let other = two.login("cora", PW).await;
        assert_eq!(two.send(post_form("/sessions/revoke-others", &[], Some(&other))).await.status(), StatusCode::SEE_OTHER);
        ends_within(stream, Duration::from_secs(5), "revoked from instance 2").await;

        // A password change on the other instance.
        let watched = one.login("cora", PW).await;
        let stream = open_stream(&one, &watched).await;
        let other = two.login("cora", PW).await;
        let fields = [("current_password", PW), ("new_password", "a fresh passphrase 2026"), ("confirm_password", "a fresh passphrase 2026")];
        assert_eq!(two.send(post_form("/settings/password", &fields, Some(&other))).await.status(), StatusCode::SEE_OTHER);
        ends_within(stream, Duration::from_secs(5), "password changed on instance 2").await;
    })
}

#[test]
fn a_stream_ends_within_5s_of_its_session_expiring() {
    block_on(async {
        for (what, idle, absolute) in [("idle timeout", 2, 3600), ("absolute lifetime", 1800, 2)] {
            let app = spawn_with(|s| {
                s.session.idle_timeout_secs = idle;
                s.session.absolute_lifetime_secs = absolute;
            })
            .await;
            app.create_user("cora", PW).await;
            let cookie = app.login("cora", PW).await;
            let stream = open_stream(&app, &cookie).await;
            // Expires 2 s after sign-in; the stream must be gone 5 s after that.
            ends_within(stream, Duration::from_secs(7), what).await;
        }
    })
}
