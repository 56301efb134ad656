//! "Recover failed messages since": after an endpoint is fixed (and enabled again), every message it
//! missed since a time is sent to it again, once, in the background. A message counts as missed when it
//! is the endpoint's kind (its event types) and has no delivery to it that succeeded or is still under
//! way; messages sent while the endpoint was disabled are missed too. Progress is stored per batch, so
//! a recovery survives a restart (any instance resumes one whose runner has gone quiet), and a
//! recovery is paced by the owner's outbound budget like every other send.

use contract::Owner;
use sqlx::any::AnyRow;
use sqlx::Row;
use std::time::Duration;

use crate::error::HooksError;
use crate::{new_id, now_ms, Endpoint, Hooks};

pub use contract::webhooks::Recovery;

/// Messages looked at per batch (progress is stored after each).
const BATCH: i64 = 100;
/// A running recovery whose runner has not written for this long is taken over.
const STALE_MS: i64 = 60_000;
/// Recoveries listed per endpoint.
pub const RECOVERIES_LISTED: i64 = 10;

const COLUMNS: &str = "id, endpoint_id, since_ms, until_ms, status, total, sent, created_ms, finished_ms";

/// The messages of `$1` (owner) after seq `$2`, made from `$3` to `$4`, that endpoint `$5` has not
/// received and is not being sent.
const MISSED: &str = "FROM webhook_messages m WHERE m.owner = $1 AND m.seq > $2 AND m.created_ms >= $3 AND m.created_ms <= $4 \
     AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.message_id = m.id AND d.endpoint_id = $5 \
     AND d.state IN ('delivered', 'pending', 'retrying'))";

/// `SELECT select` over the messages `ep` missed ([`MISSED`]) of its event types (`$6`… when it names
/// any), oldest first; `batch` adds a `LIMIT` bound last.
fn missed_sql(ep: &Endpoint, select: &str, batch: bool) -> String {
    let mut sql = format!("SELECT {select} {MISSED}");
    let n = ep.event_types.len();
    if n > 0 {
        let marks: Vec<String> = (6..6 + n).map(|i| format!("${i}")).collect();
        sql.push_str(&format!(" AND m.event_type IN ({})", marks.join(", ")));
    }
    if batch {
        sql.push_str(&format!(" ORDER BY m.seq LIMIT ${}", 6 + n));
    }
    sql
}

/// Binds [`missed_sql`]'s parameters but the `LIMIT`.
fn bind_missed<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ep: &'q Endpoint,
    owner: &'q Owner,
    cursor: i64,
    since_ms: i64,
    until_ms: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let q = q.bind(owner).bind(cursor).bind(since_ms).bind(until_ms).bind(ep.id.as_str());
    ep.event_types.iter().fold(q, |q, t| q.bind(t.as_str()))
}

fn from_row(r: &AnyRow) -> Result<Recovery, sqlx::Error> {
    Ok(Recovery {
        id: r.try_get("id")?,
        endpoint_id: r.try_get("endpoint_id")?,
        since_ms: r.try_get("since_ms")?,
        until_ms: r.try_get("until_ms")?,
        status: r.try_get("status")?,
        total: r.try_get::<i64, _>("total")?.max(0) as u64,
        sent: r.try_get::<i64, _>("sent")?.max(0) as u64,
        created_ms: r.try_get("created_ms")?,
        finished_ms: r.try_get("finished_ms")?,
    })
}

