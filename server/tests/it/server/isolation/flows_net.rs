//! Workflow `http` steps and the network (issue 14, items 1–3, 18, 20): DNS rebinding caught at connect
//! time, the workflows' own allowlist that never admits the app itself, proxy headers refused, and no
//! internal error text in a run's timeline.

use super::{api, call};
use crate::common::*;
use auth::tokens::Scope;
use axum::http::StatusCode;
use contract::Owner;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn token(app: &TestApp, user: &str) -> String {
    app.create_user(user, &format!("{user}-password-1")).await;
    app.token(user, &Scope::USER).await.1
}

/// A loopback HTTP server standing for what must stay unreachable (`/metrics`, another instance):
/// answers every connection with a secret and counts them.
async fn loopback_secret() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let body = "internal_secret_metric 42";
            let _ = sock.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).as_bytes()).await;
        }
    });
    (port, hits)
}

/// Saves a definition and starts a run of it through the API; returns the run id.
async fn start(app: &TestApp, t: &str, def: Value, input: Value) -> String {
    let (s, d) = call(app, api("POST", "/api/v1/workflows", t, Some(def))).await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    let (s, run) = call(app, api("POST", &format!("/api/v1/workflows/{}/runs", d["id"]), t, Some(json!({ "input": input })))).await;
    assert_eq!(s, StatusCode::CREATED, "{run}");
    run["id"].as_str().unwrap().to_string()
}

/// Polls the run (as its owner sees it) until it reaches a final status.
async fn finished(app: &TestApp, t: &str, run_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, d) = call(app, api("GET", &format!("/api/v1/workflow-runs/{run_id}"), t, None)).await;
        if matches!(d["run"]["status"].as_str(), Some("completed" | "failed" | "compensation_failed" | "cancelled")) {
            return d;
        }
        assert!(Instant::now() < deadline, "run never finished: {d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn attempts(detail: &Value) -> Vec<Value> {
    detail["timeline"].as_array().unwrap().iter().flat_map(|e| e["attempts"].as_array().unwrap().clone()).collect()
}

fn http_step(url: &str) -> Value {
    json!({"name": "probe", "steps": [{"name": "fetch", "retry": {"max_attempts": 1}, "action": {"type": "http", "url": url}}]})
}

