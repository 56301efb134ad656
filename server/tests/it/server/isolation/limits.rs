//! Abuse limits: the crypto lab's Argon2 ceiling, permits and per-address limit (item 15), the cap on
//! concurrent password hashing (item 16), proxy headers believed only from trusted proxies (item 2),
//! and live streams per user (item 17).

use crate::common::*;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, Response, StatusCode};
use contract::Owner;
use leptos::server_fn::ServerFn;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A PHC string asking for 256 MiB and ten passes: within the argon2 crate's own limits, four times
/// the lab's server ceiling in memory. (The reproduced request: it ran 3.5 s and answered 200.)
const COSTLY_PHC: &str = "$argon2id$v=19$m=262144,t=10,p=1$c29tZXNhbHRzb21lc2FsdA$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A";

/// `req` as if it came over a connection from `peer` (what `into_make_service_with_connect_info` adds).
fn from_peer(mut req: Request<Body>, peer: &str) -> Request<Body> {
    let ip: std::net::IpAddr = peer.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(SocketAddr::new(ip, 40_000)));
    req
}

/// The crypto page's own server function (`lab_on_server`), called as the hydrated page does.
fn lab_server_fn(req_json: &str) -> Request<Body> {
    Request::post(app::crypto_api::LabOnServer::PATH)
        .header(header::HOST, HOST)
        .header(header::ORIGIN, ORIGIN)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(Body::from(format!(r#"{{"req":{req_json}}}"#)))
        .unwrap()
}

async fn json_of(res: Response<Body>) -> serde_json::Value {
    let text = body_text(res).await;
    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
}

fn retry_after(res: &Response<Body>) -> u64 {
    res.headers().get(header::RETRY_AFTER).expect("Retry-After").to_str().unwrap().parse().unwrap()
}

const SHA256: &str = r#"{"method":"sha256","input":"abc"}"#;

#[test]
fn limits_argon2_verify_over_the_server_ceiling_is_refused_before_any_work() {
    block_on(async {
        let app = spawn().await;
        let body = format!(r#"{{"method":"argon2_verify","phc":"{COSTLY_PHC}","password":"pw"}}"#);
        let started = Instant::now();
        let res = app.send(from_peer(lab_request(&body), "198.51.100.20")).await;
        let took = started.elapsed();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let v = json_of(res).await;
        assert_eq!(v["code"], "invalid_params", "{v}");
        let message = v["detail"].as_str().unwrap();
        assert!(message.contains("up to m = 65536 KiB and t = 4") && message.contains("m = 262144 KiB, t = 10"), "{message}");
        // Hashing 256 MiB ten times takes seconds even optimised; refusing it takes no time.
        assert!(took < Duration::from_millis(500), "refused only after {took:?}");
        // The page's server function holds verification to the same ceiling (a refusal as data).
        let inner = format!(r#"{{"method":"argon2_verify","phc":"{COSTLY_PHC}","password":"pw"}}"#);
        let started = Instant::now();
        let res = app.send(from_peer(lab_server_fn(&inner), "198.51.100.20")).await;
        assert_eq!(res.status(), StatusCode::OK);
        let v = json_of(res).await;
        assert_eq!(v["Err"]["code"], "invalid_params", "{v}");
        assert!(started.elapsed() < Duration::from_millis(500));
        // Within the ceiling it still verifies.
        let cheap = crypto::argon2id_hash(b"pw", crypto::Argon2Params { m_kib: 1024, t: 1, p: 1 }, None).unwrap();
        let res = app.send(lab_request(&format!(r#"{{"method":"argon2_verify","phc":"{cheap}","password":"pw"}}"#))).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(json_of(res).await["text"], "valid");
    })
}

#[test]
fn limits_crypto_lab_without_a_free_permit_answers_503_with_retry_after() {
    block_on(async {
        let app = spawn().await;
        let permits = app.state.lab.permits();
        let held = permits.clone().acquire_many_owned(app.state.settings.limits.crypto_concurrency as u32).await.unwrap();
        let started = Instant::now();
        let res = app.send(lab_request(SHA256)).await;
        let waited = started.elapsed();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&res), 1);
        assert_eq!(json_of(res).await["code"], "busy");
        assert!(waited >= Duration::from_secs(2) && waited < Duration::from_secs(5), "waited {waited:?}");
        // The page's server function goes through the same permits.
        let res = app.send(lab_server_fn(SHA256)).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&res), 1);
        assert!(body_text(res).await.contains("busy"));
        drop(held);
        let res = app.send(lab_request(SHA256)).await;
        assert_eq!(res.status(), StatusCode::OK, "a permit freed is used at once");
        let res = app.send(lab_server_fn(SHA256)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(json_of(res).await["Ok"]["hex"], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    })
}

#[test]
fn limits_crypto_lab_is_limited_per_client_address_with_429() {
    block_on(async {
        let app = spawn_with(|s| {
            s.limits.crypto_ip_burst = 3;
            s.limits.crypto_ip_refill_secs = 600;
        })
        .await;
        let peer = "198.51.100.30";
        for _ in 0..2 {
            assert_eq!(app.send(from_peer(lab_request(SHA256), peer)).await.status(), StatusCode::OK);
        }
        // The page's server function counts against the same allowance.
        assert_eq!(app.send(from_peer(lab_server_fn(SHA256), peer)).await.status(), StatusCode::OK);
        let res = app.send(from_peer(lab_request(SHA256), peer)).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!((1..=600).contains(&retry_after(&res)));
        let v = json_of(res).await;
        assert_eq!(v["code"], "rate_limited");
        assert!(v["detail"].as_str().unwrap().starts_with("Too many crypto lab requests from your address."), "{v}");
        let res = app.send(from_peer(lab_server_fn(SHA256), peer)).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(res.headers().contains_key(header::RETRY_AFTER));
        // A header naming another address does not buy a new allowance from an untrusted peer…
        let mut spoofed = from_peer(lab_request(SHA256), peer);
        spoofed.headers_mut().insert("x-forwarded-for", "1.2.3.4".parse().unwrap());
        spoofed.headers_mut().insert("x-real-ip", "1.2.3.4".parse().unwrap());
        assert_eq!(app.send(spoofed).await.status(), StatusCode::TOO_MANY_REQUESTS);
        // …while another address has its own.
        assert_eq!(app.send(from_peer(lab_request(SHA256), "198.51.100.31")).await.status(), StatusCode::OK);
        // Costly or not, every method is counted: the limit comes before the work.
        let argon = r#"{"method":"argon2id","password":"pw","salt_hex":"0011223344556677","m_kib":1024,"t":1,"p":1}"#;
        assert_eq!(app.send(from_peer(lab_request(argon), peer)).await.status(), StatusCode::TOO_MANY_REQUESTS);
    })
}

fn login_form(user: &str, password: &str) -> Request<Body> {
    post_form("/login", &[("username", user), ("password", password)], None)
}

#[test]
fn limits_a_login_waits_for_a_hashing_slot_at_most_2s_then_gets_503() {
    block_on(async {
        let app = spawn_with(|s| s.auth.hash_concurrency = Some(1)).await;
        app.create_user("hashy", "password-of-hashy").await;
        let held = app.state.auth.hasher.slot().await.unwrap();

        // Plain form post: the login page again, 503, Retry-After: 1, the message on the page.
        let started = Instant::now();
        let res = app.send(login_form("hashy", "password-of-hashy")).await;
        let waited = started.elapsed();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&res), 1);
        assert!(waited >= Duration::from_secs(2) && waited < Duration::from_secs(5), "waited {waited:?}");
        assert!(session_cookie(&res).is_none(), "no session for a login that did not run");
        assert!(body_text(res).await.contains("The server is busy. Try again in a moment."));

        // The hydrated page's fetch: JSON with the same status.
        let mut req = login_form("hashy", "password-of-hashy");
        req.headers_mut().insert(header::ACCEPT, "application/json".parse().unwrap());
        let res = app.send(req).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&res), 1);
        assert_eq!(json_of(res).await["detail"], "The server is busy. Try again in a moment.");

        // A refused attempt is not a failed one: the account is not nearer to being locked.
        drop(held);
        let cookie = app.login("hashy", "password-of-hashy").await;

        // Password change and sign-up wait for the same slots.
        let held = app.state.auth.hasher.slot().await.unwrap();
        let change = post_form(
            "/settings/password",
            &[
                ("current_password", "password-of-hashy"),
                ("new_password", "a new and long password"),
                ("confirm_password", "a new and long password"),
            ],
            Some(&cookie),
        );
        let res = app.send(change).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&res), 1);
        assert!(body_text(res).await.contains("The server is busy."));
        drop(held);
    })
}

