//! What the engine asks of its host: executing the actions it does not carry out itself (`http`,
//! `notify`, `emit_event`, `call`), and hearing about finished runs.

use async_trait::async_trait;
use contract::Owner;
use serde_json::Value;
use std::time::Duration;

use crate::definition::StatusMatch;
use crate::run::{Phase, RunSummary, StartedBy};

/// Where an attempt stands, for the host.
#[derive(Debug, Clone, PartialEq)]
pub struct StepContext {
    pub run_id: String,
    pub owner: Owner,
    pub workflow: String,
    pub step_index: usize,
    pub step_name: String,
    pub phase: Phase,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The same for every attempt at this step in this phase of this run (`<run>:<step>:<phase>`):
    /// pass it downstream so a repeated attempt (after a retry or a crash) can be recognised.
    pub idempotency_key: String,
    /// The step's `timeout_ms`; the engine abandons the attempt after it.
    pub timeout: Duration,
    /// Who started the run: the host refuses a step this credential may not do (or no longer may: a
    /// revoked token) with a permanent error.
    pub started_by: StartedBy,
}

/// An action with its templates substituted.
#[derive(Debug, Clone, PartialEq)]
pub enum ResolvedAction {
    Http(HttpRequest),
    Notify { channel: String, recipient: String, payload: Value },
    EmitEvent { event_type: String, payload: Value },
    Call { name: String, args: Value },
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    /// Empty: 2xx.
    pub expect_status: Vec<StatusMatch>,
}

/// Why an attempt failed. `code` is matched against the step's `retry.non_retryable`; `retryable:
/// false` fails the step at once whatever the policy says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct StepError {
    pub code: String,
    pub message: String,
    pub retryable: bool,
}

impl StepError {
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into(), retryable: true }
    }

    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into(), retryable: false }
    }
}

/// The server's side of the engine. `execute` may be called more than once for the same step (after a
/// retry, or when a worker died mid-attempt): use `ctx.idempotency_key` where the effect must not repeat.
#[async_trait]
pub trait StepHost: Send + Sync + 'static {
    /// Carries out one attempt; the `Ok` value becomes the step's output (`{{steps.<name>.output…}}`).
    async fn execute(&self, ctx: &StepContext, action: &ResolvedAction) -> Result<Value, StepError>;

    /// A run reached a final status (`completed`, `failed`, `compensation_failed`, `cancelled`): the
    /// place to send `workflow.completed` / `workflow.failed` webhooks. Called once, after the status
    /// is stored, by the instance that finished the run (a crash in between loses the call).
    async fn on_run_finished(&self, _run: &RunSummary) {}

    /// Counts `bytes` the engine is about to store for `owner` (a run's input, a step's output) against
    /// their storage allowance; `Err` (the refusal's words) stores nothing. Default: no allowance.
    async fn charge_storage(&self, _owner: &Owner, _bytes: u64) -> Result<(), String> {
        Ok(())
    }

    /// Gives back a [`charge_storage`](Self::charge_storage) for something that was then not stored.
    async fn refund_storage(&self, _owner: &Owner, _bytes: u64) {}
}