impl Hooks {
    /// Starts recovering what `endpoint_id` missed since `since_ms` (until now). The endpoint must be
    /// enabled; one recovery runs per endpoint at a time.
    pub async fn recover(&self, owner: &Owner, endpoint_id: &str, since_ms: i64) -> Result<Recovery, HooksError> {
        let ep = self.get_endpoint(owner, endpoint_id).await?;
        let now = now_ms();
        if since_ms > now {
            return Err(HooksError::invalid("since", "must not be in the future"));
        }
        if !ep.enabled {
            return Err(HooksError::Conflict("This endpoint is disabled; enable it first, then recover what it missed.".into()));
        }
        self.inner.notify.as_ref().ok_or(HooksError::Unavailable)?;
        let since_ms = since_ms.max(ep.created_ms);
        let count = missed_sql(&ep, "COUNT(*)", false);
        let total: i64 = bind_missed(sqlx::query(&count), &ep, owner, 0, since_ms, now).fetch_one(self.pool()).await?.try_get(0)?;
        let id = new_id("rec");
        let inserted = sqlx::query(
            "INSERT INTO webhook_recoveries (id, owner, endpoint_id, since_ms, until_ms, status, total, sent, cursor_seq, heartbeat_ms, created_ms) \
             SELECT $1, $2, $3, $4, $5, 'running', $6, 0, 0, $5, $5 \
             WHERE NOT EXISTS (SELECT 1 FROM webhook_recoveries WHERE endpoint_id = $3 AND status = 'running')",
        )
        .bind(&id)
        .bind(owner)
        .bind(endpoint_id)
        .bind(since_ms)
        .bind(now)
        .bind(total)
        .execute(self.pool())
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(HooksError::Conflict("A recovery of this endpoint is already running.".into()));
        }
        let hooks = self.clone();
        let run_id = id.clone();
        tokio::spawn(async move { hooks.run_recovery(run_id).await });
        self.recovery(owner, &id).await
    }

    async fn recovery(&self, owner: &Owner, id: &str) -> Result<Recovery, HooksError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM webhook_recoveries WHERE owner = $1 AND id = $2"))
            .bind(owner)
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(HooksError::NotFound)?;
        Ok(from_row(&row)?)
    }

    /// The endpoint's latest recoveries, newest first.
    pub async fn recoveries(&self, owner: &Owner, endpoint_id: &str) -> Result<Vec<Recovery>, HooksError> {
        self.get_endpoint(owner, endpoint_id).await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM webhook_recoveries WHERE owner = $1 AND endpoint_id = $2 ORDER BY created_ms DESC, id DESC LIMIT $3"
        ))
        .bind(owner)
        .bind(endpoint_id)
        .bind(RECOVERIES_LISTED)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Takes over every running recovery whose runner has gone quiet (a restart, a crashed instance);
    /// returns how many. Call it once at start-up, after [`Hooks::attach`].
    pub async fn resume_recoveries(&self) -> Result<usize, HooksError> {
        let now = now_ms();
        let ids: Vec<String> =
            sqlx::query_scalar("UPDATE webhook_recoveries SET heartbeat_ms = $1 WHERE status = 'running' AND heartbeat_ms < $2 RETURNING id")
                .bind(now)
                .bind(now - STALE_MS)
                .fetch_all(self.pool())
                .await?;
        for id in &ids {
            let (hooks, id) = (self.clone(), id.clone());
            tokio::spawn(async move { hooks.run_recovery(id).await });
        }
        Ok(ids.len())
    }

    async fn run_recovery(self, id: String) {
        if let Err(e) = self.recover_batches(&id).await {
            tracing::warn!(recovery = %id, error = %e, "webhook recovery stopped; it resumes at the next start");
        }
    }

    async fn recover_batches(&self, id: &str) -> Result<(), HooksError> {
        loop {
            let row = sqlx::query("SELECT owner, endpoint_id, since_ms, until_ms, cursor_seq, status FROM webhook_recoveries WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
            let Some(row) = row else { return Ok(()) };
            if row.try_get::<String, _>("status")? != "running" {
                return Ok(());
            }
            let owner = Owner::new(row.try_get::<String, _>("owner")?);
            let endpoint_id: String = row.try_get("endpoint_id")?;
            let cursor: i64 = row.try_get("cursor_seq")?;
            let ep = match self.get_endpoint(&owner, &endpoint_id).await {
                Ok(ep) if ep.enabled => ep,
                // Deleted or disabled again: what is left waits for the next recovery.
                _ => return self.finish_recovery(id, "stopped").await,
            };
            let (since_ms, until_ms) = (row.try_get::<i64, _>("since_ms")?, row.try_get::<i64, _>("until_ms")?);
            let batch = missed_sql(&ep, "m.seq, m.id", true);
            let rows = bind_missed(sqlx::query(&batch), &ep, &owner, cursor, since_ms, until_ms).bind(BATCH).fetch_all(self.pool()).await?;
            let Some(last) = rows.last() else { return self.finish_recovery(id, "completed").await };
            let last_seq: i64 = last.try_get("seq")?;
            let mut sent = 0i64;
            for r in &rows {
                let message_id: String = r.try_get("id")?;
                // Paced by the owner's outbound budget, as every send is.
                loop {
                    match self.spend_outbound(&owner, 1) {
                        Ok(()) => break,
                        Err(HooksError::RateLimited { retry_after_secs, .. }) => {
                            tokio::time::sleep(Duration::from_secs(retry_after_secs.max(1))).await
                        }
                        Err(e) => return Err(e),
                    }
                }
                self.fan_out(&owner, &message_id, std::slice::from_ref(&endpoint_id)).await?;
                sent += 1;
            }
            sqlx::query("UPDATE webhook_recoveries SET cursor_seq = $1, sent = sent + $2, heartbeat_ms = $3 WHERE id = $4 AND status = 'running'")
                .bind(last_seq)
                .bind(sent)
                .bind(now_ms())
                .bind(id)
                .execute(self.pool())
                .await?;
        }
    }

    async fn finish_recovery(&self, id: &str, status: &str) -> Result<(), HooksError> {
        sqlx::query("UPDATE webhook_recoveries SET status = $1, finished_ms = $2 WHERE id = $3 AND status = 'running'")
            .bind(status)
            .bind(now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
