//! The embedded durable queue: one SQLite file in WAL mode, owned by one writer thread.
//!
//! Why rusqlite on a dedicated thread and not sqlx: the pipeline's target is a million notifications in
//! ten seconds, i.e. ~100k inserts + 100k lease updates + 100k acks per second. sqlx-sqlite sends every
//! statement through its own worker thread and channel (tens of microseconds each), which caps it well
//! below that. Here every caller's request is a closure run on the writer thread; whatever is waiting
//! is run together in one transaction (group commit, a savepoint per request), with prepared statements
//! cached. rusqlite 0.32 links the same libsqlite3-sys 0.30 as sqlx-sqlite, so one SQLite is linked.
//!
//! Durability: WAL + `synchronous=NORMAL` survives a process crash (SIGKILL) without losing a
//! committed transaction; `synchronous=FULL` (`?synchronous=full` on the URL) also survives power loss.
//! Replies are sent only after the commit. The file belongs to one process (its only consumer), so
//! leases are kept in memory (see [`Leases`]): whatever a crashed process had leased but not
//! acknowledged is simply still ready when the file is opened again.

use rusqlite::{params, Connection, OptionalExtension};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

use super::{adjust_count, run_deltas, Checkpoint, LatencyBuckets, OwnerScope, Queue, RunCounters};
use crate::error::NotifyError;
use crate::model::*;

type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
type Cmd = Box<dyn FnOnce(&Connection) -> Reply + Send>;

const STATE_READY: i64 = 0;
const STATE_LEASED: i64 = 1;
const STATE_DELIVERED: i64 = 2;
const STATE_DEAD: i64 = 3;
const STATE_CANCELLED: i64 = 4;
const STATE_EXPIRED: i64 = 5;

/// Version 1: the schema as it was before versioned migrations (files made then have `user_version`
/// 0 and exactly these tables; on them every statement here is a no-op).
const SCHEMA_V1: &str = r#"
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER,
    channel INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    payload TEXT NOT NULL,
    idem_key TEXT,
    sim_fail REAL NOT NULL DEFAULT 0,
    sim_latency INTEGER NOT NULL DEFAULT 0,
    state INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    done_ms INTEGER,
    latency_us INTEGER,
    last_error TEXT,
    owner TEXT
);
CREATE INDEX IF NOT EXISTS notifications_ready ON notifications(due_ms) WHERE state = 0;
CREATE INDEX IF NOT EXISTS notifications_dead ON notifications(done_ms) WHERE state = 3;
CREATE UNIQUE INDEX IF NOT EXISTS notifications_idem ON notifications(idem_key) WHERE idem_key IS NOT NULL;
-- Failed attempts, one row each. A successful attempt is recorded on the notification row itself
-- (done_ms, latency_us, attempts), which saves a million inserts in a million-notification run.
CREATE TABLE IF NOT EXISTS attempts (
    notification_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    outcome INTEGER NOT NULL,
    latency_us INTEGER NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS attempts_by_notification ON attempts(notification_id);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    params TEXT NOT NULL,
    backend TEXT NOT NULL,
    status TEXT NOT NULL,
    produced INTEGER NOT NULL DEFAULT 0,
    delivered INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    retried INTEGER NOT NULL DEFAULT 0,
    dead INTEGER NOT NULL DEFAULT 0,
    cancelled INTEGER NOT NULL DEFAULT 0,
    started_ms INTEGER NOT NULL,
    finished_ms INTEGER
);
CREATE INDEX IF NOT EXISTS runs_by_owner ON runs(owner, id);
CREATE TABLE IF NOT EXISTS run_latency (
    run_id INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (run_id, kind, bucket)
) WITHOUT ROWID;
"#;

/// Version 2 (issue 14, multi-user isolation):
/// - idempotency keys are per owner: one unique index for each owner's keys, one for the operator's
///   (owner NULL), replacing the global one. Existing keys were globally unique, so they stay valid.
/// - run notifications carry their run's owner (dead letters are listed and replayed per owner with
///   an index); rows from before get it from `runs`.
/// - `route`: internal routing (a webhook endpoint id) that only the pipeline's own producers set.
/// - `owner_usage`: notifications per owner per UTC day, for the daily quota.
const SCHEMA_V2: &str = r#"
DROP INDEX IF EXISTS notifications_idem;
CREATE UNIQUE INDEX notifications_idem_owner ON notifications(owner, idem_key) WHERE idem_key IS NOT NULL AND owner IS NOT NULL;
CREATE UNIQUE INDEX notifications_idem_operator ON notifications(idem_key) WHERE idem_key IS NOT NULL AND owner IS NULL;
UPDATE notifications SET owner = (SELECT r.owner FROM runs r WHERE r.id = notifications.run_id)
    WHERE owner IS NULL AND run_id IS NOT NULL AND state IN (0, 3);
CREATE INDEX notifications_dead_by_owner ON notifications(owner, done_ms) WHERE state = 3;
ALTER TABLE notifications ADD COLUMN route TEXT;
CREATE TABLE owner_usage (
    owner TEXT NOT NULL,
    day INTEGER NOT NULL,
    notifications INTEGER NOT NULL,
    PRIMARY KEY (owner, day)
) WITHOUT ROWID;
"#;

/// Version 3 (issue 16): channels are stored by name, not by the enum's position (which a new channel
/// in the middle would have silently changed the meaning of). The numbers written until now were the
/// positions of webhook, email, sms, push, noop.
const SCHEMA_V3: &str = r#"
ALTER TABLE notifications ADD COLUMN channel_name TEXT NOT NULL DEFAULT '';
UPDATE notifications SET channel_name = CASE channel WHEN 0 THEN 'webhook' WHEN 1 THEN 'email' WHEN 2 THEN 'sms' WHEN 3 THEN 'push' ELSE 'noop' END;
ALTER TABLE notifications DROP COLUMN channel;
ALTER TABLE notifications RENAME COLUMN channel_name TO channel;
"#;

/// Version 4 (issue 17, retention): the indexes the pruner walks by age; cancelled rows get the time
/// they were cancelled (what they are pruned by), rows cancelled before this their creation time.
const SCHEMA_V4: &str = r#"
UPDATE notifications SET done_ms = created_ms WHERE state = 4 AND done_ms IS NULL;
CREATE INDEX notifications_settled ON notifications(done_ms) WHERE state IN (2, 4);
CREATE INDEX attempts_by_age ON attempts(at_ms);
CREATE INDEX runs_finished ON runs(finished_ms) WHERE finished_ms IS NOT NULL;
"#;

/// Version 5 (issue 18): an endpoint's waiting retries, oldest first, for its pending-retry cap; and
/// the same for the configured receiver's (unrouted webhooks outside runs).
const SCHEMA_V5: &str = r#"
CREATE INDEX notifications_retrying_by_route ON notifications(route, id) WHERE state = 0 AND attempts > 0 AND route IS NOT NULL;
CREATE INDEX notifications_retrying_default ON notifications(id)
    WHERE state = 0 AND attempts > 0 AND route IS NULL AND channel = 'webhook' AND run_id IS NULL;
"#;

/// Version 6 (issue 18): priorities and expiry. Ready rows are found by lane (see [`lane_id`]), each
/// in due order, so one owner's backlog never stands in front of another's and a class overtakes the
/// ones below it; expired rows (state 5) are settled like delivered ones and pruned with them.
const SCHEMA_V6: &str = r#"
ALTER TABLE notifications ADD COLUMN lane INTEGER NOT NULL DEFAULT 0;
ALTER TABLE notifications ADD COLUMN expires_ms INTEGER;
ALTER TABLE runs ADD COLUMN expired INTEGER NOT NULL DEFAULT 0;
DROP INDEX IF EXISTS notifications_ready;
CREATE INDEX notifications_lanes ON notifications(lane, due_ms) WHERE state = 0;
DROP INDEX IF EXISTS notifications_settled;
CREATE INDEX notifications_settled ON notifications(done_ms) WHERE state IN (2, 4, 5);
"#;

