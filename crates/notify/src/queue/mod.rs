//! One queue interface, two backends: [`sqlite::SqliteQueue`] (embedded, durable, one process) and
//! [`redis::RedisQueue`] (Redis Streams, any number of worker processes). Workers are generic over it.

pub mod redis;
pub mod sqlite;

use std::future::Future;

use crate::error::NotifyError;
use crate::model::{Attempt, Backend, Completion, DeadLetter, Job, NotificationId, Prepared, Replay, RunId};

/// Where a run's producer has got to, committed atomically with the batch it produced.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checkpoint {
    pub run: RunId,
    pub produced: u64,
}

pub(crate) trait Queue: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// The clock its due times come from (the pipeline's, see [`crate::Clock`]).
    fn clock(&self) -> &crate::Clock;

    /// Adds a batch (ids in input order; an idempotency key seen before yields the earlier id).
    fn enqueue(&self, items: Vec<Prepared>, checkpoint: Option<Checkpoint>) -> impl Future<Output = Result<Vec<NotificationId>, NotifyError>> + Send;

    /// Takes up to `max` due notifications for delivery. May wait briefly when there are none.
    fn lease(&self, max: usize) -> impl Future<Output = Result<Vec<Job>, NotifyError>> + Send;

    /// Records attempts and moves each job on (done, retry later, or dead letter), in one round trip.
    fn complete(&self, done: Vec<Completion>) -> impl Future<Output = Result<(), NotifyError>> + Send;

    /// Hands leased but undelivered jobs back (on shutdown).
    fn release(&self, jobs: Vec<Job>) -> impl Future<Output = Result<(), NotifyError>> + Send;

    /// Waiting + in flight + delayed, as last seen (cheap; may lag by a fraction of a second).
    fn backlog(&self) -> u64;

    /// Of the backlog, the notifications that failed and wait for a retry, as last seen.
    fn retries_waiting(&self) -> u64;

    /// Waiting notifications not yet attempted of one owner (`None`: the operator), as last seen: what
    /// the per-owner backlog cap is about.
    fn owner_backlog(&self, owner: Option<&str>) -> u64;

    /// Retries waiting of one route (a webhook endpoint).
    fn route_retries(&self, route: &str) -> impl Future<Output = Result<u64, NotifyError>> + Send;

    /// Takes up to `n` of `route`'s oldest waiting retries out of the queue as dead letters (last error
    /// `why`), answering their jobs so the observers hear of them.
    fn shed_oldest(&self, route: &str, n: usize, why: &str) -> impl Future<Output = Result<Vec<Job>, NotifyError>> + Send;

    /// What the high-water mark is about: the backlog without retries waiting. A receiver that is
    /// down holds its retries for a day; they must not turn every producer away.
    fn fresh_backlog(&self) -> u64 {
        self.backlog().saturating_sub(self.retries_waiting())
    }

    /// Newest first, of the owners `scope` names (filtered by the backend, not after a global limit).
    fn dead_letters(&self, scope: OwnerScope, limit: usize) -> impl Future<Output = Result<Vec<DeadLetter>, NotifyError>> + Send;
    /// Puts back dead letters `which` names that belong to `scope`.
    fn replay(&self, scope: OwnerScope, which: Replay) -> impl Future<Output = Result<u64, NotifyError>> + Send;
    fn attempts(&self, id: NotificationId) -> impl Future<Output = Result<Vec<Attempt>, NotifyError>> + Send;

    /// The run's counters as stored by the backend.
    fn run_counters(&self, run: RunId) -> impl Future<Output = Result<RunCounters, NotifyError>> + Send;
    /// Drops the run's waiting notifications (in-flight ones finish). Returns how many were dropped.
    fn cancel_run(&self, run: RunId) -> impl Future<Output = Result<u64, NotifyError>> + Send;
}

/// Whose dead letters (and idempotency keys): one owner's, where `None` is the operator (notifications
/// without an owner), or everyone's (operator tools and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerScope {
    All,
    Of(Option<String>),
}

impl OwnerScope {
    pub fn of(owner: Option<&str>) -> Self {
        OwnerScope::Of(owner.map(str::to_owned))
    }
}

/// Moves one key of an in-memory count by `up` and `down` (never below 0), dropping keys that reach 0
/// so a map of counts holds only what is there: each owner's waiting notifications, each endpoint's
/// waiting retries, a worker's unrecorded ones.
pub(crate) fn adjust_count<K: std::hash::Hash + Eq + Clone>(counts: &mut std::collections::HashMap<K, u64>, key: &K, up: u64, down: u64) {
    match counts.get_mut(key) {
        Some(n) => {
            *n = (*n + up).saturating_sub(down);
            if *n == 0 {
                counts.remove(key);
            }
        }
        None if up > down => {
            counts.insert(key.clone(), up - down);
        }
        None => {}
    }
}