#[test]
fn a_name_that_rebinds_to_loopback_between_the_check_and_the_connection_is_refused() {
    block_on(async {
        let app = spawn().await;
        let (port, hits) = loopback_secret().await;
        // The attacker's DNS: a public address for the first question (the guard's check), loopback
        // for every later one (the connection). Both questions must come here.
        let asked = Arc::new(Mutex::new(Vec::<String>::new()));
        let log = asked.clone();
        let lookup: hooks::ssrf::Lookup = Arc::new(move |name: &str| -> notify::BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
            let mut log = log.lock().unwrap();
            log.push(name.to_string());
            let ip: IpAddr = if log.len() == 1 { "93.184.216.34".parse().unwrap() } else { "127.0.0.1".parse().unwrap() };
            Box::pin(async move { Ok(vec![ip]) })
        });
        let guard = app.state.settings.flows_guard(leptos_options().site_addr).unwrap().with_lookup(lookup);
        let host = server::api::host::ServerHost::new(app.state.notify.clone(), app.state.hooks.clone(), app.state.pool.clone(), guard);
        let engine = flows::Engine::new(
            flows::Store::new(app.state.pool.clone()),
            Arc::new(host),
            flows::EngineConfig { instance_id: "rebinding-test".into(), poll_ms: 20, ..Default::default() },
        );
        engine.spawn().await;

        let def = flows::WorkflowDefinition::from_json(&http_step(&format!("http://rebind.attacker.example:{port}/metrics")).to_string()).unwrap();
        let new = flows::NewRun {
            definition: flows::DefinitionRef::Inline(def),
            input: json!({}),
            idempotency_key: None,
            started_by: flows::StartedBy::session(),
        };
        let run_id = engine.start_run(&Owner::from("mallory"), new).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let timeline = loop {
            let t = engine.timeline(&Owner::from("mallory"), &run_id).await.unwrap();
            if t.run.status.is_final() {
                break t;
            }
            assert!(Instant::now() < deadline, "the run never finished: {t:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        engine.shutdown().await;

        assert_eq!(hits.load(Ordering::SeqCst), 0, "the step reached the loopback server");
        assert_eq!(timeline.run.status, flows::RunStatus::Failed);
        let attempt = &timeline.entries[0].attempts[0];
        assert_eq!(attempt.error_code.as_deref(), Some("url_rejected"), "{attempt:?}");
        assert!(attempt.output.is_none());
        let text = serde_json::to_string(&timeline).unwrap();
        assert!(!text.contains("internal_secret_metric"), "nothing from loopback is in the timeline: {text}");
        let asked = asked.lock().unwrap().clone();
        assert!(
            asked.len() >= 2 && asked.iter().all(|n| n == "rebind.attacker.example"),
            "both the check and the connection asked the test resolver: {asked:?}"
        );
    })
}

#[test]
fn workflows_have_their_own_allowlist_and_it_never_admits_the_app_itself() {
    block_on(async {
        let (open_port, open_hits) = loopback_secret().await;
        let (app_port, app_hits) = loopback_secret().await;
        // The webhooks' allowlist opens loopback to endpoints; it does not open it to workflows.
        let app = spawn_with(|s| s.hooks.allow_networks = vec!["127.0.0.1/32".into()]).await;
        app.state.flows.spawn().await;
        let t = token(&app, "mallory").await;
        let run = start(&app, &t, http_step(&format!("http://127.0.0.1:{open_port}/")), json!({})).await;
        let d = finished(&app, &t, &run).await;
        assert_eq!(attempts(&d)[0]["error_code"], "url_rejected", "{d}");
        assert_eq!(open_hits.load(Ordering::SeqCst), 0);
        app.state.flows.shutdown().await;

        // `flows.allow_networks` opens loopback to workflows, except the app's own listener and the denied
        // addresses (here the second server stands for nginx), port by port.
        let app = spawn_with(|s| {
            s.flows.allow_networks = vec!["127.0.0.0/8".into()];
            s.flows.deny_addresses = vec![format!("127.0.0.1:{app_port}")];
        })
        .await;
        app.state.flows.spawn().await;
        let t = token(&app, "mallory").await;
        let run = start(
            &app,
            &t,
            json!({"name": "ok", "steps": [{"name": "fetch", "action": {"type": "http", "url": format!("http://127.0.0.1:{open_port}/")}}]}),
            json!({}),
        )
        .await;
        let d = finished(&app, &t, &run).await;
        assert_eq!(d["run"]["status"], "completed", "{d}");
        assert_eq!(open_hits.load(Ordering::SeqCst), 1);
        let run = start(&app, &t, http_step(&format!("http://127.0.0.1:{app_port}/metrics")), json!({})).await;
        let d = finished(&app, &t, &run).await;
        assert_eq!(attempts(&d)[0]["error_code"], "url_rejected", "{d}");
        assert!(attempts(&d)[0]["error_message"].as_str().unwrap().contains("own address"), "{d}");
        let own = leptos_options().site_addr;
        let run = start(&app, &t, json!({"name": "own", "steps": [{"name": "f", "retry": {"max_attempts": 1}, "action": {"type": "http", "url": format!("http://{own}/metrics")}}]}), json!({})).await;
        let d = finished(&app, &t, &run).await;
        assert_eq!(attempts(&d)[0]["error_code"], "url_rejected", "the app's own listen address: {d}");
        assert_eq!(app_hits.load(Ordering::SeqCst), 0);
        app.state.flows.shutdown().await;
    })
}

#[test]
fn proxy_and_framing_headers_are_refused_when_the_definition_is_saved() {
    block_on(async {
        let app = spawn().await;
        let t = token(&app, "mallory").await;
        let def = json!({"name": "spoof", "steps": [
            {"name": "a", "action": {"type": "delay", "ms": 1}},
            {"name": "b", "action": {"type": "http", "url": "https://api.example.com/x",
             "headers": {"Host": "app.test", "X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1", "Authorization": "Bearer x"}}}]});
        let (s, b) = call(&app, api("POST", "/api/v1/workflows", &t, Some(def))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let fields: Vec<&str> = b["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["steps[1].action.headers.Host", "steps[1].action.headers.X-Forwarded-For", "steps[1].action.headers.X-Real-IP"], "{b}");
        // A templated host is refused as well.
        let (s, b) = call(&app, api("POST", "/api/v1/workflows", &t, Some(http_step("https://{{input.host}}/x")))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["errors"][0]["field"], "steps[0].action.url", "{b}");
        // And a step timeout above the ceiling.
        let slow =
            json!({"name": "slow", "steps": [{"name": "a", "timeout_ms": 3_600_000, "action": {"type": "http", "url": "https://api.example.com/"}}]});
        let (s, b) = call(&app, api("POST", "/api/v1/workflows", &t, Some(slow))).await;
        assert_eq!((s, b["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("steps[0].timeout_ms")), "{b}");
    })
}

#[test]
fn a_database_failure_shows_an_error_id_in_the_timeline_and_no_sql() {
    block_on(async {
        let app = spawn().await;
        app.state.flows.spawn().await;
        let t = token(&app, "mallory").await;
        sqlx::query("DROP TABLE demo_customers").execute(&app.state.pool).await.unwrap();
        let def = json!({"name": "db", "steps": [{"name": "create", "retry": {"max_attempts": 1},
            "action": {"type": "call", "name": "create_account", "args": {"email": "ada@example.com"}}}]});
        let run = start(&app, &t, def, json!({})).await;
        let d = finished(&app, &t, &run).await;
        let attempt = &attempts(&d)[0];
        assert_eq!(attempt["error_code"], "database", "{d}");
        let message = attempt["error_message"].as_str().unwrap();
        assert!(message.starts_with("internal error (error id ") && message.len() < 60, "{message}");
        let text = d.to_string().to_ascii_lowercase();
        for leak in ["demo_customers", "no such table", "does not exist", "select ", "sqlite"] {
            assert!(!text.contains(leak), "{leak:?} in what the owner sees: {text}");
        }
        app.state.flows.shutdown().await;
    })
}
