//! Multi-user isolation and limits (issue 14): inbound sources belong to one owner, runs carry who
//! started them, system event types are reserved, one owner's slow runs leave engine slots to others,
//! and per-owner quotas on active runs, stored definitions and stored bytes.

use crate::common;
use contract::Owner;
use contract::PublicError;

use common::*;
use flows::*;
use serde_json::json;
use std::time::{Duration, Instant};

const ALICE: Owner = SOURCE_OWNER;
const BOB: Owner = Owner::from_static("bob");

fn fields(e: &FlowsError) -> Vec<String> {
    e.field_errors().iter().map(|f| f.field.clone()).collect()
}

/// A run of `owner` made to wait on (`crm`, `correlation`) directly in the table, as a run from before
/// sources had owners would be (no engine drives it).
async fn waiting_run(store: &Store, owner: &Owner, correlation: &str, token: &str) -> RunId {
    sqlx::query("INSERT INTO workflow_definitions (owner, name, version, format, source, created_at_ms, updated_at_ms) VALUES ($1, 'legacy', 1, 'json', $2, 0, 0)")
        .bind(owner)
        .bind(json!({"name": "legacy", "steps": [{"name": "w", "action": {"type": "delay", "ms": 1}}]}).to_string())
        .execute(store.pool())
        .await
        .unwrap();
    let new = NewRun { definition: DefinitionRef::Name("legacy".into()), input: json!({}), idempotency_key: None, started_by: StartedBy::session() };
    let id = store.start_run(owner, new).await.unwrap();
    sqlx::query(
        "UPDATE workflow_runs SET status = 'waiting', waiting_source = 'crm', waiting_correlation = $1, waiting_token = $2, wake_at_ms = $3 WHERE id = $4",
    )
    .bind(correlation)
    .bind(token)
    .bind(i64::MAX / 2)
    .bind(&id)
    .execute(store.pool())
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn a_message_for_alices_source_never_reaches_bobs_run_waiting_on_it() {
    for db in db::testing::engines().await {
        let store = store(&db).await;
        // Bob's run waits first (older), on the very source and correlation of Alice's.
        let bobs = waiting_run(&store, &BOB, "order-1", "tok-bob").await;
        let alices = waiting_run(&store, &ALICE, "order-1", "tok-alice").await;
        assert_eq!(
            store.deliver_inbound("crm", "order-1", &json!({"secret": "alice's"})).await.unwrap(),
            Some(alices.clone()),
            "{}",
            db.engine.as_str()
        );
        // However many come, none is Bob's.
        assert_ne!(store.deliver_inbound("crm", "order-1", &json!({"n": 2})).await.unwrap(), Some(bobs.clone()));
        let bob = store.get_run(&BOB, &bobs).await.unwrap();
        assert_eq!(bob.status, RunStatus::Waiting, "untouched");
        let (taken,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM workflow_inbox WHERE consumed_by = 'tok-bob'").fetch_one(store.pool()).await.unwrap();
        assert_eq!(taken, 0);
    }
}

#[tokio::test]
async fn a_workflow_may_only_wait_on_its_owners_sources_and_never_emit_a_system_event() {
    for db in db::testing::engines().await {
        let store = store(&db).await;
        let waits = |source: &str| {
            json!({"name": "w", "steps": [{"name": "confirm", "action": {"type": "wait_inbound", "source": source, "correlation": "{{run.id}}", "timeout_ms": 1000}}]})
                .to_string()
        };
        store.create_definition(&ALICE, &waits("crm"), Format::Json).await.expect("alice owns crm");
        let e = store.create_definition(&BOB, &waits("crm"), Format::Json).await.unwrap_err();
        assert_eq!((e.status(), fields(&e)), (::http::StatusCode::UNPROCESSABLE_ENTITY.as_u16(), vec!["steps[0].action.source".to_string()]), "{e}");
        assert!(e.to_string().contains("not an inbound source of yours"), "{e}");
        let e = store.create_definition(&BOB, &waits("nobody-has-this"), Format::Json).await.unwrap_err();
        assert_eq!(fields(&e), ["steps[0].action.source"], "an unknown source reads the same as someone else's");
        // Replacing a definition and one-off (inline) runs are held to the same rule.
        let own = store.create_definition(&BOB, &json!({"name": "b", "steps": [call_step("a", false)]}).to_string(), Format::Json).await.unwrap();
        assert_eq!(fields(&store.update_definition(&BOB, own.id, &waits("crm"), Format::Json).await.unwrap_err()), ["steps[0].action.source"]);
        let e = store.start_run(&BOB, inline(WorkflowDefinition::from_json(&waits("crm")).unwrap(), json!({}))).await.unwrap_err();
        assert_eq!(fields(&e), ["steps[0].action.source"]);

        let emits = |t: &str, compensate: &str| {
            json!({"name": "e", "steps": [{"name": "s", "action": {"type": "emit_event", "event_type": t},
                "compensate": {"type": "emit_event", "event_type": compensate}}]})
            .to_string()
        };
        for reserved in ["endpoint.disabled", "workflow.completed", "notification.delivered", "test.ping", "Workflow.{{input.x}}"] {
            let e = store.create_definition(&ALICE, &emits(reserved, "customer.undone"), Format::Json).await.unwrap_err();
            assert_eq!(fields(&e), ["steps[0].action.event_type"], "{reserved}: {e}");
        }
        let e = store.create_definition(&ALICE, &emits("customer.created", "endpoint.disabled"), Format::Json).await.unwrap_err();
        assert_eq!(fields(&e), ["steps[0].compensate.event_type"]);
        store.create_definition(&ALICE, &emits("customer.created", "customer.undone"), Format::Json).await.expect("user event types are fine");
    }
}

#[tokio::test]
async fn a_system_event_type_made_by_a_template_is_refused_when_the_step_runs() {
    for db in db::testing::engines().await {
        let store = store(&db).await;
        let host = ScriptedHost::new("a");
        let engine = engine(&store, host.clone(), "a").await;
        let d = def(
            json!({"name": "t", "input": ["kind"], "steps": [{"name": "emit", "action": {"type": "emit_event", "event_type": "{{input.kind}}"}}]}),
        );
        let id = engine.start_run(&ALICE, inline(d, json!({"kind": "endpoint.disabled"}))).await.unwrap();
        let run = wait_status(&store, &ALICE, &id, RunStatus::Failed).await;
        assert_eq!(run.error_code.as_deref(), Some("reserved_event_type"), "{run:?}");
        assert!(host.calls_for(&id).is_empty(), "the host never saw it");
        engine.shutdown().await;
    }
}

#[tokio::test]
async fn a_run_carries_who_started_it_to_every_step_and_a_retry_carries_the_retrier() {
    for db in db::testing::engines().await {
        let store = store(&db).await;
        let host = ScriptedHost::new("a");
        host.fail_always("a", StepError::permanent("boom", "no"));
        let engine = engine(&store, host.clone(), "a").await;
        let by = StartedBy::token(7, ["workflows:write"]);
        let new = NewRun { started_by: by.clone(), ..inline(def(json!({"name": "t", "steps": [call_step("a", false)]})), json!({})) };
        let id = engine.start_run(&ALICE, new).await.unwrap();
        let run = wait_status(&store, &ALICE, &id, RunStatus::Failed).await;
        assert_eq!(run.started_by, by);
        assert!(!by.allows("notifications:write") && by.allows("workflows:write"));
        assert_eq!(host.contexts.lock().unwrap().iter().map(|c| c.started_by.clone()).collect::<Vec<_>>(), vec![by.clone()], "the host sees it");

        host.script.lock().unwrap().fail_always.clear();
        let r = engine.retry_run(&ALICE, &id, &StartedBy::session()).await.unwrap();
        assert_eq!(r.started_by, StartedBy::session());
        wait_status(&store, &ALICE, &id, RunStatus::Completed).await;
        assert_eq!(host.contexts.lock().unwrap().last().unwrap().started_by, StartedBy::session());
        engine.shutdown().await;
    }
}

#[tokio::test]
async fn bobs_built_in_onboarding_fails_at_the_wait_on_alices_crm_and_compensates() {
    for db in db::testing::engines().await {
        let store = store(&db).await;
        let host = ScriptedHost::new("a");
        let engine = engine(&store, host.clone(), "a").await;
        // The built-in example installs for everyone (it waits on `crm`, which is Alice's)...
        let onboarding = store.install_builtins(&BOB).await.unwrap().into_iter().find(|d| d.name == "customer_onboarding").unwrap();
        let new = NewRun {
            definition: DefinitionRef::Id(onboarding.id),
            ..inline(def(json!({"name": "x", "steps": [call_step("a", false)]})), json!({"email": "b@example.com", "name": "B"}))
        };
        let id = engine.start_run(&BOB, new).await.unwrap();
        // ...but Bob's run cannot wait on Alice's source: it fails there at once, and undoes its steps.
        let run = wait_status(&store, &BOB, &id, RunStatus::Failed).await;
        assert_eq!(run.error_code.as_deref(), Some("inbound_source_not_yours"), "{run:?}");
        assert_eq!(host.trace(&id)[3..], ["notify_crm/compensate", "send_welcome/compensate", "create_account/compensate"]);
        engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_owners_slow_runs_leave_engine_slots_for_another_owners_run() {
    for db in db::testing::engines().await {
        let store = store(&db).await;
        let host = ScriptedHost::new("a");
        host.sleep("slow", 3000);
        // 4 slots, at most 2 of them one owner's.
        let cfg = EngineConfig { max_concurrent_runs: 4, max_runs_per_owner: 2, ..config("a") };
        let engine = Engine::new(store.clone(), host.clone(), cfg);
        engine.spawn().await;
        let slow = def(json!({"name": "tarpit", "steps": [{"name": "slow", "action": {"type": "call", "name": "slow"}, "timeout_ms": 10000}]}));
        let mut hog = vec![];
        for _ in 0..10 {
            hog.push(engine.start_run(&Owner::from("mallory"), inline(slow.clone(), json!({}))).await.unwrap());
        }
        // Let the hog's runs take what they can.
        wait_for("the hog's runs to start", Duration::from_secs(5), || async { host.calls.lock().unwrap().len() >= 2 }).await;
        let started = Instant::now();
        let quick = engine.start_run(&BOB, inline(def(json!({"name": "q", "steps": [call_step("a", false)]})), json!({}))).await.unwrap();
        wait_status(&store, &BOB, &quick, RunStatus::Completed).await;
        assert!(started.elapsed() < Duration::from_millis(2000), "bob waited {:?} behind mallory's runs", started.elapsed());
        let busy = host.calls.lock().unwrap().iter().filter(|c| c.step == "slow").count();
        assert_eq!(busy, 2, "mallory holds at most her share");
        engine.shutdown().await;
    }
}

#[tokio::test]
async fn active_runs_and_stored_definitions_are_capped_per_owner() {
    for db in db::testing::engines().await {
        let store = store(&db).await.with_limits(Limits { max_active_runs_per_owner: 2, max_definitions_per_owner: 2 });
        let d = def(json!({"name": "t", "steps": [call_step("a", false)]}));
        for _ in 0..2 {
            store.start_run(&ALICE, inline(d.clone(), json!({}))).await.unwrap();
        }
        let e = store.start_run(&ALICE, inline(d.clone(), json!({}))).await.unwrap_err();
        assert_eq!((e.status(), e.code()), (::http::StatusCode::TOO_MANY_REQUESTS.as_u16(), "quota_exceeded"), "{e}");
        assert!(e.to_string().contains("2 workflow runs in progress"), "{e}");
        store.start_run(&BOB, inline(d.clone(), json!({}))).await.expect("bob has his own quota");
        // A repeated idempotency key is not a new run.
        let keyed = |k: &str| NewRun { idempotency_key: Some(k.into()), ..inline(d.clone(), json!({})) };
        let bobs = store.start_run(&BOB, keyed("k")).await.unwrap();
        assert_eq!(store.start_run(&BOB, keyed("k")).await.unwrap(), bobs);

        let text = |name: &str| json!({"name": name, "steps": [call_step("a", false)]}).to_string();
        store.install_builtins(&ALICE).await.unwrap();
        store.create_definition(&ALICE, &text("one"), Format::Json).await.unwrap();
        store.create_definition(&ALICE, &text("two"), Format::Json).await.expect("the built-in example does not count");
        let e = store.create_definition(&ALICE, &text("three"), Format::Json).await.unwrap_err();
        assert_eq!((e.status(), e.code()), (::http::StatusCode::UNPROCESSABLE_ENTITY.as_u16(), "quota_exceeded"), "{e}");
        assert_eq!(store.list_definitions(&ALICE, Page::first(10)).await.unwrap().items.len(), 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_input_and_each_step_output_count_against_its_owners_stored_bytes() {
    for db in db::testing::engines().await {
        let e = db.engine.as_str();
        let store = store(&db).await;
        let host = ScriptedHost::new("a");
        let engine = engine(&store, host.clone(), "a").await;
        // `{"email":"x@example.com"}` is 25 bytes; each `call` output (`{"args":…,"attempt":1,"call":…}`) is more.
        let input = json!({"email": "x@example.com"});
        let d = def(json!({"name": "store", "steps": [call_step("first", true), call_step("second", false)]}));
        let out_len = |name: &str| json!({"call": name, "args": null, "attempt": 1}).to_string().len() as u64;
        // Room for the input and the first output, not the second's; undoing is never refused.
        host.storage(&[ALICE, BOB], 25 + out_len("first") + 5);
        // Over the allowance, a start is refused (429) and stores nothing.
        let big = json!({"email": "x".repeat(400)});
        let err = engine.start_run(&ALICE, inline(d.clone(), big)).await.unwrap_err();
        assert!(matches!(err, FlowsError::Quota { transient: true, .. }) && err.status() == 429, "{e}: {err:?}");
        assert!(store.list_runs(&ALICE, &RunFilter::default(), Page::default()).await.unwrap().items.is_empty(), "{e}");
        // Within it, the run starts; the first output fits, the second does not: the step fails for good
        // (`quota_exceeded`, not retried) and the first is compensated.
        let id = engine.start_run(&ALICE, inline(d.clone(), input.clone())).await.unwrap();
        let run = wait_status(&store, &ALICE, &id, RunStatus::Failed).await;
        assert_eq!((run.failed_step, run.error_code.as_deref()), (Some(1), Some("quota_exceeded")), "{e}");
        assert_eq!(host.trace(&id), ["first", "second", "first/compensate"], "{e}");
        assert_eq!(run.steps[1].output, None, "{e}: the refused output is not kept");
        // Bob's allowance is his own.
        let bob = engine.start_run(&BOB, inline(d, input)).await.unwrap();
        assert_eq!(wait_status(&store, &BOB, &bob, RunStatus::Failed).await.error_code.as_deref(), Some("quota_exceeded"), "{e}");
        engine.shutdown().await;
    }
}