#[test]
fn limits_sign_up_waits_for_a_hashing_slot_too() {
    block_on(async {
        let app = spawn_with(|s| {
            s.auth.hash_concurrency = Some(1);
            s.signup.enabled = Some(true);
        })
        .await;
        let _held = app.state.auth.hasher.slot().await.unwrap();
        let mut req = post_form("/signup", &[("username", "newbie"), ("password", "a long enough new password")], None);
        req.headers_mut().insert(header::ACCEPT, "application/json".parse().unwrap());
        let res = app.send(req).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&res), 1);
        let v = json_of(res).await;
        assert_eq!(v["detail"], "The server is busy. Try again in a moment.");
        assert!(v.get("errors").is_none(), "not a problem with a field: {v}");
    })
}

/// Signs `user` in from `peer` with the given proxy headers and returns the address the session list
/// shows for the new session.
async fn signed_in_address(app: &TestApp, user: &str, password: &str, peer: &str, headers: &[(&'static str, &'static str)]) -> String {
    let id = app.state.auth.users.find_by_username(user).await.unwrap().unwrap().id;
    let sessions = || async { app.state.sessions.registry.list_for_user(id, auth::now_unix()).await.unwrap() };
    let before: Vec<String> = sessions().await.into_iter().map(|s| s.handle).collect();
    let mut req = from_peer(login_form(user, password), peer);
    for (k, v) in headers {
        req.headers_mut().insert(*k, v.parse().unwrap());
    }
    let res = app.send(req).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    sessions().await.into_iter().find(|s| !before.contains(&s.handle)).expect("a new session").client_ip
}