/// Version 7 (issue 20): real e-mail and Web Push leave the machine, so each has a daily cap per user
/// of its own beside the notifications'.
const SCHEMA_V7: &str = r#"
ALTER TABLE owner_usage ADD COLUMN emails INTEGER NOT NULL DEFAULT 0;
ALTER TABLE owner_usage ADD COLUMN pushes INTEGER NOT NULL DEFAULT 0;
"#;

/// The schema's steps, in order: step `i` takes a file from `user_version` i to i + 1. Append new
/// steps here (never edit a released one); each runs in its own transaction with its version bump.
const MIGRATIONS: &[&str] = &[SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6, SCHEMA_V7];

/// The WAL is cut back to this after a checkpoint (it grows to ~64 MB between checkpoints, see
/// `wal_autocheckpoint`; a big prune or the one-off `VACUUM` must not leave it larger for good).
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Pages handed back to the file system after each prune batch (4 KiB each): what retention deletes
/// stops taking disk, rather than only being reused.
const VACUUM_PAGES_PER_BATCH: i64 = 4096;

/// Files use incremental auto-vacuum, so pruned pages can be given back. A file made before is switched
/// with one `VACUUM` (logged: it rewrites the file, seconds per hundred MB), before WAL mode is set
/// (the mode cannot change under WAL).
fn use_incremental_vacuum(conn: &Connection, path: &std::path::Path) -> Result<(), NotifyError> {
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if mode == 2 {
        return Ok(());
    }
    // On a new file the setting takes at once; on one that ever had a table only a VACUUM applies it.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if mode != 2 {
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        tracing::info!(file = %path.display(), bytes, "switching the queue file to incremental auto-vacuum (one VACUUM)");
        conn.pragma_update(None, "journal_mode", "DELETE")?;
        conn.execute_batch("VACUUM")?;
    }
    Ok(())
}

/// A stored channel name as a [`Channel`]; one this program does not know is an error, not a guess.
fn channel_of(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Channel> {
    let name: String = r.get(i)?;
    name.parse().map_err(|m: String| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, m.into()))
}

