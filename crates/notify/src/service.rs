//! [`NotifyService`]: the handle the server holds. It owns both queues, the worker pools, the run
//! producers and the monitor that samples runs for the dashboard.

use contract::Owner;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::channels::Deliverer;
use crate::config::PipelineConfig;
use crate::error::NotifyError;
use crate::metrics::Metrics;
use crate::model::*;
use crate::queue::redis::RedisQueue;
use crate::queue::sqlite::{read_run_counters, SqliteQueue};
use crate::queue::{OwnerScope, Queue, RunCounters};
use crate::quotas::EnqueueRate;
use crate::routing::{AttemptObserver, DeliveryExtensions, WebhookRouting};
use crate::runs::{produce, Percentiles, RunRecord, RunSnapshot, RunStatus, RunSummary};
use crate::sim::SimParams;
use crate::worker::{CancelledRuns, Limiters, WorkerPool};

/// The pipeline. Clone it freely; every clone is the same pipeline.
#[derive(Clone)]
pub struct NotifyService {
    inner: Arc<Inner>,
}

struct Inner {
    config: PipelineConfig,
    embedded: Arc<SqliteQueue>,
    redis: Option<Arc<RedisQueue>>,
    deliverer: Arc<Deliverer>,
    limits: Arc<Limiters>,
    enqueue_rate: EnqueueRate,
    metrics: Metrics,
    cancelled: CancelledRuns,
    stop_tx: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    live: Mutex<HashMap<RunId, LiveRun>>,
    finished: Mutex<HashMap<RunId, RunSnapshot>>,
    started: AtomicBool,
}

const PRODUCING: u8 = 0;
const PRODUCED: u8 = 1;
const PRODUCER_FAILED: u8 = 2;

struct LiveRun {
    params: SimParams,
    started_ms: i64,
    producer: Arc<AtomicU8>,
    stop: watch::Sender<bool>,
    handle: Option<JoinHandle<()>>,
    series: Vec<(u32, u32)>,
    last_sample: Option<(Instant, u64)>,
    latest: RunCounters,
}

const MAX_SERIES: usize = 24 * 3600;
const MAX_FINISHED_CACHE: usize = 256;

impl NotifyService {
    /// Opens the embedded queue (and connects to Redis when configured). Nothing runs until [`start`].
    ///
    /// [`start`]: NotifyService::start
    pub async fn new(config: PipelineConfig) -> Result<Self, NotifyError> {
        validate_config(&config)?;
        let (url, clock) = (config.queue_url.clone(), config.clock.clone());
        let embedded =
            tokio::task::spawn_blocking(move || SqliteQueue::open_with(&url, clock)).await.map_err(|e| NotifyError::internal("queue open", e))??;
        let redis = match &config.redis_url {
            Some(url) if !url.is_empty() => {
                let q = RedisQueue::connect(url, &config).await?;
                q.migrate_layout(&embedded.redis_run_owners().await?).await?;
                Some(Arc::new(q))
            }
            _ => None,
        };
        let (stop_tx, _) = watch::channel(false);
        Ok(Self {
            inner: Arc::new(Inner {
                deliverer: Arc::new(Deliverer::new(&config)?),
                limits: Arc::new(Limiters::new(&config.rate_limits)),
                enqueue_rate: EnqueueRate::new(&config.quotas),
                metrics: Metrics::new(),
                cancelled: Default::default(),
                stop_tx,
                tasks: Mutex::new(vec![]),
                live: Mutex::new(HashMap::new()),
                finished: Mutex::new(HashMap::new()),
                started: AtomicBool::new(false),
                embedded: Arc::new(embedded),
                redis,
                config,
            }),
        })
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.inner.config
    }

    /// Routes webhook jobs through `routing.targets` (jobs it does not claim still go to the configured
    /// URL) and holds those deliveries to `routing.policy`. Takes effect for the next attempt.
    pub fn set_webhook_routing(&self, routing: WebhookRouting) -> Result<(), NotifyError> {
        self.inner.deliverer.set_routing(routing)
    }

    /// Adds an observer that hears about every attempt of every job (see [`AttemptObserver`]).
    pub fn add_attempt_observer(&self, observer: Arc<dyn AttemptObserver>) {
        self.inner.deliverer.add_observer(observer);
    }

    pub fn has_redis(&self) -> bool {
        self.inner.redis.is_some()
    }

    /// Readiness: Redis answers within a second, when one is configured. (The embedded queue lives in
    /// this process; its file was opened at start-up.)
    pub async fn ready(&self) -> Result<(), NotifyError> {
        let Some(redis) = &self.inner.redis else { return Ok(()) };
        match tokio::time::timeout(std::time::Duration::from_secs(1), redis.ping()).await {
            Ok(result) => result,
            Err(_) => Err(NotifyError::internal("readiness", "Redis did not answer within a second")),
        }
    }

