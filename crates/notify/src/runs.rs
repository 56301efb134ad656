//! Simulation runs: their records (in the embedded queue's SQLite file, whichever backend carries the
//! notifications), the producer that paces a run, and what the dashboard reads.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

use crate::config::Quotas;
use crate::error::NotifyError;
use crate::model::{PerChannel, Prepared, RunId, SimKnobs};
use crate::queue::sqlite::SqliteQueue;
use crate::queue::{Checkpoint, Queue};
use crate::sim::{Rate, SimParams};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Completed,
    Cancelled,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Failed => "failed",
        }
    }
    fn parse(s: &str) -> RunStatus {
        match s {
            "running" => RunStatus::Running,
            "completed" => RunStatus::Completed,
            "cancelled" => RunStatus::Cancelled,
            _ => RunStatus::Failed,
        }
    }
}

/// A run as listed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunSummary {
    pub id: RunId,
    pub status: RunStatus,
    pub params: SimParams,
    pub produced: u64,
    pub delivered: u64,
    pub dead_lettered: u64,
    /// Unix seconds.
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// A run's progress, cheap enough to read twice a second.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunSnapshot {
    pub id: RunId,
    pub status: RunStatus,
    pub params: SimParams,
    pub produced: u64,
    pub delivered: u64,
    pub failed_attempts: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub cancelled: u64,
    /// Notifications whose time to live ran out before they were sent.
    pub expired: u64,
    /// This run's notifications not yet settled (waiting, in flight or scheduled for retry).
    pub backlog: u64,
    /// Duration of successful delivery attempts, milliseconds.
    pub latency_ms: Percentiles,
    /// From enqueue to delivery, milliseconds (includes time waiting in the queue).
    pub end_to_end_ms: Percentiles,
    /// (seconds since start, delivered in that second), one entry per second while this process watched.
    pub throughput: Vec<(u32, u32)>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

pub(crate) struct RunRecord {
    pub id: RunId,
    pub owner: String,
    pub status: RunStatus,
    pub params: SimParams,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    pub stored: crate::queue::RunCounters,
}

fn record_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    let params_json: String = r.get(2)?;
    let status: String = r.get(3)?;
    Ok(RunRecord {
        id: r.get(0)?,
        owner: r.get(1)?,
        status: RunStatus::parse(&status),
        params: serde_json::from_str(&params_json).unwrap_or_default(),
        started_ms: r.get(4)?,
        finished_ms: r.get(5)?,
        stored: crate::queue::sqlite::counters_from_row(r, 6)?,
    })
}

const RUN_COLUMNS: &str = "id, owner, params, status, started_ms, finished_ms, produced, delivered, failed, retried, dead, cancelled, expired";

impl SqliteQueue {
    /// Records a new running run. With `quotas` (a user's run), the owner's concurrent runs and today's
    /// notifications are checked and counted in the same transaction, so two requests at once cannot
    /// both take the last slot.
    pub(crate) async fn create_run(&self, owner: &str, params: &SimParams, quotas: Option<Quotas>) -> Result<RunId, NotifyError> {
        let (owner, json, backend, count) =
            (owner.to_string(), serde_json::to_string(params).unwrap_or_default(), params.backend.as_str(), params.count);
        let clock = self.clock().clone();
        self.call(move |c| {
            if let Some(q) = quotas {
                if q.concurrent_runs > 0 {
                    let running: i64 =
                        c.prepare_cached("SELECT count(*) FROM runs WHERE owner = ?1 AND status = 'running'")?.query_row([&owner], |r| r.get(0))?;
                    if running >= q.concurrent_runs as i64 {
                        return Err(NotifyError::QuotaExceeded {
                            message: format!(
                                "You already have {running} simulation runs going (at most {} at once). Wait for one to finish or cancel it.",
                                q.concurrent_runs
                            ),
                            retry_after: Duration::from_secs(10),
                        });
                    }
                }
                crate::quotas::reserve_day(c, &owner, crate::quotas::DayUse::notifications(count), &q)?;
            }
            c.execute(
                "INSERT INTO runs (owner, params, backend, status, started_ms) VALUES (?1, ?2, ?3, 'running', ?4)",
                params![owner, json, backend, clock.now_ms()],
            )?;
            Ok(c.last_insert_rowid())
        })
        .await
    }

