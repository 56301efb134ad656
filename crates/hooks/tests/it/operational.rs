//! What the owner hears when deliveries go wrong, on every engine: a receiver that answers 410 Gone is
//! disabled at once; a message that runs out of attempts raises `message.attempt.exhausted` to the
//! owner's other endpoints and one counting notice; an endpoint failing for less than the
//! auto-disable window (5 days) stays enabled however many messages it misses.

use crate::common;
use contract::Owner;

use hooks::{EndpointUpdate, NewEndpoint, PageRequest};
use notify::sink::{Sink, SinkConfig};
use std::time::Duration;

const ANN: Owner = Owner::from_static("ann");
const WAIT: Duration = Duration::from_secs(20);
const EXHAUSTED: &str = "message.attempt.exhausted";

async fn endpoint(hooks: &hooks::Hooks, types: &[&str], sink_cfg: SinkConfig) -> (String, Sink) {
    let new = NewEndpoint {
        url: "http://127.0.0.1:9/".into(),
        description: String::new(),
        event_types: types.iter().map(|t| t.to_string()).collect(),
        rate_limit_per_sec: None,
    };
    let created = hooks.create_endpoint(&ANN, new).await.unwrap();
    let sink = Sink::start("127.0.0.1:0".parse().unwrap(), SinkConfig { secret: created.secret.clone(), ..sink_cfg }).await.unwrap();
    sink.capture(100);
    hooks.update_endpoint(&ANN, &created.endpoint.id, EndpointUpdate { url: Some(sink.url()), ..Default::default() }).await.unwrap();
    (created.endpoint.id, sink)
}

fn failing(status: u16) -> SinkConfig {
    SinkConfig { fail_rate: 1.0, fail_status: status, ..SinkConfig::default() }
}

#[tokio::test]
async fn a_receiver_that_answers_gone_is_disabled_at_once_and_its_owner_told() {
    for db in db::testing::engines().await {
        let engine = db.engine.as_str();
        let p = common::pipeline(&db, common::config(), 5).await;
        let (gone, gone_sink) = endpoint(&p.hooks, &["workflow.failed"], failing(410)).await;
        let (_, watcher) = endpoint(&p.hooks, &["endpoint.disabled"], SinkConfig::default()).await;
        let msg = p.hooks.emit(&ANN, "workflow.failed", serde_json::json!({ "n": 1 })).await.unwrap();
        common::wait_for("the endpoint to be disabled", WAIT, || async { !p.hooks.get_endpoint(&ANN, &gone).await.unwrap().enabled }).await;
        let ep = p.hooks.get_endpoint(&ANN, &gone).await.unwrap();
        assert!(ep.disabled_reason.as_deref().unwrap().contains("410 Gone"), "{engine}: {ep:?}");
        let log = p.hooks.message_attempts(&ANN, &msg.id, PageRequest::default()).await.unwrap().items;
        assert_eq!(log.iter().map(|a| (a.attempt, a.outcome.as_str(), a.status_code)).collect::<Vec<_>>(), [(1, "failed", Some(410))], "{engine}");
        common::wait_for("endpoint.disabled", WAIT, || async { watcher.stats().accepted == 1 }).await;
        let event: serde_json::Value = serde_json::from_slice(&watcher.captured()[0].body).unwrap();
        testkit::json_schema::assert_fits(&hooks::events::find("endpoint.disabled").unwrap().schema(), &event);
        assert_eq!((event["data"]["endpoint_id"].as_str(), event["type"].as_str()), (Some(gone.as_str()), Some("endpoint.disabled")));
        assert!(event["data"]["reason"].as_str().unwrap().contains("410"), "{event}");
        let notices = p.hooks.notices(&ANN, PageRequest::default()).await.unwrap().items;
        assert_eq!(notices.iter().map(|n| n.kind.as_str()).collect::<Vec<_>>(), ["endpoint_disabled"], "{engine}: no exhausted notice for a 410");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(gone_sink.stats().received, 1, "{engine}: one request, no retries");
        p.notify.shutdown().await;
    }
}