    /// Spawns the worker pools (when `config.workers`), the run monitor, and resumes runs that were
    /// running when the process last stopped. Calling it twice does nothing.
    pub async fn start(&self) -> Result<(), NotifyError> {
        if self.inner.started.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let inner = &self.inner;
        let mut tasks = vec![];
        if inner.config.workers {
            tasks.push(tokio::spawn(self.pool(inner.embedded.clone()).run(inner.stop_tx.subscribe())));
            if let Some(r) = &inner.redis {
                tasks.push(tokio::spawn(self.pool(r.clone()).run(inner.stop_tx.subscribe())));
            }
        }
        if let Some(r) = &inner.redis {
            tasks.extend(r.spawn_maintenance(inner.stop_tx.subscribe(), inner.cancelled.clone()));
        }
        let me = self.clone();
        let mut stop = inner.stop_tx.subscribe();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => me.monitor_tick().await,
                    _ = stop.changed() => break,
                }
            }
        }));
        inner.tasks.lock().expect("tasks lock").extend(tasks);
        self.resume_runs().await
    }

    fn pool<Q: Queue>(&self, queue: Arc<Q>) -> WorkerPool<Q> {
        let c = &self.inner.config;
        WorkerPool {
            queue,
            deliverer: self.inner.deliverer.clone(),
            limits: self.inner.limits.clone(),
            metrics: self.inner.metrics.clone(),
            retry: crate::config::RetryPolicies::of(c),
            concurrency: c.concurrency,
            lease_batch: c.lease_batch,
            cancelled: self.inner.cancelled.clone(),
            unrecorded: Default::default(),
        }
    }

    /// Stops taking work: producers pause (their runs resume on the next start), workers stop leasing,
    /// finish and record in-flight deliveries, and hand back leased notifications not yet started.
    pub async fn shutdown(&self) {
        let _ = self.inner.stop_tx.send(true);
        let producers: Vec<JoinHandle<()>> = {
            let mut live = self.inner.live.lock().expect("live lock");
            live.values_mut()
                .filter_map(|r| {
                    let _ = r.stop.send(true);
                    r.handle.take()
                })
                .collect()
        };
        for p in producers {
            let _ = p.await;
        }
        let tasks = std::mem::take(&mut *self.inner.tasks.lock().expect("tasks lock"));
        for t in tasks {
            let _ = t.await;
        }
    }

    fn is_stopping(&self) -> bool {
        *self.inner.stop_tx.borrow()
    }

    /// Enqueues on the embedded queue. See [`enqueue_to`](NotifyService::enqueue_to).
    pub async fn enqueue(&self, items: Vec<NewNotification>) -> Result<Vec<NotificationId>, NotifyError> {
        self.enqueue_to(Backend::Embedded, items).await
    }

    /// Validates and enqueues a batch (1 to [`MAX_BATCH`]); `Backpressure` when the backlog would pass the
    /// high-water mark. Ids come back in input order.
    pub async fn enqueue_to(&self, backend: Backend, items: Vec<NewNotification>) -> Result<Vec<NotificationId>, NotifyError> {
        self.enqueue_for(None, backend, items).await
    }

    /// The same, on behalf of `owner` (a username): each job carries it to the attempt observers, which
    /// can turn its final outcome into the owner's `notification.delivered` / `dead_lettered` event, and
    /// its idempotency keys are the owner's own. A user (`Some`) is held to the enqueue rate and the
    /// daily count of [`Quotas`](crate::Quotas); `None` is the operator.
    pub async fn enqueue_for(&self, owner: Option<&str>, backend: Backend, items: Vec<NewNotification>) -> Result<Vec<NotificationId>, NotifyError> {
        let items = items.into_iter().map(|n| (None, n)).collect();
        self.enqueue_prepared(owner, backend, items, owner.is_some()).await
    }

    /// Internal sends addressed to a registered webhook endpoint (`route`, its id), on behalf of the
    /// endpoint's owner. For the pipeline's own producers (the `hooks` crate's event fan-out) only: the
    /// route is what lets a job reach an endpoint, so it is never taken from user input. Not held to the
    /// users' enqueue quotas (event deliveries have their own limits in `hooks`).
    pub async fn enqueue_routed(
        &self,
        owner: &Owner,
        backend: Backend,
        items: Vec<(String, NewNotification)>,
    ) -> Result<Vec<NotificationId>, NotifyError> {
        let items = items.into_iter().map(|(route, n)| (Some(route), n)).collect();
        self.enqueue_prepared(Some(owner), backend, items, false).await
    }

    async fn enqueue_prepared(
        &self,
        owner: Option<&str>,
        backend: Backend,
        items: Vec<(Option<String>, NewNotification)>,
        quotas: bool,
    ) -> Result<Vec<NotificationId>, NotifyError> {
        if self.is_stopping() {
            return Err(NotifyError::ShuttingDown);
        }
        let (routes, items): (Vec<_>, Vec<_>) = items.into_iter().unzip();
        crate::model::validate_batch(&items)?;
        if backend == Backend::Redis && self.inner.redis.is_none() {
            return Err(NotifyError::BackendUnavailable);
        }
        let p = &self.inner.config.providers;
        let sim = SimKnobs { failure_rate: p.failure_rate as f32, latency_ms: p.latency_ms };
        let mut per_channel = PerChannel::<u64>::default();
        let now = self.inner.config.clock.now_ms();
        let prepared: Vec<Prepared> = items
            .into_iter()
            .zip(routes)
            .map(|(n, route)| {
                *per_channel.get_mut(n.channel) += 1;
                Prepared {
                    run: None,
                    channel: n.channel,
                    recipient: n.recipient,
                    payload: serde_json::to_string(&n.payload).unwrap_or_else(|_| "null".into()),
                    idempotency_key: n.idempotency_key,
                    sim,
                    owner: owner.map(str::to_owned),
                    route,
                    priority: n.priority,
                    expires_ms: n.ttl_secs.map(|t| now + (t as i64) * 1000),
                }
            })
            .collect();
        let n = prepared.len() as u64;
        let (emails, pushes) = match owner.filter(|_| quotas) {
            Some(who) => {
                self.check_sms_numbers(&prepared)?;
                (self.check_real_email(&prepared)?, self.check_real_push(who, &prepared).await?)
            }
            None => (0, 0),
        };
        let usage = crate::quotas::DayUse { notifications: n, emails, pushes };
        // A user's quotas: the rate first (in memory), then the day's counts (stored; given back if the
        // enqueue itself fails, e.g. on backpressure).
        let q = self.inner.config.quotas;
        let counted = match owner.filter(|_| quotas) {
            Some(who) => {
                self.inner.enqueue_rate.check(who, prepared.len())?;
                let who = who.to_owned();
                self.inner.embedded.call(move |c| crate::quotas::reserve_day(c, &who, usage, &q)).await?
            }
            None => false,
        };
        let mine = owner.filter(|_| quotas);
        let result = match backend {
            Backend::Embedded => match self.admit(&*self.inner.embedded, mine, n) {
                Ok(q) => q.enqueue(prepared, None).await,
                Err(e) => Err(e),
            },
            Backend::Redis => {
                let q = self.inner.redis.as_deref().ok_or(NotifyError::BackendUnavailable)?;
                match self.admit(q, mine, n) {
                    Ok(q) => q.enqueue(prepared, None).await,
                    Err(e) => Err(e),
                }
            }
        };
        if let (Err(_), true, Some(who)) = (&result, counted, owner) {
            let who = who.to_owned();
            let _ = self.inner.embedded.call(move |c| crate::quotas::refund_day(c, &who, usage)).await;
        }
        let ids = result?;
        self.count_enqueued(&per_channel);
        Ok(ids)
    }

    /// A user's e-mails that will leave by SMTP: each recipient must be an address the operator lets
    /// users write to (`notify.email.allow_recipients`); with no SMTP server and simulation off in this
    /// mode, e-mail is refused outright. Returns how many there are (for the day's e-mail cap).
    fn check_real_email(&self, items: &[Prepared]) -> Result<u64, NotifyError> {
        let email = &self.inner.config.email;
        let mut errors = vec![];
        let mut count = 0;
        for (i, p) in items.iter().enumerate().filter(|(_, p)| p.channel == Channel::Email && p.run.is_none()) {
            let field = format!("notifications[{i}].recipient");
            if !email.is_real() {
                if email.simulate_when_unset == Some(false) {
                    errors.push(crate::FieldError::new(
                        format!("notifications[{i}].channel"),
                        "e-mail is not set up on this server (notify.email.host)",
                    ));
                }
                continue;
            }
            count += 1;
            match crate::email::parse_recipient(&p.recipient) {
                Err(e) => errors.push(crate::FieldError::new(field, e)),
                Ok(a) if !email.allows(a.as_ref()) => errors.push(crate::FieldError::new(
                    field,
                    "this server sends e-mail only to addresses its operator allows (notify.email.allow_recipients)",
                )),
                Ok(_) => {}
            }
            if errors.len() >= 20 {
                break;
            }
        }
        invalid_unless_empty(errors, count)
    }

    /// A user's push messages that will go to a push service: each recipient must be one of the user's
    /// own subscriptions and each payload fit one encrypted record; with no VAPID key and simulation off
    /// in this mode, push is refused outright. Returns how many there are (for the day's push cap).
    async fn check_real_push(&self, owner: &str, items: &[Prepared]) -> Result<u64, NotifyError> {
        let push = &self.inner.config.push;
        let mut errors = vec![];
        let mut count = 0;
        let targets = self.inner.deliverer.push_targets();
        // A batch of up to 10,000 usually names a few subscriptions: each is looked up once.
        let mut owned_ids: HashMap<&str, bool> = HashMap::new();
        for (i, p) in items.iter().enumerate().filter(|(_, p)| p.channel == Channel::Push && p.run.is_none()) {
            if !push.is_real() {
                if push.simulate_when_unset == Some(false) {
                    errors.push(crate::FieldError::new(
                        format!("notifications[{i}].channel"),
                        "Web Push is not set up on this server (notify.push.vapid_private_key)",
                    ));
                }
                continue;
            }
            count += 1;
            if p.payload.len() > crate::webpush::MAX_PAYLOAD {
                errors.push(crate::FieldError::new(
                    format!("notifications[{i}].payload"),
                    format!("a push message holds at most {} bytes of JSON", crate::webpush::MAX_PAYLOAD),
                ));
            }
            let owned = match (owned_ids.get(p.recipient.as_str()), &targets) {
                (Some(known), _) => *known,
                (None, Some(t)) => {
                    let owned = t.owns(owner, &p.recipient).await.map_err(|_| NotifyError::BackendUnavailable)?;
                    owned_ids.insert(&p.recipient, owned);
                    owned
                }
                (None, None) => false,
            };
            if !owned {
                errors.push(crate::FieldError::new(format!("notifications[{i}].recipient"), "is not the id of one of your push subscriptions"));
            }
            if errors.len() >= 20 {
                break;
            }
        }
        invalid_unless_empty(errors, count)
    }

    /// A user's SMS for the provider's API must name a number it can take (E.164).
    fn check_sms_numbers(&self, items: &[Prepared]) -> Result<(), NotifyError> {
        if !self.inner.config.sms.is_set() {
            return Ok(());
        }
        let errors: Vec<_> = items
            .iter()
            .enumerate()
            .filter(|(_, p)| p.channel == Channel::Sms && p.run.is_none() && !crate::config::is_e164(p.recipient.trim()))
            .take(20)
            .map(|(i, _)| {
                crate::FieldError::new(format!("notifications[{i}].recipient"), "must be a phone number in E.164 form (+ and 7 to 15 digits)")
            })
            .collect();
        invalid_unless_empty(errors, ())
    }

    /// This server's VAPID public key (what browsers subscribe with), when push is set up.
    pub fn push_public_key(&self) -> Option<String> {
        self.inner.deliverer.vapid_public_key()
    }

    /// The backlog limits: the user's own (`quotas.backlog_per_owner`, for `owner`'s enqueues), then
    /// the machine's (`high_water`).
    fn admit<'q, Q: Queue>(&self, q: &'q Q, owner: Option<&str>, n: u64) -> Result<&'q Q, NotifyError> {
        let cap = self.inner.config.quotas.backlog_per_owner;
        if let (Some(who), 1..) = (owner, cap) {
            let waiting = q.owner_backlog(Some(who));
            if waiting + n > cap {
                return Err(NotifyError::QuotaExceeded {
                    message: format!(
                        "You have {waiting} notifications waiting to be sent; at most {cap} may wait at once. Try again as they are delivered."
                    ),
                    retry_after: Duration::from_secs(1),
                });
            }
        }
        if q.fresh_backlog() + n > self.inner.config.high_water {
            return Err(NotifyError::Backpressure { retry_after: Duration::from_secs(1) });
        }
        Ok(q)
    }

    fn count_enqueued(&self, per_channel: &PerChannel<u64>) {
        for (c, n) in per_channel.iter() {
            if *n > 0 {
                self.inner.metrics.enqueued.with_label_values(&[c.as_str()]).inc_by(*n);
            }
        }
    }

    /// Starts a simulation run owned by the user `owner`, held to their [`Quotas`](crate::Quotas):
    /// notifications per run (422), runs at once and notifications per day (429).
    pub async fn start_run(&self, owner: &Owner, params: SimParams) -> Result<RunId, NotifyError> {
        let q = self.inner.config.quotas;
        if q.notifications_per_run > 0 && params.count > q.notifications_per_run {
            return Err(NotifyError::invalid("count", format!("at most {} notifications in one run", q.notifications_per_run)));
        }
        self.start_run_with(owner, params, Some(q)).await
    }

    /// Starts a run for the operator's own tools (`server simulate`, benchmarks): no per-user quotas.
    pub async fn start_operator_run(&self, owner: &Owner, params: SimParams) -> Result<RunId, NotifyError> {
        self.start_run_with(owner, params, None).await
    }

    async fn start_run_with(&self, owner: &str, params: SimParams, quotas: Option<crate::Quotas>) -> Result<RunId, NotifyError> {
        if self.is_stopping() {
            return Err(NotifyError::ShuttingDown);
        }
        params.validate()?;
        if params.backend == Backend::Redis && self.inner.redis.is_none() {
            return Err(NotifyError::invalid("backend", "Redis is not configured on this server"));
        }
        let id = self.inner.embedded.create_run(owner, &params, quotas).await?;
        self.spawn_producer(id, owner.to_owned(), params, self.inner.config.clock.now_ms(), 0);
        Ok(id)
    }

    fn spawn_producer(&self, id: RunId, owner: String, params: SimParams, started_ms: i64, from: u64) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let state = Arc::new(AtomicU8::new(PRODUCING));
        let (me, p, st) = (self.clone(), params.clone(), state.clone());
        let handle = tokio::spawn(async move {
            let hw = (me.inner.config.high_water, me.inner.config.quotas.backlog_per_owner);
            let count = |c: &PerChannel<u64>| me.count_enqueued(c);
            let result = match p.backend {
                Backend::Embedded => produce(&*me.inner.embedded, (id, &owner), &p, from, hw, stop_rx, count).await,
                Backend::Redis => match me.inner.redis.clone() {
                    Some(q) => produce(&*q, (id, &owner), &p, from, hw, stop_rx, count).await,
                    None => Err(NotifyError::BackendUnavailable),
                },
            };
            match result {
                Ok(n) if n >= p.count => st.store(PRODUCED, Ordering::SeqCst),
                Ok(_) => {} // stopped: resumes on the next start
                Err(e) => {
                    tracing::error!(run = id, error = %e, "run producer failed");
                    st.store(PRODUCER_FAILED, Ordering::SeqCst);
                }
            }
        });
        let live = LiveRun {
            params,
            started_ms,
            producer: state,
            stop: stop_tx,
            handle: Some(handle),
            series: vec![],
            last_sample: None,
            latest: RunCounters { produced: from, ..Default::default() },
        };
        self.inner.live.lock().expect("live lock").insert(id, live);
    }

    async fn resume_runs(&self) -> Result<(), NotifyError> {
        let running = self.inner.embedded.list_runs(None, true, 10_000).await?;
        for r in running {
            let counters = match self.counters(r.params.backend, r.id).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(run = r.id, error = %e, "cannot resume run; marking it failed");
                    let _ = self.inner.embedded.finish_run(r.id, RunStatus::Failed, None).await;
                    continue;
                }
            };
            tracing::info!(run = r.id, produced = counters.produced, count = r.params.count, "resuming run");
            self.spawn_producer(r.id, r.owner, r.params, r.started_ms, counters.produced);
        }
        Ok(())
    }

    async fn counters(&self, backend: Backend, run: RunId) -> Result<RunCounters, NotifyError> {
        match backend {
            Backend::Embedded => self.inner.embedded.run_counters(run).await,
            Backend::Redis => self.inner.redis.as_deref().ok_or(NotifyError::BackendUnavailable)?.run_counters(run).await,
        }
    }

    async fn monitor_tick(&self) {
        self.inner.enqueue_rate.tidy();
        let ids: Vec<(RunId, Backend)> = self.inner.live.lock().expect("live lock").iter().map(|(id, r)| (*id, r.params.backend)).collect();
        for (id, backend) in ids {
            let Ok(counters) = self.counters(backend, id).await else { continue };
            let finish = {
                let mut live = self.inner.live.lock().expect("live lock");
                let Some(run) = live.get_mut(&id) else { continue };
                let now = Instant::now();
                match run.last_sample {
                    None => run.last_sample = Some((now, counters.delivered)),
                    Some((at, before)) if now.duration_since(at) >= Duration::from_millis(950) => {
                        let secs = now.duration_since(at).as_secs_f64();
                        let rate = (counters.delivered.saturating_sub(before) as f64 / secs).round() as u32;
                        let since = ((self.inner.config.clock.now_ms() - run.started_ms).max(0) / 1000) as u32;
                        if run.series.len() < MAX_SERIES {
                            run.series.push((since, rate));
                        }
                        run.last_sample = Some((now, counters.delivered));
                    }
                    _ => {}
                }
                run.latest = counters.clone();
                let producer = run.producer.load(Ordering::SeqCst);
                if producer == PRODUCER_FAILED {
                    Some(RunStatus::Failed)
                } else if producer == PRODUCED && counters.settled() >= run.params.count {
                    Some(RunStatus::Completed)
                } else {
                    None
                }
            };
            if let Some(status) = finish {
                let final_counts = (backend == Backend::Redis).then(|| counters.clone());
                if let Err(e) = self.inner.embedded.finish_run(id, status, final_counts).await {
                    tracing::warn!(run = id, error = %e, "could not record the end of a run");
                    continue;
                }
                self.retire(id).await;
            }
        }
        let m = &self.inner.metrics;
        m.set_backlog(Backend::Embedded, self.inner.embedded.backlog(), self.inner.embedded.retries_waiting());
        if let Some(r) = &self.inner.redis {
            m.set_backlog(Backend::Redis, r.backlog(), r.retries_waiting());
        }
    }

    /// Moves a run from the live table to the finished cache (with its throughput series).
    async fn retire(&self, id: RunId) {
        let run = self.inner.live.lock().expect("live lock").remove(&id);
        if let Some(mut run) = run {
            let _ = run.stop.send(true);
            if let Some(h) = run.handle.take() {
                let _ = h.await;
            }
            if let Ok(Some(mut snap)) = self.stored_snapshot(id).await {
                snap.throughput = run.series;
                let mut fin = self.inner.finished.lock().expect("finished lock");
                if fin.len() >= MAX_FINISHED_CACHE {
                    fin.clear();
                }
                fin.insert(id, snap);
            }
        }
    }

    /// Cancels a running run of `owner`: production stops, its waiting notifications are dropped,
    /// in-flight ones finish.
    pub async fn cancel_run(&self, owner: &Owner, id: RunId) -> Result<(), NotifyError> {
        let rec = self.inner.embedded.get_run(id).await?.filter(|r| r.owner == owner).ok_or(NotifyError::NotFound)?;
        if rec.status != RunStatus::Running {
            return Err(NotifyError::Conflict("This run is not running.".into()));
        }
        self.inner.cancelled.write().expect("cancelled lock").insert(id);
        let producer = self.inner.live.lock().expect("live lock").get_mut(&id).and_then(|r| {
            let _ = r.stop.send(true);
            r.handle.take()
        });
        if let Some(p) = producer {
            let _ = p.await;
        }
        match rec.params.backend {
            Backend::Embedded => {
                self.inner.embedded.cancel_run(id).await?;
            }
            Backend::Redis => {
                if let Some(r) = &self.inner.redis {
                    r.cancel_run(id).await?;
                }
            }
        }
        let counts = self.counters(rec.params.backend, id).await.ok().filter(|_| rec.params.backend == Backend::Redis);
        self.inner.embedded.finish_run(id, RunStatus::Cancelled, counts).await?;
        self.retire(id).await;
        Ok(())
    }

    /// The owner's runs, newest first (at most 100).
    pub async fn list_runs(&self, owner: &Owner) -> Result<Vec<RunSummary>, NotifyError> {
        let records = self.inner.embedded.list_runs(Some(owner), false, 100).await?;
        let live = self.inner.live.lock().expect("live lock");
        Ok(records
            .into_iter()
            .map(|r| {
                let c = live.get(&r.id).map(|l| l.latest.clone()).unwrap_or_else(|| r.stored.clone());
                RunSummary {
                    id: r.id,
                    status: r.status,
                    params: r.params,
                    produced: c.produced,
                    delivered: c.delivered,
                    dead_lettered: c.dead_lettered,
                    started_at: r.started_ms / 1000,
                    finished_at: r.finished_ms.map(|m| m / 1000),
                }
            })
            .collect())
    }

    /// `owner`'s run `id` as clients see it (the dashboard, its live stream, the REST API); `None` when
    /// there is no such run of theirs (someone else's is not found either).
    pub async fn run_view(&self, owner: &Owner, id: RunId) -> Result<Option<contract::notifications::RunView>, NotifyError> {
        if self.run_owner(id).await?.as_deref() != Some(owner) {
            return Ok(None);
        }
        Ok(self.run_snapshot(id).await?.map(Into::into))
    }

    /// The owner of a run, if it exists (for access checks before [`run_snapshot`](Self::run_snapshot)).
    pub async fn run_owner(&self, id: RunId) -> Result<Option<String>, NotifyError> {
        Ok(self.inner.embedded.get_run(id).await?.map(|r| r.owner))
    }

    /// A run's progress: counters read fresh (one small query), the throughput series from the monitor.
    pub async fn run_snapshot(&self, id: RunId) -> Result<Option<RunSnapshot>, NotifyError> {
        if let Some(s) = self.inner.finished.lock().expect("finished lock").get(&id) {
            return Ok(Some(s.clone()));
        }
        let live = {
            let live = self.inner.live.lock().expect("live lock");
            live.get(&id).map(|r| (r.params.clone(), r.started_ms, r.latest.clone(), r.series.clone()))
        };
        if let Some((params, started_ms, cached, series)) = live {
            // Counters fresh from the backend (one small read); the series comes from the monitor.
            let c = self.counters(params.backend, id).await.unwrap_or(cached);
            return Ok(Some(snapshot(id, RunStatus::Running, params, &c, series, started_ms, None)));
        }
        self.stored_snapshot(id).await
    }

    async fn stored_snapshot(&self, id: RunId) -> Result<Option<RunSnapshot>, NotifyError> {
        let Some(RunRecord { status, params, started_ms, finished_ms, stored, .. }) = self.inner.embedded.get_run(id).await? else {
            return Ok(None);
        };
        let c = match params.backend {
            Backend::Embedded => self.inner.embedded.call(move |c| read_run_counters(c, id)).await?,
            Backend::Redis => match &self.inner.redis {
                Some(r) => r.run_counters(id).await.unwrap_or(stored),
                None => stored,
            },
        };
        Ok(Some(snapshot(id, status, params, &c, vec![], started_ms, finished_ms)))
    }

    /// Newest dead letters first, from every backend, of every owner (for the operator and tests).
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, NotifyError> {
        self.dead_letters_in(OwnerScope::All, limit).await
    }

    /// Newest dead letters first of one owner (`None`: the operator's), filtered by each backend's
    /// query, so older ones are found however many newer ones other owners have.
    pub async fn dead_letters_of(&self, owner: Option<&str>, limit: usize) -> Result<Vec<DeadLetter>, NotifyError> {
        self.dead_letters_in(OwnerScope::of(owner), limit).await
    }

    async fn dead_letters_in(&self, scope: OwnerScope, limit: usize) -> Result<Vec<DeadLetter>, NotifyError> {
        let limit = limit.clamp(1, 10_000);
        let mut all = self.inner.embedded.dead_letters(scope.clone(), limit).await?;
        if let Some(r) = &self.inner.redis {
            all.extend(r.dead_letters(scope, limit).await?);
        }
        all.sort_by_key(|d| std::cmp::Reverse(d.dead_at_ms));
        all.truncate(limit);
        Ok(all)
    }

    /// Puts dead letters back in their queue with a fresh attempt budget, whoever owns them. Returns how many.
    pub async fn replay_dead_letters(&self, which: Replay) -> Result<u64, NotifyError> {
        self.replay_in(OwnerScope::All, which).await
    }

    /// The same for one owner's dead letters only (`Replay::All`: all of theirs; ids of others' are skipped).
    pub async fn replay_dead_letters_of(&self, owner: Option<&str>, which: Replay) -> Result<u64, NotifyError> {
        self.replay_in(OwnerScope::of(owner), which).await
    }

    async fn replay_in(&self, scope: OwnerScope, which: Replay) -> Result<u64, NotifyError> {
        let (emb, red) = match &which {
            Replay::All => (Replay::All, Replay::All),
            Replay::Ids(ids) => {
                let (e, r): (Vec<_>, Vec<_>) = ids.iter().partition(|i| i.backend == Backend::Embedded);
                (Replay::Ids(e), Replay::Ids(r))
            }
        };
        let mut n = self.inner.embedded.replay(scope.clone(), emb).await?;
        if let Some(r) = &self.inner.redis {
            n += r.replay(scope, red).await?;
        }
        Ok(n)
    }

    /// Every recorded attempt for one notification, oldest first.
    pub async fn attempts(&self, id: NotificationId) -> Result<Vec<Attempt>, NotifyError> {
        match id.backend {
            Backend::Embedded => self.inner.embedded.attempts(id).await,
            Backend::Redis => self.inner.redis.as_deref().ok_or(NotifyError::NotFound)?.attempts(id).await,
        }
    }

    /// One retention batch (issue 17): deletes at most `limit` of `store`'s rows older than `before_ms`
    /// in the embedded file, and in Redis when it is configured (dead letters; pruned runs' counters).
    /// Returns the rows deleted; call again until it returns 0.
    ///
    /// The embedded file is this process's own, so every instance prunes its file. Redis is shared,
    /// but its dead letters go by an atomic script, so instances pruning at once never delete one
    /// twice. Delivered notifications and attempts need nothing in Redis: delivered entries leave the
    /// stream at once and attempt lists expire after 7 days.
    pub async fn prune(&self, store: Retained, before_ms: i64, limit: usize) -> Result<u64, NotifyError> {
        let (mut n, runs) = self.inner.embedded.prune(store, before_ms, limit).await?;
        if let Some(redis) = &self.inner.redis {
            match store {
                Retained::DeadLetters => n += redis.prune_dead(before_ms, limit).await?,
                Retained::Runs => redis.forget_runs(&runs).await?,
                Retained::Delivered | Retained::Attempts => {}
            }
        }
        Ok(n)
    }

    /// Rows held and the oldest row's age stamp of one store (the embedded file's; dead letters in
    /// Redis are added when it is configured).
    pub async fn stored(&self, store: Retained) -> Result<StoreSize, NotifyError> {
        let mut size = self.inner.embedded.stored(store).await?;
        if let (Retained::DeadLetters, Some(redis)) = (store, &self.inner.redis) {
            let r = redis.dead_size().await?;
            size.rows += r.rows;
            size.oldest_ms = [size.oldest_ms, r.oldest_ms].into_iter().flatten().min();
        }
        Ok(size)
    }

    /// The embedded queue file with its WAL, in bytes.
    pub fn queue_file_bytes(&self) -> u64 {
        self.inner.embedded.file_bytes()
    }

    /// Backlog of one backend (0 for an unconfigured one).
    pub fn backlog(&self, backend: Backend) -> u64 {
        match backend {
            Backend::Embedded => self.inner.embedded.backlog(),
            Backend::Redis => self.inner.redis.as_ref().map(|r| r.backlog()).unwrap_or(0),
        }
    }

    /// Of [`backlog`](Self::backlog), the notifications waiting for a retry, as last seen.
    pub fn retries_waiting(&self, backend: Backend) -> u64 {
        match backend {
            Backend::Embedded => self.inner.embedded.retries_waiting(),
            Backend::Redis => self.inner.redis.as_ref().map(|r| r.retries_waiting()).unwrap_or(0),
        }
    }

    /// This process's metrics in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        let m = &self.inner.metrics;
        m.set_backlog(Backend::Embedded, self.inner.embedded.backlog(), self.inner.embedded.retries_waiting());
        if let Some(r) = &self.inner.redis {
            m.set_backlog(Backend::Redis, r.backlog(), r.retries_waiting());
        }
        m.render()
    }
}

