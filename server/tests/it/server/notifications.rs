//! `POST /api/v1/notifications` from a browser session through the real router: enqueue (202), field errors
//! (422), backpressure (429 + Retry-After), sign-in required (401), and the Prometheus metrics.

use crate::common::*;
use axum::http::{header, StatusCode};

fn post_json(path: &str, body: &str, cookie: Option<&str>) -> axum::http::Request<axum::body::Body> {
    let mut req = post_raw(path, body.as_bytes().to_vec(), cookie, &[("sec-fetch-site", "same-origin")]);
    req.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    req
}

async fn json(res: axum::http::Response<axum::body::Body>) -> serde_json::Value {
    serde_json::from_str(&body_text(res).await).unwrap()
}

#[test]
fn enqueue_needs_a_signed_in_user() {
    block_on(async {
        let app = spawn().await;
        let res = app.send(post_json("/api/v1/notifications", r#"{"recipient":"a@b","channel":"email"}"#, None)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(app.state.notify.backlog(notify::Backend::Embedded), 0);
    })
}

#[test]
fn a_signed_in_user_enqueues_one_or_a_batch_and_gets_ids() {
    block_on(async {
        let app = spawn().await;
        app.create_user("alice", "correct horse battery").await;
        let cookie = app.login("alice", "correct horse battery").await;

        let res = app
            .send(post_json("/api/v1/notifications", r#"{"recipient":"a@example.test","channel":"email","payload":{"x":1}}"#, Some(&cookie)))
            .await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        let ids = json(res).await["ids"].as_array().unwrap().clone();
        assert_eq!(ids.len(), 1);
        assert!(ids[0].as_str().unwrap().starts_with("emb_"));

        let batch = r#"{"notifications":[{"recipient":"+15550001","channel":"sms"},{"recipient":"dev-1","channel":"push","idempotency_key":"k-1"}]}"#;
        let res = app.send(post_json("/api/v1/notifications", batch, Some(&cookie))).await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        assert_eq!(json(res).await["ids"].as_array().unwrap().len(), 2);
        assert_eq!(app.state.notify.backlog(notify::Backend::Embedded), 3, "stored in the queue (workers are not started here)");
    })
}

#[test]
fn bad_notifications_get_422_with_the_field_named() {
    block_on(async {
        let app = spawn().await;
        app.create_user("alice", "correct horse battery").await;
        let cookie = app.login("alice", "correct horse battery").await;
        let cases = [
            (r#"[{"recipient":"a","channel":"email"},{"recipient":"b","channel":"fax"}]"#, "notifications[1]"),
            (r#"{"recipient":"","channel":"email"}"#, "notifications[0].recipient"),
            (r#"{"recipient":"a","channel":"email","colour":"red"}"#, "notification"),
            ("not json", "body"),
            ("[]", "notifications"),
        ];
        for (body, field) in cases {
            let res = app.send(post_json("/api/v1/notifications", body, Some(&cookie))).await;
            assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            let v = json(res).await;
            assert_eq!(v["errors"][0]["field"], field, "{body}: {v}");
        }
        let res = app.send(post_json("/api/v1/notifications?backend=kafka", r#"{"recipient":"a","channel":"email"}"#, Some(&cookie))).await;
        assert_eq!(json(res).await["errors"][0]["field"], "backend");
        let res = app.send(post_json("/api/v1/notifications?backend=redis", r#"{"recipient":"a","channel":"email"}"#, Some(&cookie))).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "Redis is not configured in tests");
        assert_eq!(app.state.notify.backlog(notify::Backend::Embedded), 0);
    })
}

#[test]
fn a_full_queue_answers_429_with_retry_after() {
    block_on(async {
        let app = spawn_with(|s| s.notify.high_water = 3).await;
        app.create_user("alice", "correct horse battery").await;
        let cookie = app.login("alice", "correct horse battery").await;
        let batch = r#"[{"recipient":"a","channel":"noop"},{"recipient":"b","channel":"noop"}]"#;
        assert_eq!(app.send(post_json("/api/v1/notifications", batch, Some(&cookie))).await.status(), StatusCode::ACCEPTED);
        let res = app.send(post_json("/api/v1/notifications", batch, Some(&cookie))).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers().get(header::RETRY_AFTER).unwrap(), "1");
        assert!(json(res).await["detail"].as_str().unwrap().contains("queue is full"));
        assert_eq!(app.state.notify.backlog(notify::Backend::Embedded), 2);
    })
}

#[test]
fn metrics_are_served_in_the_prometheus_text_format() {
    block_on(async {
        let app = spawn().await;
        app.create_user("alice", "correct horse battery").await;
        let cookie = app.login("alice", "correct horse battery").await;
        app.send(post_json("/api/v1/notifications", r#"{"recipient":"a","channel":"push"}"#, Some(&cookie))).await;
        let res = app.send(get("/metrics", None)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
        let text = body_text(res).await;
        assert!(text.contains("notify_enqueued_total{channel=\"push\"} 1"), "{text}");
        assert!(text.contains("# TYPE notify_delivery_latency_seconds histogram"));
        assert!(text.contains("notify_backlog{backend=\"embedded\"} 1"));
    })
}

/// Production never pretends: with no SMTP server set up, a user's e-mail is refused with a field error
/// naming the setting (SMS stays simulated and is accepted); with one, only allowed recipients pass.
#[test]
fn production_refuses_e_mail_it_cannot_send_or_may_not_send() {
    block_on(async {
        let app = spawn_with(|s| s.notify.email.simulate_when_unset = None).await;
        app.create_user("alice", "correct horse battery").await;
        let cookie = app.login("alice", "correct horse battery").await;
        let res = app.send(post_json("/api/v1/notifications", r#"{"recipient":"a@example.test","channel":"email"}"#, Some(&cookie))).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = json(res).await;
        assert_eq!(body["errors"][0]["field"], "notifications[0].channel", "{body}");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("notify.email.host"), "{body}");
        let res = app.send(post_json("/api/v1/notifications", r#"{"recipient":"+15550001","channel":"sms"}"#, Some(&cookie))).await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);

        // An SMTP server (never reached: workers are not started here) and no list: nobody may be written to.
        let app = spawn_with(|s| s.notify.email.host = "127.0.0.1".into()).await;
        app.create_user("alice", "correct horse battery").await;
        let cookie = app.login("alice", "correct horse battery").await;
        let res = app.send(post_json("/api/v1/notifications", r#"{"recipient":"a@example.test","channel":"email"}"#, Some(&cookie))).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = json(res).await;
        assert_eq!(body["errors"][0]["field"], "notifications[0].recipient", "{body}");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("notify.email.allow_recipients"), "{body}");
    })
}