#[tokio::test]
async fn an_exhausted_message_is_announced_once_to_the_other_endpoints_and_counted_in_one_notice() {
    for db in db::testing::engines().await {
        let engine = db.engine.as_str();
        // Two attempts each; auto-disable at its defaults (5 messages *and* 5 days of failing).
        let p = common::pipeline(&db, common::config(), 2).await;
        // Subscribed to everything, the exhausted events included: it must not get its own.
        let (broken, broken_sink) = endpoint(&p.hooks, &[], failing(503)).await;
        let (_, watcher) = endpoint(&p.hooks, &[EXHAUSTED], SinkConfig::default()).await;
        // Another broken one that wants the exhausted events: its own failures with them raise nothing.
        let (_, also_broken) = endpoint(&p.hooks, &[EXHAUSTED], failing(500)).await;
        let mut ids = vec![];
        for n in 0..6 {
            ids.push(p.hooks.emit(&ANN, "workflow.failed", serde_json::json!({ "n": n })).await.unwrap().id);
        }
        common::wait_for("six exhausted events", WAIT, || async { watcher.stats().accepted == 6 }).await;
        common::wait_for("the broken watcher's attempts", WAIT, || async { also_broken.stats().received == 12 }).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut announced: Vec<String> = watcher
            .captured()
            .iter()
            .map(|r| {
                let e: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                testkit::json_schema::assert_fits(&hooks::events::find(EXHAUSTED).unwrap().schema(), &e);
                assert_eq!(
                    (e["type"].as_str(), e["data"]["endpoint_id"].as_str(), e["data"]["attempts"].as_i64()),
                    (Some(EXHAUSTED), Some(broken.as_str()), Some(2)),
                    "{e}"
                );
                assert_eq!(
                    (e["data"]["event_type"].as_str(), e["data"]["last_attempt"]["status_code"].as_i64()),
                    (Some("workflow.failed"), Some(503)),
                    "{e}"
                );
                e["data"]["message_id"].as_str().unwrap().to_string()
            })
            .collect();
        announced.sort();
        ids.sort();
        assert_eq!(announced, ids, "{engine}: each message once");
        let messages = p.hooks.list_messages(&ANN, PageRequest { limit: Some(100), ..Default::default() }).await.unwrap().items;
        assert_eq!(messages.iter().filter(|m| m.event_type == EXHAUSTED).count(), 6, "{engine}: no chain from the broken watcher");
        assert!(broken_sink.captured().iter().all(|r| !String::from_utf8_lossy(&r.body).contains(EXHAUSTED)), "{engine}: not told about itself");
        // One notice counts them all; once read, the next one starts a new one.
        let notices = p.hooks.notices(&ANN, PageRequest::default()).await.unwrap().items;
        let exhausted: Vec<_> =
            notices.iter().filter(|n| n.kind == "message_exhausted" && n.endpoint_id.as_deref() == Some(broken.as_str())).collect();
        assert_eq!(exhausted.len(), 1, "{engine}: {notices:?}");
        assert!(exhausted[0].message.starts_with("6 message(s)"), "{engine}: {}", exhausted[0].message);
        p.hooks.mark_notice_read(&ANN, exhausted[0].id).await.unwrap();
        p.hooks.emit(&ANN, "workflow.failed", serde_json::json!({ "n": 7 })).await.unwrap();
        common::wait_for("a new notice", WAIT, || async {
            p.hooks
                .notices(&ANN, PageRequest::default())
                .await
                .unwrap()
                .items
                .iter()
                .any(|n| n.kind == "message_exhausted" && !n.read && n.message.starts_with("1 message(s)"))
        })
        .await;
        // Seven messages in a row failed, but within minutes, not days: still enabled.
        assert!(p.hooks.get_endpoint(&ANN, &broken).await.unwrap().enabled, "{engine}");
        p.notify.shutdown().await;
    }
}