    /// Every Redis run's owner (for [`RedisQueue::migrate_layout`](crate::queue::redis::RedisQueue)).
    pub(crate) async fn redis_run_owners(&self) -> Result<std::collections::HashMap<RunId, String>, NotifyError> {
        self.call(|c| {
            let mut stmt = c.prepare("SELECT id, owner FROM runs WHERE backend = 'redis'")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub(crate) async fn get_run(&self, id: RunId) -> Result<Option<RunRecord>, NotifyError> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?.query_row([id], record_from_row).optional()?)
        })
        .await
    }

    pub(crate) async fn list_runs(&self, owner: Option<&str>, only_running: bool, limit: usize) -> Result<Vec<RunRecord>, NotifyError> {
        let owner = owner.map(str::to_string);
        self.read(move |c| {
            let sql = format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE (?1 IS NULL OR owner = ?1) AND (?2 = 0 OR status = 'running') \
                 ORDER BY id DESC LIMIT ?3"
            );
            let rows = c
                .prepare_cached(&sql)?
                .query_map(params![owner, only_running as i64, limit as i64], record_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Moves a run out of `running`; `final_counts` stores a Redis run's counters with it.
    pub(crate) async fn finish_run(
        &self,
        id: RunId,
        status: RunStatus,
        final_counts: Option<crate::queue::RunCounters>,
    ) -> Result<bool, NotifyError> {
        let clock = self.clock().clone();
        self.call(move |c| {
            let n = c.execute(
                "UPDATE runs SET status = ?2, finished_ms = ?3 WHERE id = ?1 AND status = 'running'",
                params![id, status.as_str(), clock.now_ms()],
            )?;
            if let (1, Some(k)) = (n, final_counts) {
                c.execute(
                    "UPDATE runs SET produced = ?2, delivered = ?3, failed = ?4, retried = ?5, dead = ?6, cancelled = ?7, expired = ?8 WHERE id = ?1",
                    params![
                        id,
                        k.produced as i64,
                        k.delivered as i64,
                        k.failed_attempts as i64,
                        k.retried as i64,
                        k.dead_lettered as i64,
                        k.cancelled as i64,
                        k.expired as i64
                    ],
                )?;
            }
            Ok(n == 1)
        })
        .await
    }
}

/// The `seq`-th notification of a run (deterministic, so a resumed run produces the same ones).
pub(crate) fn simulated(run: RunId, owner: &str, seq: u64, p: &SimParams, now_ms: i64) -> Prepared {
    let channel = p.mix.pick(seq);
    let recipient = match channel {
        crate::Channel::Webhook => format!("endpoint-{}", seq % 100),
        crate::Channel::Email => format!("user{}@example.test", seq % 10_000),
        crate::Channel::Sms => format!("+1555{:07}", seq % 10_000_000),
        crate::Channel::Push => format!("device-{}", seq % 10_000),
        crate::Channel::Noop => format!("noop-{}", seq % 100),
    };
    Prepared {
        run: Some(run),
        channel,
        recipient,
        payload: format!(r#"{{"run":{run},"seq":{seq},"text":"Simulated notification {seq} of run {run}"}}"#),
        idempotency_key: None,
        sim: SimKnobs { failure_rate: p.failure_rate as f32, latency_ms: p.latency_ms },
        // The run's owner: its dead letters are listed and replayed as theirs.
        owner: Some(owner.to_owned()),
        route: None,
        // Load, by definition: anything else waiting goes first.
        priority: crate::Priority::Bulk,
        expires_ms: p.ttl_secs.map(|t| now_ms + (t as i64) * 1000),
    }
}

pub(crate) const PRODUCE_BATCH: u64 = 1000;

/// Produces a run's notifications from `produced` on, paced by its rate and held back by the high-water
/// mark and its owner's backlog cap (`marks`: a simulation waits instead of failing). Each batch commits its checkpoint with it. The run is
/// given with its owner, whom every notification carries.
pub(crate) async fn produce<Q: Queue>(
    queue: &Q,
    (run, owner): (RunId, &str),
    params: &SimParams,
    mut produced: u64,
    (high_water, per_owner): (u64, u64),
    mut stop: tokio::sync::watch::Receiver<bool>,
    on_batch: impl Fn(&PerChannel<u64>),
) -> Result<u64, NotifyError> {
    let clock = Instant::now();
    let base = produced;
    let mut failures = 0;
    while produced < params.count {
        if *stop.borrow() {
            break;
        }
        let target = match params.rate {
            Rate::Max => params.count,
            Rate::PerHour(r) => (base + (r as f64 * clock.elapsed().as_secs_f64() / 3600.0) as u64).min(params.count),
        };
        let wait = if target <= produced {
            // The next one is due in 3600/r seconds; sleep at most 50 ms so a cancel is seen quickly.
            let per = match params.rate {
                Rate::PerHour(r) => Duration::from_secs_f64(3600.0 / r as f64),
                Rate::Max => Duration::ZERO,
            };
            Some(per.clamp(Duration::from_millis(1), Duration::from_millis(50)))
        } else if queue.fresh_backlog() + PRODUCE_BATCH > high_water
            || (per_owner > 0 && queue.owner_backlog(Some(owner)) + PRODUCE_BATCH > per_owner)
        {
            Some(Duration::from_millis(10))
        } else {
            None
        };
        if let Some(wait) = wait {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {},
                _ = stop.changed() => {},
            }
            continue;
        }
        let n = (target - produced).min(PRODUCE_BATCH);
        let items: Vec<Prepared> = {
            let now = queue.clock().now_ms();
            (produced..produced + n).map(|s| simulated(run, owner, s, params, now)).collect()
        };
        let mut per_channel = PerChannel::<u64>::default();
        for it in &items {
            *per_channel.get_mut(it.channel) += 1;
        }
        match queue.enqueue(items, Some(Checkpoint { run, produced: produced + n })).await {
            Ok(_) => {
                produced += n;
                failures = 0;
                on_batch(&per_channel);
            }
            Err(e) if failures < 10 => {
                failures += 1;
                tracing::warn!(run, error = %e, "producing a batch failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 * failures)).await;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(produced)
}

// ---------------------------------------------------------------------------------------------------
// What clients see (`contract::notifications`)

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn rate_words(rate: Rate) -> String {
    match rate {
        Rate::Max => "as fast as possible".into(),
        Rate::PerHour(n) if n % 1_000_000 == 0 => format!("{}M / hour", n / 1_000_000),
        Rate::PerHour(n) if n % 1_000 == 0 => format!("{}k / hour", n / 1_000),
        Rate::PerHour(n) => format!("{} / hour", thousands(n)),
    }
}

impl SimParams {
    /// The parameters in words: "10,000 at 1M / hour · webhook, email ×2 · embedded".
    pub fn summary(&self) -> String {
        let channels: Vec<String> = crate::Channel::ALL
            .iter()
            .filter(|c| self.mix.weight(**c) > 0)
            .map(|c| if self.mix.weight(*c) == 1 { c.as_str().to_string() } else { format!("{} ×{}", c.as_str(), self.mix.weight(*c)) })
            .collect();
        let mut s = format!("{} at {} · {} · {}", thousands(self.count), rate_words(self.rate), channels.join(", "), self.backend.as_str());
        if self.failure_rate > 0.0 {
            s += &format!(" · {}% failures", (self.failure_rate * 100.0).round());
        }
        if self.latency_ms > 0 {
            s += &format!(" · +{} ms", self.latency_ms);
        }
        s
    }
}

impl From<RunSnapshot> for contract::notifications::RunView {
    fn from(s: RunSnapshot) -> Self {
        let target_per_sec = match s.params.rate {
            Rate::PerHour(n) => Some(n as f64 / 3600.0),
            Rate::Max => None,
        };
        contract::notifications::RunView {
            id: s.id,
            status: s.status.as_str().to_string(),
            summary: s.params.summary(),
            count: s.params.count,
            produced: s.produced,
            delivered: s.delivered,
            failed_attempts: s.failed_attempts,
            retried: s.retried,
            dead_lettered: s.dead_lettered,
            cancelled: s.cancelled,
            expired: s.expired,
            backlog: s.backlog,
            end_to_end_ms: [s.end_to_end_ms.p50, s.end_to_end_ms.p95, s.end_to_end_ms.p99],
            attempt_ms: [s.latency_ms.p50, s.latency_ms.p95, s.latency_ms.p99],
            throughput: s.throughput,
            target_per_sec,
            started_at: s.started_at,
            finished_at: s.finished_at,
        }
    }
}

impl From<RunSummary> for contract::notifications::RunRow {
    fn from(r: RunSummary) -> Self {
        contract::notifications::RunRow {
            id: r.id,
            status: r.status.as_str().to_string(),
            summary: r.params.summary(),
            count: r.params.count,
            delivered: r.delivered,
            dead_lettered: r.dead_lettered,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

impl From<crate::DeadLetter> for contract::notifications::DeadLetterView {
    fn from(d: crate::DeadLetter) -> Self {
        contract::notifications::DeadLetterView {
            id: d.id.to_string(),
            run: d.run,
            channel: d.channel.as_str().to_string(),
            recipient: d.recipient,
            attempts: d.attempts,
            last_error: d.last_error,
            dead_at_ms: d.dead_at_ms,
        }
    }
}