/// Brings a queue file to the current schema. A file from before versioning (`user_version` 0) may
/// also lack the `owner` column (added ad hoc once); a file from newer code is refused rather than
/// guessed at.
pub(crate) fn migrate(conn: &Connection) -> Result<(), NotifyError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let latest = MIGRATIONS.len() as i64;
    if current > latest {
        return Err(NotifyError::internal(
            "queue file",
            format!("schema version {current} is newer than this program knows ({latest}); upgrade the program"),
        ));
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let applied = (|| -> rusqlite::Result<()> {
            conn.execute_batch(step)?;
            if i == 5 {
                // Rows waiting from before lanes go to their owner's `normal` lane.
                let owners: Vec<Option<String>> = conn
                    .prepare("SELECT DISTINCT owner FROM notifications WHERE state = 0")?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                for owner in owners {
                    conn.execute(
                        "UPDATE notifications SET lane = ?1 WHERE state = 0 AND owner IS ?2",
                        params![lane_id(Priority::Normal.code(), owner.as_deref()), owner],
                    )?;
                }
            }
            if i == 0 {
                // Files made before notifications had an owner get the column (CREATE TABLE IF NOT
                // EXISTS leaves an existing table as it is).
                let has_owner: bool =
                    conn.query_row("SELECT count(*) > 0 FROM pragma_table_info('notifications') WHERE name = 'owner'", [], |r| r.get(0))?;
                if !has_owner {
                    conn.execute_batch("ALTER TABLE notifications ADD COLUMN owner TEXT")?;
                }
            }
            conn.pragma_update(None, "user_version", i as i64 + 1)
        })();
        match applied {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// What [`job_from_row`] reads, in its order (a macro, so the lease's SQL stays one literal).
macro_rules! job_columns {
    () => {
        "id, run_id, channel, recipient, payload, attempts, created_ms, sim_fail, sim_latency, due_ms, owner, route, lane, expires_ms"
    };
}
const JOB_COLUMNS: &str = job_columns!();

/// The rows whose retries count under the configured receiver's cap (`Job::cap_key`): unrouted
/// webhooks outside runs (as the index `notifications_retrying_default` has them).
const DEFAULT_RECEIVER_ROWS: &str = "route IS NULL AND channel = 'webhook' AND run_id IS NULL";

fn count_retrying(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT count(*) FROM notifications WHERE state = 0 AND attempts > 0", [], |r| r.get::<_, i64>(0)).map(|n| n as u64)
}

/// Handle to the embedded queue; cheap to clone.
#[derive(Clone)]
pub struct SqliteQueue {
    tx: mpsc::Sender<Cmd>,
    backlog: Arc<AtomicU64>,
    /// Unsettled notifications that have failed at least once (the retries of the backlog).
    retrying: Arc<AtomicU64>,
    /// The same, per route (webhook endpoint).
    route_retrying: Arc<Mutex<std::collections::HashMap<String, u64>>>,
    /// Waiting notifications not yet attempted, per owner (`None`: the operator's), for the per-owner
    /// backlog cap.
    fresh: Arc<Mutex<FreshByOwner>>,
    work: Arc<Notify>,
    leases: Arc<Mutex<Leases>>,
    path: PathBuf,
    /// Idle read-only connections beside the writer (see [`SqliteQueue::read`]), opened on demand.
    readers: Arc<Mutex<Vec<Connection>>>,
    /// At most [`MAX_READERS`] reads at once, so a burst of dashboards opens a bounded number of
    /// connections (each with its own page cache) and blocking threads.
    read_slots: Arc<tokio::sync::Semaphore>,
    clock: crate::Clock,
}

/// Leases live in memory, not in the file: the queue has one consumer (this process), so a lease is a
/// cursor over the ready index plus the set of ids in flight. Leasing is then a read, which saves a row
/// rewrite per notification; after a crash there is nothing to recover (unacknowledged rows are still
/// ready). Every row made ready later gets a `due_ms` past the cursor, so the cursor never skips one.
///
/// There is a cursor per lane: a priority class and an owner. A lease serves `high` lanes first, then
/// `normal` and `bulk` (bulk has a quarter of the lease while both wait), and within a class gives each
/// owner's lane an equal share, starting with a different lane each time: one owner's 200,000 waiting
/// notifications are not in front of another owner's one.
#[derive(Default)]
struct Leases {
    lanes: std::collections::BTreeMap<LaneKey, Lane>,
    /// Where each class's round starts next.
    turn: [usize; 3],
    /// The greatest `due_ms` any lane's cursor has reached.
    high: i64,
    in_flight: std::collections::HashSet<i64>,
}

/// A lane's id ([`lane_id`]): its class in the top bits, so a class's lanes are one range.
type LaneKey = i64;

const CLASS_SHIFT: u32 = 60;

/// A lane as a number (an integer key compares faster than an owner's name in every index entry):
/// the priority class in bits 60–61, below it 60 bits of the owner's FNV-1a hash (the operator's
/// lane hashes a byte no name has). Two owners sharing a hash would share a lane: they would still be
/// served in due order, only not apart from each other.
pub(crate) fn lane_id(class: u8, owner: Option<&str>) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes: &[u8] = owner.map(str::as_bytes).unwrap_or(&[0xff]);
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    ((class as i64) << CLASS_SHIFT) | (h >> 4) as i64
}

fn class_of(lane: i64) -> Priority {
    Priority::from_code(lane >> CLASS_SHIFT)
}

struct Lane {
    /// (due_ms, id) of the lane's last row leased; the next lease starts after it.
    cursor: (i64, i64),
    /// No row of the lane is due before this (a hint: leasing looks again from then on).
    next_due: i64,
}

impl Leases {
    /// The earliest `due_ms` a row made ready now may get.
    fn floor(&self) -> i64 {
        self.high + 1
    }

    /// A row of lane `key` is ready from `due` on: the lane's cursor is moved back before it if it is
    /// past it. A lane made anew starts there rather than at its beginning, where the rows it still
    /// has in flight would be read again (and skipped) at every lease.
    fn wake(&mut self, key: LaneKey, due: i64) {
        let start = (due.saturating_sub(1), i64::MAX);
        let lane = self.lanes.entry(key).or_insert(Lane { cursor: start, next_due: due });
        lane.next_due = lane.next_due.min(due);
        lane.cursor = lane.cursor.min(start);
    }

    /// Takes up to `want` due rows of class `class`, lanes sharing equally.
    fn take_class(&mut self, conn: &Connection, class: u8, want: usize, now: i64, jobs: &mut Vec<Job>) -> Result<(), NotifyError> {
        let mut active: Vec<LaneKey> = self.lanes.range(lane_id_range(class)).filter(|(_, l)| l.next_due <= now).map(|(k, _)| *k).collect();
        if active.is_empty() || want == 0 {
            return Ok(());
        }
        let start = self.turn[class as usize] % active.len();
        active.rotate_left(start);
        self.turn[class as usize] = self.turn[class as usize].wrapping_add(1);
        let mut left = want;
        let mut rows = conn.prepare_cached(concat!(
            "SELECT ",
            job_columns!(),
            " FROM notifications WHERE state = 0 AND lane = ?1 AND due_ms <= ?2 AND (due_ms, id) > (?3, ?4) ORDER BY due_ms, id LIMIT ?5"
        ))?;
        let mut next = conn.prepare_cached(
            "SELECT due_ms FROM notifications WHERE state = 0 AND lane = ?1 AND (due_ms, id) > (?2, ?3) ORDER BY due_ms, id LIMIT 1",
        )?;
        while left > 0 && !active.is_empty() {
            let share = left.div_ceil(active.len());
            let mut again = Vec::with_capacity(active.len());
            for key in active {
                if left == 0 {
                    break;
                }
                let Some(lane) = self.lanes.get_mut(&key) else { continue };
                let ask = share.min(left);
                let mut got = 0;
                let mut exhausted = false;
                // Rows still in flight are skipped (they are only behind the cursor after a release).
                while got < ask {
                    let asked = ask - got;
                    let (cd, cid) = lane.cursor;
                    let mut r = rows.query(params![key, now, cd, cid, asked as i64])?;
                    let mut seen = 0;
                    while let Some(row) = r.next()? {
                        seen += 1;
                        let job = job_from_row(row)?;
                        let seq = job.id.seq as i64;
                        lane.cursor = (row.get(9)?, seq);
                        if self.in_flight.insert(seq) {
                            jobs.push(job);
                            got += 1;
                        }
                    }
                    if seen < asked {
                        exhausted = true;
                        break;
                    }
                }
                self.high = self.high.max(lane.cursor.0);
                left -= got;
                if exhausted {
                    // Nothing more due: when is its next row, if it has one left?
                    let (cd, cid) = lane.cursor;
                    match next.query_row(params![key, cd, cid], |r| r.get::<_, i64>(0)).optional()? {
                        Some(due) => lane.next_due = due.max(now + 1),
                        None => {
                            self.lanes.remove(&key);
                        }
                    }
                } else {
                    again.push(key);
                }
            }
            active = again;
        }
        Ok(())
    }

    /// One lease: `high` first, then `normal` and `bulk` sharing what is left 3:1 while both wait (what
    /// one leaves unused the other may take).
    fn take(&mut self, conn: &Connection, max: usize, now: i64) -> Result<Vec<Job>, NotifyError> {
        let mut jobs = Vec::with_capacity(max);
        let [high, normal, bulk] = Priority::ALL.map(Priority::code);
        self.take_class(conn, high, max, now, &mut jobs)?;
        let room = max - jobs.len();
        if room > 0 {
            let bulk_waiting = self.lanes.range(lane_id_range(bulk)).any(|(_, l)| l.next_due <= now);
            let normal_share = if bulk_waiting { room - room / 4 } else { room };
            self.take_class(conn, normal, normal_share, now, &mut jobs)?;
            self.take_class(conn, bulk, max - jobs.len(), now, &mut jobs)?;
            self.take_class(conn, normal, max - jobs.len(), now, &mut jobs)?;
        }
        Ok(jobs)
    }
}

fn lane_of(job: &Job) -> LaneKey {
    lane_id(job.priority.code(), job.owner.as_deref())
}

fn lane_id_range(class: u8) -> std::ops::Range<i64> {
    ((class as i64) << CLASS_SHIFT)..((class as i64 + 1) << CLASS_SHIFT)
}

type FreshByOwner = std::collections::HashMap<Option<String>, u64>;

/// `sqlite://data/notify.db`, `sqlite:notify.db?synchronous=full` or a plain path.
fn parse_url(url: &str) -> (PathBuf, bool) {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let full = query.split('&').any(|kv| kv.eq_ignore_ascii_case("synchronous=full"));
    (PathBuf::from(path), full)
}

impl SqliteQueue {
    /// Opens (creating if needed) the queue file and starts its writer thread. Notifications a crashed
    /// process had leased are delivered again (at-least-once).
    pub fn open(url: &str) -> Result<Self, NotifyError> {
        Self::open_with(url, crate::Clock::system())
    }

    /// The same, its due times read from `clock`.
    pub fn open_with(url: &str, clock: crate::Clock) -> Result<Self, NotifyError> {
        let (path, full_sync) = parse_url(url);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| NotifyError::internal("cannot create queue directory", e))?;
        }
        // One thread uses this connection, so SQLite's own per-call mutexes are not needed.
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_CREATE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        use_incremental_vacuum(&conn, &path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)?;
        conn.pragma_update(None, "synchronous", if full_sync { "FULL" } else { "NORMAL" })?;
        conn.pragma_update(None, "cache_size", -32_000)?; // ~32 MB of page cache
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // Checkpoint every ~64 MB of WAL instead of 4 MB: pages rewritten in between are copied once.
        conn.pragma_update(None, "wal_autocheckpoint", 16_384)?;
        conn.set_prepared_statement_cache_capacity(64);
        migrate(&conn)?;
        crate::quotas::prune_days(&conn)?;
        // State 1 (leased) is no longer written; files from before that change are fixed up here.
        conn.execute("UPDATE notifications SET state = 0 WHERE state = 1", [])?;
        let route_retrying = conn
            .prepare(&format!(
                "SELECT COALESCE(route, '-'), count(*) FROM notifications WHERE state = 0 AND attempts > 0 \
                 AND (route IS NOT NULL OR ({DEFAULT_RECEIVER_ROWS})) GROUP BY 1"
            ))?
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?
            .collect::<rusqlite::Result<std::collections::HashMap<_, _>>>()?;
        // One pass over the waiting rows: the backlog and its retries, each owner's not yet attempted,
        // each lane's start.
        let (mut waiting, mut retrying, mut fresh) = (0u64, 0u64, FreshByOwner::new());
        let mut leases = Leases { high: i64::MIN, ..Default::default() };
        let mut lanes =
            conn.prepare("SELECT lane, owner, min(due_ms), count(*), sum(attempts = 0) FROM notifications WHERE state = 0 GROUP BY lane, owner")?;
        let mut rows = lanes.query([])?;
        while let Some(r) = rows.next()? {
            let (owner, all, untried): (Option<String>, i64, i64) = (r.get(1)?, r.get(3)?, r.get(4)?);
            leases.wake(r.get(0)?, r.get(2)?);
            waiting += all as u64;
            retrying += (all - untried) as u64;
            adjust_count(&mut fresh, &owner, untried as u64, 0);
        }
        drop(rows);
        drop(lanes);
        let (tx, rx) = mpsc::channel::<Cmd>();
        std::thread::Builder::new()
            .name("notify-sqlite".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| NotifyError::internal("cannot start queue writer", e))?;
        Ok(Self {
            tx,
            backlog: Arc::new(AtomicU64::new(waiting)),
            retrying: Arc::new(AtomicU64::new(retrying)),
            route_retrying: Arc::new(Mutex::new(route_retrying)),
            fresh: Arc::new(Mutex::new(fresh)),
            work: Arc::new(Notify::new()),
            leases: Arc::new(Mutex::new(leases)),
            path,
            readers: Arc::new(Mutex::new(Vec::new())),
            read_slots: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
            clock,
        })
    }

    /// Runs `f` on the writer thread inside the current group transaction (its own savepoint); the
    /// answer comes back once that transaction is committed.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, NotifyError> + Send + 'static,
    ) -> Result<T, NotifyError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let cmd: Cmd = Box::new(move |conn| {
            let result = in_savepoint(conn, f);
            Box::new(move |committed| {
                let result = match committed {
                    Ok(()) => result,
                    Err(e) => Err(NotifyError::internal("queue commit failed", e)),
                };
                let _ = reply_tx.send(result);
            })
        });
        self.tx.send(cmd).map_err(|_| NotifyError::internal("queue writer", "stopped"))?;
        reply_rx.await.map_err(|_| NotifyError::internal("queue writer", "dropped a request"))?
    }
}

