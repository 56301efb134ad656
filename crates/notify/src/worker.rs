//! The worker pool: lease a batch (the next one is leased while this one is delivered), deliver with
//! bounded concurrency under the rate limits, and report outcomes back in batches.

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Notify, Semaphore};

use crate::channels::Deliverer;
use crate::config::{RateLimits, RetryPolicies};
use crate::metrics::Metrics;
use crate::model::{Attempt, AttemptOutcome, Channel, Completion, Job, PerChannel, RunId, Settle};
use crate::queue::{adjust_count, Queue};
use crate::routing::AttemptReport;

/// Token buckets: one for everything, one per channel (absent = unlimited).
pub(crate) struct Limiters {
    global: Option<DefaultDirectRateLimiter>,
    per_channel: PerChannel<Option<DefaultDirectRateLimiter>>,
}

fn bucket(per_sec: u32) -> Option<DefaultDirectRateLimiter> {
    // Burst of a tenth of a second's worth keeps the rate smooth without starving short bursts.
    NonZeroU32::new(per_sec).map(|r| {
        let burst = NonZeroU32::new((per_sec / 10).max(1)).expect("at least 1");
        RateLimiter::direct(Quota::per_second(r).allow_burst(burst))
    })
}

impl Limiters {
    pub fn new(cfg: &RateLimits) -> Self {
        Self { global: bucket(cfg.global_per_sec), per_channel: PerChannel::from_fn(|c| bucket(cfg.for_channel(c))) }
    }

    async fn acquire(&self, channel: Channel) {
        if let Some(l) = self.per_channel.get(channel) {
            l.until_ready().await;
        }
        if let Some(l) = &self.global {
            l.until_ready().await;
        }
    }
}

/// Runs whose waiting notifications are dropped instead of delivered.
pub(crate) type CancelledRuns = Arc<RwLock<HashSet<RunId>>>;

pub(crate) struct WorkerPool<Q: Queue> {
    pub queue: Arc<Q>,
    pub deliverer: Arc<Deliverer>,
    pub limits: Arc<Limiters>,
    pub metrics: Metrics,
    pub retry: RetryPolicies,
    pub concurrency: usize,
    pub lease_batch: usize,
    pub cancelled: CancelledRuns,
    /// Retries this pool has scheduled and not yet seen recorded, per cap key: the queue's own count
    /// lags by what waits in the completer, and the pending-retry cap must count them too.
    pub unrecorded: Unrecorded,
}

/// The retries a pool has scheduled and the queue not yet recorded, per cap key. Recording them and
/// taking them off here happen under `order`'s write side, and a count is read under its read side:
/// otherwise a count read between the two sees a retry twice (recorded and still here) and the cap
/// drops one too many.
#[derive(Default, Clone)]
pub(crate) struct Unrecorded {
    counts: Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>,
    order: Arc<tokio::sync::RwLock<()>>,
}

impl Unrecorded {
    fn add(&self, key: &str) {
        adjust_count(&mut self.counts.lock().expect("unrecorded"), &key.to_string(), 1, 0);
    }
    fn get(&self, key: &str) -> u64 {
        self.counts.lock().expect("unrecorded").get(key).copied().unwrap_or(0)
    }
    fn forget<'a>(&self, keys: impl IntoIterator<Item = &'a String>) {
        let mut u = self.counts.lock().expect("unrecorded");
        for k in keys {
            adjust_count(&mut u, k, 0, 1);
        }
    }
}

/// The cap keys of the retries in `done`, for [`WorkerPool::unrecorded`].
fn retry_keys(done: &[Completion]) -> impl Iterator<Item = &str> {
    done.iter().filter(|c| c.attempted() && c.attempt.outcome == AttemptOutcome::Retrying).filter_map(|c| c.job.cap_key())
}