#[tokio::test]
async fn recovering_sends_every_missed_message_since_a_time_once_in_the_background() {
    for db in db::testing::engines().await {
        let engine = db.engine.as_str();
        let p = common::pipeline(&db, common::config(), 2).await;
        let (ep, _) = endpoint(&p.hooks, &["workflow.failed"], failing(503)).await;
        // Before the window: failed there too, but not asked for.
        let old = p.hooks.emit(&ANN, "workflow.failed", serde_json::json!({ "n": "old" })).await.unwrap();
        common::wait_for("the old message to fail", WAIT, || async { failed_deliveries(&p, &ep).await == 1 }).await;
        sqlx::query("UPDATE webhook_messages SET created_ms = created_ms - 7200000 WHERE id = $1")
            .bind(&old.id)
            .execute(&common::pool(&db).await)
            .await
            .unwrap();
        let since = now_ms() - 60_000;
        // Three fail at the endpoint, two are made while it is disabled, one is of a type it does not want.
        let mut missed = vec![];
        for n in 0..3 {
            missed.push(p.hooks.emit(&ANN, "workflow.failed", serde_json::json!({ "n": n })).await.unwrap().id);
        }
        common::wait_for("three failed deliveries", WAIT, || async { failed_deliveries(&p, &ep).await == 4 }).await;
        p.hooks.set_enabled(&ANN, &ep, false).await.unwrap();
        for n in 3..5 {
            missed.push(p.hooks.emit(&ANN, "workflow.failed", serde_json::json!({ "n": n })).await.unwrap().id);
        }
        p.hooks.emit(&ANN, "workflow.completed", serde_json::json!({})).await.unwrap();
        let refused = p.hooks.recover(&ANN, &ep, since).await.unwrap_err();
        assert!(matches!(refused, hooks::HooksError::Conflict(_)), "{engine}: disabled: {refused:?}");
        assert!(matches!(p.hooks.recover(&ANN, &ep, now_ms() + 60_000).await, Err(hooks::HooksError::Invalid(_))), "{engine}: the future");
        assert!(matches!(p.hooks.recover(&Owner::from("bob"), &ep, since).await, Err(hooks::HooksError::NotFound)), "{engine}");

        // Fixed: a healthy receiver, enabled again, then recovered.
        let healthy = Sink::start("127.0.0.1:0".parse().unwrap(), SinkConfig { secret: endpoint_secret(&p, &ep).await, ..SinkConfig::default() })
            .await
            .unwrap();
        p.hooks.update_endpoint(&ANN, &ep, EndpointUpdate { url: Some(healthy.url()), ..Default::default() }).await.unwrap();
        p.hooks.set_enabled(&ANN, &ep, true).await.unwrap();
        let r = p.hooks.recover(&ANN, &ep, since).await.unwrap();
        assert_eq!((r.total, r.status.as_str()), (5, "running"), "{engine}: {r:?}");
        common::wait_for("the recovery to complete", WAIT, || async { p.hooks.recoveries(&ANN, &ep).await.unwrap()[0].status == "completed" }).await;
        let done = &p.hooks.recoveries(&ANN, &ep).await.unwrap()[0];
        assert_eq!((done.id.as_str(), done.sent, done.total), (r.id.as_str(), 5, 5), "{engine}");
        assert!(done.finished_ms.is_some());
        common::wait_for("five deliveries", WAIT, || async { healthy.stats().accepted == 5 }).await;
        let mut got: Vec<String> = healthy
            .counts()
            .into_iter()
            .map(|(id, n)| {
                assert_eq!(n, 1, "{engine}: {id} once");
                id
            })
            .collect();
        got.sort();
        missed.sort();
        assert_eq!(got, missed, "{engine}: the missed ones, not the old one nor the unwanted type");
        // Nothing is missed any more.
        common::wait_for("the deliveries to be recorded", WAIT, || async {
            p.hooks.recover(&ANN, &ep, since).await.map(|r| r.total == 0).unwrap_or(false)
        })
        .await;
        p.notify.shutdown().await;
    }
}

#[tokio::test]
async fn a_recovery_whose_runner_died_is_taken_over() {
    for db in db::testing::engines().await {
        let p = common::pipeline(&db, common::config(), 2).await;
        let (ep, sink) = endpoint(&p.hooks, &[], SinkConfig::default()).await;
        p.hooks.set_enabled(&ANN, &ep, false).await.unwrap();
        let msg = p.hooks.emit(&ANN, "workflow.failed", serde_json::json!({})).await.unwrap();
        p.hooks.set_enabled(&ANN, &ep, true).await.unwrap();
        // As a runner that died after starting left it: running, quiet for two minutes.
        let now = now_ms();
        sqlx::query(
            "INSERT INTO webhook_recoveries (id, owner, endpoint_id, since_ms, until_ms, status, total, sent, cursor_seq, heartbeat_ms, created_ms) \
             VALUES ('rec_dead', $1, $2, $3, $4, 'running', 1, 0, 0, $5, $5)",
        )
        .bind(&ANN)
        .bind(&ep)
        .bind(now - 60_000)
        .bind(now)
        .bind(now - 120_000)
        .execute(&common::pool(&db).await)
        .await
        .unwrap();
        assert!(matches!(p.hooks.recover(&ANN, &ep, now - 60_000).await, Err(hooks::HooksError::Conflict(_))), "one at a time");
        assert_eq!(p.hooks.resume_recoveries().await.unwrap(), 1);
        assert_eq!(p.hooks.resume_recoveries().await.unwrap(), 0, "now it has a runner");
        common::wait_for("the delivery", WAIT, || async { sink.counts().get(&msg.id) == Some(&1) }).await;
        common::wait_for("completed", WAIT, || async { p.hooks.recoveries(&ANN, &ep).await.unwrap()[0].status == "completed" }).await;
        p.notify.shutdown().await;
    }
}

async fn failed_deliveries(p: &common::Pipeline, ep: &str) -> usize {
    let attempts = p.hooks.endpoint_attempts(&ANN, ep, PageRequest { limit: Some(100), ..Default::default() }).await.unwrap().items;
    attempts.iter().filter(|a| a.outcome == "failed").count()
}

async fn endpoint_secret(p: &common::Pipeline, ep: &str) -> String {
    p.hooks.rotate_secret(&ANN, ep).await.unwrap().secret
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}
