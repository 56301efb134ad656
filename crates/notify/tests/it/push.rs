//! Real Web Push (issue 20): a user's push notification is encrypted for their subscription (RFC 8291)
//! and sent with a VAPID token (RFC 8292) and `TTL`/`Urgency` (RFC 8030) to a push service on loopback
//! (`scripts/push_service.py`), which decrypts it with an independent implementation (PyPI `http_ece`)
//! and checks the token with `cryptography`. 404/410 forget the subscription; 429 is retried; a
//! subscription that is not the owner's is refused at enqueue; simulation runs stay simulated.

use crate::common::*;
use notify::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::PushService;

/// A VAPID private key for these tests only (32 bytes, base64url).
const VAPID_KEY: &str = "PmClDwB8c2t9E0T0y3HqF3Z2o1k4YVZ1mR0H2WcQy1A";
const ADA: &str = "ada";

/// Subscriptions by id: (owner, target). `gone` removes one, as the hooks store deletes its row.
#[derive(Default)]
struct Subscriptions(Mutex<HashMap<String, (String, PushTarget)>>);

impl PushTargets for Subscriptions {
    fn resolve<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<PushTarget, RouteError>> {
        let found = self.0.lock().unwrap().get(&job.recipient).filter(|(o, _)| Some(o.as_str()) == job.owner.as_deref()).map(|(_, t)| t.clone());
        Box::pin(async move { found.ok_or_else(|| RouteError::GiveUp("no such push subscription".into())) })
    }

    fn owns<'a>(&'a self, owner: &'a str, id: &'a str) -> BoxFuture<'a, Result<bool, RouteError>> {
        let owned = self.0.lock().unwrap().get(id).is_some_and(|(o, _)| o == owner);
        Box::pin(async move { Ok(owned) })
    }

    fn gone<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, ()> {
        self.0.lock().unwrap().remove(&job.recipient);
        Box::pin(async {})
    }
}

struct NoWebhooks;

impl WebhookTargets for NoWebhooks {
    fn resolve<'a>(&'a self, _: &'a Job) -> BoxFuture<'a, Result<Option<WebhookTarget>, RouteError>> {
        Box::pin(async { Ok(None) })
    }
}

struct Policy(fn(IpAddr) -> bool);

impl AddressPolicy for Policy {
    fn permits(&self, ip: IpAddr) -> bool {
        (self.0)(ip)
    }
}

fn target(sub: &Value) -> PushTarget {
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v.as_str().unwrap()).unwrap();
    PushTarget { endpoint: sub["endpoint"].as_str().unwrap().into(), p256dh: b64(&sub["keys"]["p256dh"]), auth: b64(&sub["keys"]["auth"]) }
}

async fn push_service_and_pipeline(dir: &tempfile::TempDir, permits: fn(IpAddr) -> bool) -> (PushService, NotifyService, Arc<Subscriptions>) {
    let push = PushService::start(dir.path());
    let mut cfg = config(dir);
    cfg.push.vapid_private_key = VAPID_KEY.into();
    cfg.push.subject = "mailto:ops@example.org".into();
    cfg.webhook.retry = WebhookRetry::every(50, 3);
    let svc = NotifyService::new(cfg).await.unwrap();
    let subs = Arc::new(Subscriptions::default());
    svc.set_webhook_routing(WebhookRouting { targets: Arc::new(NoWebhooks), policy: Arc::new(Policy(permits)), push: Some(subs.clone()) }).unwrap();
    svc.start().await.unwrap();
    (push, svc, subs)
}

