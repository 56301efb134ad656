//! Sign-up and password change through the real router: the ASVS password policy as the user meets it,
//! the on/off switch, the per-address limit, cross-site refusal, and what a password change does to
//! the account's sessions.

use crate::common::*;
use axum::http::{header, StatusCode};

const GOOD: &str = "correct horse battery staple";

async fn spawn_signup(settings: impl FnOnce(&mut server::config::Settings)) -> TestApp {
    spawn_with(|s| {
        s.signup.enabled = Some(true);
        settings(s);
    })
    .await
}

fn json_post(path: &str, fields: &[(&str, &str)], cookie: Option<&str>) -> axum::http::Request<axum::body::Body> {
    post_raw(path, encode(fields).into_bytes(), cookie, &[("sec-fetch-site", "same-origin"), ("accept", "application/json")])
}

async fn json_body(res: axum::http::Response<axum::body::Body>) -> serde_json::Value {
    serde_json::from_str(&body_text(res).await).unwrap()
}

/// Does `username` / `password` sign in?
async fn can_sign_in(app: &TestApp, username: &str, password: &str) -> bool {
    let res = app.send(post_form("/login", &[("username", username), ("password", password)], None)).await;
    res.status() == StatusCode::SEE_OTHER
}

#[test]
fn sign_up_creates_the_user_and_signs_them_in_with_a_fresh_session() {
    block_on(async {
        let app = spawn_signup(|_| {}).await;
        let page = app.send(get("/signup", None)).await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = body_text(page).await;
        assert!(html.contains(r#"<form method="post" action="/signup""#), "plain form post without JS");
        assert!(html.contains(r#"autocomplete="new-password""#), "{html}");
        assert!(html.contains("15 or more characters recommended"), "the length hint");
        let password_input = html.split(r#"id="password""#).nth(1).unwrap().split('>').next().unwrap();
        assert!(!password_input.contains("maxlength"), "nothing may cut a pasted password: {password_input}");

        // A cookie planted before sign-up (fixation) is not adopted.
        let planted = "__Host-session=AAAAAAAAAAAAAAAAAAAAAA";
        let res = app.send(post_form("/signup", &[("username", "newcomer"), ("password", GOOD)], Some(planted))).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), "/success");
        let set_cookie = set_cookie_header(&res).expect("sign-up sets a session cookie");
        for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
            assert!(set_cookie.contains(flag), "missing {flag}: {set_cookie}");
        }
        let cookie = session_cookie(&res).unwrap();
        assert_ne!(cookie, planted);
        let success = app.send(get("/success", Some(&cookie))).await;
        assert_eq!(success.status(), StatusCode::OK);
        assert!(body_text(success).await.contains(">newcomer<"));
        assert!(can_sign_in(&app, "newcomer", GOOD).await);

        // The hydrated page's fetch gets the redirect as JSON.
        let res = app.send(json_post("/signup", &[("username", "newcomer2"), ("password", GOOD)], None)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(session_cookie(&res).is_some());
        assert_eq!(body_text(res).await, r#"{"redirect":"/success"}"#);
    })
}

#[test]
fn sign_up_refuses_weak_passwords_with_the_field_message() {
    block_on(async {
        // More attempts than the default per-address allowance (10), which every attempt counts towards.
        let app = spawn_signup(|s| s.signup.ip_burst = 100).await;
        let too_long = "q7x".repeat(43); // 129 characters
        let cases = [
            ("password", "most commonly used"),
            ("Sunshine", "most commonly used"),
            ("kx7!qpz", "Use at least 8 characters"),
            (too_long.as_str(), "at most 128 characters"),
            ("weakling-user", "cannot be your username"),
            ("weakling-user1!", "cannot be your username"),
        ];
        for (password, message) in cases {
            let res = app.signup("weakling-user", password).await;
            assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{password:?}");
            assert!(set_cookie_header(&res).is_none(), "no session for a refused sign-up");
            let html = body_text(res).await;
            assert!(html.contains(message), "{password:?}: expected {message:?}");
            assert!(html.contains(r#"<form method="post" action="/signup""#), "no-JS refusal re-renders the form");
            assert!(html.contains(r#"value="weakling-user""#), "the username is kept");
            let password_input = html.split(r#"id="password""#).nth(1).unwrap().split('>').next().unwrap();
            assert!(!password_input.contains("value="), "the password is never sent back: {password_input}");

            let res = app.send(json_post("/signup", &[("username", "weakling-user"), ("password", password)], None)).await;
            assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
            let body = json_body(res).await;
            assert_eq!(body["errors"][0]["field"], "password", "{body}");
            assert!(body["detail"].as_str().unwrap().contains(message), "{body}");
        }
        assert!(!can_sign_in(&app, "weakling-user", "password").await, "no account was created");
        // Over-long usernames are refused with a message too, under the username.
        let res = app.send(json_post("/signup", &[("username", &"u".repeat(65)), ("password", GOOD)], None)).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(json_body(res).await["errors"][0]["field"], "username");
    })
}

#[test]
fn a_taken_username_is_said_only_once_the_password_passes() {
    block_on(async {
        let app = spawn_signup(|_| {}).await;
        app.create_user("taken-name", "taken-password-1").await;
        // A weak password for a taken name only says "weak".
        let res = app.send(json_post("/signup", &[("username", "taken-name"), ("password", "password")], None)).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = json_body(res).await;
        assert_eq!(body["errors"][0]["field"], "password");
        assert!(!body["detail"].as_str().unwrap().contains("taken"), "{body}");
        // A good one learns that the name is taken, under the username field.
        let res = app.signup("taken-name", GOOD).await;
        assert_eq!(res.status(), StatusCode::CONFLICT);
        assert!(set_cookie_header(&res).is_none());
        assert!(body_text(res).await.contains("That username is already taken."));
        let res = app.send(json_post("/signup", &[("username", "taken-name"), ("password", GOOD)], None)).await;
        assert_eq!(json_body(res).await["errors"][0]["field"], "username");
        assert!(can_sign_in(&app, "taken-name", "taken-password-1").await, "the existing account is untouched");
        assert!(!can_sign_in(&app, "taken-name", GOOD).await);
    })
}

#[test]
fn sign_up_turned_off_is_refused_and_not_offered() {
    block_on(async {
        // The defaults are production mode, where sign-up is off unless turned on.
        let app = spawn().await;
        let page = app.send(get("/signup", None)).await;
        assert_eq!(page.status(), StatusCode::NOT_FOUND);
        let html = body_text(page).await;
        assert!(html.contains("Sign-up is turned off"), "{html}");
        assert!(!html.contains(r#"action="/signup""#), "no form");
        let res = app.signup("someone", GOOD).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert!(set_cookie_header(&res).is_none());
        assert!(body_text(res).await.contains("Sign-up is turned off"));
        assert!(!can_sign_in(&app, "someone", GOOD).await);
        let login = body_text(app.send(get("/login", None)).await).await;
        assert!(!login.contains(r#"href="/signup""#), "the login page offers no sign-up");

        let on = spawn_signup(|_| {}).await;
        let login = body_text(on.send(get("/login", None)).await).await;
        assert!(login.contains(r#"href="/signup""#), "the login page links to sign-up when it is on");
    })
}

#[test]
fn sign_ups_are_rate_limited_per_address_with_429() {
    block_on(async {
        let app = spawn_signup(|s| {
            s.signup.ip_burst = 2;
            s.signup.ip_refill_secs = 600;
        })
        .await;
        let from = |ip: &'static str, username: &str, password: &str| {
            let mut req = signup_form(username, password);
            req.headers_mut().insert("x-real-ip", ip.parse().unwrap());
            // As nginx on loopback sends it: proxy headers count only from a trusted proxy.
            req.extensions_mut().insert(axum::extract::ConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 40_000))));
            req
        };
        // Every attempt counts, refused or not.
        assert_eq!(app.send(from("203.0.113.5", "rate-one", "password")).await.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.send(from("203.0.113.5", "rate-two", GOOD)).await.status(), StatusCode::SEE_OTHER);
        let res = app.send(from("203.0.113.5", "rate-three", GOOD)).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = res.headers()[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
        assert!((1..=600).contains(&retry), "{retry}");
        assert!(set_cookie_header(&res).is_none());
        let html = body_text(res).await;
        assert!(html.contains("Too many sign-ups from your address. Try again in"), "{html}");
        assert!(!can_sign_in(&app, "rate-three", GOOD).await, "the refused sign-up created nothing");
        // Another address has its own allowance.
        assert_eq!(app.send(from("203.0.113.6", "rate-four", GOOD)).await.status(), StatusCode::SEE_OTHER);
    })
}

#[test]
fn cross_site_sign_up_is_refused() {
    block_on(async {
        let app = spawn_signup(|_| {}).await;
        let body = encode(&[("username", "csrf-victim"), ("password", GOOD)]).into_bytes();
        let mut foreign = post_raw("/signup", body.clone(), None, &[]);
        foreign.headers_mut().insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        let cross = post_raw("/signup", body.clone(), None, &[("sec-fetch-site", "cross-site")]);
        let mut bare = post_raw("/signup", body, None, &[]);
        bare.headers_mut().remove(header::ORIGIN);
        for req in [foreign, cross, bare] {
            let res = app.send(req).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN);
            assert!(set_cookie_header(&res).is_none());
            assert!(body_text(res).await.contains("Cross-site request refused"));
        }
        assert!(!can_sign_in(&app, "csrf-victim", GOOD).await);
    })
}

fn change(cookie: &str, current: &str, new: &str, confirm: &str) -> axum::http::Request<axum::body::Body> {
    post_form("/settings/password", &[("current_password", current), ("new_password", new), ("confirm_password", confirm)], Some(cookie))
}

#[test]
fn password_change_ends_other_sessions_and_keeps_this_one_under_a_new_id() {
    block_on(async {
        let app = spawn().await;
        app.create_user("changer", "changer-password-1").await;
        let here = app.login("changer", "changer-password-1").await;
        let elsewhere = app.login("changer", "changer-password-1").await;
        let third = app.login("changer", "changer-password-1").await;

        let page = app.send(get("/settings/password", Some(&here))).await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = body_text(page).await;
        assert!(html.contains(r#"<form method="post" action="/settings/password""#), "plain form post without JS");
        assert!(html.contains(r#"href="/settings/password" aria-current="page""#), "its own Settings tab");

        let res = app.send(change(&here, "changer-password-1", GOOD, GOOD)).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), "/settings/password?changed=2");
        let rotated = session_cookie(&res).expect("this session gets a new id");
        assert_ne!(rotated, here);

        // This browser stays signed in under the new id; the old id and the other sessions are dead.
        assert_eq!(app.send(get("/success", Some(&rotated))).await.status(), StatusCode::OK);
        for old in [&here, &elsewhere, &third] {
            let res = app.send(get("/success", Some(old))).await;
            assert_eq!(res.status(), StatusCode::SEE_OTHER, "an ended session's cookie no longer works");
            assert_eq!(location(&res), "/login?next=%2Fsuccess");
        }
        let page = body_text(app.send(get("/settings/password?changed=2", Some(&rotated))).await).await;
        assert!(page.contains("Password changed. 2 other sessions were signed out; this one stays signed in."), "{page}");

        assert!(can_sign_in(&app, "changer", GOOD).await);
        assert!(!can_sign_in(&app, "changer", "changer-password-1").await, "the old password is gone");

        // The hydrated page's fetch gets the redirect as JSON.
        let newest = app.login("changer", GOOD).await;
        let res = app
            .send(json_post(
                "/settings/password",
                &[("current_password", GOOD), ("new_password", "another long passphrase"), ("confirm_password", "another long passphrase")],
                Some(&newest),
            ))
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(session_cookie(&res).is_some());
        let body = json_body(res).await;
        assert!(body["redirect"].as_str().unwrap().starts_with("/settings/password?changed="), "{body}");
    })
}

#[test]
fn wrong_current_password_is_refused_and_counts_as_a_failed_sign_in() {
    block_on(async {
        let app = spawn_with(|s| s.throttle.account_burst = 2).await;
        app.create_user("forgetful", "forgetful-password-1").await;
        let cookie = app.login("forgetful", "forgetful-password-1").await;
        for _ in 0..2 {
            let res = app.send(change(&cookie, "not my password", GOOD, GOOD)).await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
            let html = body_text(res).await;
            assert!(html.contains("Your current password is not correct."), "{html}");
        }
        // The session itself is untouched, but the account is now throttled, for sign-ins as well.
        assert_eq!(app.send(get("/success", Some(&cookie))).await.status(), StatusCode::OK);
        let res = app.send(change(&cookie, "forgetful-password-1", GOOD, GOOD)).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(res.headers().contains_key(header::RETRY_AFTER));
        let res = app.send(post_form("/login", &[("username", "forgetful"), ("password", "forgetful-password-1")], None)).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "the same throttle as the login");
    })
}

#[test]
fn password_change_applies_the_policy_and_needs_the_confirmation() {
    block_on(async {
        let app = spawn().await;
        app.create_user("careful", "careful-password-1").await;
        let cookie = app.login("careful", "careful-password-1").await;
        let cases: [(&str, &str, &str, &str); 5] = [
            ("", GOOD, GOOD, "current_password"),
            ("careful-password-1", "baseball", "baseball", "new_password"),
            ("careful-password-1", "short", "short", "new_password"),
            ("careful-password-1", "careful-password-1", "careful-password-1", "new_password"),
            ("careful-password-1", GOOD, "correct horse battery stapler", "confirm_password"),
        ];
        for (current, new, confirm, field) in cases {
            let res = app
                .send(json_post(
                    "/settings/password",
                    &[("current_password", current), ("new_password", new), ("confirm_password", confirm)],
                    Some(&cookie),
                ))
                .await;
            assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{new:?}");
            assert_eq!(json_body(res).await["errors"][0]["field"], field, "{new:?}");
        }
        let html = body_text(app.send(change(&cookie, "careful-password-1", "baseball", "baseball")).await).await;
        assert!(html.contains("most commonly used"), "no-JS refusal shows the message: {html}");
        assert!(can_sign_in(&app, "careful", "careful-password-1").await, "nothing changed");
    })
}

#[test]
fn password_change_needs_a_signed_in_same_site_request() {
    block_on(async {
        let app = spawn().await;
        let res = app.send(get("/settings/password", None)).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), "/login?next=%2Fsettings%2Fpassword");
        let res =
            app.send(post_form("/settings/password", &[("current_password", "x"), ("new_password", GOOD), ("confirm_password", GOOD)], None)).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), "/login?next=%2Fsettings%2Fpassword");

        app.create_user("targeted", "targeted-password-1").await;
        let cookie = app.login("targeted", "targeted-password-1").await;
        let body = encode(&[("current_password", "targeted-password-1"), ("new_password", GOOD), ("confirm_password", GOOD)]);
        let res = app.send(post_raw("/settings/password", body.into_bytes(), Some(&cookie), &[("sec-fetch-site", "cross-site")])).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(can_sign_in(&app, "targeted", "targeted-password-1").await, "a cross-site post changes nothing");
    })
}