fn percentiles(h: &crate::queue::LatencyBuckets) -> Percentiles {
    let r = |v: f64| (v * 1000.0).round() / 1000.0;
    Percentiles { p50: r(h.quantile_ms(0.5)), p95: r(h.quantile_ms(0.95)), p99: r(h.quantile_ms(0.99)) }
}

fn snapshot(
    id: RunId,
    status: RunStatus,
    params: SimParams,
    c: &RunCounters,
    throughput: Vec<(u32, u32)>,
    started_ms: i64,
    finished_ms: Option<i64>,
) -> RunSnapshot {
    RunSnapshot {
        id,
        status,
        produced: c.produced,
        delivered: c.delivered,
        failed_attempts: c.failed_attempts,
        retried: c.retried,
        dead_lettered: c.dead_lettered,
        cancelled: c.cancelled,
        expired: c.expired,
        backlog: c.produced.saturating_sub(c.settled()),
        latency_ms: percentiles(&c.attempt_latency),
        end_to_end_ms: percentiles(&c.end_to_end),
        throughput,
        started_at: started_ms / 1000,
        finished_at: finished_ms.map(|m| m / 1000),
        params,
    }
}

fn validate_config(c: &PipelineConfig) -> Result<(), NotifyError> {
    let mut e = vec![];
    if c.concurrency == 0 || c.concurrency > 100_000 {
        e.push(crate::FieldError::new("notify.concurrency", "must be from 1 to 100000"));
    }
    if c.lease_batch == 0 || c.lease_batch > 100_000 {
        e.push(crate::FieldError::new("notify.lease_batch", "must be from 1 to 100000"));
    }
    if c.high_water == 0 {
        e.push(crate::FieldError::new("notify.high_water", "must be above 0"));
    }
    if c.retry.max_attempts == 0 {
        e.push(crate::FieldError::new("notify.retry.max_attempts", "must be at least 1"));
    }
    if c.webhook.retry.schedule_ms.len() > 20 || c.webhook.retry.schedule_ms.iter().any(|ms| *ms > 7 * 86_400_000) {
        e.push(crate::FieldError::new("notify.webhook.retry.schedule_ms", "at most 20 waits, each at most 7 days"));
    }
    if !(0.0..=1.0).contains(&c.webhook.retry.jitter) {
        e.push(crate::FieldError::new("notify.webhook.retry.jitter", "must be between 0 and 1"));
    }
    if !(0.0..=1.0).contains(&c.providers.failure_rate) {
        e.push(crate::FieldError::new("notify.providers.failure_rate", "must be between 0 and 1"));
    }
    if e.is_empty() {
        Ok(())
    } else {
        Err(NotifyError::Invalid(e))
    }
}

