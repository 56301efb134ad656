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
    let new =
        NewEndpoint { url: "http://127.0.0.1:9/".into(), description: String::new(), event_types: types.iter().map(|t| t.to_string()).collect() };
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
