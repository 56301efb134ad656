//! Many users, one pipeline (issue 14): idempotency keys and dead letters per owner on both backends,
//! the queue file's and the Redis key layout's migrations from data written by older code, per-user
//! quotas, and a receiver that answers without end.

use crate::common;
use contract::Owner;
use contract::PublicError;

use common::*;
use notify::*;
use serde_json::json;
use std::time::Duration;

const ALICE: Owner = Owner::from_static("alice");
const BOB: Owner = Owner::from_static("bob");
const CLI: Owner = Owner::from_static("cli");

fn keyed(channel: Channel, to: &str, key: &str) -> NewNotification {
    let mut n = NewNotification::new(channel, to, json!({}));
    n.idempotency_key = Some(key.into());
    n
}

fn redis_config(dir: &tempfile::TempDir, redis: &Redis) -> PipelineConfig {
    PipelineConfig { redis_url: Some(redis.url.clone()), ..config(dir) }
}

/// User A pre-claiming a key must not swallow user B's notification, on either backend; each owner
/// (and the operator, no owner) still gets its own earlier id back for its own key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_are_per_owner_on_both_backends() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = redis_config(&dir, &redis);
    cfg.workers = false;
    let svc = service(cfg).await;
    for backend in [Backend::Embedded, Backend::Redis] {
        let n = || keyed(Channel::Email, "billing@example.test", "invoice-1001");
        let alice = svc.enqueue_for(Some("alice"), backend, vec![n()]).await.unwrap()[0];
        let bob = svc.enqueue_for(Some("bob"), backend, vec![n()]).await.unwrap()[0];
        assert_ne!(alice, bob, "{backend:?}: bob's notification is his own, not a duplicate of alice's");
        let operator = svc.enqueue_to(backend, vec![n()]).await.unwrap()[0];
        assert!(operator != alice && operator != bob, "{backend:?}: the operator is a scope of its own");
        // Names that would run together in a naive key ("a" + ":b" vs "a:b") stay apart.
        let odd1 = svc.enqueue_for(Some("a:b"), backend, vec![keyed(Channel::Email, "x", "c")]).await.unwrap()[0];
        let odd2 = svc.enqueue_for(Some("a"), backend, vec![keyed(Channel::Email, "x", "b:c")]).await.unwrap()[0];
        assert_ne!(odd1, odd2, "{backend:?}");
        // Retries within one scope are still deduplicated.
        assert_eq!(svc.enqueue_for(Some("alice"), backend, vec![n()]).await.unwrap()[0], alice, "{backend:?}");
        assert_eq!(svc.enqueue_for(Some("bob"), backend, vec![n()]).await.unwrap()[0], bob, "{backend:?}");
        assert_eq!(svc.enqueue_to(backend, vec![n()]).await.unwrap()[0], operator, "{backend:?}");
    }
    assert_eq!(svc.backlog(Backend::Embedded), 5);
    svc.shutdown().await;
}

