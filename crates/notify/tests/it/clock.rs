//! A day in seconds (issue 18): the pipeline's clock is adjustable, and every due time, retry and
//! attempt time follows it on both backends. A receiver down for a simulated day loses nothing; an
//! endpoint down all day at a steady rate never turns other owners away.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::*;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::common::*;

/// A receiver that answers every request with the status it is set to, counting 2xx answers per
/// `webhook-id`.
struct Receiver {
    url: String,
    status: Arc<AtomicU16>,
    accepted: Arc<Mutex<HashMap<String, u32>>>,
}

async fn receiver(status: u16) -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (status, accepted) = (Arc::new(AtomicU16::new(status)), Arc::new(Mutex::new(HashMap::new())));
    let (st, acc) = (status.clone(), accepted.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { return };
            let (st, acc) = (st.clone(), acc.clone());
            tokio::spawn(async move {
                let Some(head) = read_request(&mut conn).await else { return };
                let id = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("webhook-id:").map(|v| v.trim().to_string()));
                let status = st.load(Ordering::SeqCst);
                if (200..300).contains(&status) {
                    *acc.lock().unwrap().entry(id.unwrap_or_default()).or_default() += 1;
                }
                let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    Receiver { url, status, accepted }
}

fn hooks(n: usize) -> Vec<NewNotification> {
    (0..n).map(|i| NewNotification::new(Channel::Webhook, format!("r{i}"), json!({ "i": i }))).collect()
}

async fn attempts_of(svc: &NotifyService, ids: &[NotificationId]) -> Vec<usize> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(svc.attempts(*id).await.unwrap().len());
    }
    out
}

/// Both backends, webhooks to `rx` (the configured receiver), time from `clock`.
fn day_config(dir: &tempfile::TempDir, redis: &Redis, rx: &Receiver, clock: &Clock) -> PipelineConfig {
    let mut cfg = config(dir);
    cfg.redis_url = Some(redis.url.clone());
    cfg.webhook.url = rx.url.clone();
    cfg.clock = clock.clone();
    cfg
}