async fn add(push: &PushService, subs: &Subscriptions, owner: &str, options: Value) -> String {
    let sub = push.subscribe(options).await;
    let id = sub["id"].as_str().unwrap().to_string();
    subs.0.lock().unwrap().insert(id.clone(), (owner.into(), target(&sub)));
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_is_decrypted_by_an_independent_implementation_with_its_vapid_token_ttl_and_urgency() {
    let dir = tempfile::tempdir().unwrap();
    let (push, svc, subs) = push_service_and_pipeline(&dir, |ip| ip.is_loopback()).await;
    let sub = add(&push, &subs, ADA, json!({})).await;
    let payload = json!({"title": "Build passed", "body": "main is green ✓"});
    let mut n = NewNotification::new(Channel::Push, &sub, payload.clone()).with_priority(Priority::High);
    n.ttl_secs = Some(600);
    let id = svc
        .enqueue_for(Some(ADA), Backend::Embedded, vec![n, NewNotification::new(Channel::Push, &sub, json!({"n": 2})).with_priority(Priority::Bulk)])
        .await
        .unwrap();
    wait_for("two messages at the push service", Duration::from_secs(15), || async {
        push.received(&sub).await["messages"].as_array().is_some_and(|m| m.len() == 2)
    })
    .await;
    let got = push.received(&sub).await;
    assert_eq!(got["failures"], json!([]), "every RFC check passed at the push service: {got}");
    let messages = got["messages"].as_array().unwrap();
    let first = messages.iter().find(|m| m["urgency"] == "high").unwrap_or_else(|| panic!("{got}"));
    let decrypted: Value = serde_json::from_str(first["payload"].as_str().unwrap()).unwrap();
    assert_eq!(decrypted, payload, "the independent decryption gives back the payload");
    let ttl = first["ttl"].as_i64().unwrap();
    assert!((590..=600).contains(&ttl), "TTL is the time the notification has left: {ttl}");
    assert_eq!(first["vapid"]["aud"], format!("http://{}", push.addr), "the token names the push service's origin");
    assert_eq!(first["vapid"]["sub"], "mailto:ops@example.org");
    assert_eq!(first["vapid"]["k"], svc.push_public_key().unwrap(), "signed by this server's key");
    let bulk = messages.iter().find(|m| m["urgency"] == "low").unwrap_or_else(|| panic!("bulk is sent with Urgency: low: {got}"));
    assert_eq!(bulk["ttl"], 28 * 24 * 3600, "no expiry: four weeks");
    for i in id {
        assert_eq!(settled(&svc, i).await.iter().map(|a| a.outcome).collect::<Vec<_>>(), [AttemptOutcome::Delivered]);
    }
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_forgets_the_subscription_busy_is_retried_and_a_private_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (push, svc, subs) = push_service_and_pipeline(&dir, |ip| ip.is_loopback()).await;
    let gone = add(&push, &subs, ADA, json!({"answer": 410})).await;
    let busy = add(&push, &subs, ADA, json!({"answer": 429, "retry_after": 0})).await;
    let ids = svc
        .enqueue_for(
            Some(ADA),
            Backend::Embedded,
            vec![NewNotification::new(Channel::Push, &gone, json!({})), NewNotification::new(Channel::Push, &busy, json!({}))],
        )
        .await
        .unwrap();
    let a = settled(&svc, ids[0]).await;
    assert_eq!(a.iter().map(|a| a.outcome).collect::<Vec<_>>(), [AttemptOutcome::DeadLettered], "410: no retry ({a:?})");
    assert!(a[0].error.as_deref().is_some_and(|e| e.starts_with("HTTP 410")), "{a:?}");
    assert!(!subs.0.lock().unwrap().contains_key(&gone), "a gone subscription is forgotten");
    let b = settled(&svc, ids[1]).await;
    assert_eq!(
        b.iter().map(|a| a.outcome).collect::<Vec<_>>(),
        [AttemptOutcome::Retrying, AttemptOutcome::Retrying, AttemptOutcome::DeadLettered],
        "429 is retried on the schedule: {b:?}"
    );
    assert!(subs.0.lock().unwrap().contains_key(&busy), "a busy push service does not lose the subscription");
    // A user cannot name a subscription that is gone, or someone else's, nor send more than a record holds.
    let bob = add(&push, &subs, "bob", json!({})).await;
    let e = svc
        .enqueue_for(
            Some(ADA),
            Backend::Embedded,
            vec![
                NewNotification::new(Channel::Push, &gone, json!({})),
                NewNotification::new(Channel::Push, &bob, json!({})),
                NewNotification::new(Channel::Push, &busy, json!({"x": "y".repeat(4000)})),
            ],
        )
        .await
        .unwrap_err();
    let NotifyError::Invalid(fields) = e else { panic!("{e:?}") };
    let fields: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["notifications[0].recipient", "notifications[1].recipient", "notifications[2].payload"]);
    svc.shutdown().await;

    // The push endpoint is user-supplied: the guard that holds webhooks holds it too, at connect time.
    let dir = tempfile::tempdir().unwrap();
    let (push, svc, subs) = push_service_and_pipeline(&dir, |_| false).await;
    let sub = add(&push, &subs, ADA, json!({})).await;
    let id = svc.enqueue_for(Some(ADA), Backend::Embedded, vec![NewNotification::new(Channel::Push, &sub, json!({}))]).await.unwrap()[0];
    let a = settled(&svc, id).await;
    assert_eq!((a.len(), a[0].outcome, a[0].error.as_deref()), (1, AttemptOutcome::DeadLettered, Some("address not allowed")), "{a:?}");
    assert_eq!(push.received(&sub).await["messages"], json!([]));
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulation_runs_push_stays_simulated_and_pushes_are_capped_per_day() {
    let dir = tempfile::tempdir().unwrap();
    let push = PushService::start(dir.path());
    let mut cfg = config(&dir);
    cfg.push.vapid_private_key = VAPID_KEY.into();
    cfg.quotas.pushes_per_day = 2;
    let svc = NotifyService::new(cfg).await.unwrap();
    let subs = Arc::new(Subscriptions::default());
    svc.set_webhook_routing(WebhookRouting {
        targets: Arc::new(NoWebhooks),
        policy: Arc::new(Policy(|ip| ip.is_loopback())),
        push: Some(subs.clone()),
    })
    .unwrap();
    svc.start().await.unwrap();
    let sub = add(&push, &subs, ADA, json!({})).await;
    let p = SimParams { count: 10, rate: Rate::Max, mix: ChannelMix::only(Channel::Push), ..SimParams::default() };
    let run = svc.start_run(&contract::Owner::from(ADA), p).await.unwrap();
    wait_for("the run to complete", Duration::from_secs(15), || async {
        svc.run_snapshot(run).await.unwrap().is_some_and(|s| s.status == RunStatus::Completed)
    })
    .await;
    let push_one = || vec![NewNotification::new(Channel::Push, &sub, json!({}))];
    svc.enqueue_for(Some(ADA), Backend::Embedded, push_one()).await.unwrap();
    svc.enqueue_for(Some(ADA), Backend::Embedded, push_one()).await.unwrap();
    match svc.enqueue_for(Some(ADA), Backend::Embedded, push_one()).await {
        Err(NotifyError::QuotaExceeded { message, .. }) => assert!(message.contains("at most 2 push messages a day"), "{message}"),
        other => panic!("{other:?}"),
    }
    wait_for("the two real pushes", Duration::from_secs(15), || async {
        push.received(&sub).await["messages"].as_array().is_some_and(|m| m.len() == 2)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(push.received(&sub).await["messages"].as_array().unwrap().len(), 2, "the run's ten never reached the push service");
    svc.shutdown().await;
}
