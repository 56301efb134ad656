//! The engine against every database engine: happy path, retries, failures and the saga, waits,
//! delays, cancel, manual retry, leases between two engines and graceful shutdown.

use crate::common;
use contract::Owner;
use contract::PublicError;

use common::*;
use flows::*;
use serde_json::json;
use std::time::{Duration, Instant};

const OWNER: Owner = Owner::from_static("alice");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_runs_every_step_once_in_order_with_outputs_and_a_timeline() {
    for db in db::testing::engines().await {
        let store = store(&db).await;
        let host = ScriptedHost::new("a");
        let engine = engine(&store, host.clone(), "a").await;
        let d = def(json!({"name": "happy", "input": ["email"], "steps": [
            {"name": "create", "action": {"type": "call", "name": "create_account", "args": {"email": "{{input.email}}"}}},
            {"name": "welcome", "action": {"type": "notify", "channel": "email", "recipient": "{{input.email}}",
                "payload": {"account": "{{steps.create.output.id}}", "run": "{{run.id}}"}}},
            {"name": "event", "action": {"type": "emit_event", "event_type": "customer.created", "payload": {"id": "{{steps.create.output.id}}"}}},
        ]}));
        let id = engine.start_run(&OWNER, inline(d, json!({"email": "bob@example.com"}))).await.unwrap();
        let run = wait_status(&store, &OWNER, &id, RunStatus::Completed).await;
        assert_eq!(host.trace(&id), ["create", "welcome", "event"], "{}", db.engine.as_str());
        let calls = host.calls_for(&id);
        assert_eq!(
            calls[1].action,
            ResolvedAction::Notify {
                channel: "email".into(),
                recipient: "bob@example.com".into(),
                payload: json!({"account": "acc_bob@example.com", "run": id}),
            }
        );
        assert_eq!(run.steps[0].output, Some(json!({"id": "acc_bob@example.com"})));
        assert!(run.steps.iter().all(|s| s.status == StepStatus::Completed));
        assert!(run.finished_at_ms.is_some() && run.error_code.is_none());
        let t = engine.timeline(&OWNER, &id).await.unwrap();
        assert_eq!(outcomes(&t), ["create/forward:succeeded", "welcome/forward:succeeded", "event/forward:succeeded"]);
        let a = &t.entries[0].attempts[0];
        assert!(a.finished_at_ms.unwrap() >= a.started_at_ms);
        assert_eq!(a.worker.as_deref(), Some("a"));
        assert_eq!(a.output, Some(json!({"id": "acc_bob@example.com"})));
        let finished = host.finished_runs(1).await;
        assert_eq!(finished.len(), 1);
        assert_eq!((finished[0].id.as_str(), finished[0].status), (id.as_str(), RunStatus::Completed));
        engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_failure_is_retried_with_backoff_then_succeeds() {
    for db in db::testing::engines().await {
        let store = store(&db).await;
        let host = ScriptedHost::new("a");
        host.fail_first("flaky", 2, StepError::retryable("unavailable", "try later"));
        let engine = engine(&store, host.clone(), "a").await;
        let mut flaky = call_step("flaky", false);
        flaky["retry"] = json!({"initial_interval_ms": 100, "backoff_coefficient": 2.0, "max_interval_ms": 1000, "max_attempts": 3});
        let d = def(json!({"name": "retry", "steps": [flaky, call_step("after", false)]}));
        let id = engine.start_run(&OWNER, inline(d, json!({}))).await.unwrap();
        wait_status(&store, &OWNER, &id, RunStatus::Completed).await;
        assert_eq!(host.trace(&id), ["flaky", "flaky", "flaky", "after"]);
        let t = engine.timeline(&OWNER, &id).await.unwrap();
        assert_eq!(t.entries.len(), 2, "three attempts of one step are one timeline entry");
        let a = &t.entries[0].attempts;
        assert_eq!(
            a.iter().map(|x| (x.attempt, x.outcome)).collect::<Vec<_>>(),
            [(1, AttemptOutcome::Failed), (2, AttemptOutcome::Failed), (3, AttemptOutcome::Succeeded)]
        );
        assert_eq!(a[0].error_code.as_deref(), Some("unavailable"));
        // Equal jitter: the first retry waits 50..=100 ms, the second 100..=200 ms, as scheduled.
        for (k, (lo, hi)) in [(0usize, (50i64, 100i64)), (1, (100, 200))] {
            let planned = a[k].next_attempt_at_ms.unwrap() - a[k].finished_at_ms.unwrap();
            assert!((lo..=hi).contains(&planned), "retry {k} planned after {planned} ms");
            assert!(a[k + 1].started_at_ms >= a[k].next_attempt_at_ms.unwrap(), "attempt {} started before its time", k + 2);
        }
        engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_retryable_failure_fails_at_once_and_compensates_the_completed_steps() {
    for db in db::testing::engines().await {
        let store = store(&db).await;
        let host = ScriptedHost::new("a");
        // Retryable as far as the host knows, but listed in the step's non_retryable codes.
        host.fail_always("charge", StepError::retryable("card_declined", "declined"));
        let engine = engine(&store, host.clone(), "a").await;
        let mut charge = call_step("charge", true);
        charge["retry"]["non_retryable"] = json!(["card_declined"]);
        let d = def(json!({"name": "nonretry", "steps": [call_step("reserve", true), charge, call_step("ship", true)]}));
        let id = engine.start_run(&OWNER, inline(d, json!({}))).await.unwrap();
        let run = wait_status(&store, &OWNER, &id, RunStatus::Failed).await;
        assert_eq!(host.trace(&id), ["reserve", "charge", "reserve/compensate"], "the failed step itself is not compensated");
        assert_eq!((run.failed_step, run.error_code.as_deref()), (Some(1), Some("card_declined")));
        assert_eq!(run.steps.iter().map(|s| s.status).collect::<Vec<_>>(), [StepStatus::Compensated, StepStatus::Failed, StepStatus::Pending]);
        assert_eq!(host.finished_runs(1).await[0].failed_step.as_deref(), Some("charge"));

        // A permanent error from the host fails at once too, whatever the policy.
        host.fail_always("reserve", StepError::permanent("out_of_stock", "none left"));
        let d = def(json!({"name": "permanent", "steps": [call_step("reserve", true)]}));
        let id = engine.start_run(&OWNER, inline(d, json!({}))).await.unwrap();
        let run = wait_status(&store, &OWNER, &id, RunStatus::Failed).await;
        assert_eq!(host.trace(&id), ["reserve"]);
        assert_eq!(run.error_code.as_deref(), Some("out_of_stock"));
        engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compensation_runs_in_reverse_order_of_the_completed_steps() {
    for db in db::testing::engines().await {
        let store = store(&db).await;
        let host = ScriptedHost::new("a");
        host.fail_always("e", StepError::retryable("boom", "always fails"));
        host.fail_first("c/compensate", 1, StepError::retryable("blip", "compensations retry too"));
        let engine = engine(&store, host.clone(), "a").await;
        // b has nothing to undo; f never ran.
        let steps = json!([
            call_step("a", true),
            call_step("b", false),
            call_step("c", true),
            call_step("d", true),
            call_step("e", true),
            call_step("f", true)
        ]);
        let id = engine.start_run(&OWNER, inline(def(json!({"name": "saga", "steps": steps})), json!({}))).await.unwrap();
        let run = wait_status(&store, &OWNER, &id, RunStatus::Failed).await;
        assert_eq!(
            host.trace(&id),
            [
                "a",
                "b",
                "c",
                "d",
                "e",
                "e",
                "e", // three attempts, then for good
                "d/compensate",
                "c/compensate",
                "c/compensate",
                "a/compensate",
            ]
        );
        let t = engine.timeline(&OWNER, &id).await.unwrap();
        let comp: Vec<(String, i64)> =
            t.entries.iter().filter(|e| e.phase == Phase::Compensate).map(|e| (e.step_name.clone(), e.attempts.len() as i64)).collect();
        assert_eq!(comp, [("d".to_string(), 1), ("c".to_string(), 2), ("a".to_string(), 1)]);
        assert_eq!(
            run.steps.iter().map(|s| s.status).collect::<Vec<_>>(),
            [
                StepStatus::Compensated,
                StepStatus::Completed,
                StepStatus::Compensated,
                StepStatus::Compensated,
                StepStatus::Failed,
                StepStatus::Pending
            ]
        );
        // The compensation sees its own step's output.
        let d_undo = host.calls_for(&id).into_iter().find(|c| c.step == "d" && c.phase == Phase::Compensate).unwrap();
        assert_eq!(d_undo.action, ResolvedAction::Call { name: "undo_d".into(), args: serde_json::Value::Null });
        engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_compensation_ends_compensation_failed_and_retry_resumes_the_compensations() {
    for db in db::testing::engines().await {
        let store = store(&db).await;
        let host = ScriptedHost::new("a");
        host.fail_always("c", StepError::permanent("bad", "no"));
        host.fail_always("b/compensate", StepError::retryable("down", "undo service down"));
        let engine = engine(&store, host.clone(), "a").await;
        let steps = json!([call_step("a", true), call_step("b", true), call_step("c", true)]);
        let id = engine.start_run(&OWNER, inline(def(json!({"name": "compfail", "steps": steps})), json!({}))).await.unwrap();
        let run = wait_status(&store, &OWNER, &id, RunStatus::CompensationFailed).await;
        assert_eq!(host.trace(&id), ["a", "b", "c", "b/compensate", "b/compensate", "b/compensate"], "a is not undone past a failed undo");
        assert_eq!(run.failed_step, Some(2));
        assert_eq!(run.error_code.as_deref(), Some("down"));
        assert!(run.error_message.as_deref().unwrap().starts_with("compensation of step b failed"));

        host.script.lock().unwrap().fail_always.remove("b/compensate");
        let r = engine.retry_run(&OWNER, &id, &StartedBy::session()).await.unwrap();
        assert_eq!(r.status, RunStatus::Compensating);
        wait_status(&store, &OWNER, &id, RunStatus::Failed).await;
        assert_eq!(&host.trace(&id)[6..], ["b/compensate", "a/compensate"]);
        engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_a_failed_run_redoes_the_undone_steps_and_keeps_the_standing_ones() {
    for db in db::testing::engines().await {
        let store = store(&db).await;
        let host = ScriptedHost::new("a");
        host.fail_always("c", StepError::permanent("bad", "no"));
        let engine = engine(&store, host.clone(), "a").await;
        // a is undone by the saga, b has no compensation (its effect stands), c fails.
        let steps = json!([call_step("a", true), call_step("b", false), call_step("c", true)]);
        let id = engine.start_run(&OWNER, inline(def(json!({"name": "retry_me", "steps": steps})), json!({}))).await.unwrap();
        wait_status(&store, &OWNER, &id, RunStatus::Failed).await;
        assert_eq!(host.trace(&id), ["a", "b", "c", "a/compensate"]);
        let conflict = engine.retry_run(&OWNER, "no-such-run", &StartedBy::session()).await.unwrap_err();
        assert_eq!(conflict.status(), ::http::StatusCode::NOT_FOUND.as_u16());

        host.script.lock().unwrap().fail_always.clear();
        let r = engine.retry_run(&OWNER, &id, &StartedBy::session()).await.unwrap();
        assert_eq!((r.status, r.current_step, r.error_code.clone()), (RunStatus::Running, 0, None));
        let run = wait_status(&store, &OWNER, &id, RunStatus::Completed).await;
        assert_eq!(&host.trace(&id)[4..], ["a", "c"], "b still stands and is not repeated");
        assert!(run.steps.iter().all(|s| s.status == StepStatus::Completed));
        let again = engine.retry_run(&OWNER, &id, &StartedBy::session()).await.unwrap_err();
        assert_eq!(again.status(), ::http::StatusCode::CONFLICT.as_u16(), "a completed run is not retried");
        engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_inbound_is_resumed_by_deliver_inbound_and_its_payload_is_the_step_output() {
    for db in db::testing::engines().await {
        let store = store(&db).await;
        let host = ScriptedHost::new("a");
        let engine = engine(&store, host.clone(), "a").await;
        let d = def(json!({"name": "waits", "steps": [
            call_step("a", true),
            {"name": "confirm", "action": {"type": "wait_inbound", "source": "crm", "correlation": "order-{{run.id}}", "timeout_ms": 60000}},
            {"name": "after", "action": {"type": "call", "name": "after", "args": {"crm_id": "{{steps.confirm.output.crm_id}}"}}},
        ]}));
        let id = engine.start_run(&OWNER, inline(d, json!({}))).await.unwrap();
        let run = wait_status(&store, &OWNER, &id, RunStatus::Waiting).await;
        let correlation = format!("order-{id}");
        assert_eq!((run.waiting_source.as_deref(), run.waiting_correlation.as_deref()), (Some("crm"), Some(correlation.as_str())));
        assert_eq!(engine.deliver_inbound("crm", "order-other", &json!({})).await.unwrap(), None, "another correlation");
        assert_eq!(engine.deliver_inbound("erp", &correlation, &json!({})).await.unwrap(), None, "another source");
        assert_eq!(engine.deliver_inbound("crm", &correlation, &json!({"crm_id": 42})).await.unwrap().as_deref(), Some(id.as_str()));
        let run = wait_status(&store, &OWNER, &id, RunStatus::Completed).await;
        assert_eq!(run.steps[1].output, Some(json!({"crm_id": 42})));
        let after = host.calls_for(&id).pop().unwrap();
        assert_eq!(after.action, ResolvedAction::Call { name: "after".into(), args: json!({"crm_id": 42}) });
        let t = engine.timeline(&OWNER, &id).await.unwrap();
        assert_eq!(outcomes(&t), ["a/forward:succeeded", "confirm/forward:succeeded", "after/forward:succeeded"]);
        assert_eq!(engine.deliver_inbound("crm", &correlation, &json!({"late": true})).await.unwrap(), None, "nobody waits any more");

        // A confirmation that arrives before the run reaches its wait is kept and taken on arrival.
        let d = def(json!({"name": "early", "steps": [
            {"name": "slow", "action": {"type": "call", "name": "slow"}},
            {"name": "confirm", "action": {"type": "wait_inbound", "source": "crm", "correlation": "{{input.ref}}", "timeout_ms": 60000}},
        ]}));
        host.sleep("slow", 300);
        let id = engine.start_run(&OWNER, inline(d, json!({"ref": "early-1"}))).await.unwrap();
        assert_eq!(engine.deliver_inbound("crm", "early-1", &json!({"ok": 1})).await.unwrap(), None);
        let run = wait_status(&store, &OWNER, &id, RunStatus::Completed).await;
        assert_eq!(run.steps[1].output, Some(json!({"ok": 1})));
        engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_onboarding_example_compensates_in_reverse_when_the_crm_never_confirms() {
    for db in db::testing::engines().await {
        let store = store(&db).await;
        let host = ScriptedHost::new("a");
        let engine = engine(&store, host.clone(), "a").await;
        let mut d = builtin::onboarding();
        if let Action::WaitInbound { timeout_ms, .. } = &mut d.steps[3].action {
            *timeout_ms = 300;
        }
        let started = Instant::now();
        let input = json!({"email": "eve@example.com", "name": "Eve"});
        let id = engine.start_run(&OWNER, inline(d.clone(), input.clone())).await.unwrap();
        let run = wait_status(&store, &OWNER, &id, RunStatus::Failed).await;
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(run.error_code.as_deref(), Some("inbound_timeout"));
        assert_eq!(
            host.trace(&id),
            ["create_account", "send_welcome", "notify_crm", "notify_crm/compensate", "send_welcome/compensate", "create_account/compensate",]
        );
        let undo = host.calls_for(&id).pop().unwrap();
        assert_eq!(undo.action, ResolvedAction::Call { name: "delete_account".into(), args: json!({"account_id": "acc_eve@example.com"}) });
        let t = engine.timeline(&OWNER, &id).await.unwrap();
        assert_eq!(outcomes(&t)[3], "wait_crm_confirmation/forward:failed");

        // And when the CRM confirms, it completes.
        let id = engine.start_run(&OWNER, inline(builtin::onboarding(), input)).await.unwrap();
        wait_status(&store, &OWNER, &id, RunStatus::Waiting).await;
        let emitted = host.calls_for(&id)[2].action.clone();
        let ResolvedAction::EmitEvent { event_type, payload } = emitted else { panic!("{emitted:?}") };
        assert_eq!(event_type, "customer.created");
        assert_eq!(payload["correlation_id"], json!(id));
        assert!(engine.deliver_inbound("crm", &id, &json!({"crm_customer_id": "c-9"})).await.unwrap().is_some());
        wait_status(&store, &OWNER, &id, RunStatus::Completed).await;
        engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_is_a_durable_timer_in_the_run() {
    for db in db::testing::engines().await {
        let store = store(&db).await;
        let host = ScriptedHost::new("a");
        let engine = engine(&store, host.clone(), "a").await;
        let d = def(
            json!({"name": "delayed", "steps": [call_step("a", false), {"name": "pause", "action": {"type": "delay", "ms": 400}}, call_step("b", false)]}),
        );
        let started = Instant::now();
        let id = engine.start_run(&OWNER, inline(d, json!({}))).await.unwrap();
        wait_for("the delay to start", Duration::from_secs(10), || async { store.get_run(&OWNER, &id).await.unwrap().current_step == 1 }).await;
        let run = store.get_run(&OWNER, &id).await.unwrap();
        assert_eq!(run.status, RunStatus::Running);
        assert!(run.wake_at_ms.unwrap() > run.created_at_ms + 300, "the timer is in the row: {run:?}");
        let run = wait_status(&store, &OWNER, &id, RunStatus::Completed).await;
        assert!(started.elapsed() >= Duration::from_millis(400));
        assert_eq!(run.steps[1].output, Some(json!({"delayed_ms": 400})));
        assert_eq!(host.trace(&id), ["a", "b"]);
        let t = engine.timeline(&OWNER, &id).await.unwrap();
        let pause = &t.entries[1].attempts[0];
        assert!(pause.finished_at_ms.unwrap() - pause.started_at_ms >= 400);
        engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_undoes_the_completed_steps_and_ends_cancelled() {
    for db in db::testing::engines().await {
        let store = store(&db).await;
        let host = ScriptedHost::new("a");
        let engine = engine(&store, host.clone(), "a").await;
        let d = def(json!({"name": "cancel_me", "steps": [
            call_step("a", true), call_step("b", true),
            {"name": "confirm", "action": {"type": "wait_inbound", "source": "crm", "correlation": "{{run.id}}", "timeout_ms": 600000}},
            call_step("c", true),
        ]}));
        let id = engine.start_run(&OWNER, inline(d, json!({}))).await.unwrap();
        wait_status(&store, &OWNER, &id, RunStatus::Waiting).await;
        let other = engine.cancel_run(&Owner::from("mallory"), &id).await.unwrap_err();
        assert_eq!(other.status(), ::http::StatusCode::NOT_FOUND.as_u16(), "another owner's run does not exist for them");
        let r = engine.cancel_run(&OWNER, &id).await.unwrap();
        assert!(r.cancel_requested);
        let run = wait_status(&store, &OWNER, &id, RunStatus::Cancelled).await;
        assert_eq!(host.trace(&id), ["a", "b", "b/compensate", "a/compensate"]);
        assert_eq!(run.error_code.as_deref(), Some("cancelled"));
        let t = engine.timeline(&OWNER, &id).await.unwrap();
        assert_eq!(outcomes(&t)[2], "confirm/forward:cancelled");
        assert_eq!(engine.cancel_run(&OWNER, &id).await.unwrap_err().status(), ::http::StatusCode::CONFLICT.as_u16());
        assert_eq!(engine.retry_run(&OWNER, &id, &StartedBy::session()).await.unwrap_err().status(), ::http::StatusCode::CONFLICT.as_u16());
        engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_template_value_fails_the_step_without_retrying_and_a_slow_host_times_out() {
    for db in db::testing::engines().await {
        let store = store(&db).await;
        let host = ScriptedHost::new("a");
        host.sleep("slow", 400);
        let engine = engine(&store, host.clone(), "a").await;
        let d = def(json!({"name": "tmpl", "steps": [
            call_step("a", true),
            {"name": "b", "action": {"type": "call", "name": "b", "args": {"x": "{{input.missing}}"}}},
        ]}));
        let id = engine.start_run(&OWNER, inline(d, json!({}))).await.unwrap();
        let run = wait_status(&store, &OWNER, &id, RunStatus::Failed).await;
        assert_eq!(host.trace(&id), ["a", "a/compensate"], "b never reached the host");
        assert_eq!(run.error_code.as_deref(), Some("template"));
        assert_eq!(run.error_message.as_deref(), Some("{{input.missing}} has no value in this run"));

        let mut slow = call_step("slow", false);
        slow["timeout_ms"] = json!(100);
        slow["retry"]["max_attempts"] = json!(2);
        let id = engine.start_run(&OWNER, inline(def(json!({"name": "slow", "steps": [slow]})), json!({}))).await.unwrap();
        let run = wait_status(&store, &OWNER, &id, RunStatus::Failed).await;
        assert_eq!(run.error_code.as_deref(), Some("timeout"));
        assert_eq!(host.trace(&id), ["slow", "slow"], "a timeout is retryable");
        engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_on_one_database_never_execute_the_same_step_twice() {
    for db in db::testing::engines().await {
        let store_a = store(&db).await;
        // A second pool: as a second server instance would have.
        let store_b = Store::new(db.connect().await).with_inbound_sources(sources());
        let host_a = ScriptedHost::new("a");
        let host_b = ScriptedHost::new("b");
        for h in [&host_a, &host_b] {
            for s in ["s1", "s2", "s3"] {
                h.sleep(s, 15);
            }
        }
        let a = engine(&store_a, host_a.clone(), "a").await;
        let b = engine(&store_b, host_b.clone(), "b").await;
        let d = def(json!({"name": "shared", "steps": [call_step("s1", false), call_step("s2", false), call_step("s3", false)]}));
        let mut ids = Vec::new();
        for i in 0..30 {
            let e = if i % 2 == 0 { &a } else { &b };
            ids.push(e.start_run(&OWNER, inline(d.clone(), json!({}))).await.unwrap());
        }
        for id in &ids {
            wait_status(&store_a, &OWNER, id, RunStatus::Completed).await;
        }
        let mut all = host_a.calls.lock().unwrap().clone();
        all.extend(host_b.calls.lock().unwrap().iter().cloned());
        for id in &ids {
            let mut steps: Vec<String> = all.iter().filter(|c| &c.run_id == id).map(|c| c.step.clone()).collect();
            steps.sort();
            assert_eq!(steps, ["s1", "s2", "s3"], "run {id}: every step exactly once across both engines");
        }
        let by_b = host_b.calls.lock().unwrap().len();
        eprintln!("{}: engine a made {} calls, engine b {by_b}", db.engine.as_str(), all.len() - by_b);
        a.shutdown().await;
        b.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_attempt_in_flight_finish_and_another_engine_continues_at_once() {
    for db in db::testing::engines().await {
        let store = store(&db).await;
        let host = ScriptedHost::new("a");
        host.sleep("long", 500);
        let a = engine(&store, host.clone(), "a").await;
        let d = def(json!({"name": "graceful", "steps": [call_step("long", false), call_step("next", false)]}));
        let id = a.start_run(&OWNER, inline(d, json!({}))).await.unwrap();
        wait_for("the long step to start", Duration::from_secs(10), || async { !host.calls_for(&id).is_empty() }).await;
        let t0 = Instant::now();
        a.shutdown().await;
        assert!(t0.elapsed() >= Duration::from_millis(300), "shutdown waited for the attempt in flight");
        let run = store.get_run(&OWNER, &id).await.unwrap();
        assert_eq!((run.status, run.current_step), (RunStatus::Running, 1), "its success was stored: {run:?}");
        assert_eq!(host.trace(&id), ["long"]);

        // The lease was released: a new engine takes over without waiting for it to expire (2 s).
        let host_b = ScriptedHost::new("b");
        let b = engine(&store, host_b.clone(), "b").await;
        let t1 = Instant::now();
        wait_status(&store, &OWNER, &id, RunStatus::Completed).await;
        assert!(t1.elapsed() < Duration::from_millis(1500), "took {:?}", t1.elapsed());
        assert_eq!(host_b.trace(&id), ["next"]);
        b.shutdown().await;
    }
}