/// Idle readers kept for the next read; up to [`MAX_READERS`] may be open while reads overlap.
const IDLE_READERS: usize = 4;
/// Reads running at once; more wait their turn.
const MAX_READERS: usize = 8;

impl SqliteQueue {
    /// Runs `f` on a read-only connection beside the writer, in one read transaction (one snapshot).
    /// WAL readers see the last commit and never wait for the writer's batch, so a dashboard or an API
    /// read is not queued behind a million-an-hour write stream, and costs no savepoint in it. Every
    /// write is answered after its commit, so a caller reads what it wrote. An in-memory queue, which
    /// only its own connection sees, reads on the writer thread.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, NotifyError> + Send + 'static,
    ) -> Result<T, NotifyError> {
        if self.path.as_os_str() == ":memory:" || self.path.as_os_str().is_empty() {
            return self.call(f).await;
        }
        let slot = self.read_slots.clone().acquire_owned().await.map_err(|e| NotifyError::internal("queue reader", e))?;
        let (readers, path) = (self.readers.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let idle = readers.lock().expect("readers").pop();
            let conn = match idle {
                Some(c) => c,
                None => {
                    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
                    let conn = Connection::open_with_flags(&path, flags)?;
                    conn.busy_timeout(Duration::from_secs(5))?;
                    conn.set_prepared_statement_cache_capacity(32);
                    conn
                }
            };
            conn.execute_batch("BEGIN")?;
            let out = f(&conn);
            // A read transaction has nothing to keep: ending it cannot lose anything.
            let ended = conn.execute_batch("COMMIT");
            if ended.is_ok() {
                let mut idle = readers.lock().expect("readers");
                if idle.len() < IDLE_READERS {
                    idle.push(conn);
                }
            }
            out
        })
        .await
        .map_err(|e| NotifyError::internal("queue reader", e))?
    }
}

fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T, NotifyError>) -> Result<T, NotifyError> {
    conn.execute_batch("SAVEPOINT req")?;
    match f(conn) {
        Ok(v) => {
            conn.execute_batch("RELEASE req")?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK TO req; RELEASE req");
            Err(e)
        }
    }
}

/// Group commit: everything queued while the last transaction ran goes into the next one.
fn writer_loop(conn: Connection, rx: mpsc::Receiver<Cmd>) {
    const MAX_GROUP: usize = 512;
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(c) => group.push(c),
                Err(_) => break,
            }
        }
        let began = conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| e.to_string());
        if let Err(e) = began {
            for cmd in group {
                // Run nothing; answer every request with the failure.
                drop(cmd);
                tracing::error!(error = %e, "queue transaction could not begin");
            }
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let replies: Vec<Reply> = group.into_iter().map(|cmd| cmd(&conn)).collect();
        let committed = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
        if committed.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for reply in replies {
            reply(committed.clone());
        }
    }
}

const ROWS_PER_INSERT: usize = 100;

/// The INSERT of `rows` rows (11 parameters a row; `created_ms` repeats `due_ms`'s). Built once per
/// size: formatting it for every chunk cost as much as the insert.
fn multi_insert_sql(rows: usize) -> std::sync::Arc<str> {
    static BUILT: Mutex<Vec<Option<std::sync::Arc<str>>>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().expect("insert statements");
    if built.len() <= rows {
        built.resize(rows + 1, None);
    }
    built[rows]
        .get_or_insert_with(|| {
            use std::fmt::Write;
            let mut sql = String::from(
                "INSERT INTO notifications (run_id, channel, recipient, payload, sim_fail, sim_latency, due_ms, created_ms, owner, route, lane, expires_ms) VALUES ",
            );
            for r in 0..rows {
                let b = r * 11;
                sql.push_str(if r > 0 { ",(" } else { "(" });
                for (i, k) in [1, 2, 3, 4, 5, 6, 7, 7, 8, 9, 10, 11].iter().enumerate() {
                    let _ = write!(sql, "{}?{}", if i > 0 { "," } else { "" }, b + k);
                }
                sql.push(')');
            }
            sql.into()
        })
        .clone()
}

fn job_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        id: NotificationId::embedded(r.get::<_, i64>(0)? as u64),
        run: r.get(1)?,
        channel: channel_of(r, 2)?,
        recipient: r.get(3)?,
        payload: r.get(4)?,
        attempts: r.get::<_, i64>(5)? as u32,
        created_ms: r.get(6)?,
        sim: SimKnobs { failure_rate: r.get::<_, f64>(7)? as f32, latency_ms: r.get::<_, i64>(8)? as u32 },
        owner: r.get(10)?,
        route: r.get(11)?,
        priority: class_of(r.get(12)?),
        expires_ms: r.get(13)?,
        receipt: String::new(),
    })
}

fn embedded_seq(id: NotificationId) -> Result<i64, NotifyError> {
    match id.backend {
        Backend::Embedded => i64::try_from(id.seq).map_err(|_| NotifyError::NotFound),
        Backend::Redis => Err(NotifyError::NotFound),
    }
}

impl Queue for SqliteQueue {
    fn backend(&self) -> Backend {
        Backend::Embedded
    }

