//! Routed webhooks: a resolver picks each job's URL, keys, `webhook-id` and body; the address policy is
//! applied to resolved names at connect time (DNS rebinding) and to IP literals; a give-up dead-letters
//! at once without a request; observers hear every attempt with its HTTP status.

use crate::common;

use common::*;
use notify::signature::SigningKey;
use notify::sink::{Sink, SinkConfig};
use notify::*;
use serde_json::json;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Jobs to `routed:<url>` go to that URL, signed with two keys; `gone:` jobs are given up on.
struct Targets {
    keys: Vec<SigningKey>,
}

impl WebhookTargets for Targets {
    fn resolve<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<Option<WebhookTarget>, RouteError>> {
        Box::pin(async move {
            if job.recipient.starts_with("gone:") {
                return Err(RouteError::GiveUp("endpoint deleted".into()));
            }
            let Some(url) = job.recipient.strip_prefix("routed:") else { return Ok(None) };
            Ok(Some(WebhookTarget {
                url: url.to_string(),
                keys: self.keys.clone(),
                message_id: "msg_fixed".into(),
                body: r#"{"type":"test.ping","timestamp":"2026-12-01T00:00:00Z","data":{}}"#.into(),
                // `routed:<url>#<n>` plays an endpoint limited to n a second.
                rate_limit_per_sec: url.split_once('#').and_then(|(_, n)| n.parse().ok()),
            }))
        })
    }
}

struct Policy(fn(IpAddr) -> bool);

impl AddressPolicy for Policy {
    fn permits(&self, ip: IpAddr) -> bool {
        (self.0)(ip)
    }
}

/// (recipient, outcome, HTTP status, refused) per attempt.
type SeenAttempt = (String, AttemptOutcome, Option<u16>, bool);

#[derive(Default)]
struct Seen(Mutex<Vec<SeenAttempt>>);

impl AttemptObserver for Seen {
    fn on_attempt<'a>(&'a self, r: &'a AttemptReport) -> BoxFuture<'a, ()> {
        self.0.lock().unwrap().push((r.job.recipient.clone(), r.attempt.outcome, r.status, r.refused));
        Box::pin(async {})
    }
}

async fn routed_service(dir: &tempfile::TempDir, permits: fn(IpAddr) -> bool, sink: &Sink) -> (NotifyService, Arc<Seen>) {
    let mut cfg = config(dir);
    cfg.webhook.retry = notify::WebhookRetry::every(10, 2);
    cfg.webhook.url = sink.url();
    let svc = NotifyService::new(cfg).await.unwrap();
    let new_key = SigningKey::from_secret(&SigningKey::generate_secret()).unwrap();
    let keys = vec![new_key, SigningKey::from_secret(SECRET_A).unwrap()];
    svc.set_webhook_routing(WebhookRouting { targets: Arc::new(Targets { keys }), policy: Arc::new(Policy(permits)), push: None }).unwrap();
    let seen = Arc::new(Seen::default());
    svc.add_attempt_observer(seen.clone());
    svc.start().await.unwrap();
    (svc, seen)
}

fn hook(recipient: String) -> NewNotification {
    NewNotification::new(Channel::Webhook, recipient, json!({}))
}

