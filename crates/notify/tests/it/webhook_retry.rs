//! Webhook retries as Standard Webhooks and Svix have them: a webhook outside a simulation run follows
//! the webhook schedule (a run's keeps the backoff), 410 Gone stops at once, and a busy receiver's
//! `Retry-After` (429, 502, 503, 504) is honoured up to a cap. A scripted receiver answers each request
//! as told and notes when it came.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::{Backend, Channel, ChannelMix, NewNotification, Rate, SimParams, WebhookRetry};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::common::*;
use contract::Owner;

/// Answers the n-th request with `script[n]` (the last one from then on): a status line's code and
/// extra header lines. Records when each request arrived.
struct Receiver {
    url: String,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

async fn receiver(script: Vec<(u16, &'static str)>) -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let seen = arrivals.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { return };
            let (seen, script) = (seen.clone(), script.clone());
            tokio::spawn(async move {
                if read_request(&mut conn).await.is_none() {
                    return;
                }
                let n = {
                    let mut s = seen.lock().unwrap();
                    s.push(Instant::now());
                    s.len() - 1
                };
                let (status, headers) = script[n.min(script.len() - 1)];
                let answer = format!("HTTP/1.1 {status} X\r\n{headers}content-length: 0\r\nconnection: close\r\n\r\n");
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    Receiver { url, arrivals }
}

impl Receiver {
    fn count(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }

    fn gap(&self, i: usize) -> Duration {
        let a = self.arrivals.lock().unwrap();
        a[i + 1] - a[i]
    }
}

fn hook() -> NewNotification {
    NewNotification::new(Channel::Webhook, "r", json!({}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_follows_the_webhook_schedule_and_a_runs_webhook_keeps_the_backoff() {
    let rx = receiver(vec![(500, "")]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    cfg.webhook.url = rx.url.clone();
    cfg.retry.max_attempts = 2;
    cfg.webhook.retry = WebhookRetry::every(20, 4);
    let svc = service(cfg).await;
    let id = svc.enqueue(vec![hook()]).await.unwrap()[0];
    wait_for("the webhook's dead letter", Duration::from_secs(20), || async { svc.dead_letters(10).await.unwrap().len() == 1 }).await;
    assert_eq!(svc.attempts(id).await.unwrap().len(), 4, "the webhook schedule's four attempts");
    assert_eq!(rx.count(), 4);
    let run = svc
        .start_run(&Owner::from("alice"), SimParams { count: 1, rate: Rate::Max, mix: ChannelMix::only(Channel::Webhook), ..SimParams::default() })
        .await
        .unwrap();
    wait_for("the run's dead letter", Duration::from_secs(20), || async { svc.run_snapshot(run).await.unwrap().unwrap().dead_lettered == 1 }).await;
    assert_eq!(svc.run_snapshot(run).await.unwrap().unwrap().failed_attempts, 2, "the run keeps notify.retry");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_stops_at_once_and_other_failures_keep_trying() {
    for backend in [Backend::Embedded, Backend::Redis] {
        let redis = Redis::start();
        let rx = receiver(vec![(500, ""), (410, "")]).await;
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(&dir);
        cfg.redis_url = Some(redis.url.clone());
        cfg.webhook.url = rx.url.clone();
        cfg.webhook.retry = WebhookRetry::every(20, 6);
        let svc = service(cfg).await;
        let id = svc.enqueue_to(backend, vec![hook()]).await.unwrap()[0];
        wait_for("the dead letter", Duration::from_secs(20), || async { svc.dead_letters(10).await.unwrap().len() == 1 }).await;
        let attempts = svc.attempts(id).await.unwrap();
        assert_eq!(attempts.len(), 2, "{backend:?}: a 500 is retried, a 410 is final: {attempts:?}");
        assert!(attempts.iter().any(|a| a.error.as_deref() == Some("HTTP 410")), "{attempts:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(rx.count(), 2, "{backend:?}: nothing after the 410");
        svc.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_receivers_retry_after_is_honoured_up_to_the_cap_and_only_when_busy() {
    for backend in [Backend::Embedded, Backend::Redis] {
        let redis = Redis::start();
        // 503 asking for 1 s; 429 asking for an hour (capped to 1.5 s); 500 asking for an hour (not a
        // status that asks: the schedule's 20 ms); then success.
        let rx = receiver(vec![(503, "retry-after: 1\r\n"), (429, "retry-after: 3600\r\n"), (500, "retry-after: 3600\r\n"), (200, "")]).await;
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(&dir);
        cfg.redis_url = Some(redis.url.clone());
        cfg.webhook.url = rx.url.clone();
        cfg.webhook.retry = WebhookRetry { max_retry_after_ms: 1_500, ..WebhookRetry::every(20, 6) };
        let svc = service(cfg).await;
        svc.enqueue_to(backend, vec![hook()]).await.unwrap();
        wait_for("the fourth request", Duration::from_secs(20), || async { rx.count() == 4 }).await;
        let (g0, g1, g2) = (rx.gap(0), rx.gap(1), rx.gap(2));
        assert!(g0 >= Duration::from_millis(1_000) && g0 < Duration::from_millis(1_900), "{backend:?}: 503 Retry-After 1: {g0:?}");
        assert!(g1 >= Duration::from_millis(1_500) && g1 < Duration::from_millis(2_400), "{backend:?}: capped at 1.5 s: {g1:?}");
        assert!(g2 < Duration::from_millis(900), "{backend:?}: a 500's Retry-After is not a request to wait: {g2:?}");
        svc.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_waiting_for_a_dead_receiver_do_not_count_toward_the_high_water_mark() {
    for backend in [Backend::Embedded, Backend::Redis] {
        let redis = Redis::start();
        let rx = receiver(vec![(503, "")]).await;
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(&dir);
        cfg.redis_url = Some(redis.url.clone());
        cfg.redis_prefix = format!("hw-{}", backend.as_str());
        cfg.webhook.url = rx.url.clone();
        cfg.high_water = 100;
        // The receiver is down for the whole test: every notification waits an hour for its retry.
        cfg.webhook.retry = WebhookRetry::every(3_600_000, 3);
        let svc = service(cfg).await;
        for round in 0..5 {
            svc.enqueue_for(Some("alice"), backend, (0..80).map(|_| hook()).collect())
                .await
                .unwrap_or_else(|e| panic!("{backend:?} round {round}: {e}"));
            // Answered and recorded as retries (the receiver's count alone can run ahead of the record).
            wait_for("the round's first attempts", Duration::from_secs(20), || async {
                rx.count() == (round + 1) * 80 && svc.retries_waiting(backend) == ((round + 1) * 80) as u64
            })
            .await;
        }
        // 400 retries wait, four times the mark, and the pipeline still takes new work.
        wait_for("the retry count", Duration::from_secs(5), || async {
            svc.metrics_text().contains(&format!("notify_retries_waiting{{backend=\"{}\"}} 400", backend.as_str()))
        })
        .await;
        assert_eq!(svc.backlog(backend), 400, "{backend:?}: they are still the backlog");
        svc.enqueue_for(Some("bob"), backend, vec![NewNotification::new(Channel::Noop, "n", json!({}))]).await.expect("bob is not turned away");
        // Fresh work beyond the mark is still refused.
        let err = svc.enqueue_for(Some("bob"), backend, (0..101).map(|_| NewNotification::new(Channel::Noop, "n", json!({}))).collect()).await;
        assert!(matches!(err, Err(notify::NotifyError::Backpressure { .. })), "{backend:?}: {err:?}");
        svc.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_receiver_has_a_pending_retry_cap_of_its_own() {
    let redis = Redis::start();
    for backend in [Backend::Embedded, Backend::Redis] {
        let rx = receiver(vec![(503, "")]).await;
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(&dir);
        cfg.redis_url = Some(redis.url.clone());
        cfg.redis_prefix = format!("default-cap-{}", backend.as_str());
        cfg.webhook.url = rx.url.clone();
        cfg.webhook.retry = WebhookRetry { max_pending_per_endpoint: 5, ..WebhookRetry::every(3_600_000, 4) };
        // SMS always fails and waits an hour between tries: three such retries share the queue with the
        // webhooks but not their cap (were they counted, the cap would bite three webhooks early).
        cfg.providers.failure_rate = 1.0;
        cfg.retry = notify::RetrySchedule { base_ms: 3_600_000, max_delay_ms: 3_600_000, max_attempts: 3 };
        let svc = service(cfg).await;
        svc.enqueue_for(Some("ann"), backend, (0..3).map(|_| NewNotification::new(Channel::Sms, "+15555550123", json!({}))).collect()).await.unwrap();
        let waiting = format!("notify_retries_waiting{{backend=\"{}\"}} 3\n", backend.as_str());
        wait_for("three SMS retries waiting", Duration::from_secs(30), || async { svc.metrics_text().contains(&waiting) }).await;
        let mut ids = vec![];
        for n in 0..8u64 {
            ids.extend(svc.enqueue_for(Some("ann"), backend, vec![hook()]).await.unwrap());
            wait_for("the attempt", Duration::from_secs(30), || async { rx.count() as u64 == n + 1 }).await;
            let dead = n.saturating_sub(4) as usize;
            wait_for("the oldest over the cap to go", Duration::from_secs(30), || async {
                svc.dead_letters(100).await.unwrap().iter().filter(|d| d.channel == Channel::Webhook).count() == dead
            })
            .await;
        }
        let mut dead: Vec<String> =
            svc.dead_letters(100).await.unwrap().iter().filter(|d| d.channel == Channel::Webhook).map(|d| d.id.to_string()).collect();
        dead.sort();
        let mut oldest: Vec<String> = ids[..3].iter().map(|i| i.to_string()).collect();
        oldest.sort();
        assert_eq!(dead, oldest, "{backend:?}");
        svc.shutdown().await;
    }
}
