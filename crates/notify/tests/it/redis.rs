//! The Redis Streams backend against a real redis-server: delivery, retries through the delayed set,
//! dead letters and replay, idempotency, backpressure, cancel, and a live worker's held messages never
//! taken over by another.

use crate::common;
use contract::Owner;
use contract::PublicError;

use common::*;
use notify::sink::{Sink, SinkConfig};
use notify::*;
use serde_json::json;
use std::time::Duration;

fn redis_config(dir: &tempfile::TempDir, redis: &Redis) -> PipelineConfig {
    let mut c = config(dir);
    c.redis_url = Some(redis.url.clone());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_retries_dead_letters_and_replays_on_redis() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let svc = service(redis_config(&dir, &redis)).await;
    assert!(svc.has_redis());

    let mut items: Vec<_> = (0..300).map(|i| NewNotification::new(Channel::Noop, format!("n{i}"), json!(i))).collect();
    let mut keyed = NewNotification::new(Channel::Email, "a@example.test", json!({}));
    keyed.idempotency_key = Some("k1".into());
    items.push(keyed.clone());
    let ids = svc.enqueue_to(Backend::Redis, items).await.unwrap();
    assert!(ids.iter().all(|i| i.backend == Backend::Redis));
    let again = svc.enqueue_to(Backend::Redis, vec![keyed]).await.unwrap();
    assert_eq!(again[0], ids[300], "same idempotency key, same id");
    wait_for("delivery", Duration::from_secs(20), || async {
        svc.attempts(ids[300]).await.unwrap().first().map(|a| a.outcome) == Some(AttemptOutcome::Delivered)
    })
    .await;
    wait_for("an empty backlog", Duration::from_secs(10), || async { svc.backlog(Backend::Redis) == 0 }).await;

    // A run whose provider always fails: each notification is retried via the delayed set, then dead.
    let p = SimParams {
        count: 50,
        rate: Rate::Max,
        mix: ChannelMix::only(Channel::Sms),
        failure_rate: 1.0,
        backend: Backend::Redis,
        ..SimParams::default()
    };
    let run = svc.start_run(&Owner::from("alice"), p).await.unwrap();
    wait_for("the failing run to complete", Duration::from_secs(30), || async {
        svc.run_snapshot(run).await.unwrap().unwrap().status == RunStatus::Completed
    })
    .await;
    let s = svc.run_snapshot(run).await.unwrap().unwrap();
    let max = svc.config().retry.max_attempts as u64;
    assert_eq!((s.delivered, s.dead_lettered, s.retried, s.failed_attempts), (0, 50, 50 * (max - 1), 50 * max), "{s:?}");
    let dead = svc.dead_letters(100).await.unwrap();
    assert_eq!(dead.len(), 50);
    let attempts = svc.attempts(dead[0].id).await.unwrap();
    assert_eq!(attempts.len() as u64, max);
    assert_eq!(attempts.iter().map(|a| a.number).collect::<Vec<_>>(), (1..=max as u32).collect::<Vec<_>>());
    assert_eq!(attempts.last().unwrap().outcome, AttemptOutcome::DeadLettered);
    assert_eq!(svc.replay_dead_letters(Replay::Ids(vec![dead[0].id])).await.unwrap(), 1);
    assert_eq!(svc.dead_letters(100).await.unwrap().len(), 49);
    wait_for("the replayed one to die again", Duration::from_secs(20), || async { svc.attempts(dead[0].id).await.unwrap().len() as u64 == 2 * max })
        .await;
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_backpressure_and_cancel() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = redis_config(&dir, &redis);
    cfg.workers = false;
    cfg.high_water = 500;
    let svc = service(cfg).await;
    let batch = || (0..100).map(|i| NewNotification::new(Channel::Push, format!("d{i}"), json!({}))).collect::<Vec<_>>();
    for _ in 0..5 {
        svc.enqueue_to(Backend::Redis, batch()).await.unwrap();
    }
    let e = svc.enqueue_to(Backend::Redis, batch()).await.unwrap_err();
    assert_eq!(e.status(), http::StatusCode::TOO_MANY_REQUESTS.as_u16());
    svc.shutdown().await;

    // A cancelled Redis run: workers drop its waiting messages as they read them.
    let dir2 = tempfile::tempdir().unwrap();
    let mut cfg = redis_config(&dir2, &redis);
    cfg.redis_prefix = "other".into();
    cfg.concurrency = 4;
    let svc = service(cfg).await;
    let p = SimParams {
        count: 2_000,
        rate: Rate::Max,
        mix: ChannelMix::only(Channel::Email),
        latency_ms: 50,
        backend: Backend::Redis,
        ..SimParams::default()
    };
    let run = svc.start_run(&Owner::from("alice"), p).await.unwrap();
    wait_for("some deliveries", Duration::from_secs(20), || async { svc.run_snapshot(run).await.unwrap().unwrap().delivered > 0 }).await;
    svc.cancel_run(&Owner::from("alice"), run).await.unwrap();
    assert_eq!(svc.run_snapshot(run).await.unwrap().unwrap().status, RunStatus::Cancelled);
    wait_for("the cancelled run's messages to drain", Duration::from_secs(30), || async { svc.backlog(Backend::Redis) == 0 }).await;
    svc.shutdown().await;
}

/// A live worker keeps what it holds fresh. Worker a leases twelve webhooks and delivers them one at a
/// time, 400 ms each, so most wait seconds, far past the 1.5 s reclaim idle time; worker b, started
/// meanwhile, takes none of them over, and every id reaches the sink exactly once. (Without the
/// heartbeat b reclaims the waiting ones and they are delivered twice.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_workers_held_messages_are_not_taken_over() {
    let redis = Redis::start();
    let sink = Sink::start("127.0.0.1:0".parse().unwrap(), SinkConfig { delay_ms: 400, ..SinkConfig::default() }).await.unwrap();
    let cfg = |dir: &tempfile::TempDir, consumer: &str| {
        let mut c = redis_config(dir, &redis);
        c.webhook.url = sink.url();
        c.concurrency = 1;
        c.reclaim_idle_ms = 1500;
        c.consumer_name = Some(consumer.into());
        c
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = service(cfg(&dir_a, "a")).await;
    let items = (0..12).map(|i| NewNotification::new(Channel::Webhook, format!("w{i}"), json!(i))).collect();
    a.enqueue_to(Backend::Redis, items).await.unwrap();
    wait_for("a to start delivering", Duration::from_secs(10), || async { sink.stats().received >= 1 }).await;
    let b = service(cfg(&dir_b, "b")).await;
    wait_for("all twelve delivered", Duration::from_secs(30), || async { sink.stats().unique_ids == 12 }).await;
    tokio::time::sleep(Duration::from_millis(1000)).await; // room for a duplicate to land
    let s = sink.stats();
    assert_eq!((s.accepted, s.duplicates), (12, 0), "{s:?}");
    a.shutdown().await;
    b.shutdown().await;
}