    async fn enqueue(&self, items: Vec<Prepared>, checkpoint: Option<Checkpoint>) -> Result<Vec<NotificationId>, NotifyError> {
        let (backlog, leases, fresh, clock) = (self.backlog.clone(), self.leases.clone(), self.fresh.clone(), self.clock.clone());
        let ids = self
            .call(move |conn| {
                let mut l = leases.lock().expect("leases");
                let mut fresh = fresh.lock().expect("fresh");
                let now = clock.now_ms().max(l.high);
                let mut woken = |it: &Prepared, lane: i64| {
                    l.wake(lane, now);
                    adjust_count(&mut fresh, &it.owner, 1, 0);
                };
                let mut ids = Vec::with_capacity(items.len());
                let mut added = 0u64;
                let mut i = 0;
                while i < items.len() {
                    if let Some(key) = &items[i].idempotency_key {
                        let it = &items[i];
                        let lane = lane_id(it.priority.code(), it.owner.as_deref());
                        // Keys are per owner (two partial unique indexes: users' and the operator's).
                        let inserted = conn.prepare_cached(
                            "INSERT INTO notifications (run_id, channel, recipient, payload, sim_fail, sim_latency, due_ms, created_ms, idem_key, owner, route, lane, expires_ms) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT DO NOTHING",
                        )?
                        .execute(params![
                            it.run,
                            it.channel.as_str(),
                            it.recipient,
                            it.payload,
                            it.sim.failure_rate as f64,
                            it.sim.latency_ms,
                            now,
                            key,
                            it.owner,
                            it.route,
                            lane,
                            it.expires_ms
                        ])?;
                        if inserted == 1 {
                            added += 1;
                            woken(it, lane);
                            ids.push(NotificationId::embedded(conn.last_insert_rowid() as u64));
                        } else {
                            let id: i64 = match &it.owner {
                                Some(owner) => conn
                                    .prepare_cached("SELECT id FROM notifications WHERE owner = ?1 AND idem_key = ?2")?
                                    .query_row(params![owner, key], |r| r.get(0))?,
                                None => conn
                                    .prepare_cached("SELECT id FROM notifications WHERE owner IS NULL AND idem_key = ?1")?
                                    .query_row([key], |r| r.get(0))?,
                            };
                            ids.push(NotificationId::embedded(id as u64));
                        }
                        i += 1;
                        continue;
                    }
                    // A run of rows without keys: multi-row INSERTs of up to ROWS_PER_INSERT rows.
                    let mut j = i;
                    while j < items.len() && j - i < ROWS_PER_INSERT && items[j].idempotency_key.is_none() {
                        j += 1;
                    }
                    let chunk = &items[i..j];
                    let mut stmt = conn.prepare_cached(&multi_insert_sql(chunk.len()))?;
                    let fails: Vec<f64> = chunk.iter().map(|it| it.sim.failure_rate as f64).collect();
                    let codes: Vec<&str> = chunk.iter().map(|it| it.channel.as_str()).collect();
                    let lanes: Vec<i64> = chunk.iter().map(|it| lane_id(it.priority.code(), it.owner.as_deref())).collect();
                    let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() * 11);
                    for (k, it) in chunk.iter().enumerate() {
                        values.extend_from_slice(&[
                            &it.run,
                            &codes[k],
                            &it.recipient,
                            &it.payload,
                            &fails[k],
                            &it.sim.latency_ms,
                            &now,
                            &it.owner,
                            &it.route,
                            &lanes[k],
                            &it.expires_ms,
                        ]);
                    }
                    stmt.execute(rusqlite::params_from_iter(values))?;
                    for (it, lane) in chunk.iter().zip(&lanes) {
                        woken(it, *lane);
                    }
                    // One writer and AUTOINCREMENT: the rows of one statement get consecutive ids.
                    let last = conn.last_insert_rowid() as u64;
                    let first = last + 1 - chunk.len() as u64;
                    ids.extend((first..=last).map(NotificationId::embedded));
                    added += chunk.len() as u64;
                    i = j;
                }
                if let Some(cp) = checkpoint {
                    conn.prepare_cached("UPDATE runs SET produced = ?2 WHERE id = ?1")?.execute(params![cp.run, cp.produced as i64])?;
                }
                backlog.fetch_add(added, Ordering::Relaxed);
                Ok(ids)
            })
            .await?;
        self.work.notify_waiters();
        Ok(ids)
    }

    async fn lease(&self, max: usize) -> Result<Vec<Job>, NotifyError> {
        let take = |max: usize| {
            let (leases, clock) = (self.leases.clone(), self.clock.clone());
            self.call(move |conn| leases.lock().expect("leases").take(conn, max, clock.now_ms()))
        };
        let notified = self.work.notified();
        let jobs = take(max).await?;
        if !jobs.is_empty() {
            return Ok(jobs);
        }
        // Nothing due: wait for an enqueue, or poll again soon for retries coming due.
        let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
        take(max).await
    }

    async fn complete(&self, done: Vec<Completion>) -> Result<(), NotifyError> {
        if done.is_empty() {
            return Ok(());
        }
        let (backlog, leases, retrying, by_route) = (self.backlog.clone(), self.leases.clone(), self.retrying.clone(), self.route_retrying.clone());
        let (fresh, clock) = (self.fresh.clone(), self.clock.clone());
        let retried = self
            .call(move |conn| {
                let now = clock.now_ms();
                let mut l = leases.lock().expect("leases");
                let mut fresh = fresh.lock().expect("fresh");
                let floor = l.floor();
                let mut settled = 0u64;
                let mut retried = 0u64;
                let mut applied = Vec::with_capacity(done.len());
                // Statements prepared once per batch: looking them up per row costs a hash of the SQL.
                let mut delivered = conn.prepare_cached(
                    "UPDATE notifications SET state = 2, attempts = ?2, done_ms = ?3, latency_us = ?4, last_error = NULL \
                     WHERE id = ?1 AND state = 0",
                )?;
                let mut retry =
                    conn.prepare_cached("UPDATE notifications SET attempts = ?2, due_ms = ?3, last_error = ?4 WHERE id = ?1 AND state = 0")?;
                let mut dead = conn
                    .prepare_cached("UPDATE notifications SET state = 3, attempts = ?2, done_ms = ?3, last_error = ?4 WHERE id = ?1 AND state = 0")?;
                let mut cancel = conn.prepare_cached("UPDATE notifications SET state = 4, done_ms = ?2 WHERE id = ?1 AND state = 0")?;
                let mut expire = conn.prepare_cached("UPDATE notifications SET state = 5, done_ms = ?2 WHERE id = ?1 AND state = 0")?;
                let mut defer = conn.prepare_cached("UPDATE notifications SET due_ms = ?2 WHERE id = ?1 AND state = 0")?;
                let mut attempt_row = conn.prepare_cached(
                    "INSERT INTO attempts (notification_id, attempt, at_ms, outcome, latency_us, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                let mut cancelled_per_run: std::collections::HashMap<i64, i64> = Default::default();
                let mut expired_per_run: std::collections::HashMap<i64, i64> = Default::default();
                // Retries waiting: +1 when a first attempt fails, -1 when a retried one settles.
                let (mut first_failures, mut settled_retries) = (0u64, 0u64);
                let mut route_deltas: Vec<(String, bool)> = vec![];
                for c in done {
                    let id = c.job.id.seq as i64;
                    l.in_flight.remove(&id);
                    match c.kind {
                        Settle::Cancelled | Settle::Expired => {
                            let (stmt, per_run) =
                                if c.kind == Settle::Cancelled { (&mut cancel, &mut cancelled_per_run) } else { (&mut expire, &mut expired_per_run) };
                            if stmt.execute(params![id, now])? == 1 {
                                if let Some(run) = c.job.run {
                                    *per_run.entry(run).or_default() += 1;
                                }
                                settled += 1;
                                settled_retries += u64::from(c.job.attempts > 0);
                                adjust_count(&mut fresh, &c.job.owner, 0, u64::from(c.job.attempts == 0));
                                if let (1.., Some(k)) = (c.job.attempts, c.job.cap_key()) {
                                    route_deltas.push((k.to_string(), false));
                                }
                            }
                            continue;
                        }
                        Settle::Deferred => {
                            // Not attempted: only later. Counts as a retry for waking the leaser.
                            let due = c.retry_at_ms.unwrap_or(now).max(floor);
                            retried += defer.execute(params![id, due])? as u64;
                            l.wake(lane_of(&c.job), due);
                            continue;
                        }
                        Settle::Attempted => {}
                    }
                    let a = &c.attempt;
                    let changed = match a.outcome {
                        AttemptOutcome::Delivered => delivered.execute(params![id, a.number, a.at_ms, a.latency_us as i64])?,
                        AttemptOutcome::Retrying => retry.execute(params![id, a.number, c.retry_at_ms.unwrap_or(now).max(floor), a.error])?,
                        AttemptOutcome::DeadLettered => dead.execute(params![id, a.number, a.at_ms, a.error])?,
                    };
                    if changed == 0 {
                        continue; // already settled (e.g. its run was cancelled meanwhile)
                    }
                    adjust_count(&mut fresh, &c.job.owner, 0, u64::from(c.job.attempts == 0));
                    match a.outcome {
                        AttemptOutcome::Retrying => {
                            l.wake(lane_of(&c.job), c.retry_at_ms.unwrap_or(now).max(floor));
                            retried += 1;
                            first_failures += u64::from(c.job.attempts == 0);
                            if let (0, Some(k)) = (c.job.attempts, c.job.cap_key()) {
                                route_deltas.push((k.to_string(), true));
                            }
                        }
                        _ => {
                            settled += 1;
                            settled_retries += u64::from(c.job.attempts > 0);
                            if let (1.., Some(k)) = (c.job.attempts, c.job.cap_key()) {
                                route_deltas.push((k.to_string(), false));
                            }
                        }
                    }
                    if a.outcome != AttemptOutcome::Delivered {
                        attempt_row.execute(params![id, a.number, a.at_ms, a.outcome.code(), a.latency_us as i64, a.error])?;
                    }
                    applied.push(c);
                }
                for (run, n) in cancelled_per_run {
                    conn.prepare_cached("UPDATE runs SET cancelled = cancelled + ?2 WHERE id = ?1")?.execute(params![run, n])?;
                }
                for (run, n) in expired_per_run {
                    conn.prepare_cached("UPDATE runs SET expired = expired + ?2 WHERE id = ?1")?.execute(params![run, n])?;
                }
                for (run, d) in run_deltas(&applied, now) {
                    conn.prepare_cached(
                        "UPDATE runs SET delivered = delivered + ?2, failed = failed + ?3, retried = retried + ?4, dead = dead + ?5 WHERE id = ?1",
                    )?
                    .execute(params![run, d.delivered as i64, d.failed as i64, d.retried as i64, d.dead as i64])?;
                    for (kind, h) in [(0i64, &d.attempt_latency), (1, &d.end_to_end)] {
                        for (bucket, n) in h.nonzero() {
                            conn.prepare_cached(
                                "INSERT INTO run_latency (run_id, kind, bucket, count) VALUES (?1, ?2, ?3, ?4) \
                                 ON CONFLICT (run_id, kind, bucket) DO UPDATE SET count = count + excluded.count",
                            )?
                            .execute(params![run, kind, bucket as i64, n as i64])?;
                        }
                    }
                }
                let _ = backlog.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(settled)));
                let _ = retrying.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| Some((r + first_failures).saturating_sub(settled_retries)));
                if !route_deltas.is_empty() {
                    let mut m = by_route.lock().expect("route retries");
                    for (route, up) in route_deltas {
                        adjust_count(&mut m, &route, u64::from(up), u64::from(!up));
                    }
                }
                Ok(retried)
            })
            .await?;
        if retried > 0 {
            self.work.notify_waiters();
        }
        Ok(())
    }

    async fn release(&self, jobs: Vec<Job>) -> Result<(), NotifyError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let leases = self.leases.clone();
        self.call(move |_| {
            // Back to ready: forget the lease and rewind their lanes' cursors so they are found again.
            let mut l = leases.lock().expect("leases");
            for j in jobs {
                l.in_flight.remove(&(j.id.seq as i64));
                l.wake(lane_of(&j), i64::MIN);
            }
            Ok(())
        })
        .await?;
        self.work.notify_waiters();
        Ok(())
    }

    fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }

    fn retries_waiting(&self) -> u64 {
        self.retrying.load(Ordering::Relaxed)
    }

    fn clock(&self) -> &crate::Clock {
        &self.clock
    }

    fn owner_backlog(&self, owner: Option<&str>) -> u64 {
        let key = owner.map(str::to_owned);
        self.fresh.lock().expect("fresh").get(&key).copied().unwrap_or(0)
    }

    async fn route_retries(&self, route: &str) -> Result<u64, NotifyError> {
        Ok(self.route_retrying.lock().expect("route retries").get(route).copied().unwrap_or(0))
    }

    async fn shed_oldest(&self, route: &str, n: usize, why: &str) -> Result<Vec<Job>, NotifyError> {
        let (route, why) = (route.to_string(), why.to_string());
        let (leases, backlog, retrying, by_route) = (self.leases.clone(), self.backlog.clone(), self.retrying.clone(), self.route_retrying.clone());
        let clock = self.clock.clone();
        self.call(move |conn| {
            let l = leases.lock().expect("leases");
            // The configured receiver's retries are the unrouted webhooks' (`?1` is then unused).
            let key_rows = if route == crate::model::DEFAULT_RECEIVER { DEFAULT_RECEIVER_ROWS } else { "route = ?1" };
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM notifications WHERE state = 0 AND attempts > 0 AND {key_rows} ORDER BY id LIMIT ?2"
            ))?;
            // Leased ones are being tried right now: not shed.
            let jobs: Vec<Job> = stmt
                .query_map(params![route, (n + l.in_flight.len().min(1024)) as i64], job_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?
                .into_iter()
                .filter(|j| !l.in_flight.contains(&(j.id.seq as i64)))
                .take(n)
                .collect();
            let now = clock.now_ms();
            let mut dead = conn.prepare_cached("UPDATE notifications SET state = 3, done_ms = ?2, last_error = ?3 WHERE id = ?1 AND state = 0")?;
            let mut attempt_row = conn.prepare_cached(
                "INSERT INTO attempts (notification_id, attempt, at_ms, outcome, latency_us, error) VALUES (?1, ?2, ?3, ?4, 0, ?5)",
            )?;
            for j in &jobs {
                dead.execute(params![j.id.seq as i64, now, why])?;
                attempt_row.execute(params![j.id.seq as i64, j.attempts, now, AttemptOutcome::DeadLettered.code(), why])?;
            }
            let k = jobs.len() as u64;
            let _ = backlog.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(k)));
            let _ = retrying.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| Some(r.saturating_sub(k)));
            adjust_count(&mut by_route.lock().expect("route retries"), &route, 0, k);
            Ok(jobs)
        })
        .await
    }

    async fn dead_letters(&self, scope: OwnerScope, limit: usize) -> Result<Vec<DeadLetter>, NotifyError> {
        self.read(move |conn| {
            // The owner is filtered in the query (index on owner, done_ms), so one user's old dead letters
            // are found however many newer ones other users have.
            let (filter, owner) = match &scope {
                OwnerScope::All => ("", None),
                OwnerScope::Of(Some(o)) => ("AND owner = ?2", Some(o.as_str())),
                OwnerScope::Of(None) => ("AND owner IS NULL", None),
            };
            let sql = format!(
                "SELECT id, run_id, channel, recipient, attempts, last_error, done_ms FROM notifications \
                 WHERE state = 3 {filter} ORDER BY done_ms DESC LIMIT ?1"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let row = |r: &rusqlite::Row<'_>| {
                Ok(DeadLetter {
                    id: NotificationId::embedded(r.get::<_, i64>(0)? as u64),
                    run: r.get(1)?,
                    channel: channel_of(r, 2)?,
                    recipient: r.get(3)?,
                    attempts: r.get::<_, i64>(4)? as u32,
                    last_error: r.get(5)?,
                    dead_at_ms: r.get::<_, Option<i64>>(6)?.unwrap_or(0),
                })
            };
            let rows = match owner {
                Some(o) => stmt.query_map(params![limit as i64, o], row)?.collect::<Result<Vec<_>, _>>()?,
                None => stmt.query_map(params![limit as i64], row)?.collect::<Result<Vec<_>, _>>()?,
            };
            Ok(rows)
        })
        .await
    }

    async fn replay(&self, scope: OwnerScope, which: Replay) -> Result<u64, NotifyError> {
        let ids: Option<Vec<i64>> = match which {
            Replay::All => None,
            Replay::Ids(ids) => Some(ids.into_iter().filter_map(|id| embedded_seq(id).ok()).collect()),
        };
        // 0: every owner's; 1: the operator's (owner NULL); 2: the owner ?4's.
        let (mode, owner): (i64, Option<String>) = match scope {
            OwnerScope::All => (0, None),
            OwnerScope::Of(None) => (1, None),
            OwnerScope::Of(Some(o)) => (2, Some(o)),
        };
        let (backlog, leases, fresh, clock) = (self.backlog.clone(), self.leases.clone(), self.fresh.clone(), self.clock.clone());
        let n = self
            .call(move |conn| {
                let mut l = leases.lock().expect("leases");
                let mut fresh = fresh.lock().expect("fresh");
                let now = clock.now_ms().max(l.floor());
                let mut per_run: std::collections::HashMap<Option<i64>, i64> = Default::default();
                let mut replay_one = |id: Option<i64>| -> Result<u64, NotifyError> {
                    // A fresh attempt budget; the earlier attempts stay in the history.
                    let sql = "UPDATE notifications SET state = 0, attempts = 0, due_ms = ?1 \
                               WHERE state = 3 AND (?2 IS NULL OR id = ?2) \
                               AND (?3 = 0 OR (?3 = 1 AND owner IS NULL) OR (?3 = 2 AND owner = ?4)) RETURNING run_id, lane, owner";
                    let mut stmt = conn.prepare_cached(sql)?;
                    let rows = stmt
                        .query_map(params![now, id, mode, owner], |r| {
                            Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, i64>(1)?, r.get::<_, Option<String>>(2)?))
                        })?
                        .collect::<Result<Vec<_>, _>>()?;
                    for (run, lane, owner) in &rows {
                        *per_run.entry(*run).or_default() += 1;
                        adjust_count(&mut fresh, owner, 1, 0);
                        l.wake(*lane, now);
                    }
                    Ok(rows.len() as u64)
                };
                let n = match ids {
                    None => replay_one(None)?,
                    Some(ids) => ids.into_iter().map(|id| replay_one(Some(id))).sum::<Result<u64, _>>()?,
                };
                for (run, k) in per_run {
                    if let Some(run) = run {
                        conn.prepare_cached("UPDATE runs SET dead = max(dead - ?2, 0) WHERE id = ?1")?.execute(params![run, k])?;
                    }
                }
                backlog.fetch_add(n, Ordering::Relaxed);
                Ok(n)
            })
            .await?;
        self.work.notify_waiters();
        Ok(n)
    }

    async fn attempts(&self, id: NotificationId) -> Result<Vec<Attempt>, NotifyError> {
        let seq = embedded_seq(id)?;
        self.read(move |conn| {
            let row = conn
                .prepare_cached("SELECT state, attempts, done_ms, latency_us FROM notifications WHERE id = ?1")?
                .query_row([seq], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, Option<i64>>(2)?, r.get::<_, Option<i64>>(3)?)))
                .optional()?;
            let Some((state, attempts, done_ms, latency_us)) = row else { return Err(NotifyError::NotFound) };
            let mut list = conn
                .prepare_cached("SELECT attempt, at_ms, outcome, latency_us, error FROM attempts WHERE notification_id = ?1 ORDER BY at_ms, attempt")?
                .query_map([seq], |r| {
                    Ok(Attempt {
                        number: r.get::<_, i64>(0)? as u32,
                        at_ms: r.get(1)?,
                        outcome: AttemptOutcome::from_code(r.get(2)?),
                        latency_us: r.get::<_, i64>(3)? as u64,
                        error: r.get(4)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            if state == STATE_DELIVERED {
                list.push(Attempt {
                    number: attempts as u32,
                    at_ms: done_ms.unwrap_or(0),
                    outcome: AttemptOutcome::Delivered,
                    latency_us: latency_us.unwrap_or(0) as u64,
                    error: None,
                });
            }
            Ok(list)
        })
        .await
    }

    async fn run_counters(&self, run: RunId) -> Result<RunCounters, NotifyError> {
        self.read(move |conn| read_run_counters(conn, run)).await
    }

    async fn cancel_run(&self, run: RunId) -> Result<u64, NotifyError> {
        let (backlog, retrying, fresh, now) = (self.backlog.clone(), self.retrying.clone(), self.fresh.clone(), self.clock.now_ms());
        self.call(move |conn| {
            let owners = conn
                .prepare_cached("UPDATE notifications SET state = 4, done_ms = ?2 WHERE run_id = ?1 AND state = 0 RETURNING owner, attempts")?
                .query_map(params![run, now], |r| Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let n = owners.len() as u64;
            let mut fresh = fresh.lock().expect("fresh");
            for (owner, attempts) in &owners {
                adjust_count(&mut fresh, owner, 0, u64::from(*attempts == 0));
            }
            conn.execute("UPDATE runs SET cancelled = cancelled + ?2 WHERE id = ?1", params![run, n as i64])?;
            let _ = backlog.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(n)));
            // Some of them may have been retries: count again (a cancel is rare; the count is indexed
            // by state and cheap next to the update).
            retrying.store(count_retrying(conn)?, Ordering::Relaxed);
            Ok(n)
        })
        .await
    }
}