#[tokio::test]
async fn routed_jobs_go_to_their_target_with_every_key_and_others_to_the_configured_url() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start("127.0.0.1:0".parse().unwrap(), SinkConfig::default()).await.unwrap();
    sink.capture(10);
    let (svc, seen) = routed_service(&dir, |ip| ip.is_loopback(), &sink).await;
    // A host name, so the guarded resolver is used (and permits loopback here).
    let url = format!("http://localhost:{}/webhook", sink.addr().port());
    let ids = svc.enqueue(vec![hook(format!("routed:{url}")), hook("plain".into())]).await.unwrap();
    wait_for("both deliveries", Duration::from_secs(10), || async { sink.stats().accepted == 2 }).await;
    let captured = sink.captured();
    let routed = captured.iter().find(|c| c.id == "msg_fixed").expect("the routed one");
    assert_eq!(routed.signature.split(' ').count(), 2, "{}", routed.signature);
    assert!(routed.body.starts_with(br#"{"type":"test.ping""#));
    assert!(captured.iter().any(|c| c.id == ids[1].to_string()), "the unrouted job keeps the configured URL and its id");
    wait_for("the observer", Duration::from_secs(5), || async { seen.0.lock().unwrap().len() == 2 }).await;
    assert!(seen.0.lock().unwrap().iter().all(|(_, o, status, refused)| *o == AttemptOutcome::Delivered && *status == Some(204) && !refused));
    svc.shutdown().await;
}

#[tokio::test]
async fn the_policy_refuses_names_at_connect_time_and_literals_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start("127.0.0.1:0".parse().unwrap(), SinkConfig::default()).await.unwrap();
    let (svc, seen) = routed_service(&dir, |_| false, &sink).await;
    let port = sink.addr().port();
    let ids = svc
        .enqueue(vec![
            hook(format!("routed:http://localhost:{port}/webhook")),
            hook(format!("routed:http://127.0.0.1:{port}/webhook")),
            hook("gone:ep_1".into()),
        ])
        .await
        .unwrap();
    wait_for("three dead letters", Duration::from_secs(10), || async { svc.dead_letters(10).await.unwrap().len() == 3 }).await;
    assert_eq!(sink.stats().received, 0, "nothing reached the receiver");
    let name = svc.attempts(ids[0]).await.unwrap();
    assert_eq!(name.len(), 2, "a refused name is a failed attempt, retried");
    assert_eq!(name[0].error.as_deref(), Some("address not allowed"));
    let literal = svc.attempts(ids[1]).await.unwrap();
    assert_eq!((literal.len(), literal[0].error.as_deref()), (1, Some("address not allowed")));
    let gone = svc.attempts(ids[2]).await.unwrap();
    assert_eq!((gone.len(), gone[0].outcome, gone[0].error.as_deref()), (1, AttemptOutcome::DeadLettered, Some("endpoint deleted")));
    wait_for("the observer", Duration::from_secs(5), || async { seen.0.lock().unwrap().len() == 4 }).await;
    let gave_up =
        seen.0.lock().unwrap().iter().any(|(r, o, s, refused)| r == "gone:ep_1" && *o == AttemptOutcome::DeadLettered && s.is_none() && *refused);
    assert!(gave_up);
    svc.shutdown().await;
}

/// (recipient, outcome, owner) per attempt.
#[derive(Default)]
struct Owners(Mutex<Vec<(String, AttemptOutcome, Option<String>)>>);

impl AttemptObserver for Owners {
    fn on_attempt<'a>(&'a self, r: &'a AttemptReport) -> BoxFuture<'a, ()> {
        self.0.lock().unwrap().push((r.job.recipient.clone(), r.attempt.outcome, r.job.owner.clone()));
        Box::pin(async {})
    }
}

impl Owners {
    fn of(&self, recipient: &str, outcome: AttemptOutcome) -> Vec<Option<String>> {
        self.0.lock().unwrap().iter().filter(|(r, o, _)| r == recipient && *o == outcome).map(|(_, _, w)| w.clone()).collect()
    }
}

/// The owner given at enqueue reaches the observers on every attempt, on both backends, in batches with
/// and without idempotency keys, and again after a dead letter is replayed; others carry none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_enqueuing_owner_travels_with_each_job_on_both_backends_and_through_replay() {
    let redis = Redis::start();
    for backend in [Backend::Embedded, Backend::Redis] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(&dir);
        cfg.redis_url = Some(redis.url.clone());
        cfg.redis_prefix = format!("owners-{}", backend.as_str());
        cfg.webhook.retry = notify::WebhookRetry::every(10, 2);
        cfg.webhook.url = format!("http://127.0.0.1:{}/closed", free_port());
        let svc = NotifyService::new(cfg).await.unwrap();
        let seen = Arc::new(Owners::default());
        svc.add_attempt_observer(seen.clone());
        svc.start().await.unwrap();

        let mut keyed = NewNotification::new(Channel::Noop, "keyed", json!({}));
        keyed.idempotency_key = Some(format!("k-{}", backend.as_str()));
        let batch = vec![NewNotification::new(Channel::Noop, "plain", json!({})), keyed];
        svc.enqueue_for(Some("alice"), backend, batch).await.unwrap();
        svc.enqueue_to(backend, vec![NewNotification::new(Channel::Noop, "nobody", json!({}))]).await.unwrap();
        // A webhook to a closed port fails twice and is dead-lettered.
        let dead = NewNotification::new(Channel::Webhook, "doomed", json!({}));
        let dead_id = svc.enqueue_for(Some("bob"), backend, vec![dead]).await.unwrap()[0];
        wait_for("deliveries and a dead letter", Duration::from_secs(20), || async {
            seen.of("plain", AttemptOutcome::Delivered).len() == 1
                && seen.of("keyed", AttemptOutcome::Delivered).len() == 1
                && seen.of("nobody", AttemptOutcome::Delivered).len() == 1
                && seen.of("doomed", AttemptOutcome::DeadLettered).len() == 1
        })
        .await;
        let alice = Some("alice".to_string());
        assert_eq!(seen.of("plain", AttemptOutcome::Delivered), vec![alice.clone()], "{backend:?}");
        assert_eq!(seen.of("keyed", AttemptOutcome::Delivered), vec![alice], "{backend:?}");
        assert_eq!(seen.of("nobody", AttemptOutcome::Delivered), vec![None], "{backend:?}");
        assert_eq!(seen.of("doomed", AttemptOutcome::Retrying), vec![Some("bob".to_string())], "{backend:?}");

        assert_eq!(svc.replay_dead_letters(Replay::Ids(vec![dead_id])).await.unwrap(), 1);
        wait_for("the replayed dead letter", Duration::from_secs(20), || async { seen.of("doomed", AttemptOutcome::DeadLettered).len() == 2 }).await;
        assert!(seen.of("doomed", AttemptOutcome::DeadLettered).iter().all(|o| o.as_deref() == Some("bob")), "{backend:?}");
        svc.shutdown().await;
    }
}