/// An owner's part of a Redis key: `u` and the name in lowercase hex (so no character of a name can end
/// the part early or make it look like another owner's), or `op` for the operator (no owner).
pub(crate) fn owner_key_part(owner: Option<&str>) -> String {
    match owner {
        None => "op".into(),
        Some(o) => {
            let mut s = String::with_capacity(1 + 2 * o.len());
            s.push('u');
            for b in o.bytes() {
                s.push_str(&format!("{b:02x}"));
            }
            s
        }
    }
}

/// Log-scale latency histogram: bucket `b` holds values in `[2^(b/8), 2^((b+1)/8))` microseconds, so
/// each bucket is ~9% wide. Small enough to store per run and merge from many workers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LatencyBuckets {
    pub counts: Vec<u64>,
}

pub(crate) const BUCKETS: usize = 8 * 40;

impl LatencyBuckets {
    pub fn bucket_of(us: u64) -> usize {
        (((us.max(1) as f64).log2() * 8.0) as usize).min(BUCKETS - 1)
    }

    pub fn record(&mut self, us: u64) {
        self.add(Self::bucket_of(us), 1);
    }

    pub fn add(&mut self, bucket: usize, n: u64) {
        if bucket >= BUCKETS {
            return;
        }
        if self.counts.len() <= bucket {
            self.counts.resize(bucket + 1, 0);
        }
        self.counts[bucket] += n;
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q`-quantile (0..=1) in milliseconds (bucket midpoint), 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let total = self.total();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (b, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let mid_us = 2f64.powf((b as f64 + 0.5) / 8.0);
                return mid_us / 1000.0;
            }
        }
        0.0
    }

    /// Non-empty (bucket, count) pairs.
    pub fn nonzero(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(b, c)| (b, *c))
    }
}

/// A run's progress as its backend stores it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunCounters {
    pub produced: u64,
    pub delivered: u64,
    /// Failed attempts (each retry and each final failure counts once).
    pub failed_attempts: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    /// Waiting notifications dropped by a cancel.
    pub cancelled: u64,
    /// Notifications whose time to live ran out before they were sent.
    pub expired: u64,
    /// Duration of successful delivery attempts.
    pub attempt_latency: LatencyBuckets,
    /// From enqueue to successful delivery.
    pub end_to_end: LatencyBuckets,
}

impl RunCounters {
    /// Notifications that are finished one way or another.
    pub fn settled(&self) -> u64 {
        self.delivered + self.dead_lettered + self.cancelled + self.expired
    }
}

/// Per-run deltas gathered from one batch of completions.
#[derive(Default)]
pub(crate) struct RunDelta {
    pub delivered: u64,
    pub failed: u64,
    pub retried: u64,
    pub dead: u64,
    pub attempt_latency: LatencyBuckets,
    pub end_to_end: LatencyBuckets,
}

pub(crate) fn run_deltas(done: &[Completion], now_ms: i64) -> std::collections::HashMap<RunId, RunDelta> {
    use crate::model::AttemptOutcome;
    let mut map: std::collections::HashMap<RunId, RunDelta> = std::collections::HashMap::new();
    for c in done {
        let Some(run) = c.job.run.filter(|_| c.attempted()) else { continue };
        let d = map.entry(run).or_default();
        match c.attempt.outcome {
            AttemptOutcome::Delivered => {
                d.delivered += 1;
                d.attempt_latency.record(c.attempt.latency_us);
                d.end_to_end.record(((now_ms - c.job.created_ms).max(0) as u64) * 1000);
            }
            AttemptOutcome::Retrying => {
                d.failed += 1;
                d.retried += 1;
            }
            AttemptOutcome::DeadLettered => {
                d.failed += 1;
                d.dead += 1;
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_key_parts_cannot_be_confused() {
        assert_eq!(owner_key_part(None), "op");
        assert_eq!(owner_key_part(Some("ab")), "u6162");
        // Separators in a name stay inside its part: "a:b" and "a" + ":b" never meet.
        assert_eq!(owner_key_part(Some("a:b")), "u613a62");
        assert_ne!(owner_key_part(Some("op")), owner_key_part(None));
        assert_ne!(owner_key_part(Some("")), owner_key_part(None));
    }

    #[test]
    fn quantiles_come_from_the_buckets_within_their_width() {
        let mut h = LatencyBuckets::default();
        for ms in 1..=100u64 {
            h.record(ms * 1000);
        }
        let p50 = h.quantile_ms(0.5);
        let p99 = h.quantile_ms(0.99);
        assert!((45.0..56.0).contains(&p50), "{p50}");
        assert!((90.0..110.0).contains(&p99), "{p99}");
        assert_eq!(LatencyBuckets::default().quantile_ms(0.5), 0.0);
        assert_eq!(LatencyBuckets::bucket_of(u64::MAX), BUCKETS - 1);
    }
}
