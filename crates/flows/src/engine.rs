//! The engine: claims due runs under a lease, drives each one step at a time and persists after every
//! attempt, so that a run resumes where it stopped after a crash; on a step failing for good it undoes
//! the completed steps, last first (saga). `delay` and `wait_inbound` are durable timers in the run
//! row, not sleeping tasks.

use contract::Owner;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Notify, Semaphore};
use tokio::task::JoinSet;

use crate::definition::{Action, StepDef};
use crate::error::FlowsError;
use crate::host::{HttpRequest, ResolvedAction, StepContext, StepError, StepHost};
use crate::run::*;
use crate::store::{is_reserved_event_type, now_ms, AttemptOp, InboundEffect, NewRun, RunRow, Store, MAX_PAYLOAD_BYTES};
use crate::template::Scope;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Names this instance in leases and in the attempt log.
    pub instance_id: String,
    /// How long a claim lasts without renewal; a crashed instance's runs are picked up after it.
    pub lease_ms: u64,
    /// How often to look for due runs (starts, deliveries and retries made through this engine wake it
    /// at once).
    pub poll_ms: u64,
    pub max_concurrent_runs: usize,
    /// At most this many of those slots hold one owner's runs at once, so one user's slow runs (40
    /// steps waiting on a tarpit) cannot stall everyone's workflows.
    pub max_runs_per_owner: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self { instance_id: format!("flows-{}", std::process::id()), lease_ms: 30_000, poll_ms: 500, max_concurrent_runs: 32, max_runs_per_owner: 8 }
    }
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    host: Arc<dyn StepHost>,
    cfg: EngineConfig,
    /// Lease owner value: the instance id plus a per-process nonce, so a restarted instance with the same
    /// id never mistakes its predecessor's leases for its own.
    token: String,
    stopping: AtomicBool,
    wake: Notify,
    slots: Arc<Semaphore>,
    /// Runs this instance drives now, by owner (the per-owner share of `slots`).
    busy: std::sync::Mutex<HashMap<String, usize>>,
    tasks: Mutex<JoinSet<()>>,
    main: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

enum Flow {
    /// Look at the run again now.
    Continue,
    /// Nothing to do until its timer, a delivery or a cancel; or the run is final; or the lease is gone.
    Park,
}

