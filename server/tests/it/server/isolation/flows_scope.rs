//! Workflows between users (issue 14, items 6, 8, 17, 19, 21): inbound sources belong to one user, a run
//! may do what the credential that started it may (checked at each step, so revoking a token stops its
//! runs), system event types are reserved, the inbound dedup claim commits with its effect, a read-only
//! GET changes nothing, and per-user quotas answer 429/422.

use super::{api, call};
use crate::common::*;
use auth::tokens::Scope;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tower::ServiceExt;

const CRM_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// `crm` is ann's; `shop` starts ann's `orders` workflow on every webhook.
async fn app_with(more: impl FnOnce(&mut server::config::Settings)) -> TestApp {
    let app = spawn_with(|s| {
        let source = |owner: Option<&str>, workflow: Option<&str>| hooks::InboundSource {
            secrets: vec![hooks::Secret::new(CRM_SECRET)],
            owner: owner.map(String::from),
            workflow: workflow.map(String::from),
            ..Default::default()
        };
        s.hooks.inbound.sources.insert("crm".into(), source(Some("ann"), None));
        s.hooks.inbound.sources.insert("shop".into(), source(None, Some("ann/orders")));
        more(s);
    })
    .await;
    for u in ["ann", "bob"] {
        app.create_user(u, &format!("{u}-password-1")).await;
    }
    app
}

fn signed_inbound(source: &str, id: &str, body: &str) -> Request<Body> {
    crate::common::signed_inbound(source, CRM_SECRET, id, now_secs(), body)
}

/// Stores `definition` with `token` and starts a run of it; returns the run id.
async fn start(app: &TestApp, token: &str, definition: Value, input: Value) -> String {
    let (s, d) = call(app, api("POST", "/api/v1/workflows", token, Some(definition))).await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    let (s, run) = call(app, api("POST", &format!("/api/v1/workflows/{}/runs", d["id"]), token, Some(json!({"input": input})))).await;
    assert_eq!(s, StatusCode::CREATED, "{run}");
    run["id"].as_str().unwrap().to_string()
}

/// Polls the run until it is final (or `want`), and returns its detail.
async fn settled(app: &TestApp, token: &str, run: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, d) = call(app, api("GET", &format!("/api/v1/workflow-runs/{run}"), token, None)).await;
        let status = d["run"]["status"].as_str().unwrap_or("");
        if status == want || ["completed", "failed", "cancelled", "compensation_failed"].contains(&status) {
            return d;
        }
        assert!(Instant::now() < deadline, "run never settled: {d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn one_step(name: &str, action: Value) -> Value {
    json!({"name": name, "steps": [{"name": "only", "action": action, "retry": {"max_attempts": 1}}]})
}

fn notify_step() -> Value {
    json!({"type": "notify", "channel": "email", "recipient": "ann@example.com", "payload": {"template": "welcome"}})
}

fn emit_step() -> Value {
    json!({"type": "emit_event", "event_type": "customer.created", "payload": {"id": 1}})
}

#[test]
fn a_token_with_only_workflows_write_cannot_notify_or_emit_events_through_steps() {
    block_on(async {
        let app = app_with(|_| {}).await;
        app.state.notify.start().await.unwrap();
        app.state.flows.spawn().await;
        let (_, narrow) = app.token("ann", &[Scope::WorkflowsRead, Scope::WorkflowsWrite]).await;
        let (_, wide) = app.token("ann", &Scope::USER).await;
        for (name, step, scope) in [("n", notify_step(), "notifications:write"), ("e", emit_step(), "webhooks:write")] {
            let run = start(&app, &narrow, one_step(&format!("narrow_{name}"), step.clone()), json!({})).await;
            let d = settled(&app, &narrow, &run, "failed").await;
            assert_eq!((d["run"]["status"].as_str(), d["run"]["error_code"].as_str()), (Some("failed"), Some("forbidden")), "{d}");
            assert!(d["run"]["error_message"].as_str().unwrap().contains(scope), "{d}");
            assert_eq!(d["run"]["started_by"]["kind"], "token");
            // The same step from a token that has the scope goes through.
            let run = start(&app, &wide, one_step(&format!("wide_{name}"), step), json!({})).await;
            let d = settled(&app, &wide, &run, "completed").await;
            assert_eq!(d["run"]["status"], "completed", "{d}");
        }
    })
}