/// `tests/fixtures/notify-v0.db` was written by the code before versioned migrations (user_version 0,
/// one global unique index on idem_key): alice's `invoice-1001` (delivered), the operator's `op-key`, a
/// dead letter of alice's, and a run of bob's with three dead letters (rows without an owner).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_file_from_before_migrations_keeps_its_rows_and_gets_per_owner_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.db");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/notify-v0.db"), &path).unwrap();
    let before: i64 = rusqlite::Connection::open(&path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(before, 0);
    let mut cfg = config(&dir);
    cfg.workers = false;
    let svc = service(cfg).await;

    // Every row survived, and the run's dead letters are now bob's (from the runs table).
    assert_eq!(svc.dead_letters(100).await.unwrap().len(), 4);
    let bobs = svc.dead_letters_of(Some("bob"), 100).await.unwrap();
    assert_eq!(bobs.len(), 3);
    assert!(bobs.iter().all(|d| d.run.is_some() && d.channel == Channel::Sms));
    let alices = svc.dead_letters_of(Some("alice"), 100).await.unwrap();
    assert_eq!(alices.iter().map(|d| d.recipient.as_str()).collect::<Vec<_>>(), ["alice-dead"]);
    assert_eq!(svc.list_runs(&BOB).await.unwrap().len(), 1);
    let old = svc.attempts(NotificationId::embedded(1)).await.unwrap();
    assert_eq!(old.len(), 1, "alice's keyed notification was delivered before the upgrade");

    // The old keys still deduplicate for their owner, and no longer for anyone else.
    let alice = svc.enqueue_for(Some("alice"), Backend::Embedded, vec![keyed(Channel::Noop, "alice-1", "invoice-1001")]).await.unwrap();
    assert_eq!(alice[0], NotificationId::embedded(1));
    let op = svc.enqueue_to(Backend::Embedded, vec![keyed(Channel::Noop, "op-1", "op-key")]).await.unwrap();
    assert_eq!(op[0], NotificationId::embedded(2));
    let bob = svc.enqueue_for(Some("bob"), Backend::Embedded, vec![keyed(Channel::Noop, "bob-1", "invoice-1001")]).await.unwrap();
    assert!(bob[0].seq > 7, "bob's key is his own: {:?}", bob[0]);
    svc.shutdown().await;
    drop(svc);

    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 7);
    // Channels are stored by name now; the numbers of before meant webhook, email, sms, push, noop.
    let names: Vec<String> = conn
        .prepare("SELECT DISTINCT channel FROM notifications ORDER BY channel")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!names.is_empty() && names.iter().all(|n| n.parse::<Channel>().is_ok()), "{names:?}");
    assert!(names.contains(&"sms".to_string()), "bob's run was SMS (stored as 2): {names:?}");
    // The per-owner uniqueness holds in the file itself, not only in the code.
    let dup = conn.execute(
        "INSERT INTO notifications (channel, recipient, payload, due_ms, created_ms, idem_key, owner) VALUES ('noop', 'x', '{}', 0, 0, 'invoice-1001', 'alice')",
        [],
    );
    assert!(dup.is_err(), "a second invoice-1001 of alice's is refused by the index");
    conn.execute(
        "INSERT INTO notifications (channel, recipient, payload, due_ms, created_ms, idem_key, owner) VALUES ('noop', 'x', '{}', 0, 0, 'invoice-1001', 'carol')",
        [],
    )
    .unwrap();
    // Opening it again is a no-op; a file from newer code is refused rather than guessed at.
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let mut cfg = config(&dir);
    cfg.workers = false;
    assert!(NotifyService::new(cfg).await.is_err());
}