impl Engine {
    pub fn new(store: Store, host: Arc<dyn StepHost>, cfg: EngineConfig) -> Engine {
        let token = format!("{}#{:08x}", cfg.instance_id, rand::random::<u32>());
        let slots = Arc::new(Semaphore::new(cfg.max_concurrent_runs.max(1)));
        Engine {
            inner: Arc::new(Inner {
                store,
                host,
                cfg,
                token,
                stopping: AtomicBool::new(false),
                wake: Notify::new(),
                slots,
                busy: std::sync::Mutex::new(HashMap::new()),
                tasks: Mutex::new(JoinSet::new()),
                main: Mutex::new(None),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Starts a run; its input counts against the owner's storage allowance (429 beyond).
    pub async fn start_run(&self, owner: &Owner, new: NewRun) -> Result<RunId, FlowsError> {
        let bytes = json_len(&new.input);
        let host = &self.inner.host;
        host.charge_storage(owner, bytes).await.map_err(|message| FlowsError::Quota { message, transient: true })?;
        match self.inner.store.start_run(owner, new).await {
            Ok(id) => {
                self.inner.wake.notify_one();
                Ok(id)
            }
            Err(e) => {
                host.refund_storage(owner, bytes).await;
                Err(e)
            }
        }
    }

    pub async fn get_run(&self, owner: &Owner, id: &str) -> Result<RunRecord, FlowsError> {
        self.inner.store.get_run(owner, id).await
    }

    pub async fn list_runs(&self, owner: &Owner, filter: &RunFilter, page: Page) -> Result<Paged<RunRecord>, FlowsError> {
        self.inner.store.list_runs(owner, filter, page).await
    }

    pub async fn timeline(&self, owner: &Owner, id: &str) -> Result<Timeline, FlowsError> {
        self.inner.store.timeline(owner, id).await
    }

    /// See [`Store::retry_run`] for the semantics.
    pub async fn retry_run(&self, owner: &Owner, id: &str, by: &StartedBy) -> Result<RunRecord, FlowsError> {
        let r = self.inner.store.retry_run(owner, id, by).await?;
        self.inner.wake.notify_one();
        Ok(r)
    }

    pub async fn cancel_run(&self, owner: &Owner, id: &str) -> Result<RunRecord, FlowsError> {
        let r = self.inner.store.cancel_run(owner, id).await?;
        self.inner.wake.notify_one();
        Ok(r)
    }

    pub async fn deliver_inbound(&self, source: &str, correlation: &str, payload: &Value) -> Result<Option<RunId>, FlowsError> {
        let r = self.inner.store.deliver_inbound(source, correlation, payload).await?;
        self.inner.wake.notify_one();
        Ok(r)
    }

    /// See [`Store::after_inbound`]; also wakes the claim loop for a run the webhook resumed or started.
    pub async fn after_inbound(&self, source: &str, correlation: Option<&str>, effect: &InboundEffect) -> Result<Option<RunId>, FlowsError> {
        let r = self.inner.store.after_inbound(source, correlation, effect).await?;
        self.inner.wake.notify_one();
        Ok(r)
    }

    /// Runs the claim loop in a background task until [`shutdown`](Self::shutdown).
    pub async fn spawn(&self) {
        let me = self.clone();
        *self.inner.main.lock().await = Some(tokio::spawn(async move { me.run().await }));
    }

    /// The claim loop: leases due runs (up to `max_concurrent_runs` at once) and drives each in its own
    /// task. Returns after [`shutdown`](Self::shutdown) is called.
    pub async fn run(&self) {
        let inner = &self.inner;
        let poll = Duration::from_millis(inner.cfg.poll_ms.max(1));
        while !inner.stopping.load(Ordering::SeqCst) {
            let free = inner.slots.available_permits();
            let busy = inner.busy.lock().expect("not poisoned").clone();
            match inner.store.claim_due(&inner.token, inner.cfg.lease_ms as i64, free, inner.cfg.max_runs_per_owner, &busy).await {
                Ok(ids) => {
                    let mut tasks = inner.tasks.lock().await;
                    for (id, owner) in ids {
                        let permit = inner.slots.clone().acquire_owned().await.expect("the semaphore is never closed");
                        *inner.busy.lock().expect("not poisoned").entry(owner.clone()).or_default() += 1;
                        let me = inner.clone();
                        tasks.spawn(async move {
                            let _share = OwnerShare { inner: me.clone(), owner };
                            me.drive(&id).await;
                            drop(permit);
                        });
                    }
                    while tasks.try_join_next().is_some() {}
                }
                Err(e) => tracing::warn!(error = %e, "claiming workflow runs failed; retrying at the next poll"),
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = inner.wake.notified() => {}
            }
        }
    }

    /// Stops claiming, lets attempts in flight finish (each is bounded by its step's timeout), stores
    /// their outcome and releases the leases. Runs not finished stay where they are for the next start.
    pub async fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.wake.notify_waiters();
        if let Some(h) = self.inner.main.lock().await.take() {
            let _ = h.await;
        }
        let mut tasks = self.inner.tasks.lock().await;
        while tasks.join_next().await.is_some() {}
    }
}

/// One of an owner's slots in `busy`, given back however the task ends.
struct OwnerShare {
    inner: Arc<Inner>,
    owner: String,
}

impl Drop for OwnerShare {
    fn drop(&mut self) {
        let mut busy = self.inner.busy.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = busy.get_mut(&self.owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                busy.remove(&self.owner);
            }
        }
    }
}

impl Inner {
    async fn drive(self: &Arc<Self>, id: &str) {
        if let Err(e) = self.drive_run(id).await {
            tracing::warn!(run = id, error = %e, "workflow run interrupted; it resumes after its lease expires");
        }
        if let Err(e) = self.store.release_lease(id, &self.token).await {
            tracing::warn!(run = id, error = %e, "releasing a workflow lease failed; it expires on its own");
        }
    }

    async fn drive_run(&self, id: &str) -> Result<(), FlowsError> {
        // A run has at most 50 steps, each with at most 100 attempts in either phase: far below this.
        for _ in 0..100_000 {
            if self.stopping.load(Ordering::SeqCst) {
                return Ok(());
            }
            let Some(mut run) = self.store.load_leased(id, &self.token).await? else {
                return Ok(());
            };
            if !self.store.renew_lease(id, &self.token, self.cfg.lease_ms as i64).await? {
                return Ok(());
            }
            match self.advance(&mut run).await? {
                Flow::Continue => continue,
                Flow::Park => return Ok(()),
            }
        }
        Err(FlowsError::internal("workflow run", "too many transitions in one claim"))
    }

    async fn save(&self, run: &RunRow, ops: &[AttemptOp]) -> Result<bool, FlowsError> {
        let saved = self.store.save(run, &self.token, &self.cfg.instance_id, ops).await?;
        if !saved {
            tracing::warn!(run = %run.rec.id, "lost the lease on a workflow run; leaving it to its new owner");
        }
        Ok(saved)
    }

    /// One transition of the run's state machine.
    async fn advance(&self, run: &mut RunRow) -> Result<Flow, FlowsError> {
        match run.rec.status {
            RunStatus::Compensating => self.compensate_next(run).await,
            RunStatus::Running | RunStatus::Waiting => {
                if run.rec.cancel_requested {
                    let ops = [AttemptOp::Interrupt, finish_op(AttemptOutcome::Cancelled, None, Some(("cancelled", "the run was cancelled")))];
                    return self.begin_compensation(run, None, "cancelled", "the run was cancelled", &ops).await;
                }
                let i = run.rec.current_step.max(0) as usize;
                if i >= run.definition.steps.len() {
                    return self.finish(run, RunStatus::Completed, &[]).await;
                }
                if run.rec.steps[i].status == StepStatus::Completed {
                    // Its effects stand from before a manual retry: not executed again.
                    run.rec.current_step += 1;
                    run.rec.attempt = 0;
                    return self.saved(run, &[]).await;
                }
                let step = run.definition.steps[i].clone();
                match &step.action {
                    Action::Delay { ms } => self.delay(run, i, *ms).await,
                    Action::WaitInbound { source, correlation, timeout_ms } => self.wait_inbound(run, i, source, correlation, *timeout_ms).await,
                    action => self.attempt(run, i, Phase::Forward, action, &step).await,
                }
            }
            _ => Ok(Flow::Park),
        }
    }

    async fn saved(&self, run: &RunRow, ops: &[AttemptOp]) -> Result<Flow, FlowsError> {
        Ok(if self.save(run, ops).await? { Flow::Continue } else { Flow::Park })
    }

    async fn parked(&self, run: &RunRow, ops: &[AttemptOp]) -> Result<Flow, FlowsError> {
        self.save(run, ops).await?;
        Ok(Flow::Park)
    }

    /// One attempt at a host action (forward, or the compensation of step `i`).
    async fn attempt(&self, run: &mut RunRow, i: usize, phase: Phase, action: &Action, step: &StepDef) -> Result<Flow, FlowsError> {
        let policy = &step.retry;
        let made = run.rec.attempt.max(0) as u32;
        // Closes an attempt left open by a worker that died (it counts: its effect may have happened).
        let mut ops = vec![AttemptOp::Interrupt];
        if made >= policy.max_attempts {
            let msg = "the last allowed attempt was interrupted (worker stopped or lease lost)";
            return self.fail_for_good(run, i, phase, "interrupted", msg, &ops).await;
        }
        let attempt = made + 1;
        run.rec.attempt = attempt as i64;
        ops.push(AttemptOp::Begin {
            step_index: i as i64,
            step_name: step.name.clone(),
            phase,
            attempt: attempt as i64,
            outcome: AttemptOutcome::Running,
        });
        let resolved = match resolve(action, &scope_of(run)) {
            Ok(a) => a,
            Err(msg) => {
                ops.push(finish_op(AttemptOutcome::Failed, None, Some(("template", &msg))));
                return self.fail_for_good(run, i, phase, "template", &msg, &ops).await;
            }
        };
        if let ResolvedAction::EmitEvent { event_type, .. } = &resolved {
            // A template may have produced one (checked at save time for literal types).
            if is_reserved_event_type(event_type) {
                let msg = format!("{:?} is a system event type: workflows cannot emit it", event_type.chars().take(60).collect::<String>());
                ops.push(finish_op(AttemptOutcome::Failed, None, Some(("reserved_event_type", &msg))));
                return self.fail_for_good(run, i, phase, "reserved_event_type", &msg, &ops).await;
            }
        }
        if !self.save(run, &ops).await? {
            return Ok(Flow::Park);
        }
        // Definitions stored before the ceiling was lowered keep their timeout_ms: held to it here.
        let timeout = Duration::from_millis(step.timeout_ms.min(crate::definition::MAX_TIMEOUT_MS));
        let ctx = StepContext {
            run_id: run.rec.id.clone(),
            owner: run.rec.owner.as_str().into(),
            workflow: run.rec.workflow.clone(),
            step_index: i,
            step_name: step.name.clone(),
            phase,
            attempt,
            idempotency_key: format!("{}:{}:{}", run.rec.id, i, phase.as_str()),
            timeout,
            started_by: run.rec.started_by.clone(),
        };
        let Some(result) = self.call_host(&ctx, &resolved).await else {
            tracing::warn!(run = %run.rec.id, step = %step.name, "lost the lease during an attempt; its outcome is not recorded");
            return Ok(Flow::Park);
        };
        let result = match result {
            Ok(out) => match json_len(&out) {
                n if n > MAX_PAYLOAD_BYTES as u64 => {
                    Err(StepError::permanent("output_too_large", format!("a step output must be at most {MAX_PAYLOAD_BYTES} bytes of JSON")))
                }
                // Undoing is never refused for want of room.
                _ if phase == Phase::Compensate => Ok(out),
                // What the step did stays done; its output is not kept, and the run fails (and compensates).
                n => match self.host.charge_storage(&ctx.owner, n).await {
                    Ok(()) => Ok(out),
                    Err(message) => Err(StepError::permanent("quota_exceeded", message)),
                },
            },
            Err(e) => Err(e),
        };
        let now = now_ms();
        match result {
            Ok(out) => {
                let done = [finish_op(AttemptOutcome::Succeeded, Some(out.clone()), None)];
                match phase {
                    Phase::Forward => {
                        run.rec.steps[i] = StepState { status: StepStatus::Completed, output: Some(out) };
                        run.rec.current_step = i as i64 + 1;
                    }
                    Phase::Compensate => {
                        run.rec.steps[i].status = StepStatus::Compensated;
                        run.rec.current_step = i as i64 - 1;
                    }
                }
                run.rec.attempt = 0;
                run.rec.wake_at_ms = Some(now);
                self.saved(run, &done).await
            }
            Err(e) => {
                let retry = e.retryable && !policy.is_non_retryable(&e.code) && attempt < policy.max_attempts;
                if retry {
                    let wait = policy.jittered_backoff_ms(attempt, &mut rand::thread_rng()) as i64;
                    run.rec.wake_at_ms = Some(now + wait);
                    let op = AttemptOp::Finish {
                        outcome: AttemptOutcome::Failed,
                        output: None,
                        error: Some((e.code.clone(), e.message.clone())),
                        next_attempt_at_ms: Some(now + wait),
                    };
                    self.parked(run, &[op]).await
                } else {
                    let op = finish_op(AttemptOutcome::Failed, None, Some((&e.code, &e.message)));
                    self.fail_for_good(run, i, phase, &e.code, &e.message, &[op]).await
                }
            }
        }
    }

    /// The host call under the step's timeout, renewing the lease meanwhile. `None`: the lease was lost
    /// (another instance has the run), so the outcome must not be written.
    async fn call_host(&self, ctx: &StepContext, action: &ResolvedAction) -> Option<Result<Value, StepError>> {
        let call = tokio::time::timeout(ctx.timeout, self.host.execute(ctx, action));
        tokio::pin!(call);
        let mut renew = tokio::time::interval(Duration::from_millis((self.cfg.lease_ms / 3).max(10)));
        renew.tick().await;
        loop {
            tokio::select! {
                r = &mut call => {
                    return Some(r.unwrap_or_else(|_| {
                        Err(StepError::retryable("timeout", format!("no answer within {} ms", ctx.timeout.as_millis())))
                    }));
                }
                _ = renew.tick() => match self.store.renew_lease(&ctx.run_id, &self.token, self.cfg.lease_ms as i64).await {
                    Ok(true) => {}
                    Ok(false) => return None,
                    Err(e) => tracing::warn!(run = %ctx.run_id, error = %e, "renewing a workflow lease failed"),
                },
            }
        }
    }

    async fn delay(&self, run: &mut RunRow, i: usize, ms: u64) -> Result<Flow, FlowsError> {
        let now = now_ms();
        match run.wait_until_ms {
            None => {
                let until = now + ms as i64;
                run.wait_until_ms = Some(until);
                run.rec.wake_at_ms = Some(until);
                run.rec.attempt = 1;
                let ops = [AttemptOp::Interrupt, self.begin_waiting(run, i)];
                if ms == 0 {
                    self.saved(run, &ops).await
                } else {
                    self.parked(run, &ops).await
                }
            }
            Some(until) if now >= until => {
                let out = json!({ "delayed_ms": ms });
                run.wait_until_ms = None;
                self.complete_forward(run, i, out).await
            }
            // Woken early (a nudge): back to sleep until the timer.
            Some(until) => {
                run.rec.wake_at_ms = Some(until);
                self.parked(run, &[]).await
            }
        }
    }

    async fn wait_inbound(&self, run: &mut RunRow, i: usize, source: &str, correlation: &str, timeout_ms: u64) -> Result<Flow, FlowsError> {
        let now = now_ms();
        let Some(token) = run.waiting_token.clone() else {
            // Record the wait first, then look in the inbox (next transition): with deliver_inbound's
            // order (store the message, then look for a waiter) neither side can miss the other.
            let mut ops = vec![AttemptOp::Interrupt, self.begin_waiting(run, i)];
            run.rec.attempt = 1;
            if !self.store.owns_source(&run.rec.owner, source) {
                // A definition stored before sources had owners (or a built-in example): its owner's
                // runs get only their own messages, so waiting here could never end well.
                let msg = format!("{:?} is not an inbound source of yours", source.chars().take(60).collect::<String>());
                ops.push(finish_op(AttemptOutcome::Failed, None, Some(("inbound_source_not_yours", &msg))));
                return self.fail_for_good(run, i, Phase::Forward, "inbound_source_not_yours", &msg, &ops).await;
            }
            let correlation = match scope_of(run).render_str(correlation) {
                Ok(c) => c,
                Err(msg) => {
                    ops.push(finish_op(AttemptOutcome::Failed, None, Some(("template", &msg))));
                    return self.fail_for_good(run, i, Phase::Forward, "template", &msg, &ops).await;
                }
            };
            let until = now + timeout_ms as i64;
            run.rec.status = RunStatus::Waiting;
            run.rec.waiting_source = Some(source.to_string());
            run.rec.waiting_correlation = Some(correlation);
            run.waiting_token = Some(uuid::Uuid::new_v4().to_string());
            run.wait_until_ms = Some(until);
            run.rec.wake_at_ms = Some(until);
            return self.saved(run, &ops).await;
        };
        let correlation = run.rec.waiting_correlation.clone().unwrap_or_default();
        if let Some(payload) = self.store.take_inbound(&run.rec.owner, source, &correlation, &token).await? {
            self.clear_wait(run);
            return self.complete_forward(run, i, payload).await;
        }
        let until = run.wait_until_ms.unwrap_or(now);
        if now >= until {
            let msg = format!("no {source} message with correlation {correlation:?} within {timeout_ms} ms");
            let op = finish_op(AttemptOutcome::Failed, None, Some(("inbound_timeout", &msg)));
            return self.fail_for_good(run, i, Phase::Forward, "inbound_timeout", &msg, &[op]).await;
        }
        run.rec.wake_at_ms = Some(until);
        self.parked(run, &[]).await
    }

    fn begin_waiting(&self, run: &RunRow, i: usize) -> AttemptOp {
        AttemptOp::Begin {
            step_index: i as i64,
            step_name: run.definition.steps[i].name.clone(),
            phase: Phase::Forward,
            attempt: 1,
            outcome: AttemptOutcome::Waiting,
        }
    }

    fn clear_wait(&self, run: &mut RunRow) {
        run.rec.status = RunStatus::Running;
        run.rec.waiting_source = None;
        run.rec.waiting_correlation = None;
        run.waiting_token = None;
        run.wait_until_ms = None;
    }

    async fn complete_forward(&self, run: &mut RunRow, i: usize, out: Value) -> Result<Flow, FlowsError> {
        let op = finish_op(AttemptOutcome::Succeeded, Some(out.clone()), None);
        run.rec.steps[i] = StepState { status: StepStatus::Completed, output: Some(out) };
        run.rec.current_step = i as i64 + 1;
        run.rec.attempt = 0;
        run.rec.wake_at_ms = Some(now_ms());
        self.saved(run, &[op]).await
    }

    async fn fail_for_good(&self, run: &mut RunRow, i: usize, phase: Phase, code: &str, msg: &str, ops: &[AttemptOp]) -> Result<Flow, FlowsError> {
        match phase {
            Phase::Forward => self.begin_compensation(run, Some(i), code, msg, ops).await,
            Phase::Compensate => {
                // Keep failed_step (the forward failure that started it all); the error says what broke now.
                run.rec.error_code = Some(code.to_string());
                run.rec.error_message = Some(format!("compensation of step {} failed: {msg}", run.definition.steps[i].name));
                self.finish(run, RunStatus::CompensationFailed, ops).await
            }
        }
    }

    /// Switches to undoing: every completed step with a compensation, from the last one down.
    async fn begin_compensation(
        &self,
        run: &mut RunRow,
        failed: Option<usize>,
        code: &str,
        msg: &str,
        ops: &[AttemptOp],
    ) -> Result<Flow, FlowsError> {
        if let Some(i) = failed {
            run.rec.steps[i].status = StepStatus::Failed;
            run.rec.failed_step = Some(i as i64);
        }
        self.clear_wait(run);
        run.rec.status = RunStatus::Compensating;
        run.rec.error_code = Some(code.to_string());
        run.rec.error_message = Some(msg.to_string());
        run.rec.current_step = run.definition.steps.len() as i64 - 1;
        run.rec.attempt = 0;
        run.rec.wake_at_ms = Some(now_ms());
        self.saved(run, ops).await
    }

    async fn compensate_next(&self, run: &mut RunRow) -> Result<Flow, FlowsError> {
        let cursor = run.rec.current_step;
        let next = (0..=cursor.max(-1))
            .rev()
            .map(|j| j as usize)
            .find(|&j| run.rec.steps[j].status == StepStatus::Completed && run.definition.steps[j].compensate.is_some());
        let Some(j) = next else {
            let status = if run.rec.cancel_requested { RunStatus::Cancelled } else { RunStatus::Failed };
            return self.finish(run, status, &[AttemptOp::Interrupt]).await;
        };
        if j as i64 != cursor {
            run.rec.current_step = j as i64;
            run.rec.attempt = 0;
        }
        let step = run.definition.steps[j].clone();
        let action = step.compensate.clone().expect("found above");
        self.attempt(run, j, Phase::Compensate, &action, &step).await
    }

    async fn finish(&self, run: &mut RunRow, status: RunStatus, ops: &[AttemptOp]) -> Result<Flow, FlowsError> {
        let now = now_ms();
        if status != RunStatus::Compensating {
            self.clear_wait(run);
        }
        run.rec.status = status;
        run.rec.wake_at_ms = None;
        run.rec.finished_at_ms = Some(now);
        if !self.save(run, ops).await? {
            return Ok(Flow::Park);
        }
        let summary = RunSummary {
            id: run.rec.id.clone(),
            owner: run.rec.owner.as_str().into(),
            workflow: run.rec.workflow.clone(),
            status,
            failed_step: run.rec.failed_step.and_then(|i| run.definition.steps.get(i as usize)).map(|s| s.name.clone()),
            error_code: run.rec.error_code.clone(),
            error_message: run.rec.error_message.clone(),
            finished_at_ms: now,
        };
        tracing::info!(run = %summary.id, workflow = %summary.workflow, status = status.as_str(), "workflow run finished");
        self.host.on_run_finished(&summary).await;
        Ok(Flow::Park)
    }
}

fn finish_op(outcome: AttemptOutcome, output: Option<Value>, error: Option<(&str, &str)>) -> AttemptOp {
    AttemptOp::Finish { outcome, output, error: error.map(|(c, m)| (c.to_string(), m.to_string())), next_attempt_at_ms: None }
}

struct OwnedScope {
    input: Value,
    outputs: BTreeMap<String, Value>,
    run_id: String,
    owner: String,
    workflow: String,
}

impl OwnedScope {
    fn render_str(&self, s: &str) -> Result<String, String> {
        self.scope().render_str(s)
    }

    fn scope(&self) -> Scope<'_> {
        Scope { input: &self.input, outputs: &self.outputs, run_id: &self.run_id, owner: &self.owner, workflow: &self.workflow }
    }
}

fn scope_of(run: &RunRow) -> OwnedScope {
    let outputs = run.definition.steps.iter().zip(&run.rec.steps).filter_map(|(d, s)| s.output.clone().map(|o| (d.name.clone(), o))).collect();
    OwnedScope { input: run.rec.input.clone(), outputs, run_id: run.rec.id.clone(), owner: run.rec.owner.clone(), workflow: run.rec.workflow.clone() }
}

/// The bytes a JSON value takes stored.
fn json_len(v: &Value) -> u64 {
    serde_json::to_string(v).map_or(0, |s| s.len() as u64)
}

/// Substitutes the templates of a host action. A reference without a value is the caller's problem
/// (`template` error): retrying cannot fix it.
fn resolve(action: &Action, scope: &OwnedScope) -> Result<ResolvedAction, String> {
    let s = scope.scope();
    Ok(match action {
        Action::Http { method, url, headers, body, expect_status } => ResolvedAction::Http(HttpRequest {
            method: method.clone(),
            url: s.render_url(url)?,
            headers: headers.iter().map(|(k, v)| Ok((k.clone(), s.render_header(v)?))).collect::<Result<_, String>>()?,
            body: body.as_ref().map(|b| s.render_value(b)).transpose()?,
            expect_status: expect_status.clone(),
        }),
        Action::Notify { channel, recipient, payload } => {
            ResolvedAction::Notify { channel: s.render_str(channel)?, recipient: s.render_str(recipient)?, payload: s.render_value(payload)? }
        }
        Action::EmitEvent { event_type, payload } => {
            ResolvedAction::EmitEvent { event_type: s.render_str(event_type)?, payload: s.render_value(payload)? }
        }
        Action::Call { name, args } => ResolvedAction::Call { name: name.clone(), args: s.render_value(args)? },
        Action::Delay { .. } | Action::WaitInbound { .. } => return Err("the engine carries out delay and wait_inbound itself".into()),
    })
}
