//! Notifications between users, through the REST API (issue 14, items 5, 7, 9 and 17): idempotency
//! keys are the caller's own, a job addressed `endpoint:<someone else's>` never reaches that endpoint,
//! and the per-user quotas answer 422 or 429 with `Retry-After`.

use crate::common::*;
use auth::tokens::Scope;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use contract::Owner;
use serde_json::{json, Value};
use std::time::Duration;

async fn token(app: &TestApp, user: &str) -> String {
    app.create_user(user, "a-long-enough-password-1").await;
    app.token(user, &[Scope::NotificationsWrite, Scope::NotificationsRead]).await.1
}

fn post(path: &str, token: &str, body: Value) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri(path)
        .header(header::HOST, HOST)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_with_the_same_idempotency_key_each_get_their_notification() {
    let app = spawn_with(|s| s.notify.workers = false).await;
    let (alice, bob) = (token(&app, "alice").await, token(&app, "bob").await);
    let n = json!({"channel": "email", "recipient": "billing@example.test", "idempotency_key": "invoice-1001"});
    let (s, _, a) = app.call(post("/api/v1/notifications", &alice, n.clone())).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{a}");
    let (s, _, b) = app.call(post("/api/v1/notifications", &bob, n.clone())).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_ne!(a["ids"], b["ids"], "bob's notification is not swallowed by alice's key");
    let (_, _, again) = app.call(post("/api/v1/notifications", &alice, n)).await;
    assert_eq!(again["ids"], a["ids"], "alice's retry is still deduplicated");
    assert_eq!(app.state.notify.backlog(notify::Backend::Embedded), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_addressed_to_another_users_endpoint_never_reaches_it() {
    let app = spawn_with(|s| {
        s.hooks.allow_networks = vec!["127.0.0.1/32".into()];
        s.notify.webhook.retry = notify::WebhookRetry::every(10, 2);
        s.notify.webhook.url = format!("http://127.0.0.1:{}/nobody", free_port());
    })
    .await;
    app.state.notify.start().await.unwrap();
    let (_alice, bob) = (token(&app, "alice").await, token(&app, "bob").await);
    let hooks = &app.state.hooks;
    let created = hooks
        .create_endpoint(
            &Owner::from("alice"),
            hooks::endpoints::NewEndpoint {
                url: "http://127.0.0.1:9/".into(),
                description: String::new(),
                event_types: vec![],
                rate_limit_per_sec: None,
            },
        )
        .await
        .unwrap();
    let sink =
        notify::sink::Sink::start("127.0.0.1:0".parse().unwrap(), notify::sink::SinkConfig { secret: created.secret.clone(), ..Default::default() })
            .await
            .unwrap();
    let ep = created.endpoint.id.clone();
    hooks
        .update_endpoint(&Owner::from("alice"), &ep, hooks::endpoints::EndpointUpdate { url: Some(sink.url()), ..Default::default() })
        .await
        .unwrap();
    let msg = hooks.send_test(&Owner::from("alice"), &ep).await.unwrap();
    testkit::wait_for("alice's own test event", Duration::from_secs(20), || async { sink.stats().accepted == 1 }).await;

    let forged = json!({"channel": "webhook", "recipient": format!("endpoint:{ep}"), "payload": {"message_id": msg.id}});
    let (s, _, body) = app.call(post("/api/v1/notifications", &bob, forged)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let id: notify::NotificationId = body["ids"][0].as_str().unwrap().parse().unwrap();
    testkit::wait_for("bob's job to settle", Duration::from_secs(20), || async {
        app.state.notify.attempts(id).await.unwrap().iter().any(|a| a.outcome != notify::AttemptOutcome::Retrying)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sink.stats().accepted, 1, "no request reached alice's endpoint");
    let attempts = hooks.endpoint_attempts(&Owner::from("alice"), &ep, hooks::PageRequest::default()).await.unwrap().items;
    assert_eq!(attempts.len(), 1, "no attempt row from bob's job: {attempts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_quotas_answer_422_or_429_with_retry_after() {
    let app = spawn_with(|s| {
        s.notify.quotas.enqueue_per_sec = 1;
        s.notify.quotas.notifications_per_run = 10;
        s.notify.quotas.concurrent_runs = 1;
    })
    .await;
    let (alice, bob) = (token(&app, "alice").await, token(&app, "bob").await);
    // The enqueue rate: the burst (a full batch's worth, 10,000) passes, then it waits.
    for n in [4_000, 4_000, 2_000] {
        let batch: Vec<Value> = (0..n).map(|i| json!({"channel": "noop", "recipient": format!("n{i}")})).collect();
        let (s, _, b) = app.call(post("/api/v1/notifications", &alice, json!(batch))).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    }
    let one = json!({"channel": "noop", "recipient": "one"});
    let (s, h, b) = app.call(post("/api/v1/notifications", &alice, one.clone())).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
    assert!(h[header::RETRY_AFTER].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert!(b["detail"].as_str().unwrap().contains("faster than 1 notifications a second"), "{b}");
    let (s, _, _) = app.call(post("/api/v1/notifications", &bob, one)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "another user is not held up");
    // Notifications per run.
    let run = |count: u64| json!({"count": count, "rate": "3600-per-hour", "mix": {"noop": 1}});
    let (s, _, b) = app.call(post("/api/v1/runs", &alice, run(11))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["errors"][0]["field"], "count", "{b}");
    // Runs at once.
    let (s, _, b) = app.call(post("/api/v1/runs", &alice, run(10))).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, h, b) = app.call(post("/api/v1/runs", &alice, run(10))).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
    assert!(h.contains_key(header::RETRY_AFTER));
    assert!(b["detail"].as_str().unwrap().contains("at most 1 at once"), "{b}");
}