/// Data written by the Redis layout before per-owner keys: a global idempotency key whose message is
/// still waiting (moved to its owner), one whose message is gone (left to expire, never read), and a
/// dead letter (added to its owner's set); messages in the old wire format still read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_key_layout_is_migrated_at_start_up() {
    let redis = Redis::start();
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    // As the old code wrote them (no route field, no owner sets, no layout marker).
    let old_wire = r#"{"i":5,"c":1,"t":"a@example.test","p":"{}","a":0,"k":1,"f":0.0,"l":0,"o":"alice"}"#;
    let dead_wire = r#"{"i":7,"c":1,"t":"c@example.test","p":"{}","a":0,"k":1,"f":0.0,"l":0,"o":"carol"}"#;
    let dead_rec = serde_json::json!({ "w": dead_wire, "r": null, "e": "boom", "at": 1000, "n": 6 }).to_string();
    let _: () = redis::pipe()
        .cmd("SET")
        .arg("notify:seq")
        .arg(10)
        .ignore()
        .cmd("XGROUP")
        .arg("CREATE")
        .arg("notify:stream")
        .arg("workers")
        .arg("0")
        .arg("MKSTREAM")
        .ignore()
        .cmd("XADD")
        .arg("notify:stream")
        .arg("*")
        .arg("m")
        .arg(old_wire)
        .ignore()
        .cmd("SET")
        .arg("notify:idem:inv-1")
        .arg(5)
        .arg("EX")
        .arg(604_800)
        .ignore()
        .cmd("SET")
        .arg("notify:idem:gone")
        .arg(3)
        .arg("EX")
        .arg(604_800)
        .ignore()
        .cmd("ZADD")
        .arg("notify:dead")
        .arg(1000)
        .arg(7)
        .ignore()
        .cmd("HSET")
        .arg("notify:deadmsg")
        .arg(7)
        .arg(&dead_rec)
        .ignore()
        .query_async(&mut c)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = redis_config(&dir, &redis);
    cfg.workers = false;
    let svc = service(cfg.clone()).await;
    let layout: Option<String> = redis::cmd("GET").arg("notify:layout").query_async(&mut c).await.unwrap();
    assert_eq!(layout.as_deref(), Some("3"));
    // alice's old key is hers now; bob's same key is a new notification.
    let alice = svc.enqueue_for(Some("alice"), Backend::Redis, vec![keyed(Channel::Email, "a@example.test", "inv-1")]).await.unwrap();
    assert_eq!(alice[0], NotificationId::redis(5));
    let bob = svc.enqueue_for(Some("bob"), Backend::Redis, vec![keyed(Channel::Email, "a@example.test", "inv-1")]).await.unwrap();
    assert_ne!(bob[0], NotificationId::redis(5));
    let gone_ttl: i64 = redis::cmd("TTL").arg("notify:idem:gone").query_async(&mut c).await.unwrap();
    assert!(gone_ttl > 0, "an old key without a findable owner expires by its TTL");
    let op = svc.enqueue_to(Backend::Redis, vec![keyed(Channel::Email, "x", "gone")]).await.unwrap();
    assert_ne!(op[0], NotificationId::redis(3), "and is never read again");
    // carol's old dead letter is listed and replayed as hers, and only hers.
    let carols = svc.dead_letters_of(Some("carol"), 10).await.unwrap();
    assert_eq!(carols.iter().map(|d| d.id).collect::<Vec<_>>(), [NotificationId::redis(7)]);
    assert!(svc.dead_letters_of(Some("alice"), 10).await.unwrap().is_empty());
    assert_eq!(svc.replay_dead_letters_of(Some("alice"), Replay::Ids(vec![NotificationId::redis(7)])).await.unwrap(), 0);
    assert_eq!(svc.replay_dead_letters_of(Some("carol"), Replay::All).await.unwrap(), 1);
    svc.shutdown().await;
    drop(svc);

    // The old-format message is still delivered by workers of the new code.
    cfg.workers = true;
    let svc = service(cfg).await;
    wait_for("the old message's delivery", Duration::from_secs(20), || async {
        svc.attempts(NotificationId::redis(5)).await.unwrap().iter().any(|a| a.outcome == AttemptOutcome::Delivered)
    })
    .await;
    svc.shutdown().await;
}