#[test]
fn limits_proxy_headers_count_only_from_trusted_proxies() {
    block_on(async {
        // nginx on another host, 10.0.0.1; loopback is not a proxy in this deployment.
        let app = spawn_with(|s| {
            s.trusted_proxies = vec!["10.0.0.1/32".parse().unwrap()];
            s.throttle.ip_burst = 2;
            s.throttle.ip_refill_secs = 600;
            s.throttle.account_burst = 100;
        })
        .await;
        app.create_user("proxied", "password-of-proxied").await;
        let xff = [("x-forwarded-for", "1.2.3.4")];
        assert_eq!(signed_in_address(&app, "proxied", "password-of-proxied", "10.0.0.1", &xff).await, "1.2.3.4");
        assert_eq!(signed_in_address(&app, "proxied", "password-of-proxied", "198.51.100.7", &xff).await, "198.51.100.7");
        let real_ip = [("x-real-ip", "1.2.3.4")];
        assert_eq!(signed_in_address(&app, "proxied", "password-of-proxied", "127.0.0.1", &real_ip).await, "127.0.0.1");

        // The login throttle per address: wrong passwords from one untrusted peer, each claiming a
        // different address, are all counted under the peer's.
        let claims = ["1.2.3.4", "1.2.3.5", "1.2.3.6"];
        let mut statuses = Vec::new();
        for (i, claim) in claims.iter().enumerate() {
            let mut req = from_peer(login_form(&format!("nobody-{i}"), "a wrong password"), "127.0.0.1");
            for name in ["x-forwarded-for", "x-real-ip"] {
                req.headers_mut().insert(name, claim.parse().unwrap());
            }
            req.headers_mut().insert("forwarded", format!("for={claim}").parse().unwrap());
            statuses.push(app.send(req).await.status());
        }
        assert_eq!(statuses, [StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS]);
        // Through the trusted proxy, 1.2.3.4 is a client of its own (nothing counted against it yet).
        let mut req = from_peer(login_form("nobody-x", "a wrong password"), "10.0.0.1");
        req.headers_mut().insert("x-forwarded-for", "1.2.3.4".parse().unwrap());
        assert_eq!(app.send(req).await.status(), StatusCode::UNAUTHORIZED);
    })
}

#[test]
fn limits_a_user_gets_429_for_one_live_stream_too_many_and_the_slot_comes_back() {
    block_on(async {
        let app = spawn_with(|s| s.limits.sse_streams_per_user = 2).await;
        app.create_user("streamer", "password-of-streamer").await;
        app.create_user("other", "password-of-other").await;
        let cookie = app.login("streamer", "password-of-streamer").await;
        // The workers are not started: the run stays running, so its streams stay open.
        let sim =
            notify::SimParams { count: 10, rate: notify::Rate::Max, mix: notify::ChannelMix::only(notify::Channel::Noop), ..Default::default() };
        let id = app.state.notify.start_run(&Owner::from("streamer"), sim.clone()).await.unwrap();
        let path = format!("/notifications/runs/{id}/events");
        let first = app.send(get(&path, Some(&cookie))).await;
        let second = app.send(get(&path, Some(&cookie))).await;
        assert_eq!((first.status(), second.status()), (StatusCode::OK, StatusCode::OK));
        let third = app.send(get(&path, Some(&cookie))).await;
        assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(body_text(third).await.contains("You already have 2 live views open."));
        // Someone else's streams are their own.
        let other = app.login("other", "password-of-other").await;
        let theirs = app.state.notify.start_run(&Owner::from("other"), sim).await.unwrap();
        let res = app.send(get(&format!("/notifications/runs/{theirs}/events"), Some(&other))).await;
        assert_eq!(res.status(), StatusCode::OK);
        // A stream that ends (the client went away) gives its slot back.
        drop(first);
        assert_eq!(app.state.streams.open_for(app.state.auth.users.find_by_username("streamer").await.unwrap().unwrap().id), 1);
        assert_eq!(app.send(get(&path, Some(&cookie))).await.status(), StatusCode::OK);
        drop(second);
        app.state.notify.shutdown().await;
    })
}