impl SqliteQueue {
    /// Deletes at most `limit` rows of `store` older than `before_ms` (one batch, through the writer
    /// thread like every write, so deliveries wait at most one batch), then gives freed pages back.
    /// Returns the rows deleted and, for runs, their ids (their Redis counters go too).
    pub(crate) async fn prune(&self, store: Retained, before_ms: i64, limit: usize) -> Result<(u64, Vec<RunId>), NotifyError> {
        self.call(move |conn| {
            let limit = limit as i64;
            let (n, runs) = match store {
                Retained::Delivered | Retained::DeadLetters => {
                    let states = if store == Retained::Delivered { "state IN (2, 4, 5)" } else { "state = 3" };
                    let sql =
                        format!("DELETE FROM notifications WHERE id IN (SELECT id FROM notifications WHERE {states} AND done_ms < ?1 LIMIT ?2)");
                    (conn.prepare_cached(&sql)?.execute(params![before_ms, limit])? as u64, vec![])
                }
                Retained::Attempts => {
                    let sql = "DELETE FROM attempts WHERE rowid IN (SELECT rowid FROM attempts WHERE at_ms < ?1 LIMIT ?2)";
                    (conn.prepare_cached(sql)?.execute(params![before_ms, limit])? as u64, vec![])
                }
                Retained::Runs => {
                    let ids: Vec<RunId> = conn
                        .prepare_cached("SELECT id FROM runs WHERE finished_ms < ?1 AND status != 'running' LIMIT ?2")?
                        .query_map(params![before_ms, limit], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?;
                    for id in &ids {
                        conn.prepare_cached("DELETE FROM run_latency WHERE run_id = ?1")?.execute([id])?;
                        conn.prepare_cached("DELETE FROM runs WHERE id = ?1")?.execute([id])?;
                    }
                    crate::quotas::prune_days(conn)?;
                    (ids.len() as u64, ids)
                }
            };
            if n > 0 {
                // Each step of this pragma frees one page: step it to the end.
                let mut stmt = conn.prepare_cached(&format!("PRAGMA incremental_vacuum({VACUUM_PAGES_PER_BATCH})"))?;
                let mut rows = stmt.query([])?;
                while rows.next()?.is_some() {}
            }
            Ok((n, runs))
        })
        .await
    }

    /// Rows and oldest row (by the age it is pruned by) of `store`, read beside the writer (an
    /// in-memory queue, which only its own connection sees, is read on the writer thread).
    pub(crate) async fn stored(&self, store: Retained) -> Result<StoreSize, NotifyError> {
        fn read(conn: &Connection, store: Retained) -> Result<StoreSize, NotifyError> {
            let sql = match store {
                Retained::Delivered => "SELECT count(*), min(done_ms) FROM notifications WHERE state IN (2, 4, 5)",
                Retained::DeadLetters => "SELECT count(*), min(done_ms) FROM notifications WHERE state = 3",
                Retained::Attempts => "SELECT count(*), min(at_ms) FROM attempts",
                Retained::Runs => "SELECT count(*), min(finished_ms) FROM runs WHERE status != 'running'",
            };
            let (rows, oldest_ms): (i64, Option<i64>) = conn.prepare_cached(sql)?.query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let bytes = match store {
                // Delivered rows and dead letters share the table with the pending ones: their share by rows.
                Retained::Delivered | Retained::DeadLetters => {
                    let all: i64 = conn.prepare_cached("SELECT count(*) FROM notifications")?.query_row([], |r| r.get(0))?;
                    let table = table_bytes(conn, "notifications")?;
                    if all == 0 {
                        0
                    } else {
                        (table as u128 * rows as u128 / all as u128) as u64
                    }
                }
                Retained::Attempts => table_bytes(conn, "attempts")?,
                Retained::Runs => table_bytes(conn, "runs")? + table_bytes(conn, "run_latency")?,
            };
            Ok(StoreSize { rows: rows as u64, oldest_ms, bytes: Some(bytes) })
        }
        /// The table's b-trees and its indexes', by `dbstat` (every page of them walked once).
        fn table_bytes(conn: &Connection, table: &str) -> Result<u64, NotifyError> {
            let sql = "SELECT COALESCE(SUM(d.pgsize), 0) FROM sqlite_schema s, dbstat d \
                       WHERE s.tbl_name = ?1 AND s.type IN ('table', 'index') AND d.name = s.name AND d.aggregate = 1";
            let n: i64 = conn.prepare_cached(sql)?.query_row([table], |r| r.get(0))?;
            Ok(n.max(0) as u64)
        }
        self.read(move |conn| read(conn, store)).await
    }

    /// The queue file and its WAL, in bytes.
    pub(crate) fn file_bytes(&self) -> u64 {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        [self.path.as_os_str(), wal.as_os_str()].iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum()
    }
}

/// The seven counter columns of `runs` (produced, delivered, failed, retried, dead, cancelled, expired), read
/// from `row` starting at column `first`.
pub(crate) fn counters_from_row(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<RunCounters> {
    let n = |i: usize| row.get::<_, i64>(first + i).map(|v| v as u64);
    Ok(RunCounters {
        produced: n(0)?,
        delivered: n(1)?,
        failed_attempts: n(2)?,
        retried: n(3)?,
        dead_lettered: n(4)?,
        cancelled: n(5)?,
        expired: n(6)?,
        ..Default::default()
    })
}

pub(crate) fn read_run_counters(conn: &Connection, run: RunId) -> Result<RunCounters, NotifyError> {
    let mut c = conn
        .prepare_cached("SELECT produced, delivered, failed, retried, dead, cancelled, expired FROM runs WHERE id = ?1")?
        .query_row([run], |r| counters_from_row(r, 0))
        .optional()?
        .ok_or(NotifyError::NotFound)?;
    let mut stmt = conn.prepare_cached("SELECT kind, bucket, count FROM run_latency WHERE run_id = ?1")?;
    let rows = stmt.query_map([run], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as usize, r.get::<_, i64>(2)? as u64)))?;
    for row in rows {
        let (kind, bucket, n) = row?;
        let h: &mut LatencyBuckets = if kind == 0 { &mut c.attempt_latency } else { &mut c.end_to_end };
        h.add(bucket, n);
    }
    Ok(c)
}

