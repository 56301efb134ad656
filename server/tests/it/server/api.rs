//! The REST API through the real router: authentication and scopes, problem details, idempotency keys,
//! SSRF refusals, a webhook event delivered signed to a real receiver and logged, inbound webhooks
//! verified and deduplicated, the onboarding workflow driven to completion through the API and an
//! inbound CRM confirmation, a separate `server worker` process delivering endpoint events over
//! Redis, and the OpenAPI document with its reference page and its `webhooks`. Every event body a test
//! receives is checked against its type's schema in the event catalogue.

use crate::common::*;
use auth::tokens::Scope;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const CRM_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn app() -> TestApp {
    spawn_with(|s| {
        s.hooks.allow_networks = vec!["127.0.0.1/32".into()];
        s.hooks.inbound.sources.insert(
            "crm".into(),
            // The CRM is yan's: the onboarding test's runs wait on it.
            hooks::InboundSource { secrets: vec![hooks::Secret::new(CRM_SECRET)], owner: Some("yan".into()), ..Default::default() },
        );
        s.notify.retry.base_ms = 20;
        s.notify.webhook.retry = notify::WebhookRetry::every(20, 6);
    })
    .await
}

fn assert_problem(status: StatusCode, headers: &axum::http::HeaderMap, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], want.as_u16(), "{body}");
    assert_eq!(body["type"], format!("/api/v1/problems/{code}"));
    assert!(body["title"].is_string() && body["detail"].is_string(), "{body}");
}

/// A body as an endpoint received it, checked against its type's schema in the event catalogue (what
/// the event-types endpoint and the OpenAPI document's `webhooks` publish).
fn fits_the_catalogue(body: &[u8]) -> Value {
    let event: Value = serde_json::from_slice(body).unwrap();
    let entry = hooks::events::find(event["type"].as_str().unwrap_or_default()).unwrap_or_else(|| panic!("not in the catalogue: {event}"));
    testkit::json_schema::assert_fits(&entry.schema(), &event);
    event
}