/// A queue file made before notifications had an owner column is upgraded in place, and what was
/// waiting in it is still delivered.
#[tokio::test]
async fn a_queue_file_without_the_owner_column_is_upgraded_and_keeps_its_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    {
        let svc = NotifyService::new(cfg.clone()).await.unwrap();
        svc.enqueue(vec![NewNotification::new(Channel::Noop, "waiting", json!({}))]).await.unwrap();
        svc.shutdown().await;
    }
    let path = dir.path().join("notify.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    // Back to the shape of that time: schema version 0, no owner column (nor anything built on it).
    conn.execute_batch(
        "DROP INDEX notifications_idem_owner; DROP INDEX notifications_idem_operator; DROP INDEX notifications_dead_by_owner; \
         DROP INDEX notifications_settled; DROP INDEX attempts_by_age; DROP INDEX runs_finished; DROP INDEX notifications_retrying_by_route; DROP INDEX notifications_retrying_default; \
         DROP INDEX notifications_lanes; ALTER TABLE notifications DROP COLUMN lane; ALTER TABLE notifications DROP COLUMN expires_ms; \
         ALTER TABLE runs DROP COLUMN expired; CREATE INDEX notifications_ready ON notifications(due_ms) WHERE state = 0; \
         DROP TABLE owner_usage; ALTER TABLE notifications DROP COLUMN route; ALTER TABLE notifications DROP COLUMN owner; \
         CREATE UNIQUE INDEX notifications_idem ON notifications(idem_key) WHERE idem_key IS NOT NULL; PRAGMA user_version = 0;",
    )
    .unwrap();
    drop(conn);

    let svc = NotifyService::new(cfg).await.unwrap();
    let seen = Arc::new(Owners::default());
    svc.add_attempt_observer(seen.clone());
    svc.start().await.unwrap();
    svc.enqueue_for(Some("carol"), Backend::Embedded, vec![NewNotification::new(Channel::Noop, "new", json!({}))]).await.unwrap();
    wait_for("both delivered", Duration::from_secs(10), || async {
        seen.of("waiting", AttemptOutcome::Delivered).len() == 1 && seen.of("new", AttemptOutcome::Delivered).len() == 1
    })
    .await;
    assert_eq!(seen.of("waiting", AttemptOutcome::Delivered), vec![None]);
    assert_eq!(seen.of("new", AttemptOutcome::Delivered), vec![Some("carol".to_string())]);
    svc.shutdown().await;
}

