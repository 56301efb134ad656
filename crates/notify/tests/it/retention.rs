//! Retention (issue 17): each store of the pipeline is pruned by its own age, in batches, nothing
//! newer than the cut-off goes, and the queue file gives the pages back.

use crate::common::*;
use contract::Owner;
use notify::*;
use serde_json::json;
use std::time::Duration;

const ALICE: Owner = Owner::from_static("alice");
const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Prunes `store` in batches of `limit` until a batch comes back short; returns the total.
async fn prune_all(svc: &NotifyService, store: Retained, before_ms: i64, limit: usize) -> (u64, usize) {
    let (mut total, mut batches) = (0, 0);
    loop {
        let n = svc.prune(store, before_ms, limit).await.unwrap();
        total += n;
        batches += 1;
        if (n as usize) < limit {
            return (total, batches);
        }
    }
}

/// Moves the age stamps of `sql_where`'s rows back by `days` (what time would have done).
fn backdate(dir: &tempfile::TempDir, table: &str, column: &str, sql_where: &str, days: i64) -> usize {
    let conn = rusqlite::Connection::open(dir.path().join("notify.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute(&format!("UPDATE {table} SET {column} = {column} - ?1 WHERE {sql_where}"), [days * DAY_MS]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_embedded_store_is_pruned_by_its_own_age_and_nothing_newer_goes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    cfg.retry.max_attempts = 2;
    let svc = service(cfg.clone()).await;
    // 300 delivered, 20 dead letters (email always fails here: 2 attempts each).
    svc.enqueue((0..300).map(|i| NewNotification::new(Channel::Noop, format!("n{i}"), json!(i))).collect()).await.unwrap();
    svc.shutdown().await;
    let mut failing = cfg.clone();
    failing.providers.failure_rate = 1.0;
    let svc = service(failing).await;
    svc.enqueue((0..20).map(|i| NewNotification::new(Channel::Email, format!("u{i}@example.test"), json!({}))).collect()).await.unwrap();
    wait_for("20 dead letters", Duration::from_secs(20), || async { svc.dead_letters(100).await.unwrap().len() == 20 }).await;
    let run =
        svc.start_run(&ALICE, SimParams { count: 50, rate: Rate::Max, mix: ChannelMix::only(Channel::Noop), ..SimParams::default() }).await.unwrap();
    wait_for("the run to finish", Duration::from_secs(20), || async {
        svc.list_runs(&ALICE).await.unwrap().iter().any(|r| r.id == run && r.status != RunStatus::Running)
    })
    .await;
    wait_for("the backlog to drain", Duration::from_secs(20), || async { svc.backlog(Backend::Embedded) == 0 }).await;

    let delivered = svc.stored(Retained::Delivered).await.unwrap().rows;
    assert_eq!(delivered, 350);
    assert_eq!(svc.stored(Retained::DeadLetters).await.unwrap().rows, 20);
    assert_eq!(svc.stored(Retained::Attempts).await.unwrap().rows, 40, "two failed attempts per dead letter");
    // Bytes: the shared table split by rows (350 delivered to 20 dead), the attempts' own table.
    let svc_ref = &svc;
    let bytes = |store| async move { svc_ref.stored(store).await.unwrap().bytes.unwrap() };
    let (delivered_bytes, dead_bytes) = (bytes(Retained::Delivered).await, bytes(Retained::DeadLetters).await);
    assert!(dead_bytes > 0 && delivered_bytes >= dead_bytes * 17 && delivered_bytes <= dead_bytes * 18, "{delivered_bytes} vs {dead_bytes}");
    assert!(bytes(Retained::Attempts).await > 0 && bytes(Retained::Runs).await > 0);

    // Half of each store is old; the cut-off is one day back.
    assert_eq!(backdate(&dir, "notifications", "done_ms", "state = 2 AND id % 2 = 0", 2), 175);
    assert_eq!(backdate(&dir, "notifications", "done_ms", "state = 3 AND id % 2 = 0", 2), 10);
    assert_eq!(backdate(&dir, "attempts", "at_ms", "notification_id % 2 = 0", 2), 20);
    assert_eq!(backdate(&dir, "runs", "finished_ms", "1 = 1", 2), 1);
    let cut = now_ms() - DAY_MS;
    let oldest = svc.stored(Retained::Delivered).await.unwrap().oldest_ms.unwrap();
    assert!(oldest < cut, "the oldest delivered row is the backdated one");

    // Batches of 40: several batches, each one short of the whole.
    assert_eq!(prune_all(&svc, Retained::Delivered, cut, 40).await, (175, 5));
    assert_eq!(prune_all(&svc, Retained::DeadLetters, cut, 40).await.0, 10);
    assert_eq!(prune_all(&svc, Retained::Attempts, cut, 40).await.0, 20);
    assert_eq!(prune_all(&svc, Retained::Runs, cut, 40).await.0, 1);
    // The newer half is all there; pruning again finds nothing.
    assert_eq!(svc.stored(Retained::Delivered).await.unwrap().rows, 175);
    assert!(svc.stored(Retained::Delivered).await.unwrap().oldest_ms.unwrap() >= cut);
    assert_eq!(svc.dead_letters(100).await.unwrap().len(), 10);
    assert_eq!(svc.stored(Retained::Attempts).await.unwrap().rows, 20);
    assert!(svc.list_runs(&ALICE).await.unwrap().is_empty(), "the run's record went with its age");
    for store in Retained::ALL {
        assert_eq!(svc.prune(store, cut, 40).await.unwrap(), 0, "{store:?}");
    }
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_notifications_are_pruned_like_delivered_ones() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(config(&dir)).await;
    let params = SimParams { count: 1_000_000, rate: Rate::PerHour(36_000), mix: ChannelMix::only(Channel::Noop), ..SimParams::default() };
    let run = svc.start_run(&ALICE, params).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    svc.cancel_run(&ALICE, run).await.unwrap();
    wait_for("the backlog to drain", Duration::from_secs(20), || async { svc.backlog(Backend::Embedded) == 0 }).await;
    let settled = svc.stored(Retained::Delivered).await.unwrap().rows;
    assert!(settled > 0);
    // Cancelled rows carry when they were cancelled: none is older than a minute.
    assert_eq!(svc.prune(Retained::Delivered, now_ms() - 60_000, 5_000).await.unwrap(), 0);
    assert_eq!(svc.prune(Retained::Delivered, now_ms() + 1, 5_000).await.unwrap(), settled);
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_file_gives_pruned_pages_back_and_an_old_file_is_switched_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.db");
    // A file as the code before retention made it: no auto-vacuum.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (x); DROP TABLE t;").unwrap();
        let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, 0);
    }
    let mut cfg = config(&dir);
    cfg.workers = false;
    let svc = service(cfg.clone()).await;
    let mode: i64 = rusqlite::Connection::open(&path).unwrap().query_row("PRAGMA auto_vacuum", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, 2, "incremental");
    let payload = json!({"body": "x".repeat(1000)});
    for _ in 0..10 {
        svc.enqueue((0..1000).map(|i| NewNotification::new(Channel::Noop, format!("n{i}"), payload.clone())).collect()).await.unwrap();
    }
    svc.shutdown().await;
    // Deliver them all, then prune everything.
    let svc = service(config(&dir)).await;
    wait_for("the backlog to drain", Duration::from_secs(30), || async { svc.backlog(Backend::Embedded) == 0 }).await;
    let pages = |p: &std::path::Path| -> i64 { rusqlite::Connection::open(p).unwrap().query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap() };
    let before = pages(&path);
    assert!(before > 2_500, "10,000 rows of 1 KB: {before} pages");
    assert_eq!(prune_all(&svc, Retained::Delivered, now_ms() + 1, 5_000).await.0, 10_000);
    let after = pages(&path);
    assert!(after < before / 4, "pages given back: {before} → {after}");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_in_redis_are_pruned_with_their_owner_index() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    cfg.redis_url = Some(redis.url.clone());
    cfg.providers.failure_rate = 1.0;
    cfg.retry.max_attempts = 1;
    let svc = service(cfg).await;
    svc.enqueue_for(Some("alice"), Backend::Redis, (0..6).map(|i| NewNotification::new(Channel::Email, format!("u{i}@x.test"), json!({}))).collect())
        .await
        .unwrap();
    wait_for("6 dead letters", Duration::from_secs(20), || async { svc.dead_letters_of(Some("alice"), 100).await.unwrap().len() == 6 }).await;
    assert_eq!(svc.stored(Retained::DeadLetters).await.unwrap().rows, 6);
    // Nothing died a day ago; everything died before now.
    assert_eq!(svc.prune(Retained::DeadLetters, now_ms() - DAY_MS, 4).await.unwrap(), 0);
    assert_eq!(svc.prune(Retained::DeadLetters, now_ms() + 1, 4).await.unwrap(), 4);
    assert_eq!(svc.prune(Retained::DeadLetters, now_ms() + 1, 4).await.unwrap(), 2);
    assert!(svc.dead_letters_of(Some("alice"), 100).await.unwrap().is_empty(), "the owner's index went too");
    assert_eq!(svc.stored(Retained::DeadLetters).await.unwrap(), StoreSize { rows: 0, oldest_ms: None, bytes: Some(0) });
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prune_lets_other_writes_through_between_its_batches() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(config(&dir)).await;
    for _ in 0..4 {
        svc.enqueue((0..5_000).map(|i| NewNotification::new(Channel::Noop, format!("n{i}"), json!(i))).collect()).await.unwrap();
    }
    wait_for("the backlog to drain", Duration::from_secs(30), || async { svc.backlog(Backend::Embedded) == 0 }).await;
    let cut = now_ms() + 1;
    // What is delivered from here on is newer than the cut-off.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let pruning = {
        let svc = svc.clone();
        tokio::spawn(async move { prune_all(&svc, Retained::Delivered, cut, 500).await })
    };
    // One enqueue at a time while the prune runs: each waits behind one batch at most, so many get
    // through. A prune holding the writer for all 40 batches would let one or two through.
    let mut through = 0;
    while !pruning.is_finished() {
        svc.enqueue(vec![NewNotification::new(Channel::Noop, "during", json!({}))]).await.unwrap();
        through += 1;
    }
    let (pruned, batches) = pruning.await.unwrap();
    assert_eq!((pruned, batches), (20_000, 41));
    assert!(through >= 10, "only {through} enqueues went through during {batches} batches");
    svc.shutdown().await;
}