/// A worker-only process against Redis (`server worker --redis URL`): no runs, no embedded queue.
pub struct RedisWorker {
    stop_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    metrics: Metrics,
}

impl RedisWorker {
    pub async fn start(config: PipelineConfig) -> Result<Self, NotifyError> {
        Self::start_with(config, DeliveryExtensions::default()).await
    }

    /// [`start`](Self::start) with webhook routing and attempt observers plugged in (a worker process
    /// that delivers to registered endpoints).
    pub async fn start_with(config: PipelineConfig, extensions: DeliveryExtensions) -> Result<Self, NotifyError> {
        validate_config(&config)?;
        let deliverer = Deliverer::new(&config)?;
        if let Some(routing) = extensions.routing {
            deliverer.set_routing(routing)?;
        }
        for o in extensions.observers {
            deliverer.add_observer(o);
        }
        let url = config.redis_url.clone().filter(|u| !u.is_empty()).ok_or(NotifyError::BackendUnavailable)?;
        let queue = Arc::new(RedisQueue::connect(&url, &config).await?);
        let (stop_tx, _) = watch::channel(false);
        let cancelled: CancelledRuns = Default::default();
        let metrics = Metrics::new();
        let pool = WorkerPool {
            queue: queue.clone(),
            deliverer: Arc::new(deliverer),
            limits: Arc::new(Limiters::new(&config.rate_limits)),
            metrics: metrics.clone(),
            retry: crate::config::RetryPolicies::of(&config),
            concurrency: config.concurrency,
            lease_batch: config.lease_batch,
            cancelled: cancelled.clone(),
            unrecorded: Default::default(),
        };
        let mut tasks = vec![tokio::spawn(pool.run(stop_tx.subscribe()))];
        tasks.extend(queue.spawn_maintenance(stop_tx.subscribe(), cancelled));
        Ok(Self { stop_tx, tasks, metrics })
    }

    pub fn metrics_text(&self) -> String {
        self.metrics.render()
    }

    /// Finishes in-flight deliveries, acknowledges them, and hands back unstarted leases.
    pub async fn shutdown(self) {
        let _ = self.stop_tx.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// `ok` when no field was refused, else every refusal as one 422.
fn invalid_unless_empty<T>(errors: Vec<crate::FieldError>, ok: T) -> Result<T, NotifyError> {
    if errors.is_empty() {
        Ok(ok)
    } else {
        Err(NotifyError::Invalid(errors))
    }
}