/// A started service on `backend` (its own Redis prefix) whose webhooks [`Targets`] routes (loopback
/// allowed) and `sink` gets otherwise, with an observer of every attempt.
async fn routed_on(
    dir: &tempfile::TempDir,
    redis: &Redis,
    backend: Backend,
    sink: &Sink,
    tune: impl FnOnce(&mut PipelineConfig),
) -> (NotifyService, Arc<Seen>) {
    let mut cfg = config(dir);
    cfg.redis_url = Some(redis.url.clone());
    cfg.redis_prefix = format!("routed-{}-{}", backend.as_str(), sink.addr().port());
    cfg.webhook.url = sink.url();
    tune(&mut cfg);
    let svc = NotifyService::new(cfg).await.unwrap();
    let keys = vec![SigningKey::from_secret(SECRET_A).unwrap()];
    svc.set_webhook_routing(WebhookRouting { targets: Arc::new(Targets { keys }), policy: Arc::new(Policy(|ip| ip.is_loopback())), push: None })
        .unwrap();
    let seen = Arc::new(Seen::default());
    svc.add_attempt_observer(seen.clone());
    svc.start().await.unwrap();
    (svc, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_endpoint_waits_in_the_queue_not_in_a_worker() {
    let redis = Redis::start();
    for backend in [Backend::Embedded, Backend::Redis] {
        let dir = tempfile::tempdir().unwrap();
        let sink = Sink::start("127.0.0.1:0".parse().unwrap(), SinkConfig::default()).await.unwrap();
        // Two workers: were a limited endpoint's deliveries waited for in them, the other endpoint's
        // would queue behind.
        let (svc, seen) = routed_on(&dir, &redis, backend, &sink, |cfg| cfg.concurrency = 2).await;
        let url = format!("http://127.0.0.1:{}/webhook", sink.addr().port());
        let slow: Vec<_> = (0..20).map(|_| ("ep_slow".to_string(), hook(format!("routed:{url}#5")))).collect();
        let fast: Vec<_> = (0..20).map(|_| ("ep_fast".to_string(), hook(format!("routed:{url}")))).collect();
        let started = std::time::Instant::now();
        svc.enqueue_routed(&contract::Owner::from("ann"), backend, slow).await.unwrap();
        svc.enqueue_routed(&contract::Owner::from("ann"), backend, fast).await.unwrap();
        let seen_for = |n: usize| {
            let seen = seen.clone();
            move || {
                let seen = seen.clone();
                async move { seen.0.lock().unwrap().iter().filter(|(r, ..)| !r.contains('#')).count() >= n }
            }
        };
        wait_for("the unlimited endpoint's 20", Duration::from_secs(10), seen_for(20)).await;
        let fast_done = started.elapsed();
        wait_for("all 40", Duration::from_secs(20), || async { sink.stats().received == 40 }).await;
        let all_done = started.elapsed();
        assert!(fast_done < Duration::from_millis(1_500), "{backend:?}: the unlimited endpoint waited: {fast_done:?}");
        // A burst of 5, then 5 a second: the other 15 take about 3 s.
        assert!(all_done >= Duration::from_millis(2_500) && all_done < Duration::from_secs(10), "{backend:?}: {all_done:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let attempts = seen.0.lock().unwrap().clone();
        assert_eq!(attempts.len(), 40, "{backend:?}: a deferral is no attempt");
        assert!(attempts.iter().all(|(_, o, ..)| *o == AttemptOutcome::Delivered), "{backend:?}");
        let deferred: u64 = svc
            .metrics_text()
            .lines()
            .find(|l| l.starts_with("notify_deferred_total{channel=\"webhook\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0);
        assert!(deferred > 0, "{backend:?}");
        svc.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_cap_an_endpoints_oldest_waiting_retries_become_dead_letters_and_are_reported() {
    let redis = Redis::start();
    for backend in [Backend::Embedded, Backend::Redis] {
        let dir = tempfile::tempdir().unwrap();
        let sink = Sink::start("127.0.0.1:0".parse().unwrap(), SinkConfig { fail_rate: 1.0, ..SinkConfig::default() }).await.unwrap();
        // The receiver is down all along; every retry waits an hour.
        let (svc, seen) = routed_on(&dir, &redis, backend, &sink, |cfg| {
            cfg.webhook.retry = WebhookRetry { max_pending_per_endpoint: 10, ..WebhookRetry::every(3_600_000, 5) }
        })
        .await;
        let owner = contract::Owner::from("ann");
        let job = |n: usize| ("ep_down".to_string(), hook(format!("routed:{}#n{n}", sink.url())));
        let waiting = |n: u64| {
            let svc = svc.clone();
            move || {
                let svc = svc.clone();
                async move { svc.metrics_text().contains(&format!("notify_retries_waiting{{backend=\"{}\"}} {n}", backend.as_str())) }
            }
        };
        let mut ids = vec![];
        for n in 0..10 {
            ids.extend(svc.enqueue_routed(&owner, backend, vec![job(n)]).await.unwrap());
        }
        wait_for("ten retries waiting", Duration::from_secs(30), waiting(10)).await;
        // Each further failure makes room by dropping the oldest waiting one.
        for n in 10..15 {
            ids.extend(svc.enqueue_routed(&owner, backend, vec![job(n)]).await.unwrap());
            let dead = n - 9;
            wait_for("the oldest to be dropped", Duration::from_secs(30), || async { svc.dead_letters(100).await.unwrap().len() == dead }).await;
            wait_for("still ten waiting", Duration::from_secs(30), waiting(10)).await;
        }
        let mut dead: Vec<String> = svc.dead_letters(100).await.unwrap().iter().map(|d| d.id.to_string()).collect();
        dead.sort();
        let mut oldest: Vec<String> = ids[..5].iter().map(|i| i.to_string()).collect();
        oldest.sort();
        assert_eq!(dead, oldest, "{backend:?}: the five oldest");
        let reports = seen.0.lock().unwrap().clone();
        let dropped = reports.iter().filter(|(_, o, status, _)| *o == AttemptOutcome::DeadLettered && status.is_none()).count();
        assert_eq!(dropped, 5, "{backend:?}: the observers heard of each: {reports:?}");
        assert_eq!(svc.backlog(backend), 10, "{backend:?}");
        let why = svc.dead_letters(1).await.unwrap()[0].last_error.clone().unwrap_or_default();
        assert!(why.contains("more than 10 retries"), "{backend:?}: {why}");
        svc.shutdown().await;
    }
}
