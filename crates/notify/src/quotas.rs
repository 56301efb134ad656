//! Per-user quotas ([`Quotas`]): the enqueue rate (in memory, per instance) and the daily count (in the
//! queue file's `owner_usage` table, on its writer thread, so checking and counting are one step).

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rusqlite::{params, Connection, OptionalExtension};
use std::num::NonZeroU32;
use std::time::Duration;

use crate::config::Quotas;
use crate::error::NotifyError;
use crate::model::{now_ms, MAX_BATCH};

const DAY_MS: i64 = 86_400_000;

/// Counts `n` more notifications for `owner` today (UTC), or refuses with the time until midnight when
/// that would pass `per_day` (0: no limit, nothing counted).
pub(crate) fn reserve_day(conn: &Connection, owner: &str, n: u64, per_day: u64) -> Result<(), NotifyError> {
    if per_day == 0 {
        return Ok(());
    }
    let now = now_ms();
    let day = now.div_euclid(DAY_MS);
    let used: i64 = conn
        .prepare_cached("SELECT notifications FROM owner_usage WHERE owner = ?1 AND day = ?2")?
        .query_row(params![owner, day], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let used = used.max(0) as u64;
    if used.saturating_add(n) > per_day {
        let left = per_day.saturating_sub(used);
        return Err(NotifyError::QuotaExceeded {
            message: format!(
                "You can send at most {per_day} notifications a day and have {left} left today; this needs {n}. \
                 The count starts again at midnight UTC."
            ),
            retry_after: Duration::from_millis(((day + 1) * DAY_MS - now).max(1000) as u64),
        });
    }
    conn.prepare_cached(
        "INSERT INTO owner_usage (owner, day, notifications) VALUES (?1, ?2, ?3) \
         ON CONFLICT (owner, day) DO UPDATE SET notifications = notifications + excluded.notifications",
    )?
    .execute(params![owner, day, n as i64])?;
    Ok(())
}

/// Gives back what [`reserve_day`] counted for an enqueue that then failed.
pub(crate) fn refund_day(conn: &Connection, owner: &str, n: u64) -> Result<(), NotifyError> {
    conn.prepare_cached("UPDATE owner_usage SET notifications = max(notifications - ?3, 0) WHERE owner = ?1 AND day = ?2")?
        .execute(params![owner, now_ms().div_euclid(DAY_MS), n as i64])?;
    Ok(())
}

/// Drops day counts older than yesterday (they are never read again).
pub(crate) fn prune_days(conn: &Connection) -> Result<(), NotifyError> {
    conn.execute("DELETE FROM owner_usage WHERE day < ?1", [now_ms().div_euclid(DAY_MS) - 1])?;
    Ok(())
}

/// The per-user enqueue rate: a token bucket per owner (GCRA, `governor`).
pub(crate) struct EnqueueRate {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    per_sec: u32,
}

impl EnqueueRate {
    pub fn new(q: &Quotas) -> Self {
        let limiter = NonZeroU32::new(q.enqueue_per_sec).map(|rate| {
            let burst = NonZeroU32::new((MAX_BATCH as u32).max(rate.get())).expect("non-zero");
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self { limiter, per_sec: q.enqueue_per_sec }
    }

    /// Takes `n` tokens from `owner`'s bucket, or says how long until there are enough.
    pub fn check(&self, owner: &str, n: usize) -> Result<(), NotifyError> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        let Some(n) = NonZeroU32::new(n as u32) else { return Ok(()) };
        let refused = |wait: Duration| NotifyError::QuotaExceeded {
            message: format!(
                "You are enqueueing faster than {} notifications a second. Try again in {} seconds.",
                self.per_sec,
                wait.as_secs_f64().ceil().max(1.0) as u64
            ),
            retry_after: wait,
        };
        match limiter.check_key_n(&owner.to_string(), n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(refused(not_until.wait_time_from(DefaultClock::default().now()))),
            // More than the burst in one call; cannot happen (the burst is at least MAX_BATCH, a batch at most).
            Err(_) => Err(refused(Duration::from_secs(1))),
        }
    }

    /// Forgets owners whose buckets are full again (keeps the map small).
    pub fn tidy(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
        }
    }
}