async fn down_for_a_day(backend: Backend) {
    let (redis, rx, dir, clock) = (Redis::start(), receiver(503).await, tempfile::tempdir().unwrap(), Clock::adjustable());
    let cfg = day_config(&dir, &redis, &rx, &clock);
    // Svix's schedule as shipped (jitter ±10 % included).
    assert_eq!(cfg.webhook.retry.schedule_ms, SVIX_SCHEDULE_MS);
    let svc = service(cfg).await;
    let ids = svc.enqueue_for(Some("alice"), backend, hooks(20)).await.unwrap();
    let start = clock.now_ms();
    let mut made = 1;
    wait_for("the first attempts", Duration::from_secs(10), || async { attempts_of(&svc, &ids).await.iter().all(|n| *n == made) }).await;
    for (k, wait) in SVIX_SCHEDULE_MS.iter().enumerate() {
        // Nothing moves on its own: the next attempts wait for the clock, not for real time.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(attempts_of(&svc, &ids).await.iter().all(|n| *n == made), "{backend:?}: attempt {} came before its time", made + 1);
        if k == SVIX_SCHEDULE_MS.len() - 1 {
            // Back up in time for the last attempt.
            rx.status.store(200, Ordering::SeqCst);
        }
        clock.advance(Duration::from_millis(wait + wait / 10 + 1_000));
        made += 1;
        wait_for("the next attempts", Duration::from_secs(10), || async { attempts_of(&svc, &ids).await.iter().all(|n| *n >= made) }).await;
    }
    let simulated = Duration::from_millis((clock.now_ms() - start) as u64);
    assert!(simulated > Duration::from_secs(27 * 3600), "{backend:?}: {simulated:?} simulated");
    let accepted = rx.accepted.lock().unwrap().clone();
    for id in &ids {
        assert_eq!(accepted.get(&id.to_string()), Some(&1), "{backend:?}: {id} reached the receiver once, on its 8th attempt");
    }
    assert!(svc.dead_letters_of(Some("alice"), 100).await.unwrap().is_empty(), "{backend:?}: nothing was lost");
    eprintln!("{backend:?}: 20 messages through a receiver down {simulated:?} (simulated), 8 attempts each");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_simulated_day_loses_nothing_on_the_embedded_queue() {
    down_for_a_day(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_simulated_day_loses_nothing_on_redis() {
    down_for_a_day(Backend::Redis).await;
}

/// The headline rate scaled down a thousandfold (1,000 an hour to a dead receiver) with the limits
/// scaled alike: a day of it sends eight times the machine's mark to an endpoint that never answers.
/// Its retries are bounded by its pending-retry cap and never count against the mark, so neither its
/// owner nor anyone else gets a 429, all day.
async fn dead_endpoint_all_day(backend: Backend) {
    const PER_HOUR: usize = 1_000;
    const CAP: u64 = 1_500;
    let (redis, rx, dir, clock) = (Redis::start(), receiver(503).await, tempfile::tempdir().unwrap(), Clock::adjustable());
    let mut cfg = day_config(&dir, &redis, &rx, &clock);
    cfg.high_water = 3_000;
    cfg.webhook.retry.max_pending_per_endpoint = CAP;
    cfg.quotas.enqueue_per_sec = 0;
    cfg.quotas.notifications_per_day = 0;
    // At most 64 deliveries in flight: the cap holds to within them.
    cfg.concurrency = 64;
    let svc = service(cfg).await;
    let mut most_waiting = 0;
    for hour in 0..24 {
        // The hour's traffic, in four quarters.
        for _ in 0..4 {
            svc.enqueue_for(Some("alice"), backend, hooks(PER_HOUR / 4)).await.unwrap_or_else(|e| panic!("{backend:?} hour {hour}: alice got {e:?}"));
            let bob = vec![NewNotification::new(Channel::Email, "bob@example.test", json!({}))];
            svc.enqueue_for(Some("bob"), backend, bob).await.unwrap_or_else(|e| panic!("{backend:?} hour {hour}: bob got {e:?}"));
            clock.advance(Duration::from_secs(900));
        }
        // Every first attempt made and every due retry tried before the next hour.
        wait_for("the hour's attempts", Duration::from_secs(30), || async { svc.backlog(backend).saturating_sub(svc.retries_waiting(backend)) == 0 })
            .await;
        // Redis's figure is as last read (a few times a second): read it fresh.
        tokio::time::sleep(Duration::from_millis(400)).await;
        most_waiting = most_waiting.max(svc.retries_waiting(backend));
        // Retries not yet recorded count against the cap too; only those being tried (in flight, so
        // not to be shed) can take it past.
        assert!(svc.retries_waiting(backend) <= CAP + 64, "{backend:?} hour {hour}: {} retries waiting", svc.retries_waiting(backend));
    }
    // Every one of them either still waits for a retry or is a dead letter (shed past the cap, or out
    // of attempts), none lost and none delivered.
    let m = svc.metrics_text();
    let dead: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("notify_dead_lettered_total{channel=\"webhook\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{m}"));
    assert_eq!(dead + svc.retries_waiting(backend), 24 * PER_HOUR as u64, "{backend:?}");
    assert!(rx.accepted.lock().unwrap().is_empty());
    eprintln!(
        "{backend:?}: 24 simulated hours, {} to a dead receiver, at most {most_waiting} retries waiting, {dead} dead letters, no 429",
        24 * PER_HOUR
    );
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_down_a_simulated_day_turns_no_one_away_on_the_embedded_queue() {
    dead_endpoint_all_day(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_down_a_simulated_day_turns_no_one_away_on_redis() {
    dead_endpoint_all_day(Backend::Redis).await;
}