#[test]
fn callers_need_a_token_or_a_session_and_tokens_need_their_scope() {
    block_on(async {
        let app = app().await;
        app.create_user("tia", "tia-password-1").await;
        let (s, h, b) = app.call(api("GET", "/api/v1/me", None, None)).await;
        assert_problem(s, &h, &b, StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(h.contains_key(header::WWW_AUTHENTICATE));
        let (s, h, b) = app.call(api("GET", "/api/v1/me", Some("ie_not-a-real-token"), None)).await;
        assert_problem(s, &h, &b, StatusCode::UNAUTHORIZED, "unauthorized");

        let read_only = app.token("tia", &[Scope::NotificationsRead]).await.1;
        let (s, _, b) = app.call(api("GET", "/api/v1/me", Some(&read_only), None)).await;
        assert_eq!((s, b["username"].as_str(), b["auth"].as_str()), (StatusCode::OK, Some("tia"), Some("token")));
        assert_eq!(b["scopes"], json!(["notifications:read"]));
        let (s, h, b) = app.call(api("GET", "/api/v1/webhooks/endpoints", Some(&read_only), None)).await;
        assert_problem(s, &h, &b, StatusCode::FORBIDDEN, "forbidden");
        let (s, h, b) = app.call(api("POST", "/api/v1/runs", Some(&read_only), Some(json!({"count": 1, "rate": "max", "mix": {"noop": 1}})))).await;
        assert_problem(s, &h, &b, StatusCode::FORBIDDEN, "forbidden");

        // A browser session works too, and a bad bearer token never falls back to the cookie.
        let cookie = app.login("tia", "tia-password-1").await;
        let (s, _, b) = app.call(get("/api/v1/me", Some(&cookie))).await;
        assert_eq!((s, b["auth"].as_str()), (StatusCode::OK, Some("session")));
        let mut req = get("/api/v1/me", Some(&cookie));
        req.headers_mut().insert(header::AUTHORIZATION, "Bearer ie_wrong".parse().unwrap());
        assert_eq!(app.send(req).await.status(), StatusCode::UNAUTHORIZED);
        // A cookie-carrying POST from another site is refused (as a problem); without a cookie or a
        // token there is nothing to ride on and the API answers 401 itself.
        let mut forged = api("POST", "/api/v1/runs", None, Some(json!({"count": 1, "rate": "max", "mix": {"noop": 1}})));
        forged.headers_mut().insert(header::COOKIE, cookie.parse().unwrap());
        forged.headers_mut().insert("sec-fetch-site", "cross-site".parse().unwrap());
        let (s, h, b) = app.call(forged).await;
        assert_problem(s, &h, &b, StatusCode::FORBIDDEN, "cross_site");
        let (s, h, b) = app.call(api("POST", "/api/v1/runs", None, Some(json!({"count": 1})))).await;
        assert_problem(s, &h, &b, StatusCode::UNAUTHORIZED, "unauthorized");

        let (s, h, b) = app.call(api("GET", "/api/v1/no-such-thing", Some(&read_only), None)).await;
        assert_problem(s, &h, &b, StatusCode::NOT_FOUND, "not_found");
    })
}

#[test]
fn bad_input_is_a_problem_naming_the_field_and_private_addresses_are_refused() {
    block_on(async {
        let app = app().await;
        app.create_user("uma", "uma-password-1").await;
        let t = app.token("uma", &Scope::USER).await.1;
        for (url, why) in [
            ("ftp://example.com/x", "scheme"),
            ("http://10.0.0.1/hook", "private"),
            ("http://169.254.169.254/latest", "metadata"),
            ("http://localhost:9/x", "name"),
        ] {
            let (s, h, b) = app.call(api("POST", "/api/v1/webhooks/endpoints", Some(&t), Some(json!({"url": url, "description": why})))).await;
            assert_problem(s, &h, &b, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
            assert_eq!(b["errors"][0]["field"], "url", "{why}: {b}");
        }
        let (s, h, b) =
            app.call(api("POST", "/api/v1/webhooks/endpoints", Some(&t), Some(json!({"url": "https://example.com", "surprise": 1})))).await;
        assert_problem(s, &h, &b, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let bad_flow = json!({"name": "x", "steps": [{"name": "a", "action": {"type": "delay", "ms": 10}, "retry": {"max_attempts": 0}}]});
        let (s, h, b) = app.call(api("POST", "/api/v1/workflows", Some(&t), Some(bad_flow))).await;
        assert_problem(s, &h, &b, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(b["errors"].as_array().unwrap().iter().any(|e| e["field"] == "steps[0].retry.max_attempts"), "{b}");
        let (s, h, b) = app.call(api("GET", "/api/v1/webhooks/endpoints?limit=1000", Some(&t), None)).await;
        assert_problem(s, &h, &b, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let (s, h, b) = app.call(api("GET", "/api/v1/webhooks/messages?limit=lots", Some(&t), None)).await;
        assert_problem(s, &h, &b, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(b["errors"][0]["field"], "limit", "{b}");
        let (s, h, b) = app.call(api("GET", "/api/v1/workflow-runs/does-not-exist", Some(&t), None)).await;
        assert_problem(s, &h, &b, StatusCode::NOT_FOUND, "not_found");
    })
}

#[test]
fn creating_posts_honour_idempotency_keys() {
    block_on(async {
        let app = app().await;
        app.create_user("vic", "vic-password-1").await;
        let t = app.token("vic", &Scope::USER).await.1;
        let def = json!({"name": "tiny", "steps": [{"name": "wait", "action": {"type": "delay", "ms": 1}}]});
        let with_key = |body: Value, key: &str| {
            let mut r = api("POST", "/api/v1/workflows", Some(&t), Some(body));
            r.headers_mut().insert("idempotency-key", key.parse().unwrap());
            r
        };
        let (s1, h1, b1) = app.call(with_key(def.clone(), "k-1")).await;
        assert_eq!(s1, StatusCode::CREATED, "{b1}");
        assert!(!h1.contains_key("idempotency-replayed"));
        let (s2, h2, b2) = app.call(with_key(def.clone(), "k-1")).await;
        assert_eq!((s2, b2["id"].clone()), (StatusCode::CREATED, b1["id"].clone()), "the same answer again");
        assert_eq!(h2["idempotency-replayed"], "true");
        let other = json!({"name": "other", "steps": [{"name": "wait", "action": {"type": "delay", "ms": 1}}]});
        let (s, h, b) = app.call(with_key(other, "k-1")).await;
        assert_problem(s, &h, &b, StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");
        // Without a key the same POST is a second attempt, refused because the name is taken.
        let (s, h, b) = app.call(api("POST", "/api/v1/workflows", Some(&t), Some(def))).await;
        assert_problem(s, &h, &b, StatusCode::CONFLICT, "conflict");
        // Keys are per user.
        app.create_user("wes", "wes-password-1").await;
        let t2 = app.token("wes", &Scope::USER).await.1;
        let mut r = api(
            "POST",
            "/api/v1/workflows",
            Some(&t2),
            Some(json!({"name": "tiny", "steps": [{"name": "w", "action": {"type": "delay", "ms": 1}}]})),
        );
        r.headers_mut().insert("idempotency-key", "k-1".parse().unwrap());
        let (s, h, _) = app.call(r).await;
        assert_eq!(s, StatusCode::CREATED);
        assert!(!h.contains_key("idempotency-replayed"));
    })
}

#[test]
fn a_test_event_reaches_a_real_receiver_signed_with_the_endpoint_secret_and_is_logged() {
    block_on(async {
        let app = app().await;
        app.state.notify.start().await.unwrap();
        app.create_user("xia", "xia-password-1").await;
        let t = app.token("xia", &Scope::USER).await.1;
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}/webhook");
        let (s, _, created) = app
            .call(api(
                "POST",
                "/api/v1/webhooks/endpoints",
                Some(&t),
                Some(json!({"url": url, "description": "receiver", "event_types": ["test.ping"]})),
            ))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{created}");
        let secret = created["secret"].as_str().unwrap().to_string();
        assert!(secret.starts_with("whsec_"));
        let id = created["endpoint"]["id"].as_str().unwrap().to_string();
        let (_, _, shown) = app.call(api("GET", &format!("/api/v1/webhooks/endpoints/{id}"), Some(&t), None)).await;
        assert!(shown.get("secret").is_none() && !shown.to_string().contains(&secret), "the secret is shown once only");

        // The receiver verifies with the endpoint's secret: a wrong signature would be a 401 there.
        let sink = notify::sink::Sink::start(format!("127.0.0.1:{port}").parse().unwrap(), notify::sink::SinkConfig { secret, ..Default::default() })
            .await
            .unwrap();
        let (s, _, msg) = app.call(api("POST", &format!("/api/v1/webhooks/endpoints/{id}/test"), Some(&t), None)).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{msg}");
        let deadline = Instant::now() + Duration::from_secs(15);
        let attempts = loop {
            let (_, _, page) = app.call(api("GET", &format!("/api/v1/webhooks/endpoints/{id}/attempts"), Some(&t), None)).await;
            if page["items"].as_array().is_some_and(|a| a.iter().any(|x| x["outcome"] == "delivered")) {
                break page;
            }
            assert!(Instant::now() < deadline, "no delivered attempt: {page}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let first = &attempts["items"][0];
        assert!(first["status_code"].as_i64().is_some_and(|c| (200..300).contains(&c)), "{first}");
        assert_eq!(first["message_id"].as_str(), msg["id"].as_str());
        let stats = sink.stats();
        assert_eq!((stats.accepted, stats.bad_signature), (1, 0));
        // The message's own log says the same; a replay sends it again with the same webhook-id.
        let (_, _, by_message) =
            app.call(api("GET", &format!("/api/v1/webhooks/messages/{}/attempts", msg["id"].as_str().unwrap()), Some(&t), None)).await;
        assert_eq!(by_message["items"].as_array().unwrap().len(), 1);
        let (s, _, _) = app.call(api("POST", &format!("/api/v1/webhooks/messages/{}/replay", msg["id"].as_str().unwrap()), Some(&t), None)).await;
        assert_eq!(s, StatusCode::ACCEPTED);
        let deadline = Instant::now() + Duration::from_secs(15);
        while sink.stats().accepted < 2 {
            assert!(Instant::now() < deadline, "replay not delivered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!((sink.stats().unique_ids, sink.stats().duplicates), (1, 1), "a replay keeps the webhook-id");
    })
}

/// A notification sent through the API becomes its owner's `notification.delivered` or
/// `notification.dead_lettered` event, delivered signed to the owner's subscribed endpoint; another
/// user's notification does not.
#[test]
fn api_notifications_become_delivered_and_dead_lettered_events_for_their_owner() {
    block_on(async {
        let closed = free_port();
        let app = spawn_with(|s| {
            s.hooks.allow_networks = vec!["127.0.0.1/32".into()];
            s.notify.webhook.retry = notify::WebhookRetry::every(20, 2);
            // Unrouted webhook notifications go here and fail: the way to a dead letter.
            s.notify.webhook.url = format!("http://127.0.0.1:{closed}/nobody");
        })
        .await;
        app.state.notify.start().await.unwrap();
        app.create_user("yan", "yan-password-1").await;
        app.create_user("zed", "zed-password-1").await;
        let (yan, zed) = (app.token("yan", &Scope::USER).await.1, app.token("zed", &Scope::USER).await.1);
        let port = free_port();
        let events = json!(["notification.delivered", "notification.dead_lettered"]);
        let body = json!({"url": format!("http://127.0.0.1:{port}/webhook"), "event_types": events});
        let (s, _, created) = app.call(api("POST", "/api/v1/webhooks/endpoints", Some(&yan), Some(body))).await;
        assert_eq!(s, StatusCode::CREATED, "{created}");
        let secret = created["secret"].as_str().unwrap().to_string();
        let sink = notify::sink::Sink::start(format!("127.0.0.1:{port}").parse().unwrap(), notify::sink::SinkConfig { secret, ..Default::default() })
            .await
            .unwrap();
        sink.capture(10);

        let batch = json!([{"recipient": "ok", "channel": "noop"}, {"recipient": "doomed", "channel": "webhook"}]);
        let (s, _, sent) = app.call(api("POST", "/api/v1/notifications", Some(&yan), Some(batch))).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{sent}");
        let (s, _, _) = app.call(api("POST", "/api/v1/notifications", Some(&zed), Some(json!({"recipient": "z", "channel": "noop"})))).await;
        assert_eq!(s, StatusCode::ACCEPTED);

        let deadline = Instant::now() + Duration::from_secs(20);
        while sink.stats().accepted < 2 {
            assert!(Instant::now() < deadline, "events not delivered: {:?}", sink.stats());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut got: Vec<(String, String)> = sink
            .captured()
            .iter()
            .map(|c| fits_the_catalogue(&c.body))
            .map(|e| (e["type"].as_str().unwrap().to_string(), e["data"]["notification_id"].as_str().unwrap().to_string()))
            .collect();
        got.sort();
        let ids: Vec<&str> = sent["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(got, vec![("notification.dead_lettered".into(), ids[1].into()), ("notification.delivered".into(), ids[0].into())]);
        assert_eq!(sink.stats().bad_signature, 0);
        let (_, _, messages) = app.call(api("GET", "/api/v1/webhooks/messages", Some(&yan), None)).await;
        assert_eq!(messages["items"].as_array().unwrap().len(), 2, "zed's notification is not yan's event: {messages}");
    })
}

#[test]
fn inbound_webhooks_are_verified_fresh_and_deduplicated() {
    block_on(async {
        let app = app().await;
        let body = r#"{"hello":"crm"}"#;
        let (s, _, b) = app.call(signed_inbound("crm", CRM_SECRET, "msg_in_1", now_secs(), body)).await;
        assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("accepted")), "{b}");
        let (s, _, b) = app.call(signed_inbound("crm", CRM_SECRET, "msg_in_1", now_secs(), body)).await;
        assert_eq!((s, b), (StatusCode::OK, json!({"status": "duplicate"})), "a repeated webhook-id does nothing");
        let wrong = "whsec_dGhpcyBpcyBub3QgdGhlIHJpZ2h0IHNlY3JldCE=";
        let (s, h, b) = app.call(signed_inbound("crm", wrong, "msg_in_2", now_secs(), body)).await;
        assert_problem(s, &h, &b, StatusCode::UNAUTHORIZED, "invalid_signature");
        let (s, h, b) = app.call(signed_inbound("crm", CRM_SECRET, "msg_in_3", now_secs() - 301, body)).await;
        assert_problem(s, &h, &b, StatusCode::UNAUTHORIZED, "stale_timestamp");
        let mut tampered = signed_inbound("crm", CRM_SECRET, "msg_in_4", now_secs(), body);
        *tampered.body_mut() = Body::from(r#"{"hello":"CRM"}"#);
        let (s, h, b) = app.call(tampered).await;
        assert_problem(s, &h, &b, StatusCode::UNAUTHORIZED, "invalid_signature");
        let mut unknown = signed_inbound("crm", CRM_SECRET, "msg_in_5", now_secs(), body);
        *unknown.uri_mut() = "/api/v1/inbound/nobody".parse().unwrap();
        assert_eq!(app.send(unknown).await.status(), StatusCode::NOT_FOUND);
    })
}

#[test]
fn the_onboarding_workflow_completes_through_the_api_once_the_crm_confirms() {
    block_on(async {
        let app = app().await;
        app.state.notify.start().await.unwrap();
        app.state.flows.spawn().await;
        app.create_user("yan", "yan-password-1").await;
        let t = app.token("yan", &Scope::USER).await.1;
        // Yan's endpoint hears every event of the run: they must fit the catalogue's schemas.
        let port = free_port();
        let (s, _, created) =
            app.call(api("POST", "/api/v1/webhooks/endpoints", Some(&t), Some(json!({"url": format!("http://127.0.0.1:{port}/webhook")})))).await;
        assert_eq!(s, StatusCode::CREATED, "{created}");
        let sink_config = notify::sink::SinkConfig { secret: created["secret"].as_str().unwrap().to_string(), ..Default::default() };
        let sink = notify::sink::Sink::start(format!("127.0.0.1:{port}").parse().unwrap(), sink_config).await.unwrap();
        sink.capture(10);
        let (_, _, defs) = app.call(api("GET", "/api/v1/workflows", Some(&t), None)).await;
        let onboarding = defs["items"].as_array().unwrap().iter().find(|d| d["name"] == "customer_onboarding").expect("built-in installed").clone();
        let (s, _, run) = app
            .call(api(
                "POST",
                &format!("/api/v1/workflows/{}/runs", onboarding["id"]),
                Some(&t),
                Some(json!({"input": {"email": "ada@example.com", "name": "Ada"}})),
            ))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{run}");
        let run_id = run["id"].as_str().unwrap().to_string();

        let status_of = |detail: &Value| detail["run"]["status"].as_str().unwrap_or("").to_string();
        let wait_for = |want: &'static str| {
            let (app, t, run_id) = (&app, &t, &run_id);
            async move {
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    let (_, _, d) = app.call(api("GET", &format!("/api/v1/workflow-runs/{run_id}"), Some(t), None)).await;
                    if status_of(&d) == want {
                        return d;
                    }
                    assert!(Instant::now() < deadline, "run never became {want}: {d}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let waiting = wait_for("waiting").await;
        assert_eq!(waiting["run"]["waiting_source"], "crm");

        let body = json!({"correlation_id": run_id, "status": "confirmed"}).to_string();
        let (s, _, b) = app.call(signed_inbound("crm", CRM_SECRET, "msg_crm_ok", now_secs(), &body)).await;
        assert_eq!((s, b["resumed_run"].as_str()), (StatusCode::OK, Some(run_id.as_str())), "{b}");
        let done = wait_for("completed").await;
        let steps: Vec<&str> = done["timeline"].as_array().unwrap().iter().map(|e| e["step_name"].as_str().unwrap()).collect();
        assert_eq!(steps, ["create_account", "send_welcome", "notify_crm", "wait_crm_confirmation"]);
        assert!(done["timeline"].as_array().unwrap().iter().all(|e| e["phase"] == "forward"));
        // The account the first step made exists, once.
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM demo_customers WHERE email = 'ada@example.com'").fetch_one(&app.state.pool).await.unwrap();
        assert_eq!(n, 1);
        // A completed run cannot be retried.
        let (s, h, b) = app.call(api("POST", &format!("/api/v1/workflow-runs/{run_id}/retry"), Some(&t), None)).await;
        assert_problem(s, &h, &b, StatusCode::CONFLICT, "conflict");

        // Every event so far (the welcome notification's too) fits; the run's own two are among them.
        let deadline = Instant::now() + Duration::from_secs(20);
        let events = loop {
            let events: Vec<Value> = sink.captured().iter().map(|c| fits_the_catalogue(&c.body)).collect();
            if ["customer.created", "workflow.completed"].iter().all(|t| events.iter().any(|e| e["type"] == *t)) {
                break events;
            }
            assert!(Instant::now() < deadline, "the run's events were not delivered: {events:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let of = |t: &str| events.iter().find(|e| e["type"] == t).unwrap().clone();
        let (customer, finished) = (of("customer.created"), of("workflow.completed"));
        assert_eq!(
            (customer["data"]["email"].as_str(), customer["data"]["correlation_id"].as_str()),
            (Some("ada@example.com"), Some(run_id.as_str()))
        );
        assert_eq!((finished["data"]["run_id"].as_str(), finished["data"]["status"].as_str()), (Some(run_id.as_str()), Some("completed")));
    })
}

#[test]
fn the_openapi_document_covers_the_routes_and_the_reference_page_renders_it() {
    block_on(async {
        let app = app().await;
        let (s, _, doc) = app.call(get("/api/v1/openapi.json", None)).await;
        assert_eq!(s, StatusCode::OK);
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let paths = doc["paths"].as_object().unwrap();
        for p in [
            "/api/v1/me",
            "/api/v1/runs",
            "/api/v1/runs/{id}",
            "/api/v1/webhooks/endpoints",
            "/api/v1/webhooks/endpoints/{id}/attempts",
            "/api/v1/webhooks/messages/{id}/replay",
            "/api/v1/workflows",
            "/api/v1/workflows/{id}/runs",
            "/api/v1/workflow-runs/{id}",
            "/api/v1/workflow-runs/{id}/retry",
            "/api/v1/inbound/{source}",
            "/api/v1/notifications",
        ] {
            assert!(paths.contains_key(p), "{p} missing from the OpenAPI document");
        }
        assert!(doc["components"]["schemas"]["Problem"].is_object());
        // Two crates' AttemptRecord types once shared one schema name, and one overwrote the other.
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        assert!(schemas.contains_key("WebhookAttempt") && schemas.contains_key("StepAttempt"), "{:?}", schemas.keys().collect::<Vec<_>>());
        assert!(!schemas.contains_key("AttemptRecord"));
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        // The enqueue body is typed, priority and time to live included, and strict as the parser is.
        let body = &doc["paths"]["/api/v1/notifications"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(body, "#/components/schemas/NotificationBatch");
        let item = &schemas["NewNotification"];
        assert_eq!(item["properties"]["priority"]["pattern"], "^(high|normal|bulk)$", "{item}");
        // The documented bounds are the parser's own.
        assert_eq!(
            (item["properties"]["ttl_secs"]["minimum"].as_u64(), item["properties"]["ttl_secs"]["maximum"].as_u64()),
            (Some(1), Some(notify::MAX_TTL_SECS))
        );
        assert_eq!(schemas["NotificationBatch"]["properties"]["notifications"]["maxItems"].as_u64(), Some(notify::model::MAX_BATCH as u64));
        assert_eq!(item["properties"]["idempotency_key"]["maxLength"].as_u64(), Some(notify::model::MAX_IDEMPOTENCY_KEY_LEN as u64));
        assert_eq!(item["additionalProperties"], json!(false), "{item}");
        assert_eq!(schemas["RunView"]["properties"]["expired"]["type"], "integer");

        // OpenAPI 3.1's `webhooks`: a POST per event type of the catalogue, whose body is what an
        // endpoint receives (utoipa has no field for it: added after generation).
        assert_eq!(doc["openapi"], "3.1.0", "`webhooks` needs OpenAPI 3.1");
        let webhooks = doc["webhooks"].as_object().expect("a webhooks object");
        let names: Vec<&str> = hooks::events::CATALOGUE.iter().map(|e| e.name).collect();
        assert_eq!(webhooks.keys().map(String::as_str).collect::<std::collections::BTreeSet<_>>(), names.iter().copied().collect());
        for e in hooks::events::CATALOGUE {
            let post = &webhooks[e.name]["post"];
            let body = &post["requestBody"]["content"]["application/json"];
            assert_eq!((&body["schema"], &body["example"]), (&e.schema(), &e.example()), "{}", e.name);
            testkit::json_schema::assert_fits(&body["schema"], &body["example"]);
            assert_eq!(body["schema"]["properties"]["type"]["const"], e.name);
            let about = post["description"].as_str().unwrap_or_default();
            for header in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
                assert!(about.contains(header), "{}: the description names {header}", e.name);
                let param = post["parameters"].as_array().unwrap().iter().find(|p| p["name"] == header).expect(header);
                assert_eq!((&param["in"], &param["required"]), (&json!("header"), &json!(true)));
            }
            assert!(about.contains("2xx") && post["responses"]["2XX"].is_object(), "{}: a 2xx acknowledges", e.name);
        }

        let res = app.send(get("/api/docs", None)).await;
        assert_eq!(res.status(), StatusCode::OK);
        let html = body_text(res).await;
        assert!(html.contains("<code>/api/v1/webhooks/endpoints</code>") && html.contains("Problem"), "reference page lists routes and schemas");
        assert!(names.iter().all(|n| html.contains(&format!("<code>{n}</code>"))), "reference page lists the webhook events");
        assert!(!html.contains("<script"), "no scripts on the reference page");
    })
}

/// The event-types endpoint answers the catalogue, each type with the schema and example of the body it
/// sends (the same as the document's `webhooks`), to a token with `webhooks:read`; `/settings/webhooks`
/// lists each type and links to its example and schema in the API reference.
#[test]
fn the_event_types_endpoint_gives_each_type_its_schema_and_example() {
    block_on(async {
        let app = app().await;
        app.create_user("eve", "eve-password-1").await;
        let (_, _, b) =
            app.call(api("GET", "/api/v1/webhooks/event-types", Some(&app.token("eve", &[Scope::NotificationsRead]).await.1), None)).await;
        assert_eq!(b["code"], "forbidden", "{b}");
        let t = app.token("eve", &[Scope::WebhooksRead]).await.1;
        let (s, _, b) = app.call(api("GET", "/api/v1/webhooks/event-types", Some(&t), None)).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let types = b.as_array().unwrap();
        assert_eq!(types.len(), hooks::events::CATALOGUE.len());
        for (got, e) in types.iter().zip(hooks::events::CATALOGUE) {
            assert_eq!((got["name"].as_str(), got["description"].as_str()), (Some(e.name), Some(e.description)));
            assert_eq!((&got["schema"], &got["example"]), (&e.schema(), &e.example()), "{}", e.name);
            assert_eq!(got["schema"]["$schema"], "https://json-schema.org/draft/2020-12/schema");
            testkit::json_schema::assert_fits(&got["schema"], &got["example"]);
        }
        let (_, _, doc) = app.call(get("/api/v1/openapi.json", None)).await;
        let listed = &doc["components"]["schemas"]["EventTypeInfo"]["required"];
        assert!(["name", "description", "schema", "example"].iter().all(|f| listed.as_array().unwrap().contains(&json!(f))), "{listed}");

        // The settings page shows each type's description and links to its entry in the API
        // reference, which shows the example and, folded, the JSON Schema.
        let cookie = app.login("eve", "eve-password-1").await;
        let html = body_text(app.send(get("/settings/webhooks", Some(&cookie))).await).await;
        let reference = body_text(app.send(get("/api/docs", None)).await).await;
        // Leptos escapes text as HTML text; the reference page escapes quotes too.
        let text = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        let shown = |s: &str| text(s).replace('"', "&quot;");
        let item_of = |page: &str, name: &str, end: &str| {
            let item = page.split(&format!("data-name=\"{name}\"")).nth(1).unwrap_or_else(|| panic!("{name} not on the page"));
            item[..item.find(end).unwrap()].to_string()
        };
        for e in hooks::events::CATALOGUE {
            let item = item_of(&html, e.name, "</li>");
            assert!(item.contains(&text(e.description)), "{}: description", e.name);
            assert!(item.contains(&format!("href=\"/api/docs#event-{}\"", e.name)), "{}: links to its reference entry: {item}", e.name);
            let entry = item_of(&reference, e.name, "</article>");
            assert!(entry.contains(&format!("id=\"event-{}\"", e.name)), "{}: the link's target", e.name);
            assert!(entry.contains(&format!("<code data-testid=\"event-example\">{}</code>", shown(&e.example_text()))), "{}: example", e.name);
            let schema = serde_json::to_string_pretty(&e.schema()).unwrap();
            assert!(entry.contains("<details>") && entry.contains(&shown(&schema)), "{}: its JSON Schema, folded: {entry}", e.name);
        }
        assert!(html.len() < 30_000, "the settings page stays small: {} bytes", html.len());
    })
}

/// `/security` shows every claim of docs/asvs.toml with its status and the tests that prove it, to
/// anyone (no sign-in), as a page without scripts.
#[test]
fn the_security_page_lists_every_claim_with_its_tests() {
    block_on(async {
        let app = app().await;
        let res = app.send(Request::get("/security").header(header::HOST, HOST).body(Body::empty()).unwrap()).await;
        assert_eq!(res.status(), StatusCode::OK);
        let csp = res.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_string();
        assert!(!csp.contains("script-src") && csp.contains("default-src 'none'"), "{csp}");
        let html = body_text(res).await;
        let claims = server::security_page::claims();
        assert!(claims.len() >= 60);
        for row in claims {
            assert!(html.contains(&format!("<th scope=\"row\">{}</th>", row.id)), "row {} missing", row.id);
            for t in &row.tests {
                let shown = t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
                assert!(html.contains(&shown), "{}: test {t} not shown", row.id);
            }
        }
        assert!(html.contains("not claimed") && html.contains("Why not:"));
    })
}

/// `server worker` as its own process, beside an API-only instance (no workers of its own) over Redis:
/// it delivers an endpoint's test event to that endpoint's URL with that endpoint's secret (not to the
/// pipeline's default URL), writes the attempt log, and turns an API notification it delivered into
/// its owner's `notification.delivered` event.
#[test]
fn a_separate_worker_process_delivers_endpoint_events_logs_them_and_emits_notification_events() {
    block_on(async {
        let redis_port = free_port();
        let _redis = Redis::start_on(redis_port);
        let redis_url = format!("redis://127.0.0.1:{redis_port}");
        let closed = free_port();
        let app = spawn_with(|s| {
            s.hooks.allow_networks = vec!["127.0.0.1/32".into()];
            s.hooks.backend = notify::Backend::Redis;
            s.notify.redis_url = Some(redis_url.clone());
            s.notify.workers = false;
        })
        .await;
        let mut worker = Reaped(
            std::process::Command::new(env!("CARGO_BIN_EXE_server"))
                .arg("worker")
                .env("APP_DATABASE_URL", &app.state.settings.database_url)
                .env("APP_NOTIFY__REDIS_URL", &redis_url)
                .env("APP_HOOKS__ALLOW_NETWORKS", "127.0.0.1/32")
                // The app's key: the worker opens the sealed endpoint secrets.
                .env("APP_HOOKS__SECRET_KEYS", server::config::DEV_SECRET_KEY)
                .env("APP_NOTIFY__WEBHOOK__SECRET", TEST_WEBHOOK_SECRET)
                // Where a worker without the endpoints would send them: nobody listens.
                .env("APP_NOTIFY__WEBHOOK__URL", format!("http://127.0.0.1:{closed}/nobody"))
                .env("RUST_LOG", "warn")
                .spawn()
                .unwrap(),
        );
        app.create_user("wes", "wes-password-1").await;
        let t = app.token("wes", &Scope::USER).await.1;
        let port = free_port();
        let body = json!({"url": format!("http://127.0.0.1:{port}/webhook"), "event_types": ["notification.delivered"]});
        let (s, _, created) = app.call(api("POST", "/api/v1/webhooks/endpoints", Some(&t), Some(body))).await;
        assert_eq!(s, StatusCode::CREATED, "{created}");
        let (id, secret) = (created["endpoint"]["id"].as_str().unwrap().to_string(), created["secret"].as_str().unwrap().to_string());
        let sink = notify::sink::Sink::start(format!("127.0.0.1:{port}").parse().unwrap(), notify::sink::SinkConfig { secret, ..Default::default() })
            .await
            .unwrap();
        sink.capture(10);

        let (s, _, _) = app.call(api("POST", &format!("/api/v1/webhooks/endpoints/{id}/test"), Some(&t), None)).await;
        assert!(s.is_success(), "{s}");
        let (s, _, sent) =
            app.call(api("POST", "/api/v1/notifications?backend=redis", Some(&t), Some(json!({"recipient": "r", "channel": "noop"})))).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{sent}");

        let deadline = Instant::now() + Duration::from_secs(30);
        while sink.stats().accepted < 2 {
            let exited = worker.0.try_wait().unwrap();
            assert!(exited.is_none() && Instant::now() < deadline, "worker {exited:?}; sink {:?}", sink.stats());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut types: Vec<String> = sink.captured().iter().map(|c| fits_the_catalogue(&c.body)["type"].as_str().unwrap().to_string()).collect();
        types.sort();
        assert_eq!(types, ["notification.delivered", "test.ping"]);
        assert_eq!(sink.stats().bad_signature, 0);
        let delivered = sink
            .captured()
            .into_iter()
            .map(|c| serde_json::from_slice::<Value>(&c.body).unwrap())
            .find(|e| e["type"] == "notification.delivered")
            .unwrap();
        assert_eq!(delivered["data"]["notification_id"], sent["ids"][0]);

        // The worker logged both attempts in the app database.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, _, page) = app.call(api("GET", &format!("/api/v1/webhooks/endpoints/{id}/attempts"), Some(&t), None)).await;
            let outcomes: Vec<&str> = page["items"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
            if outcomes == ["delivered", "delivered"] {
                break;
            }
            assert!(Instant::now() < deadline, "attempt log: {page}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::process::Command::new("kill").args(["-TERM", &worker.0.id().to_string()]).status().unwrap();
        let status = worker.0.wait().unwrap();
        assert!(status.success(), "worker exit after SIGTERM: {status:?}");
    })
}

#[test]
fn recovering_an_endpoint_sends_what_it_missed_and_shows_the_progress() {
    block_on(async {
        let app = app().await;
        app.state.notify.start().await.unwrap();
        app.create_user("rae", "rae-password-1").await;
        app.create_user("sid", "sid-password-1").await;
        let t = app.token("rae", &Scope::USER).await.1;
        let read_only = app.token("rae", &[Scope::WebhooksRead]).await.1;
        let stranger = app.token("sid", &Scope::USER).await.1;
        // Nothing listens there yet: the test event fails every attempt and is dead-lettered.
        let port = free_port();
        let body = json!({"url": format!("http://127.0.0.1:{port}/webhook"), "event_types": ["test.ping"]});
        let (_, _, created) = app.call(api("POST", "/api/v1/webhooks/endpoints", Some(&t), Some(body))).await;
        let (id, secret) = (created["endpoint"]["id"].as_str().unwrap().to_string(), created["secret"].as_str().unwrap().to_string());
        let since = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
        let since = since.format(&time::format_description::well_known::Rfc3339).unwrap();
        let (_, _, msg) = app.call(api("POST", &format!("/api/v1/webhooks/endpoints/{id}/test"), Some(&t), None)).await;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (_, _, page) = app.call(api("GET", &format!("/api/v1/webhooks/endpoints/{id}/attempts"), Some(&t), None)).await;
            if page["items"].as_array().is_some_and(|a| a.iter().any(|x| x["outcome"] == "failed")) {
                break;
            }
            assert!(Instant::now() < deadline, "no failed attempt: {page}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let recover = |token: &str, body: Value| api("POST", &format!("/api/v1/webhooks/endpoints/{id}/recover"), Some(token), Some(body));
        let (s, _, p) = app.call(recover(&t, json!({"since": "yesterday"}))).await;
        assert_eq!((s.as_u16(), p["errors"][0]["field"].as_str()), (422, Some("since")), "{p}");
        assert_eq!(app.call(recover(&read_only, json!({"since": since}))).await.0, StatusCode::FORBIDDEN);
        assert_eq!(app.call(recover(&stranger, json!({"since": since}))).await.0, StatusCode::NOT_FOUND);
        app.call(api("POST", &format!("/api/v1/webhooks/endpoints/{id}/disable"), Some(&t), None)).await;
        let (s, _, p) = app.call(recover(&t, json!({"since": since}))).await;
        assert_eq!((s.as_u16(), p["code"].as_str()), (409, Some("conflict")), "{p}");
        app.call(api("POST", &format!("/api/v1/webhooks/endpoints/{id}/enable"), Some(&t), None)).await;

        // The receiver is up now: the missed test event goes out once more, with its own webhook-id.
        let sink = notify::sink::Sink::start(format!("127.0.0.1:{port}").parse().unwrap(), notify::sink::SinkConfig { secret, ..Default::default() })
            .await
            .unwrap();
        let (s, _, started) = app.call(recover(&t, json!({"since": since}))).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{started}");
        assert_eq!((started["total"].as_u64(), started["status"].as_str()), (Some(1), Some("running")), "{started}");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (s, _, list) = app.call(api("GET", &format!("/api/v1/webhooks/endpoints/{id}/recoveries"), Some(&read_only), None)).await;
            assert_eq!(s, StatusCode::OK, "{list}");
            let r = &list["items"][0];
            if r["status"] == "completed" && sink.stats().accepted == 1 {
                assert_eq!((r["id"].as_str(), r["sent"].as_u64()), (started["id"].as_str(), Some(1)), "{r}");
                break;
            }
            assert!(Instant::now() < deadline, "not recovered: {list} {:?}", sink.stats());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(sink.counts().get(msg["id"].as_str().unwrap()), Some(&1));
        let (s, _, _) = app.call(api("GET", &format!("/api/v1/webhooks/endpoints/{id}/recoveries"), Some(&stranger), None)).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    })
}

#[test]
fn an_endpoint_rate_limit_is_set_shown_and_checked_over_the_api() {
    block_on(async {
        let app = app().await;
        app.create_user("tia", "tia-password-1").await;
        let t = app.token("tia", &Scope::USER).await.1;
        let new = |rate: Value| json!({"url": "http://127.0.0.1:9/hook", "rate_limit_per_sec": rate});
        let (s, _, p) = app.call(api("POST", "/api/v1/webhooks/endpoints", Some(&t), Some(new(json!(0))))).await;
        assert_eq!((s.as_u16(), p["errors"][0]["field"].as_str()), (422, Some("rate_limit_per_sec")), "{p}");
        let (s, _, created) = app.call(api("POST", "/api/v1/webhooks/endpoints", Some(&t), Some(new(json!(25))))).await;
        assert_eq!(s, StatusCode::CREATED, "{created}");
        assert_eq!(created["endpoint"]["rate_limit_per_sec"], 25);
        let id = created["endpoint"]["id"].as_str().unwrap();
        let (_, _, updated) =
            app.call(api("PATCH", &format!("/api/v1/webhooks/endpoints/{id}"), Some(&t), Some(json!({"rate_limit_per_sec": 0})))).await;
        assert_eq!(updated["rate_limit_per_sec"], Value::Null, "0 removes it: {updated}");
    })
}
