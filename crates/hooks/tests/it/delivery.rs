//! Events out, end to end on every engine: a real notification pipeline (embedded queue, fast retries)
//! delivers to notify's real sink on 127.0.0.1 (allowlisted), which verifies the Standard Webhooks
//! signature with the endpoint's own secret.

use crate::common;
use contract::Owner;
use contract::PublicError;

use hooks::{EndpointUpdate, HooksConfig, NewEndpoint, PageRequest};
use notify::signature::SigningKey;
use notify::sink::{Sink, SinkConfig};
use std::time::Duration;

const USER_7: Owner = Owner::from_static("7");
const USER_8: Owner = Owner::from_static("8");
const USER_9: Owner = Owner::from_static("9");

const WAIT: Duration = Duration::from_secs(20);

fn new(types: &[&str]) -> NewEndpoint {
    NewEndpoint {
        url: "http://127.0.0.1:9/".into(),
        description: String::new(),
        event_types: types.iter().map(|t| t.to_string()).collect(),
        rate_limit_per_sec: None,
    }
}

/// An endpoint of `owner` pointed at a fresh sink that knows its secret.
async fn endpoint_with_sink(hooks: &hooks::Hooks, owner: &Owner, types: &[&str], sink_cfg: SinkConfig) -> (String, String, Sink) {
    let created = hooks.create_endpoint(owner, new(types)).await.unwrap();
    let sink = Sink::start("127.0.0.1:0".parse().unwrap(), SinkConfig { secret: created.secret.clone(), ..sink_cfg }).await.unwrap();
    sink.capture(100);
    let update = EndpointUpdate { url: Some(sink.url()), ..Default::default() };
    hooks.update_endpoint(owner, &created.endpoint.id, update).await.unwrap();
    (created.endpoint.id, created.secret, sink)
}

/// A body as an endpoint received it, checked against its type's schema in the catalogue (what the
/// API and the OpenAPI document publish).
fn fits_the_catalogue(body: &[u8]) -> serde_json::Value {
    let event: serde_json::Value = serde_json::from_slice(body).unwrap();
    let entry = hooks::events::find(event["type"].as_str().unwrap_or_default()).unwrap_or_else(|| panic!("not in the catalogue: {event}"));
    testkit::json_schema::assert_fits(&entry.schema(), &event);
    event
}

