//! Hostile and broken input to the login gets a clear 4xx with a message: never a 500, never a panic.

use crate::common::*;
use axum::http::{header, StatusCode};

async fn assert_clear_4xx(app: &TestApp, body: Vec<u8>, expected: StatusCode, needle: &str) {
    let res = app.send(post_raw("/login", body, None, &[("sec-fetch-site", "same-origin")])).await;
    assert_eq!(res.status(), expected);
    let text = body_text(res).await;
    assert!(text.contains(needle), "expected {needle:?} in {text}");
}

#[test]
fn empty_fields() {
    block_on(async {
        let app = spawn().await;
        assert_clear_4xx(&app, encode(&[("username", ""), ("password", "x")]).into(), StatusCode::UNPROCESSABLE_ENTITY, "Enter your username.").await;
        assert_clear_4xx(&app, encode(&[("username", "x"), ("password", "")]).into(), StatusCode::UNPROCESSABLE_ENTITY, "Enter your password.").await;
        assert_clear_4xx(&app, b"username=x".to_vec(), StatusCode::BAD_REQUEST, "missing field").await;
    })
}

#[test]
fn ten_megabyte_body() {
    block_on(async {
        let app = spawn().await;
        let mut body = b"username=a&password=".to_vec();
        body.extend(std::iter::repeat_n(b'a', 10 * 1024 * 1024));
        let res = app.send(post_raw("/login", body, None, &[("sec-fetch-site", "same-origin")])).await;
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    })
}

#[test]
fn invalid_utf8_and_nul_bytes() {
    block_on(async {
        let app = spawn().await;
        assert_clear_4xx(&app, b"username=%FF%FE&password=x".to_vec(), StatusCode::BAD_REQUEST, "could not be read").await;
        assert_clear_4xx(&app, b"username=\xff\xfe&password=x".to_vec(), StatusCode::BAD_REQUEST, "could not be read").await;
        assert_clear_4xx(&app, encode(&[("username", "a\0b"), ("password", "x")]).into(), StatusCode::UNPROCESSABLE_ENTITY, "control characters")
            .await;
        assert_clear_4xx(&app, encode(&[("username", "ab"), ("password", "x\0")]).into(), StatusCode::UNPROCESSABLE_ENTITY, "NUL").await;
    })
}

#[test]
fn very_long_username_and_password() {
    block_on(async {
        let app = spawn().await;
        let long = "u".repeat(10_000);
        assert_clear_4xx(&app, encode(&[("username", &long), ("password", "x")]).into(), StatusCode::UNPROCESSABLE_ENTITY, "at most 64").await;
        let long_pw = "p".repeat(5_000);
        assert_clear_4xx(&app, encode(&[("username", "a"), ("password", &long_pw)]).into(), StatusCode::UNPROCESSABLE_ENTITY, "at most 1024").await;
    })
}

#[test]
fn sql_like_strings_are_just_wrong_credentials() {
    block_on(async {
        let app = spawn().await;
        app.create_user("admin", "admin-password-1").await;
        for u in ["admin' --", "' OR '1'='1", "admin\"; DROP TABLE users; --", "%' OR 1=1 --"] {
            assert_clear_4xx(
                &app,
                encode(&[("username", u), ("password", "' OR '1'='1")]).into(),
                StatusCode::UNAUTHORIZED,
                "Invalid username or password.",
            )
            .await;
        }
        // And the table is still there.
        assert!(app.state.auth.users.find_by_username("admin").await.unwrap().is_some());
    })
}

#[test]
fn wrong_content_type() {
    block_on(async {
        let app = spawn().await;
        let mut req = post_raw("/login", br#"{"username":"a","password":"b"}"#.to_vec(), None, &[("sec-fetch-site", "same-origin")]);
        req.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let res = app.send(req).await;
        assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    })
}

#[test]
fn unknown_pages_are_404_not_500() {
    block_on(async {
        let app = spawn().await;
        let res = app.send(get("/no/such/page", None)).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert!(body_text(res).await.contains("Page not found"));
    })
}

/// Every server function refuses a signed-out caller or arguments that do not decode with a 4xx, never
/// a 500; a plain form post (no JavaScript) is still sent back to its form.
#[test]
fn server_functions_answer_4xx_to_bad_arguments_and_signed_out_callers() {
    block_on(async {
        let app = spawn().await;
        app.create_user("hal", "hal-password-1").await;
        let cookie = app.login("hal", "hal-password-1").await;
        let fns: Vec<String> = server::inventory::inventory().into_iter().filter(|r| r.kind == "server_fn").map(|r| r.path).collect();
        assert!(fns.len() > 20, "{fns:?}");
        let mut bad = vec![];
        for path in &fns {
            for (who, c, body) in [("anonymous", None, ""), ("signed in", Some(cookie.as_str()), "id=not-a-number&enabled=maybe&%ff=%00")] {
                let mut req = post_raw(path, body.as_bytes().to_vec(), c, &[("sec-fetch-site", "same-origin")]);
                req.headers_mut().insert(header::ACCEPT, "application/json".parse().unwrap());
                let status = app.send(req).await.status();
                if status.is_server_error() {
                    bad.push(format!("{who} {path}: {status}"));
                }
            }
        }
        assert!(bad.is_empty(), "server functions answered 5xx:\n{}", bad.join("\n"));

        let cancel = fns.iter().find(|p| p.contains("cancel_simulation")).unwrap();
        let res = app.send(post_raw(cancel, b"id=x".to_vec(), None, &[("sec-fetch-site", "same-origin")])).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "undecodable arguments");
        let res = app.send(post_raw(cancel, b"id=1".to_vec(), None, &[("sec-fetch-site", "same-origin")])).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "signed out");
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/problem+json", "a server function's refusal is a problem");
        let mut form = post_raw(cancel, b"id=1".to_vec(), None, &[("sec-fetch-site", "same-origin"), ("referer", "https://app.test/notifications")]);
        form.headers_mut().insert(header::ACCEPT, "text/html".parse().unwrap());
        let res = app.send(form).await;
        assert_eq!(res.status(), StatusCode::FOUND, "a plain form post goes back to its page");
    })
}