impl<Q: Queue> WorkerPool<Q> {
    /// Runs until `stop` turns true, then stops leasing, finishes what is in flight, records it, and hands
    /// back what was leased but not started.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        // How far the leaser may run ahead of free delivery slots: what the pool finishes in about
        // 30 ms, measured as it goes. A job leased ahead waits for a slot after the queue's fair order
        // (a high-priority notification, another owner's) was decided, so the lead is kept to what
        // hides a lease's round trip at the current pace: two batches when deliveries take
        // microseconds, none when each takes a second.
        let sem = Arc::new(Semaphore::new(self.concurrency.max(1)));
        let (batch_tx, mut batch_rx) = mpsc::channel::<Vec<Job>>(1);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Completion>();
        // Leased and not yet started; deliveries finished (for the pace); a wake-up for the leaser.
        let waiting = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicU64::new(0));
        let progress = Arc::new(Notify::new());

        let leaser = {
            let (queue, sem, waiting, finished, progress) = (self.queue.clone(), sem.clone(), waiting.clone(), finished.clone(), progress.clone());
            let mut stop = stop.clone();
            let n = self.lease_batch.max(1);
            tokio::spawn(async move {
                let (mut paced_at, mut paced_count, mut ahead) = (Instant::now(), 0u64, 0usize);
                loop {
                    if *stop.borrow() {
                        break;
                    }
                    let elapsed = paced_at.elapsed();
                    if elapsed >= Duration::from_millis(50) {
                        let done = finished.load(Ordering::Relaxed);
                        let per_sec = (done - paced_count) as f64 / elapsed.as_secs_f64();
                        ahead = ((per_sec * 0.03) as usize).min(2 * n);
                        (paced_at, paced_count) = (Instant::now(), done);
                    }
                    let room = (sem.available_permits() + ahead).saturating_sub(waiting.load(Ordering::Acquire)).min(n);
                    // Leases of at least a quarter batch of the lead: a fast pool frees slots a few at
                    // a time, and a round trip per few would cost more than the deliveries.
                    if room == 0 || room < ahead.min(n) / 4 {
                        tokio::select! {
                            _ = tokio::time::timeout(Duration::from_millis(5), progress.notified()) => {}
                            _ = stop.changed() => break,
                        }
                        continue;
                    }
                    let jobs = tokio::select! {
                        r = queue.lease(room) => r,
                        _ = stop.changed() => break,
                    };
                    match jobs {
                        Ok(jobs) if jobs.is_empty() => {}
                        Ok(jobs) => {
                            waiting.fetch_add(jobs.len(), Ordering::AcqRel);
                            if let Err(back) = batch_tx.send(jobs).await {
                                let _ = queue.release(back.0).await;
                                break;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, backend = queue.backend().as_str(), "lease failed; retrying");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
            })
        };

        let completer = {
            let (queue, unrecorded) = (self.queue.clone(), self.unrecorded.clone());
            tokio::spawn(async move {
                let mut buf = Vec::with_capacity(4096);
                while done_rx.recv_many(&mut buf, 4096).await > 0 {
                    let batch = std::mem::take(&mut buf);
                    let keys: Vec<String> = retry_keys(&batch).map(str::to_owned).collect();
                    // Counts wait while retries move from here to the queue (see [`Unrecorded`]).
                    let _moving = if keys.is_empty() { None } else { Some(unrecorded.order.write().await) };
                    // A failed report leaves the jobs leased; they are delivered again later (at-least-once).
                    let mut tries = 0;
                    let mut pending = batch;
                    loop {
                        match queue.complete(pending.clone()).await {
                            Ok(()) => break,
                            Err(e) if tries < 5 => {
                                tries += 1;
                                tracing::warn!(error = %e, "recording outcomes failed; retrying");
                                tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                            }
                            Err(e) => {
                                tracing::error!(error = %e, n = pending.len(), "could not record outcomes");
                                pending.clear();
                                break;
                            }
                        }
                    }
                    // Recorded (or given up on): the queue's count has them now.
                    unrecorded.forget(&keys);
                }
            })
        };

        let shared = Arc::new(self);
        let mut unstarted = Vec::new();
        'outer: while let Some(batch) = batch_rx.recv().await {
            let mut jobs = batch.into_iter();
            while let Some(job) = jobs.next() {
                let permit = tokio::select! {
                    p = sem.clone().acquire_owned() => p.expect("semaphore open"),
                    _ = stop.wait_for(|s| *s) => {
                        unstarted.push(job);
                        unstarted.extend(jobs);
                        break 'outer;
                    }
                };
                waiting.fetch_sub(1, Ordering::AcqRel);
                progress.notify_one();
                let (pool, done, finished, progress) = (shared.clone(), done_tx.clone(), finished.clone(), progress.clone());
                tokio::spawn(async move {
                    let c = pool.deliver_one(job).await;
                    let _ = done.send(c);
                    drop(permit);
                    finished.fetch_add(1, Ordering::Relaxed);
                    progress.notify_one();
                });
            }
        }
        // Stop: no more leases; hand back what was leased but not started; wait for in-flight deliveries.
        batch_rx.close();
        while let Some(batch) = batch_rx.recv().await {
            unstarted.extend(batch);
        }
        let _ = leaser.await;
        let _ = sem.acquire_many(shared.concurrency.max(1) as u32).await;
        drop(done_tx);
        let _ = completer.await;
        if let Err(e) = shared.queue.release(unstarted).await {
            tracing::warn!(error = %e, "could not release leases on shutdown (they will be recovered)");
        }
    }

    /// An endpoint may have at most `max_pending_per_endpoint` retries waiting: before one more is
    /// added, its oldest waiting ones beyond the cap become dead letters, and the observers hear of
    /// each (the endpoint's owner is told, and can recover them later). The one more is counted from
    /// here until the queue has recorded it ([`WorkerPool::unrecorded`]).
    async fn keep_under_cap(&self, route: &str) {
        let cap = self.retry.webhook.max_pending_per_endpoint;
        if cap == 0 {
            return;
        }
        // Counted from now on, whatever happens below: the completer takes it off once recorded.
        self.unrecorded.add(route);
        let waiting = {
            let _counting = self.unrecorded.order.read().await;
            let recorded = match self.queue.route_retries(route).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "could not count an endpoint's retries");
                    return;
                }
            };
            // Beside this one (the one more).
            recorded + self.unrecorded.get(route).saturating_sub(1)
        };
        if waiting < cap {
            return;
        }
        let why = format!("dropped: more than {cap} retries were waiting for this endpoint");
        let shed = match self.queue.shed_oldest(route, (waiting + 1 - cap) as usize, &why).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %e, "could not shed an endpoint's oldest retries");
                return;
            }
        };
        let at_ms = self.queue.clock().now_ms();
        for job in shed {
            self.metrics.dead_lettered.with_label_values(&[job.channel.as_str()]).inc();
            if self.deliverer.has_observers() {
                let attempt = Attempt { number: job.attempts, at_ms, outcome: AttemptOutcome::DeadLettered, latency_us: 0, error: Some(why.clone()) };
                self.deliverer.observe(&AttemptReport { job, attempt, status: None, refused: false }).await;
            }
        }
    }

    async fn deliver_one(&self, job: Job) -> Completion {
        let cancelled = job.run.is_some_and(|r| self.cancelled.read().map(|s| s.contains(&r)).unwrap_or(false));
        let number = job.attempts + 1;
        let now = self.queue.clock().now_ms();
        if cancelled {
            let attempt = Attempt { number, at_ms: now, outcome: AttemptOutcome::DeadLettered, latency_us: 0, error: None };
            return Completion { job, attempt, retry_at_ms: None, kind: Settle::Cancelled };
        }
        if job.is_expired(now) {
            // Past its time to live (a first attempt or a retry come due): not sent at all.
            self.metrics.expired.with_label_values(&[job.channel.as_str()]).inc();
            let attempt = Attempt { number: job.attempts, at_ms: now, outcome: AttemptOutcome::DeadLettered, latency_us: 0, error: None };
            return Completion { job, attempt, retry_at_ms: None, kind: Settle::Expired };
        }
        self.limits.acquire(job.channel).await;
        let started = Instant::now();
        let delivery = self.deliverer.deliver(&job).await;
        let latency = started.elapsed();
        let ch = job.channel.as_str();
        let at_ms = self.queue.clock().now_ms();
        if let Some(wait) = delivery.defer {
            // Its endpoint's limit: back to the queue at once, so the worker serves other endpoints.
            self.metrics.deferred.with_label_values(&[ch]).inc();
            let attempt = Attempt { number: job.attempts, at_ms, outcome: AttemptOutcome::Retrying, latency_us: 0, error: None };
            let due = at_ms + wait.as_millis().max(1) as i64;
            return Completion { job, attempt, retry_at_ms: Some(due), kind: Settle::Deferred };
        }
        let (outcome, error, retry_at_ms) = match delivery.result {
            Ok(()) => {
                self.metrics.delivered.with_label_values(&[ch]).inc();
                self.metrics.latency.with_label_values(&[ch]).observe(latency.as_secs_f64());
                (AttemptOutcome::Delivered, None, None)
            }
            Err(e) => {
                self.metrics.failed.with_label_values(&[ch]).inc();
                match self.retry.next(&job, number, delivery.retry_after).filter(|_| !delivery.give_up) {
                    Some(wait) => {
                        if let Some(key) = job.cap_key() {
                            self.keep_under_cap(key).await;
                        }
                        self.metrics.retried.with_label_values(&[ch]).inc();
                        (AttemptOutcome::Retrying, Some(e), Some(at_ms + wait.as_millis() as i64))
                    }
                    None => {
                        self.metrics.dead_lettered.with_label_values(&[ch]).inc();
                        (AttemptOutcome::DeadLettered, Some(e), None)
                    }
                }
            }
        };
        let attempt = Attempt { number, at_ms, outcome, latency_us: latency.as_micros() as u64, error };
        if self.deliverer.has_observers() {
            // A receiver's 410 is an answer, not a refusal: something was sent.
            let report = AttemptReport { job, attempt, status: delivery.status, refused: delivery.give_up && delivery.status.is_none() };
            self.deliverer.observe(&report).await;
            let AttemptReport { job, attempt, .. } = report;
            return Completion { job, attempt, retry_at_ms, kind: Settle::Attempted };
        }
        Completion { job, attempt, retry_at_ms, kind: Settle::Attempted }
    }
}
