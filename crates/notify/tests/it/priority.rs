//! Priorities, expiry and fairness between owners (issue 18), on both backends: a high-priority
//! notification overtakes a bulk backlog, one owner's backlog does not hold up another's (nor get them
//! a 429), and a notification past its time to live is settled `expired`, unsent.

use crate::common::*;
use contract::Owner;
use notify::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// Email deliveries that take `latency_ms` each, `concurrency` at once: a backlog that stays a backlog
/// for the length of a test.
fn slow_config(dir: &tempfile::TempDir, redis: &Redis, latency_ms: u32, concurrency: usize) -> PipelineConfig {
    let mut c = config(dir);
    c.redis_url = Some(redis.url.clone());
    c.providers.latency_ms = latency_ms;
    c.concurrency = concurrency;
    c
}

fn email(n: usize, priority: Priority) -> Vec<NewNotification> {
    (0..n).map(|i| NewNotification::new(Channel::Email, format!("u{i}@example.test"), json!({ "i": i })).with_priority(priority)).collect()
}

/// Waits until `id` has a delivered attempt; how long that took.
async fn delivered_within(svc: &NotifyService, id: NotificationId, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let attempts = svc.attempts(id).await.unwrap_or_default();
        if attempts.iter().any(|a| a.outcome == AttemptOutcome::Delivered) {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{id} was not delivered within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn high_overtakes_bulk(backend: Backend) {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    // 32 × 5 ms: about 6,000 a second, so 100,000 bulk take ~15 s.
    let svc = service(slow_config(&dir, &redis, 5, 32)).await;
    for _ in 0..10 {
        svc.enqueue_to(backend, email(10_000, Priority::Bulk)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ids = svc.enqueue_to(backend, email(1, Priority::High)).await.unwrap();
    let took = delivered_within(&svc, ids[0], Duration::from_secs(1)).await;
    let left = svc.backlog(backend);
    assert!(left > 50_000, "the bulk backlog was still there ({left} waiting) when the high one went, after {took:?}");
    eprintln!("{backend:?}: high delivered after {took:?} with {left} bulk waiting");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_high_priority_notification_overtakes_100k_bulk_on_the_embedded_queue() {
    high_overtakes_bulk(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_high_priority_notification_overtakes_100k_bulk_on_redis() {
    high_overtakes_bulk(Backend::Redis).await;
}

async fn fair_between_owners(backend: Backend) {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = slow_config(&dir, &redis, 5, 32);
    // Alice may queue her 200,000 at once (her rate and day quotas off); the per-owner cap is above it.
    cfg.quotas.enqueue_per_sec = 0;
    cfg.quotas.notifications_per_day = 0;
    cfg.quotas.backlog_per_owner = 250_000;
    let svc = service(cfg).await;
    for _ in 0..20 {
        svc.enqueue_for(Some("alice"), backend, email(10_000, Priority::Normal)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ids = svc.enqueue_for(Some("bob"), backend, email(1, Priority::Normal)).await.expect("bob is within his own quota: no 429");
    let took = delivered_within(&svc, ids[0], Duration::from_secs(1)).await;
    let left = svc.backlog(backend);
    assert!(left > 150_000, "alice's backlog was still there ({left} waiting) when bob's went, after {took:?}");
    eprintln!("{backend:?}: bob's delivered after {took:?} with {left} of alice's waiting");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_owners_200k_backlog_does_not_hold_up_anothers_notification_on_the_embedded_queue() {
    fair_between_owners(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_owners_200k_backlog_does_not_hold_up_anothers_notification_on_redis() {
    fair_between_owners(Backend::Redis).await;
}

/// The backlog cap is per owner: past hers, alice gets 429 (a quota, naming the cap) while bob's
/// enqueue is accepted; the machine's high-water mark is far above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_owner_has_a_backlog_cap_of_their_own_on_both_backends() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = slow_config(&dir, &redis, 2_000, 1);
    cfg.quotas.backlog_per_owner = 100;
    let svc = service(cfg).await;
    for backend in [Backend::Embedded, Backend::Redis] {
        svc.enqueue_for(Some("alice"), backend, email(100, Priority::Normal)).await.unwrap();
        match svc.enqueue_for(Some("alice"), backend, email(1, Priority::Normal)).await {
            Err(NotifyError::QuotaExceeded { message, .. }) => assert!(message.contains("at most 100 may wait"), "{message}"),
            other => panic!("{backend:?}: alice past her cap got {other:?}"),
        }
        svc.enqueue_for(Some("bob"), backend, email(1, Priority::Normal)).await.expect("bob's own backlog is empty");
    }
    svc.shutdown().await;
}

/// A run whose notifications live one second, delivered at ~40 a second: those still waiting then end
/// `expired`, are never sent, and are counted in the run and on /metrics; the run completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_past_their_time_to_live_expire_unsent_on_both_backends() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let svc = service(slow_config(&dir, &redis, 100, 4)).await;
    let mut total_expired = 0;
    for backend in [Backend::Embedded, Backend::Redis] {
        let p = SimParams {
            count: 200,
            rate: Rate::Max,
            mix: ChannelMix::only(Channel::Email),
            backend,
            latency_ms: 100,
            ttl_secs: Some(1),
            ..SimParams::default()
        };
        let run = svc.start_run(&Owner::from("alice"), p).await.unwrap();
        wait_for("the run to complete", Duration::from_secs(30), || async {
            svc.run_snapshot(run).await.unwrap().unwrap().status == RunStatus::Completed
        })
        .await;
        let s = svc.run_snapshot(run).await.unwrap().unwrap();
        assert_eq!(s.delivered + s.expired, 200, "{backend:?}: {s:?}");
        assert!(s.delivered > 0 && s.delivered < 150, "{backend:?}: about a second's worth were sent: {s:?}");
        assert_eq!((s.dead_lettered, s.backlog), (0, 0), "{backend:?}: {s:?}");
        total_expired += s.expired;
        let view = svc.run_view(&Owner::from("alice"), run).await.unwrap().unwrap();
        assert_eq!((view.expired, view.settled()), (s.expired, 200));
    }
    let m = svc.metrics_text();
    assert!(m.contains(&format!("notify_expired_total{{channel=\"email\"}} {total_expired}")), "{m}");
    svc.shutdown().await;
}

#[test]
fn priorities_and_time_to_live_are_read_and_checked() {
    let batch = parse_batch(br#"[{"recipient": "a", "channel": "email", "priority": "high", "ttl_secs": 60}, {"recipient": "b", "channel": "sms"}]"#)
        .unwrap();
    assert_eq!((batch[0].priority, batch[0].ttl_secs), (Priority::High, Some(60)));
    assert_eq!((batch[1].priority, batch[1].ttl_secs), (Priority::Normal, None));
    let e = parse_batch(br#"{"recipient": "a", "channel": "email", "priority": "urgent"}"#).unwrap_err();
    assert!(e.to_string().contains("urgent") || format!("{e:?}").contains("urgent"), "{e:?}");
    let mut n = NewNotification::new(Channel::Email, "a", json!({}));
    for bad in [0, MAX_TTL_SECS + 1] {
        n.ttl_secs = Some(bad);
        match validate_batch(std::slice::from_ref(&n)) {
            Err(NotifyError::Invalid(f)) => assert_eq!(f[0].field, "notifications[0].ttl_secs"),
            other => panic!("ttl {bad}: {other:?}"),
        }
    }
}