#[test]
fn revoking_the_token_that_started_a_run_stops_its_further_steps() {
    block_on(async {
        let app = app_with(|_| {}).await;
        app.state.notify.start().await.unwrap();
        app.state.flows.spawn().await;
        let (id, t) = app.token("ann", &Scope::USER).await;
        let definition = json!({"name": "later", "steps": [
            {"name": "pause", "action": {"type": "delay", "ms": 800}},
            {"name": "send", "action": notify_step(), "retry": {"max_attempts": 1}}]});
        let run = start(&app, &t, definition, json!({})).await;
        let ann = app.state.auth.users.find_by_username("ann").await.unwrap().unwrap();
        app.state.tokens.revoke(ann.id, id).await.unwrap();
        let row: (String, Option<String>) = loop {
            let r: (String, Option<String>) =
                sqlx::query_as("SELECT status, error_code FROM workflow_runs WHERE id = $1").bind(&run).fetch_one(&app.state.pool).await.unwrap();
            if r.0 == "failed" || r.0 == "completed" {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(row, ("failed".to_string(), Some("token_revoked".to_string())));
    })
}

#[test]
fn system_event_types_and_other_users_sources_are_refused_when_a_workflow_is_saved() {
    block_on(async {
        let app = app_with(|_| {}).await;
        let (_, ann) = app.token("ann", &Scope::USER).await;
        let (_, bob) = app.token("bob", &Scope::USER).await;
        let (s, b) = call(
            &app,
            api("POST", "/api/v1/workflows", &ann, Some(one_step("evil", json!({"type": "emit_event", "event_type": "endpoint.disabled"})))),
        )
        .await;
        assert_eq!(
            (s, b["code"].as_str(), b["errors"][0]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"), Some("steps[0].action.event_type")),
            "{b}"
        );
        let waits = one_step("confirm", json!({"type": "wait_inbound", "source": "crm", "correlation": "{{run.id}}", "timeout_ms": 60000}));
        let (s, b) = call(&app, api("POST", "/api/v1/workflows", &bob, Some(waits.clone()))).await;
        assert_eq!((s, b["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("steps[0].action.source")), "{b}");
        assert!(b["errors"][0]["message"].as_str().unwrap().contains("not an inbound source of yours"), "{b}");

        // Ann's own source: her run waits on it and her CRM's message resumes it.
        app.state.flows.spawn().await;
        let run = start(&app, &ann, waits, json!({})).await;
        settled(&app, &ann, &run, "waiting").await;
        let (s, b) = call(&app, signed_inbound("crm", "msg_1", &json!({"correlation_id": run}).to_string())).await;
        assert_eq!((s, b["resumed_run"].as_str()), (StatusCode::OK, Some(run.as_str())), "{b}");
        assert_eq!(settled(&app, &ann, &run, "completed").await["run"]["status"], "completed");
    })
}

#[test]
fn a_webhook_that_could_not_be_processed_is_processed_when_retried() {
    block_on(async {
        let app = app_with(|_| {}).await;
        let (_, ann) = app.token("ann", &Scope::USER).await;
        let body = json!({"correlation_id": "order-7", "total": 12}).to_string();
        // `shop` starts ann's `orders` workflow, which does not exist yet: nothing is recorded.
        let (s, b) = call(&app, signed_inbound("shop", "evt_1", &body)).await;
        assert_eq!((s, b["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable")), "{b}");
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM workflow_inbox").fetch_one(&app.state.pool).await.unwrap();
        assert_eq!(n, 0, "the message went with the failed transaction");

        let (s, _) = call(&app, api("POST", "/api/v1/workflows", &ann, Some(one_step("orders", json!({"type": "delay", "ms": 1}))))).await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, b) = call(&app, signed_inbound("shop", "evt_1", &body)).await;
        assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("accepted")), "the retry is not a duplicate: {b}");
        let run = b["started_run"].as_str().expect("started ann's workflow").to_string();
        let (_, d) = call(&app, api("GET", &format!("/api/v1/workflow-runs/{run}"), &ann, None)).await;
        assert_eq!(d["run"]["started_by"], json!({"kind": "inbound:shop", "token_id": null, "scopes": ["workflows:write"]}), "{d}");
        let (s, b) = call(&app, signed_inbound("shop", "evt_1", &body)).await;
        assert_eq!((s, b), (StatusCode::OK, json!({"status": "duplicate"})));
    })
}

#[test]
fn concurrent_copies_of_one_webhook_are_processed_once() {
    block_on(async {
        let app = app_with(|_| {}).await;
        let (_, ann) = app.token("ann", &Scope::USER).await;
        let (s, _) = call(&app, api("POST", "/api/v1/workflows", &ann, Some(one_step("orders", json!({"type": "delay", "ms": 1}))))).await;
        assert_eq!(s, StatusCode::CREATED);
        let body = json!({"correlation_id": "order-8"}).to_string();
        let copies: Vec<_> = (0..8)
            .map(|_| {
                let (router, req) = (app.router.clone(), signed_inbound("shop", "evt_2", &body));
                tokio::spawn(async move {
                    let res = router.oneshot(req).await.unwrap();
                    let status = res.status();
                    (status, serde_json::from_str::<Value>(&body_text(res).await).unwrap())
                })
            })
            .collect();
        let mut answers = vec![];
        for c in copies {
            answers.push(c.await.unwrap());
        }
        assert!(answers.iter().all(|(s, _)| *s == StatusCode::OK), "{answers:?}");
        let accepted = answers.iter().filter(|(_, b)| b["status"] == "accepted").count();
        assert_eq!(accepted, 1, "{answers:?}");
        let count = |sql: &'static str| {
            let pool = app.state.pool.clone();
            async move { sqlx::query_as::<_, (i64,)>(sql).fetch_one(&pool).await.unwrap().0 }
        };
        assert_eq!(count("SELECT COUNT(*) FROM workflow_inbox WHERE correlation = 'order-8'").await, 1);
        assert_eq!(count("SELECT COUNT(*) FROM workflow_runs WHERE idempotency_key = 'inbound:shop:evt_2'").await, 1);
        assert_eq!(count("SELECT COUNT(*) FROM inbound_webhooks WHERE webhook_id = 'evt_2'").await, 1);
    })
}

#[test]
fn a_read_only_tokens_get_changes_nothing() {
    block_on(async {
        let app = app_with(|_| {}).await;
        let (_, read) = app.token("bob", &[Scope::WorkflowsRead]).await;
        let count = || async {
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM workflow_definitions").fetch_one(&app.state.pool).await.unwrap();
            n
        };
        for path in ["/api/v1/workflows", "/api/v1/workflow-runs"] {
            let (s, b) = call(&app, api("GET", path, &read, None)).await;
            assert_eq!(s, StatusCode::OK, "{b}");
        }
        assert_eq!(count().await, 0, "a read installed nothing");
        // A credential that may write gets the built-in example on its first look.
        let (_, write) = app.token("bob", &[Scope::WorkflowsRead, Scope::WorkflowsWrite]).await;
        let (_, b) = call(&app, api("GET", "/api/v1/workflows", &write, None)).await;
        assert_eq!(b["items"][0]["name"], "customer_onboarding", "{b}");
    })
}

#[test]
fn per_user_quotas_on_active_runs_and_definitions_answer_with_a_clear_message() {
    block_on(async {
        let app = app_with(|s| {
            s.flows.max_active_runs_per_owner = 1;
            s.flows.max_definitions_per_owner = 1;
        })
        .await;
        let (_, ann) = app.token("ann", &Scope::USER).await;
        let (_, bob) = app.token("bob", &Scope::USER).await;
        // No engine: a run stays `running`.
        let slow = one_step("slow", json!({"type": "delay", "ms": 60000}));
        let (s, d) = call(&app, api("POST", "/api/v1/workflows", &ann, Some(slow))).await;
        assert_eq!(s, StatusCode::CREATED, "the built-in example does not count: {d}");
        let (s, b) = call(&app, api("POST", "/api/v1/workflows", &ann, Some(one_step("more", json!({"type": "delay", "ms": 1}))))).await;
        assert_eq!((s, b["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("quota_exceeded")), "{b}");
        assert!(b["detail"].as_str().unwrap().contains("1 workflows"), "{b}");
        let runs = format!("/api/v1/workflows/{}/runs", d["id"]);
        let (s, _) = call(&app, api("POST", &runs, &ann, Some(json!({})))).await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, b) = call(&app, api("POST", &runs, &ann, Some(json!({})))).await;
        assert_eq!((s, b["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("quota_exceeded")), "{b}");
        assert!(b["detail"].as_str().unwrap().contains("in progress"), "{b}");
        // Bob's quota is his own.
        let (s, _) = call(&app, api("POST", "/api/v1/workflows", &bob, Some(one_step("bobs", json!({"type": "delay", "ms": 1}))))).await;
        assert_eq!(s, StatusCode::CREATED);
    })
}

/// A notification that stores `len` bytes: its recipient (1) and payload (`{"b":"…"}`).
fn sized_notification(len: usize) -> Value {
    json!({"channel": "noop", "recipient": "r", "payload": {"b": "x".repeat(len - 9)}})
}

#[test]
fn stored_bytes_per_day_hold_notifications_runs_steps_and_inbound_webhooks_per_user() {
    block_on(async {
        let app = app_with(|s| s.limits.stored_bytes_per_day = 4_000).await;
        let (_, ann) = app.token("ann", &Scope::USER).await;
        let (_, bob) = app.token("bob", &Scope::USER).await;
        // A notification's recipient and payload count.
        let (s, b) = call(&app, api("POST", "/api/v1/notifications", &ann, Some(sized_notification(3_000)))).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        let (s, h, b) = app.call(api("POST", "/api/v1/notifications", &ann, Some(sized_notification(1_504)))).await;
        assert_eq!((s, b["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("quota_exceeded")), "{b}");
        assert!(b["detail"].as_str().unwrap().contains("4000 bytes in the last 24 hours"), "{b}");
        // 500 bytes come back in 86,400 s × 500 / 4,000 = 3 h.
        let wait: u64 = h[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
        assert!((10_000..=11_000).contains(&wait), "{wait}");
        // So does a run's input, from the API or a signed-in page alike (both go through the engine).
        let (s, d) = call(&app, api("POST", "/api/v1/workflows", &ann, Some(one_step("w", json!({"type": "delay", "ms": 1}))))).await;
        assert_eq!(s, StatusCode::CREATED, "{d}");
        let runs = format!("/api/v1/workflows/{}/runs", d["id"]);
        let (s, b) = call(&app, api("POST", &runs, &ann, Some(json!({"input": {"note": "x".repeat(1_500)}})))).await;
        assert_eq!((s, b["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("quota_exceeded")), "{b}");
        // And a webhook to ann's source: the sender is told to retry later, and nothing is recorded.
        let body = json!({"correlation_id": "c-1", "blob": "y".repeat(1_500)}).to_string();
        let (s, h, b) = app.call(signed_inbound("crm", "evt_big", &body)).await;
        assert_eq!((s, b["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("quota_exceeded")), "{b}");
        assert!(h.contains_key(header::RETRY_AFTER));
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM inbound_webhooks").fetch_one(&app.state.pool).await.unwrap();
        assert_eq!(n, 0);
        // A small one still fits, and a duplicate of it is given back.
        let small = json!({"correlation_id": "c-2"}).to_string();
        for _ in 0..2 {
            let (s, b) = call(&app, signed_inbound("crm", "evt_small", &small)).await;
            assert_eq!(s, StatusCode::OK, "{b}");
        }
        // Bob's allowance is his own; what his steps send counts against it too.
        let (s, b) = call(&app, api("POST", "/api/v1/notifications", &bob, Some(sized_notification(3_000)))).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        app.state.notify.start().await.unwrap();
        app.state.flows.spawn().await;
        let emit = json!({"type": "emit_event", "event_type": "customer.created", "payload": {"blob": "z".repeat(1_500)}});
        let run = start(&app, &bob, one_step("big_event", emit), json!({})).await;
        let d = settled(&app, &bob, &run, "failed").await;
        assert_eq!((d["run"]["status"].as_str(), d["run"]["error_code"].as_str()), (Some("failed"), Some("quota_exceeded")), "{d}");
        let run = start(&app, &bob, one_step("small_event", emit_step()), json!({})).await;
        assert_eq!(settled(&app, &bob, &run, "completed").await["run"]["status"], "completed");
    })
}

/// Every event type the product raises itself is one a workflow cannot emit, so a receiver can trust
/// it; only the onboarding example's `customer.*` types are open to workflows.
#[test]
fn every_system_event_type_in_the_catalogue_is_reserved() {
    for e in hooks::events::CATALOGUE {
        assert_eq!(flows::is_reserved_event_type(e.name), !e.name.starts_with("customer."), "{}", e.name);
    }
}
