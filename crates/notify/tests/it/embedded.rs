//! The pipeline on the embedded SQLite queue, end to end: delivery, idempotency, retries and dead
//! letters, backpressure, runs, shutdown and restart.

use crate::common;
use contract::Owner;
use contract::PublicError;

use common::*;
use notify::sink::{Sink, SinkConfig};
use notify::*;
use serde_json::json;
use std::time::Duration;

const ALICE: Owner = Owner::from_static("alice");
const BOB: Owner = Owner::from_static("bob");
const MALLORY: Owner = Owner::from_static("mallory");

fn email(to: &str) -> NewNotification {
    NewNotification::new(Channel::Email, to, json!({"subject": "hi"}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_a_batch_and_records_each_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(config(&dir)).await;
    let mut batch: Vec<_> = (0..500).map(|i| NewNotification::new(Channel::Noop, format!("n{i}"), json!(i))).collect();
    batch.push(email("a@example.test"));
    let ids = svc.enqueue(batch).await.unwrap();
    assert_eq!(ids.len(), 501);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 501, "ids are unique");
    wait_for("the backlog to drain", Duration::from_secs(20), || async { svc.backlog(Backend::Embedded) == 0 }).await;
    let attempts = svc.attempts(ids[500]).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, AttemptOutcome::Delivered);
    assert_eq!(attempts[0].number, 1);
    let m = svc.metrics_text();
    assert!(m.contains("notify_delivered_total{channel=\"noop\"} 500"), "{m}");
    assert!(m.contains("notify_enqueued_total{channel=\"email\"} 1"));
    assert!(m.contains("notify_backlog{backend=\"embedded\"} 0"));
    assert!(matches!(svc.attempts(NotificationId::embedded(999_999)).await, Err(NotifyError::NotFound)));
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_enqueues_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    cfg.workers = false;
    let svc = service(cfg).await;
    let mut n = email("a@example.test");
    n.idempotency_key = Some("order-42".into());
    let first = svc.enqueue(vec![n.clone()]).await.unwrap();
    let second = svc.enqueue(vec![n.clone(), email("b@example.test")]).await.unwrap();
    assert_eq!(first[0], second[0]);
    assert_ne!(second[0], second[1]);
    assert_eq!(svc.backlog(Backend::Embedded), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_notifications_are_refused_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(config(&dir)).await;
    let e = svc.enqueue(vec![]).await.unwrap_err();
    assert_eq!(e.field_errors()[0].field, "notifications");
    let e = svc.enqueue(vec![email("ok@example.test"), email(" ")]).await.unwrap_err();
    assert_eq!(e.status(), http::StatusCode::UNPROCESSABLE_ENTITY.as_u16());
    assert_eq!(e.field_errors()[0].field, "notifications[1].recipient");
    let too_many: Vec<_> = (0..10_001).map(|_| email("a@b")).collect();
    assert_eq!(svc.enqueue(too_many).await.unwrap_err().field_errors()[0].field, "notifications");
    let unknown = serde_json::from_str::<NewNotification>(r#"{"recipient":"a","channel":"fax"}"#).unwrap_err();
    assert!(unknown.to_string().contains("unknown variant `fax`"), "{unknown}");
    assert!(matches!(svc.enqueue_to(Backend::Redis, vec![email("a@b")]).await, Err(NotifyError::BackendUnavailable)));
    assert_eq!(svc.backlog(Backend::Embedded), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_beyond_the_high_water_mark_is_refused_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    cfg.workers = false; // nothing drains, so the backlog only grows
    cfg.high_water = 1_000;
    let svc = service(cfg).await;
    let batch = || (0..100).map(|i| email(&format!("u{i}@example.test"))).collect::<Vec<_>>();
    for _ in 0..10 {
        svc.enqueue(batch()).await.unwrap();
    }
    let rss_before = rss_bytes();
    for _ in 0..2_000 {
        match svc.enqueue(batch()).await {
            Err(e @ NotifyError::Backpressure { .. }) => {
                assert_eq!(e.status(), http::StatusCode::TOO_MANY_REQUESTS.as_u16());
                assert_eq!(e.retry_after_secs(), Some(1));
            }
            other => panic!("expected backpressure, got {other:?}"),
        }
    }
    assert_eq!(svc.backlog(Backend::Embedded), 1_000, "nothing was added past the mark");
    let grown = rss_bytes().saturating_sub(rss_before);
    assert!(grown < 16 * 1024 * 1024, "200,000 refused notifications grew memory by {grown} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sink_with_timeouts_ends_with_every_notification_delivered_or_dead_lettered() {
    let sink = Sink::start("127.0.0.1:0".parse().unwrap(), SinkConfig { fail_rate: 0.3, stall_rate: 0.05, stall_ms: 2_000, ..SinkConfig::default() })
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    cfg.webhook.url = sink.url();
    cfg.webhook.timeout_ms = 300;
    cfg.retry.max_attempts = 3;
    cfg.concurrency = 64;
    let svc = service(cfg).await;
    let count = 2_000;
    let params = SimParams { count, rate: Rate::Max, mix: ChannelMix::only(Channel::Webhook), ..SimParams::default() };
    let run = svc.start_run(&ALICE, params).await.unwrap();
    wait_for("the run to complete", Duration::from_secs(60), || async {
        svc.run_snapshot(run).await.unwrap().unwrap().status == RunStatus::Completed
    })
    .await;
    let snap = svc.run_snapshot(run).await.unwrap().unwrap();
    assert_eq!(snap.delivered + snap.dead_lettered, count, "{snap:?}");
    assert!(snap.dead_lettered > 0 && snap.retried > 0, "with 35% failures and 3 attempts some die: {snap:?}");
    assert_eq!(snap.backlog, 0);

    let stats = sink.stats();
    assert!(stats.stalled > 0 && stats.failed_on_purpose > 0, "{stats:?}");
    let delivered = sink.counts();
    assert_eq!(delivered.len() as u64, snap.delivered, "every delivery reached the sink, verified");
    assert_eq!(stats.bad_signature, 0);

    let dead = svc.dead_letters(10_000).await.unwrap();
    assert_eq!(dead.len() as u64, snap.dead_lettered);
    for d in dead.iter().take(50) {
        assert!(!delivered.contains_key(&d.id.to_string()), "a dead letter was never accepted");
        let attempts = svc.attempts(d.id).await.unwrap();
        assert_eq!(attempts.len(), 3, "{attempts:?}");
        assert!(attempts.iter().all(|a| a.outcome != AttemptOutcome::Delivered && a.error.is_some()));
        assert_eq!(attempts.last().unwrap().outcome, AttemptOutcome::DeadLettered);
    }
    let mut retried_then_delivered = 0;
    for id in delivered.keys().take(300) {
        let attempts = svc.attempts(id.parse().unwrap()).await.unwrap();
        let last = attempts.last().unwrap();
        assert_eq!(last.outcome, AttemptOutcome::Delivered);
        assert_eq!(last.number as usize, attempts.len(), "attempts numbered 1..n: {attempts:?}");
        if attempts.len() > 1 {
            retried_then_delivered += 1;
            assert!(attempts[..attempts.len() - 1].iter().all(|a| a.outcome == AttemptOutcome::Retrying));
        }
    }
    assert!(retried_then_delivered > 0);
    let errors: std::collections::HashSet<_> = dead.iter().filter_map(|d| d.last_error.clone()).collect();
    assert!(errors.iter().any(|e| e == "HTTP 503" || e == "timed out"), "{errors:?}");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_can_be_listed_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    cfg.providers.failure_rate = 1.0;
    cfg.retry.max_attempts = 2;
    let svc = service(cfg).await;
    let ids = svc.enqueue((0..10).map(|i| email(&format!("u{i}@example.test"))).collect()).await.unwrap();
    wait_for("10 dead letters", Duration::from_secs(20), || async { svc.dead_letters(100).await.unwrap().len() == 10 }).await;
    let dead = svc.dead_letters(100).await.unwrap();
    assert!(dead.iter().all(|d| d.attempts == 2 && d.last_error.as_deref() == Some("simulated email provider failure")));
    assert_eq!(svc.replay_dead_letters(Replay::Ids(vec![ids[0], ids[1]])).await.unwrap(), 2);
    assert_eq!(svc.replay_dead_letters(Replay::All).await.unwrap(), 8);
    wait_for("them to die again", Duration::from_secs(20), || async {
        svc.attempts(ids[9]).await.unwrap().len() == 4 && svc.dead_letters(100).await.unwrap().len() == 10
    })
    .await;
    let m = svc.metrics_text();
    assert!(m.contains("notify_dead_lettered_total{channel=\"email\"} 20"), "{m}");
    assert!(m.contains("notify_retried_total{channel=\"email\"} 20"));
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_snapshotted_and_cancelled_by_their_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(config(&dir)).await;
    let fast = SimParams { count: 3_000, rate: Rate::Max, mix: "noop=1,email=1".parse().unwrap(), ..SimParams::default() };
    let done = svc.start_run(&ALICE, fast.clone()).await.unwrap();
    let slow = SimParams { count: 1_000_000, rate: Rate::PerHour(3_600), ..fast.clone() };
    let running = svc.start_run(&ALICE, slow).await.unwrap();
    wait_for("the fast run to complete", Duration::from_secs(30), || async {
        svc.run_snapshot(done).await.unwrap().unwrap().status == RunStatus::Completed
    })
    .await;
    let s = svc.run_snapshot(done).await.unwrap().unwrap();
    assert_eq!((s.produced, s.delivered, s.backlog), (3_000, 3_000, 0));
    assert!(s.finished_at.is_some() && s.started_at > 0);
    assert!(s.latency_ms.p50 <= s.latency_ms.p95 && s.latency_ms.p95 <= s.latency_ms.p99);
    assert!(s.end_to_end_ms.p99 > 0.0);
    assert_eq!(s.params, fast);

    assert!(matches!(svc.cancel_run(&MALLORY, running).await, Err(NotifyError::NotFound)));
    wait_for("the slow run to produce", Duration::from_secs(10), || async { svc.run_snapshot(running).await.unwrap().unwrap().produced > 0 }).await;
    svc.cancel_run(&ALICE, running).await.unwrap();
    let c = svc.run_snapshot(running).await.unwrap().unwrap();
    assert_eq!(c.status, RunStatus::Cancelled);
    assert!(c.produced < 1_000);
    assert!(matches!(svc.cancel_run(&ALICE, running).await, Err(NotifyError::Conflict(_))));

    let runs = svc.list_runs(&ALICE).await.unwrap();
    assert_eq!(runs.iter().map(|r| (r.id, r.status)).collect::<Vec<_>>(), [(running, RunStatus::Cancelled), (done, RunStatus::Completed)]);
    assert!(svc.list_runs(&BOB).await.unwrap().is_empty());
    assert_eq!(svc.run_owner(done).await.unwrap().as_deref(), Some("alice"));
    assert!(svc.run_snapshot(12345).await.unwrap().is_none());
    let bad = SimParams { count: 0, ..SimParams::default() };
    assert_eq!(svc.start_run(&ALICE, bad).await.unwrap_err().field_errors()[0].field, "count");
    let redis = SimParams { backend: Backend::Redis, ..SimParams::default() };
    assert_eq!(svc.start_run(&ALICE, redis).await.unwrap_err().field_errors()[0].field, "backend");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_run_keeps_its_rate() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(config(&dir)).await;
    // 36,000/hour = 10/s: about 30 in 3 s.
    let p = SimParams { count: 100_000, rate: Rate::PerHour(36_000), mix: ChannelMix::only(Channel::Noop), ..SimParams::default() };
    let run = svc.start_run(&ALICE, p).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = svc.run_snapshot(run).await.unwrap().unwrap();
    assert!((27..=33).contains(&s.produced), "{}", s.produced);
    assert!(!s.throughput.is_empty(), "a throughput sample each second");
    svc.cancel_run(&ALICE, run).await.unwrap();
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_work_and_a_restart_resumes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    cfg.concurrency = 20;
    let svc = service(cfg.clone()).await;
    let p = SimParams { count: 400, rate: Rate::Max, mix: ChannelMix::only(Channel::Push), latency_ms: 100, ..SimParams::default() };
    let run = svc.start_run(&ALICE, p).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    svc.shutdown().await;
    let before = svc.run_snapshot(run).await.unwrap().unwrap();
    assert!(before.delivered > 0 && before.delivered < 400, "{before:?}");
    drop(svc);

    let svc = service(cfg).await;
    wait_for("the resumed run to complete", Duration::from_secs(30), || async {
        svc.run_snapshot(run).await.unwrap().unwrap().status == RunStatus::Completed
    })
    .await;
    let after = svc.run_snapshot(run).await.unwrap().unwrap();
    assert_eq!((after.produced, after.delivered, after.dead_lettered), (400, 400, 0), "{after:?}");
    svc.shutdown().await;
}