#[allow(dead_code)]
const _STATES: [i64; 6] = [STATE_READY, STATE_LEASED, STATE_DELIVERED, STATE_DEAD, STATE_CANCELLED, STATE_EXPIRED];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_file_and_the_sync_mode() {
        assert_eq!(parse_url("sqlite://data/notify.db"), (PathBuf::from("data/notify.db"), false));
        assert_eq!(parse_url("sqlite:/tmp/q.db?synchronous=full"), (PathBuf::from("/tmp/q.db"), true));
        assert_eq!(parse_url("q.db"), (PathBuf::from("q.db"), false));
    }

    /// Reads go beside the writer: while the writer thread is busy with a long batch, a listing is
    /// answered at once, and it sees every write that was answered before it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_are_not_queued_behind_the_writer_and_see_answered_writes() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteQueue::open(&format!("sqlite://{}", dir.path().join("q.db").display())).unwrap();
        let run = q.create_run("alice", &crate::sim::SimParams::default(), None).await.unwrap();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let busy = {
            let q = q.clone();
            tokio::spawn(async move {
                q.call(move |_| {
                    let _ = started_tx.send(());
                    std::thread::sleep(Duration::from_millis(1500));
                    Ok(())
                })
                .await
            })
        };
        started_rx.await.unwrap();
        let t = std::time::Instant::now();
        let runs = q.list_runs(Some("alice"), false, 10).await.unwrap();
        assert!(t.elapsed() < Duration::from_millis(1000), "the read waited for the writer: {:?}", t.elapsed());
        assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), [run]);
        assert!(q.get_run(run).await.unwrap().is_some());
        assert!(!busy.is_finished(), "the writer was still busy during the reads");
        busy.await.unwrap().unwrap();
    }

    /// However many reads arrive at once, at most `MAX_READERS` run (each on its own connection and
    /// blocking thread); the rest wait their turn and are answered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_reads_are_capped() {
        use std::sync::atomic::AtomicUsize;
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteQueue::open(&format!("sqlite://{}", dir.path().join("q.db").display())).unwrap();
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let reads: Vec<_> = (0..4 * MAX_READERS)
            .map(|_| {
                let (q, running, most) = (q.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    q.read(move |conn| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(30));
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok(conn.query_row("SELECT count(*) FROM runs", [], |r| r.get::<_, i64>(0))?)
                    })
                    .await
                })
            })
            .collect();
        for r in reads {
            assert_eq!(r.await.unwrap().unwrap(), 0);
        }
        let most = most.load(Ordering::SeqCst);
        assert!((2..=MAX_READERS).contains(&most), "{most} reads ran at once");
    }
}
