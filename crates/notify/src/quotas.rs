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

/// What one enqueue counts against a user's day: every notification, and of them those that leave the
/// machine for real as e-mail or Web Push (each with a cap of its own, so an open sign-up cannot make
/// this server a spam relay).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DayUse {
    pub notifications: u64,
    pub emails: u64,
    pub pushes: u64,
}

impl DayUse {
    pub fn notifications(n: u64) -> Self {
        Self { notifications: n, ..Self::default() }
    }
}

/// Counts `n` more for `owner` today (UTC), or refuses with the time until midnight when that would
/// pass one of the day's caps (0: that cap is off). Says whether it counted anything (what
/// [`refund_day`] would have to give back).
pub(crate) fn reserve_day(conn: &Connection, owner: &str, n: DayUse, q: &Quotas) -> Result<bool, NotifyError> {
    let caps = [
        (n.notifications, q.notifications_per_day, "notifications"),
        (n.emails, q.emails_per_day, "e-mails"),
        (n.pushes, q.pushes_per_day, "push messages"),
    ];
    if caps.iter().all(|(want, cap, _)| *cap == 0 || *want == 0) {
        return Ok(false);
    }
    let now = now_ms();
    let day = now.div_euclid(DAY_MS);
    let used: (i64, i64, i64) = conn
        .prepare_cached("SELECT notifications, emails, pushes FROM owner_usage WHERE owner = ?1 AND day = ?2")?
        .query_row(params![owner, day], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?
        .unwrap_or_default();
    for ((want, cap, what), used) in caps.into_iter().zip([used.0, used.1, used.2]) {
        let used = used.max(0) as u64;
        if cap > 0 && want > 0 && used.saturating_add(want) > cap {
            let left = cap.saturating_sub(used);
            return Err(NotifyError::QuotaExceeded {
                message: format!(
                    "You can send at most {cap} {what} a day and have {left} left today; this needs {want}. \
                     The count starts again at midnight UTC."
                ),
                retry_after: Duration::from_millis(((day + 1) * DAY_MS - now).max(1000) as u64),
            });
        }
    }
    conn.prepare_cached(
        "INSERT INTO owner_usage (owner, day, notifications, emails, pushes) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (owner, day) DO UPDATE SET notifications = notifications + excluded.notifications, \
         emails = emails + excluded.emails, pushes = pushes + excluded.pushes",
    )?
    .execute(params![owner, day, n.notifications as i64, n.emails as i64, n.pushes as i64])?;
    Ok(true)
}

/// Gives back what [`reserve_day`] counted for an enqueue that then failed.
pub(crate) fn refund_day(conn: &Connection, owner: &str, n: DayUse) -> Result<(), NotifyError> {
    conn.prepare_cached(
        "UPDATE owner_usage SET notifications = max(notifications - ?3, 0), emails = max(emails - ?4, 0), \
         pushes = max(pushes - ?5, 0) WHERE owner = ?1 AND day = ?2",
    )?
    .execute(params![owner, now_ms().div_euclid(DAY_MS), n.notifications as i64, n.emails as i64, n.pushes as i64])?;
    Ok(())
}

/// Drops day counts older than yesterday (they are never read again).
pub(crate) fn prune_days(conn: &Connection) -> Result<(), NotifyError> {
    conn.execute("DELETE FROM owner_usage WHERE day < ?1", [now_ms().div_euclid(DAY_MS) - 1])?;
    Ok(())
}

/// A token bucket per owner (GCRA, `governor`): `per_sec` a second after a burst of `burst`. Every
/// per-user rate in the product is one of these: notification enqueues here, webhook sends (`hooks`),
/// workflow HTTP steps (the server's step host).
pub struct OwnerRate {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
}

impl OwnerRate {
    /// `per_sec` 0: no limit. The burst is at least one second's worth.
    pub fn new(per_sec: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_sec).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate).max(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self { limiter }
    }

    /// Takes `n` tokens from `owner`'s bucket, or says how long until there are enough (one second
    /// when `n` is more than the whole burst).
    pub fn check(&self, owner: &str, n: usize) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        let Some(n) = NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)) else { return Ok(()) };
        if limiter.len() > 10_000 {
            limiter.retain_recent();
        }
        match limiter.check_key_n(&owner.to_string(), n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(DefaultClock::default().now())),
            Err(_) => Err(Duration::from_secs(1)),
        }
    }

    /// Forgets owners whose buckets are full again (keeps the map small).
    pub fn tidy(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
        }
    }
}

/// The per-user enqueue rate, with the burst of a whole batch so one batch always fits.
pub(crate) struct EnqueueRate {
    rate: OwnerRate,
    per_sec: u32,
}

impl EnqueueRate {
    pub fn new(q: &Quotas) -> Self {
        let burst = (MAX_BATCH as u32).max(q.enqueue_per_sec);
        Self { rate: OwnerRate::new(q.enqueue_per_sec, burst), per_sec: q.enqueue_per_sec }
    }

    /// Takes `n` tokens from `owner`'s bucket, or says how long until there are enough.
    pub fn check(&self, owner: &str, n: usize) -> Result<(), NotifyError> {
        self.rate.check(owner, n).map_err(|wait| NotifyError::QuotaExceeded {
            message: format!(
                "You are enqueueing faster than {} notifications a second. Try again in {} seconds.",
                self.per_sec,
                wait.as_secs_f64().ceil().max(1.0) as u64
            ),
            retry_after: wait,
        })
    }

    pub fn tidy(&self) {
        self.rate.tidy();
    }
}