#[tokio::test]
async fn an_event_arrives_signed_is_logged_and_replays_with_the_same_id() {
    for db in db::testing::engines().await {
        let engine = db.engine.as_str();
        let p = common::pipeline(&db, common::config(), 3).await;
        let (ep, secret, sink) = endpoint_with_sink(&p.hooks, &USER_7, &["workflow.completed"], SinkConfig::default()).await;
        // Subscribed to something else, and someone else's: neither gets this event.
        let (other_type, _, other_sink) = endpoint_with_sink(&p.hooks, &USER_7, &["workflow.failed"], SinkConfig::default()).await;
        let (_, _, stranger_sink) = endpoint_with_sink(&p.hooks, &USER_8, &[], SinkConfig::default()).await;

        let msg = p.hooks.emit(&USER_7, "workflow.completed", serde_json::json!({ "run": 41 })).await.unwrap();
        assert!(msg.id.starts_with("msg_"));
        common::wait_for("the delivery", WAIT, || async { sink.stats().accepted == 1 }).await;

        let got = &sink.captured()[0];
        assert_eq!(got.id, msg.id, "{engine}: webhook-id is the message id");
        let key = SigningKey::from_secret(&secret).unwrap();
        key.verify(&got.id, &got.timestamp, &got.signature, &got.body, common::now_secs(), 300).unwrap();
        assert_eq!(got.signature.split(' ').count(), 1);
        let body: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(body["type"], "workflow.completed");
        assert_eq!(body["data"], serde_json::json!({ "run": 41 }));
        let ts = body["timestamp"].as_str().unwrap();
        assert!(ts.len() >= 20 && ts.ends_with('Z') && ts.contains('T'), "{ts}");

        // The attempt log, per message and per endpoint.
        common::wait_for("the attempt log", WAIT, || async {
            p.hooks.message_attempts(&USER_7, &msg.id, PageRequest::default()).await.unwrap().items.len() == 1
        })
        .await;
        let attempts = p.hooks.endpoint_attempts(&USER_7, &ep, PageRequest::default()).await.unwrap().items;
        assert_eq!(attempts.len(), 1, "{engine}");
        let a = &attempts[0];
        assert_eq!((a.attempt, a.outcome.as_str(), a.status_code, a.error.as_deref()), (1, "delivered", Some(204), None));
        assert_eq!(a.message_id, msg.id);
        let detail = p.hooks.get_message(&USER_7, &msg.id).await.unwrap();
        assert_eq!(detail.payload, body);
        assert_eq!(detail.deliveries.len(), 1);
        assert_eq!(detail.deliveries[0].state, "delivered");
        assert!(p.hooks.endpoint_attempts(&USER_7, &other_type, PageRequest::default()).await.unwrap().items.is_empty());
        assert!(matches!(p.hooks.get_message(&USER_8, &msg.id).await, Err(hooks::HooksError::NotFound)));

        // Manual replay: sent again with the same webhook-id, so the receiver can deduplicate.
        let replayed = p.hooks.replay(&USER_7, &msg.id, None).await.unwrap();
        assert_eq!(replayed.len(), 1);
        assert_eq!(replayed[0].endpoint_id, ep);
        common::wait_for("the replay", WAIT, || async { sink.counts().get(&msg.id) == Some(&2) }).await;
        common::wait_for("the replay's attempt", WAIT, || async {
            p.hooks.message_attempts(&USER_7, &msg.id, PageRequest::default()).await.unwrap().items.len() == 2
        })
        .await;

        // "Send test event" reaches an endpoint whatever it subscribes to.
        let ping = p.hooks.send_test(&USER_7, &other_type).await.unwrap();
        common::wait_for("the test event", WAIT, || async { other_sink.stats().accepted == 1 }).await;
        assert_eq!(other_sink.captured()[0].id, ping.id);
        let ping_body = fits_the_catalogue(&other_sink.captured()[0].body);
        assert_eq!(ping_body["data"]["endpoint_id"], other_type.as_str());
        assert_eq!(stranger_sink.stats().received, 0, "{engine}");
        assert_eq!(sink.stats().bad_signature, 0);
        let listed = p.hooks.list_messages(&USER_7, PageRequest::default()).await.unwrap().items;
        assert_eq!(listed.iter().map(|m| m.event_type.as_str()).collect::<Vec<_>>(), ["test.ping", "workflow.completed"]);
        p.notify.shutdown().await;
    }
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_dead_lettered_then_disabled_and_its_owner_told() {
    for db in db::testing::engines().await {
        let engine = db.engine.as_str();
        let cfg = HooksConfig { auto_disable: hooks::AutoDisable { after_failed_messages: 2, min_failing_secs: 0 }, ..common::config() };
        let p = common::pipeline(&db, cfg, 3).await;
        let failing = SinkConfig { fail_rate: 1.0, ..SinkConfig::default() };
        let (ep, _, sink) = endpoint_with_sink(&p.hooks, &USER_7, &["workflow.failed"], failing).await;
        let (_, _, watcher) = endpoint_with_sink(&p.hooks, &USER_7, &["endpoint.disabled"], SinkConfig::default()).await;

        let first = p.hooks.emit(&USER_7, "workflow.failed", serde_json::json!({ "n": 1 })).await.unwrap();
        common::wait_for("the first dead letter", WAIT, || async { p.hooks.get_endpoint(&USER_7, &ep).await.unwrap().consecutive_failures == 1 })
            .await;
        let log = p.hooks.message_attempts(&USER_7, &first.id, PageRequest::default()).await.unwrap().items;
        let outcomes: Vec<(i64, &str, Option<i64>)> = log.iter().rev().map(|a| (a.attempt, a.outcome.as_str(), a.status_code)).collect();
        assert_eq!(outcomes, [(1, "retrying", Some(503)), (2, "retrying", Some(503)), (3, "failed", Some(503))], "{engine}");
        assert!(p.hooks.get_endpoint(&USER_7, &ep).await.unwrap().enabled, "one failed message is not enough");

        p.hooks.emit(&USER_7, "workflow.failed", serde_json::json!({ "n": 2 })).await.unwrap();
        common::wait_for("the endpoint to be disabled", WAIT, || async { !p.hooks.get_endpoint(&USER_7, &ep).await.unwrap().enabled }).await;
        let disabled = p.hooks.get_endpoint(&USER_7, &ep).await.unwrap();
        assert_eq!(disabled.consecutive_failures, 2);
        assert!(disabled.disabled_reason.as_deref().unwrap().contains("2 messages in a row"), "{disabled:?}");
        // Beside one "ran out of attempts" notice counting both messages.
        let notices: Vec<_> =
            p.hooks.notices(&USER_7, PageRequest::default()).await.unwrap().items.into_iter().filter(|n| n.kind == "endpoint_disabled").collect();
        assert_eq!(notices.len(), 1, "{engine}");
        assert_eq!((notices[0].kind.as_str(), notices[0].endpoint_id.as_deref()), ("endpoint_disabled", Some(ep.as_str())));
        assert!(notices[0].message.contains(&sink.url()), "{}", notices[0].message);
        assert!(p.hooks.notices(&USER_8, PageRequest::default()).await.unwrap().items.is_empty());
        p.hooks.mark_notice_read(&USER_7, notices[0].id).await.unwrap();
        assert!(p.hooks.notices(&USER_7, PageRequest::default()).await.unwrap().items[0].read);

        // The owner's other endpoint hears about it as an event.
        common::wait_for("endpoint.disabled", WAIT, || async { watcher.stats().accepted == 1 }).await;
        let event = fits_the_catalogue(&watcher.captured()[0].body);
        assert_eq!((event["type"].as_str(), event["data"]["endpoint_id"].as_str()), (Some("endpoint.disabled"), Some(ep.as_str())));

        // A disabled endpoint gets nothing more, and cannot be replayed to until enabled again.
        let received = sink.stats().received;
        let third = p.hooks.emit(&USER_7, "workflow.failed", serde_json::json!({ "n": 3 })).await.unwrap();
        assert!(p.hooks.get_message(&USER_7, &third.id).await.unwrap().deliveries.is_empty());
        let e = p.hooks.replay(&USER_7, &first.id, Some(&ep)).await.unwrap_err();
        assert_eq!(e.status(), http::StatusCode::CONFLICT.as_u16());
        let enabled = p.hooks.set_enabled(&USER_7, &ep, true).await.unwrap();
        assert_eq!((enabled.enabled, enabled.consecutive_failures), (true, 0));
        assert_eq!(sink.stats().received, received, "{engine}");
        p.notify.shutdown().await;
    }
}

/// The default rule (5 messages in a row AND 5 days of failure), on the pipeline's clock: five dead
/// messages within minutes leave the endpoint on; one more after five simulated days turns it off.
#[tokio::test]
async fn the_default_auto_disable_waits_five_days_of_failure_on_the_pipelines_clock() {
    for db in db::testing::engines().await {
        let engine = db.engine.as_str();
        let clock = notify::Clock::adjustable();
        let p = common::pipeline_on(&db, common::config(), notify::WebhookRetry::every(60_000, 2), clock.clone()).await;
        assert_eq!(p.hooks.config().auto_disable.min_failing_secs, 5 * 86_400);
        let failing = SinkConfig { fail_rate: 1.0, ..SinkConfig::default() };
        let (ep, _, _sink) = endpoint_with_sink(&p.hooks, &USER_7, &["workflow.failed"], failing).await;
        let failures = || async { p.hooks.get_endpoint(&USER_7, &ep).await.unwrap().consecutive_failures };
        // One message: its first attempt, then (a simulated minute later) its last.
        let one_message = |n: i64| {
            let (p, clock) = (&p, clock.clone());
            async move {
                p.hooks.emit(&USER_7, "workflow.failed", serde_json::json!({ "n": n })).await.unwrap();
                tokio::time::sleep(Duration::from_millis(300)).await;
                clock.advance(Duration::from_secs(61));
            }
        };
        for n in 1..=5 {
            one_message(n).await;
            common::wait_for("the message to run out of attempts", WAIT, || async { failures().await == n }).await;
        }
        assert!(p.hooks.get_endpoint(&USER_7, &ep).await.unwrap().enabled, "{engine}: 5 messages, but failing for minutes only");
        clock.advance(Duration::from_secs(5 * 86_400));
        one_message(6).await;
        common::wait_for("the endpoint to be disabled", WAIT, || async { !p.hooks.get_endpoint(&USER_7, &ep).await.unwrap().enabled }).await;
        let e = p.hooks.get_endpoint(&USER_7, &ep).await.unwrap();
        assert_eq!(e.consecutive_failures, 6, "{engine}");
        assert!(e.disabled_reason.as_deref().unwrap().contains("6 messages in a row"), "{e:?}");
        p.notify.shutdown().await;
    }
}

#[tokio::test]
async fn during_a_rotation_overlap_both_signatures_are_sent_and_each_verifies() {
    for db in db::testing::engines().await {
        let p = common::pipeline(&db, common::config(), 3).await;
        let (ep, old_secret, sink) = endpoint_with_sink(&p.hooks, &USER_7, &[], SinkConfig::default()).await;
        let rotated = p.hooks.rotate_secret(&USER_7, &ep).await.unwrap();
        let msg = p.hooks.emit(&USER_7, "workflow.completed", serde_json::json!({})).await.unwrap();
        common::wait_for("the delivery", WAIT, || async { sink.stats().accepted == 1 }).await;

        let got = &sink.captured()[0];
        let entries: Vec<&str> = got.signature.split(' ').collect();
        assert_eq!(entries.len(), 2, "{}: {}", db.engine.as_str(), got.signature);
        let (old, new) = (SigningKey::from_secret(&old_secret).unwrap(), SigningKey::from_secret(&rotated.secret).unwrap());
        let now = common::now_secs();
        // The header as a whole verifies with either secret; each entry with exactly one of them.
        old.verify(&msg.id, &got.timestamp, &got.signature, &got.body, now, 300).unwrap();
        new.verify(&msg.id, &got.timestamp, &got.signature, &got.body, now, 300).unwrap();
        new.verify(&msg.id, &got.timestamp, entries[0], &got.body, now, 300).unwrap();
        old.verify(&msg.id, &got.timestamp, entries[1], &got.body, now, 300).unwrap();
        assert!(old.verify(&msg.id, &got.timestamp, entries[0], &got.body, now, 300).is_err());
        assert!(new.verify(&msg.id, &got.timestamp, entries[1], &got.body, now, 300).is_err());
        p.notify.shutdown().await;
    }
}

#[tokio::test]
async fn after_the_overlap_only_the_new_secret_signs() {
    let db = db::testing::sqlite().await;
    let p = common::pipeline(&db, HooksConfig { rotation_overlap_secs: 0, ..common::config() }, 3).await;
    let (ep, _, sink) = endpoint_with_sink(&p.hooks, &USER_7, &[], SinkConfig::default()).await;
    let rotated = p.hooks.rotate_secret(&USER_7, &ep).await.unwrap();
    let msg = p.hooks.emit(&USER_7, "test.ping", serde_json::json!({})).await.unwrap();
    // The sink knows only the old secret now, so it refuses; the header is checked against the new one.
    common::wait_for("a logged attempt", WAIT, || async {
        !p.hooks.message_attempts(&USER_7, &msg.id, PageRequest::default()).await.unwrap().items.is_empty()
    })
    .await;
    let attempts = p.hooks.message_attempts(&USER_7, &msg.id, PageRequest::default()).await.unwrap().items;
    // The error carries the start of the receiver's answer (bounded; see notify's MAX_RESPONSE_BYTES).
    assert_eq!((attempts[0].status_code, attempts[0].error.as_deref()), (Some(401), Some("HTTP 401: bad signature")));
    assert!(sink.stats().bad_signature >= 1 && sink.captured().is_empty());
    assert!(p.hooks.get_endpoint(&USER_7, &ep).await.unwrap().previous_secret_until_ms.is_none());
    assert!(SigningKey::from_secret(&rotated.secret).is_ok());
    p.notify.shutdown().await;
}

#[tokio::test]
async fn notification_outcomes_become_events_but_event_deliveries_do_not() {
    for db in db::testing::engines().await {
        let p = common::pipeline(&db, common::config(), 2).await;
        p.notify.add_attempt_observer(p.hooks.notification_events(|job| (job.recipient != "nobody").then(|| "7".to_string())));
        let (_, _, sink) =
            endpoint_with_sink(&p.hooks, &USER_7, &["notification.delivered", "notification.dead_lettered"], SinkConfig::default()).await;
        let ids = p
            .notify
            .enqueue(vec![
                notify::NewNotification::new(notify::Channel::Noop, "user7:a", serde_json::json!({})),
                notify::NewNotification::new(notify::Channel::Noop, "nobody", serde_json::json!({})),
            ])
            .await
            .unwrap();
        common::wait_for("notification.delivered", WAIT, || async { sink.stats().accepted == 1 }).await;
        let event = fits_the_catalogue(&sink.captured()[0].body);
        assert_eq!(event["type"], "notification.delivered");
        assert_eq!(event["data"]["notification_id"], ids[0].to_string());
        // The event's own delivery is a webhook notification that `owner_of` would claim too: it must not
        // cause another event.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let messages = p.hooks.list_messages(&USER_7, PageRequest::default()).await.unwrap().items;
        assert_eq!(messages.len(), 1, "{}: {messages:?}", db.engine.as_str());
        assert_eq!(sink.stats().accepted, 1);
        p.notify.shutdown().await;
    }
}

/// Issue 14, item 7: user 8 enqueues a webhook notification addressed `endpoint:<user 7's endpoint>`,
/// with the payload of one of 7's real messages. It is an ordinary notification of 8's (it goes to the
/// configured URL): 7's endpoint gets no request and no attempt row, and its failure streak is untouched.
#[tokio::test]
async fn a_job_another_user_addresses_to_an_endpoint_never_reaches_it() {
    for db in db::testing::engines().await {
        let engine = db.engine.as_str();
        let p = common::pipeline(&db, common::config(), 2).await;
        let (ep, _, sink) = endpoint_with_sink(&p.hooks, &USER_7, &["workflow.completed"], SinkConfig::default()).await;
        let msg = p.hooks.emit(&USER_7, "workflow.completed", serde_json::json!({ "run": 1 })).await.unwrap();
        common::wait_for("the real delivery", WAIT, || async { sink.stats().accepted == 1 }).await;

        let forged = notify::NewNotification::new(
            notify::Channel::Webhook,
            format!("{}{ep}", hooks::delivery::RECIPIENT_PREFIX),
            serde_json::json!({ "message_id": msg.id }),
        );
        let id = p.notify.enqueue_for(Some("8"), notify::Backend::Embedded, vec![forged]).await.unwrap()[0];
        common::wait_for("the forged job to settle", WAIT, || async {
            p.notify.attempts(id).await.unwrap().iter().any(|a| a.outcome != notify::AttemptOutcome::Retrying)
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(sink.stats().accepted, 1, "{engine}: no second request to 7's endpoint");
        assert_eq!(sink.counts().get(&msg.id), Some(&1));
        let attempts = p.hooks.endpoint_attempts(&USER_7, &ep, PageRequest::default()).await.unwrap().items;
        assert_eq!(attempts.len(), 1, "{engine}: no attempt row from 8's job: {attempts:?}");
        assert!(attempts.iter().all(|a| a.notification_id != id.to_string()));
        let endpoint = p.hooks.get_endpoint(&USER_7, &ep).await.unwrap();
        assert!(endpoint.enabled);
        p.notify.shutdown().await;
    }
}

/// Jobs queued by the code before routes existed (owner none, addressed by recipient alone; only the
/// event fan-out made those) are still delivered to their endpoint after an upgrade.
#[tokio::test]
async fn an_endpoint_job_queued_before_routes_existed_is_still_delivered() {
    for db in db::testing::engines().await {
        let p = common::pipeline(&db, common::config(), 2).await;
        let (ep, _, sink) = endpoint_with_sink(&p.hooks, &USER_7, &["workflow.completed"], SinkConfig::default()).await;
        // Stored with no subscribers' deliveries: the old-format job below is its only one.
        let (_, _, other) = endpoint_with_sink(&p.hooks, &USER_9, &["workflow.completed"], SinkConfig::default()).await;
        let msg = p.hooks.emit(&USER_7, "workflow.completed", serde_json::json!({ "run": 2 })).await.unwrap();
        common::wait_for("the delivery", WAIT, || async { sink.stats().accepted == 1 }).await;
        let legacy = notify::NewNotification::new(
            notify::Channel::Webhook,
            format!("{}{ep}", hooks::delivery::RECIPIENT_PREFIX),
            serde_json::json!({ "message_id": msg.id }),
        );
        p.notify.enqueue_to(notify::Backend::Embedded, vec![legacy]).await.unwrap();
        common::wait_for("the old-format job's delivery", WAIT, || async { sink.counts().get(&msg.id) == Some(&2) }).await;
        assert_eq!(other.stats().accepted, 0);
        p.notify.shutdown().await;
    }
}

/// One user cannot turn our deliveries into a flood of someone else's server: test events, emits and
/// replays spend a per-owner budget (`outbound_per_sec`, a burst of ten seconds' worth), and another
/// owner's budget is untouched.
#[tokio::test]
async fn an_owner_who_sends_too_many_webhooks_is_refused_with_retry_after_and_others_are_not() {
    for db in db::testing::engines().await {
        let engine = db.engine.as_str();
        let cfg = HooksConfig { outbound_per_sec: 1, max_endpoints_per_owner: 2, ..common::config() };
        let p = common::pipeline(&db, cfg, 3).await;
        let (ep, _, _sink) = endpoint_with_sink(&p.hooks, &USER_7, &["workflow.completed"], SinkConfig::default()).await;
        let (other, _, _other_sink) = endpoint_with_sink(&p.hooks, &USER_8, &[], SinkConfig::default()).await;
        // The burst is ten seconds' worth: ten test events go out at once…
        for i in 0..10 {
            p.hooks.send_test(&USER_7, &ep).await.unwrap_or_else(|e| panic!("{engine}: test event {i}: {e}"));
        }
        // …the eleventh, an emit and a replay wait for the budget to refill.
        let refused = p.hooks.send_test(&USER_7, &ep).await.unwrap_err();
        assert_eq!((refused.status(), refused.code()), (429, "rate_limited"), "{engine}: {refused}");
        assert!(refused.retry_after_secs().is_some_and(|s| (1..=2).contains(&s)), "{engine}: {refused:?}");
        assert!(refused.to_string().contains("1 a second"), "{refused}");
        let emitted = p.hooks.emit(&USER_7, "workflow.completed", serde_json::json!({})).await.unwrap_err();
        assert_eq!(emitted.status(), 429, "{engine}");
        // Another owner is not held back by the first one's sending.
        p.hooks.send_test(&USER_8, &other).await.unwrap();
        // An emit with no subscribed endpoint sends nothing, so it costs nothing.
        p.hooks.emit(&USER_7, "workflow.failed", serde_json::json!({})).await.unwrap();
    }
}