/// Alice's one old dead letter is buried under 10,000 newer ones of bob's: a scan of everyone's newest
/// 10,000 (what the dashboard did) misses it; the per-owner query finds and replays it, and only it.
async fn old_dead_letters_are_found_under_newer_ones(backend: Backend) {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = redis_config(&dir, &redis);
    cfg.retry.max_attempts = 1;
    cfg.providers.failure_rate = 1.0;
    let svc = service(cfg).await;
    let sms = |to: &str| NewNotification::new(Channel::Sms, to, json!({}));
    let alice = svc.enqueue_for(Some("alice"), backend, vec![sms("alice-old")]).await.unwrap()[0];
    wait_for("alice's dead letter", Duration::from_secs(20), || async { svc.dead_letters_of(Some("alice"), 10).await.unwrap().len() == 1 }).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let bobs: Vec<_> = (0..10_000).map(|i| sms(&format!("bob-{i}"))).collect();
    svc.enqueue_for(Some("bob"), backend, bobs).await.unwrap();
    wait_for("bob's 10,000 dead letters", Duration::from_secs(120), || async {
        svc.dead_letters_of(Some("bob"), 10_000).await.unwrap().len() == 10_000
    })
    .await;
    let everyone = svc.dead_letters(10_000).await.unwrap();
    assert!(!everyone.iter().any(|d| d.id == alice), "{backend:?}: everyone's newest 10,000 hide alice's");
    let mine = svc.dead_letters_of(Some("alice"), 10_000).await.unwrap();
    assert_eq!(mine.iter().map(|d| d.id).collect::<Vec<_>>(), [alice], "{backend:?}");
    // Replaying "all" of hers is hers alone; one of bob's by id is not hers to replay.
    assert_eq!(svc.replay_dead_letters_of(Some("alice"), Replay::Ids(vec![everyone[0].id])).await.unwrap(), 0);
    assert_eq!(svc.replay_dead_letters_of(Some("alice"), Replay::All).await.unwrap(), 1, "{backend:?}");
    wait_for("the replayed one to die again", Duration::from_secs(20), || async { svc.attempts(alice).await.unwrap().len() == 2 }).await;
    assert_eq!(svc.dead_letters_of(Some("bob"), 10_000).await.unwrap().len(), 10_000, "{backend:?}: bob's untouched");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_old_dead_letters_are_found_under_another_users_newer_ones_embedded() {
    old_dead_letters_are_found_under_newer_ones(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_old_dead_letters_are_found_under_another_users_newer_ones_redis() {
    old_dead_letters_are_found_under_newer_ones(Backend::Redis).await;
}

fn sim(count: u64, rate: Rate) -> SimParams {
    SimParams { count, rate, mix: ChannelMix::only(Channel::Noop), ..SimParams::default() }
}

fn quota_err(e: NotifyError) -> (String, u64) {
    match e {
        e @ NotifyError::QuotaExceeded { .. } => {
            assert_eq!(e.status(), http::StatusCode::TOO_MANY_REQUESTS.as_u16());
            let secs = e.retry_after_secs().expect("Retry-After");
            (e.to_string(), secs)
        }
        other => panic!("expected a quota refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_may_have_only_so_many_runs_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    cfg.quotas.concurrent_runs = 2;
    let svc = service(cfg).await;
    let slow = || sim(1_000, Rate::PerHour(3_600));
    let first = svc.start_run(&ALICE, slow()).await.unwrap();
    svc.start_run(&ALICE, slow()).await.unwrap();
    let (msg, secs) = quota_err(svc.start_run(&ALICE, slow()).await.unwrap_err());
    assert!(msg.contains("at most 2 at once"), "{msg}");
    assert!(secs >= 1);
    // Others are not affected, nor is the operator; a finished run frees its slot.
    svc.start_run(&BOB, slow()).await.unwrap();
    svc.start_operator_run(&CLI, slow()).await.unwrap();
    svc.cancel_run(&ALICE, first).await.unwrap();
    svc.start_run(&ALICE, slow()).await.unwrap();
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_has_at_most_so_many_notifications_and_the_default_allows_a_million() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    cfg.workers = false;
    assert_eq!(cfg.quotas.notifications_per_run, 1_000_000, "the dashboard's million-notification run fits");
    assert!(cfg.quotas.notifications_per_day >= 1_000_000);
    cfg.quotas.notifications_per_run = 100;
    let svc = service(cfg).await;
    let e = svc.start_run(&ALICE, sim(101, Rate::Max)).await.unwrap_err();
    assert_eq!(e.status(), http::StatusCode::UNPROCESSABLE_ENTITY.as_u16());
    assert_eq!(e.field_errors()[0].field, "count");
    assert!(e.to_string().contains("at most 100 notifications in one run"), "{e}");
    svc.start_run(&ALICE, sim(100, Rate::PerHour(3_600))).await.unwrap();
    svc.start_operator_run(&CLI, sim(101, Rate::PerHour(3_600))).await.unwrap();
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_may_send_so_many_notifications_a_day() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    cfg.quotas.notifications_per_day = 100;
    let svc = service(cfg).await;
    let noop = |n: usize| (0..n).map(|i| NewNotification::new(Channel::Noop, format!("n{i}"), json!({}))).collect::<Vec<_>>();
    // A run counts its whole size at its start; API enqueues count as they come.
    svc.start_run(&ALICE, sim(60, Rate::Max)).await.unwrap();
    svc.enqueue_for(Some("alice"), Backend::Embedded, noop(40)).await.unwrap();
    let (msg, secs) = quota_err(svc.enqueue_for(Some("alice"), Backend::Embedded, noop(1)).await.unwrap_err());
    assert!(msg.contains("at most 100 notifications a day") && msg.contains("0 left"), "{msg}");
    assert!((1..=86_400).contains(&secs), "until midnight UTC: {secs}");
    quota_err(svc.start_run(&ALICE, sim(1, Rate::Max)).await.unwrap_err());
    // Someone else, the operator and the pipeline's own sends are not counted against alice.
    svc.enqueue_for(Some("bob"), Backend::Embedded, noop(100)).await.unwrap();
    svc.enqueue_to(Backend::Embedded, noop(200)).await.unwrap();
    svc.start_operator_run(&CLI, sim(500, Rate::Max)).await.unwrap();
    // A refused or failed enqueue is given back: a Redis enqueue without Redis costs nothing.
    svc.enqueue_for(Some("carol"), Backend::Embedded, noop(99)).await.unwrap();
    assert!(matches!(svc.enqueue_for(Some("carol"), Backend::Redis, noop(1)).await, Err(NotifyError::BackendUnavailable)));
    svc.enqueue_for(Some("carol"), Backend::Embedded, noop(1)).await.unwrap();
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_may_enqueue_only_so_fast() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    cfg.workers = false;
    cfg.quotas.enqueue_per_sec = 10;
    let svc = service(cfg).await;
    let batch = |n: usize| (0..n).map(|i| NewNotification::new(Channel::Noop, format!("n{i}"), json!({}))).collect::<Vec<_>>();
    // The burst is one full batch; after it, 10 a second.
    svc.enqueue_for(Some("alice"), Backend::Embedded, batch(MAX_BATCH_FOR_TEST)).await.unwrap();
    let (msg, secs) = quota_err(svc.enqueue_for(Some("alice"), Backend::Embedded, batch(5)).await.unwrap_err());
    assert!(msg.contains("faster than 10 notifications a second"), "{msg}");
    assert_eq!(secs, 1);
    svc.enqueue_for(Some("bob"), Backend::Embedded, batch(5)).await.unwrap();
    svc.enqueue_to(Backend::Embedded, batch(5)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    svc.enqueue_for(Some("alice"), Backend::Embedded, batch(5)).await.unwrap();
    svc.shutdown().await;
}

const MAX_BATCH_FOR_TEST: usize = 10_000;

/// A receiver that answers 500 and then sends body bytes for ever: the attempt ends with the status and
/// a short snippet (the body is read up to 64 KiB, then the connection dropped), not by the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_answer_is_cut_and_its_start_logged() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let _ = sock.read(&mut buf).await;
                let head = "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n";
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("{:x}\r\n{}\r\n", 8192, "boom\n".repeat(8192 / 5) + &"!".repeat(8192 % 5));
                while sock.write_all(chunk.as_bytes()).await.is_ok() {
                    counter.fetch_add(8192, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    cfg.webhook.url = format!("http://{addr}/webhook");
    cfg.webhook.timeout_ms = 10_000;
    cfg.webhook.retry = notify::WebhookRetry::every(10, 1);
    let svc = service(cfg).await;
    let started = std::time::Instant::now();
    let id = svc.enqueue(vec![NewNotification::new(Channel::Webhook, "r", json!({}))]).await.unwrap()[0];
    wait_for("the attempt", Duration::from_secs(9), || async { !svc.attempts(id).await.unwrap().is_empty() }).await;
    assert!(started.elapsed() < Duration::from_secs(9), "ended by the cap, not the 10 s timeout");
    let a = &svc.attempts(id).await.unwrap()[0];
    let error = a.error.as_deref().unwrap();
    assert!(error.starts_with("HTTP 500: boom boom"), "{error}");
    assert!(error.len() <= 16 + channels::SNIPPET_BYTES + 3, "a bounded snippet: {} bytes", error.len());
    svc.shutdown().await;
}
