//! What a run is: its status, its per-step state, its attempt log, and the records the API returns.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub type RunId = String;

/// The status of a run. `running`, `waiting` and `compensating` are active (the engine will come back to
/// the run); the other four are final until a manual [`retry`](crate::Store::retry_run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RunStatus {
    /// Moving forward: executing a step, backing off before a retry, or in a `delay`.
    Running,
    /// Parked on a `wait_inbound` step until a delivery or its timeout.
    Waiting,
    /// A step failed for good (or the run was cancelled): undoing completed steps, last first.
    Compensating,
    Completed,
    /// A step failed for good and every compensation succeeded.
    Failed,
    /// A compensation failed for good; the run needs a human (retry resumes the compensations).
    CompensationFailed,
    /// Cancelled on request; compensations done.
    Cancelled,
}

impl RunStatus {
    pub const ACTIVE: [RunStatus; 3] = [RunStatus::Running, RunStatus::Waiting, RunStatus::Compensating];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Compensating => "compensating",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::CompensationFailed => "compensation_failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        [
            RunStatus::Running,
            RunStatus::Waiting,
            RunStatus::Compensating,
            RunStatus::Completed,
            RunStatus::Failed,
            RunStatus::CompensationFailed,
            RunStatus::Cancelled,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        !RunStatus::ACTIVE.contains(&self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Phase {
    Forward,
    Compensate,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Forward => "forward",
            Phase::Compensate => "compensate",
        }
    }

    pub(crate) fn parse(s: &str) -> Phase {
        if s == "compensate" {
            Phase::Compensate
        } else {
            Phase::Forward
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum StepStatus {
    #[default]
    Pending,
    /// Done, with its output; its effects stand.
    Completed,
    /// Failed for good (the run then compensates).
    Failed,
    /// Was completed, then undone by its compensation.
    Compensated,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepState {
    pub status: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
}

/// Per-step state of a run, stored as JSON beside the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RunState {
    pub steps: Vec<StepState>,
}

/// A run as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunRecord {
    pub id: RunId,
    pub owner: String,
    pub definition_id: Option<i64>,
    pub workflow: String,
    pub definition_version: i64,
    pub status: RunStatus,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub input: Value,
    /// The step being executed (forward) or undone (compensating); −1 when compensation is past step 0.
    pub current_step: i64,
    /// Attempts already made at the current step in the current phase.
    pub attempt: i64,
    pub steps: Vec<StepState>,
    pub cancel_requested: bool,
    pub failed_step: Option<i64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// When the engine will next look at the run (retry backoff, delay end, wait timeout).
    pub wake_at_ms: Option<i64>,
    pub waiting_source: Option<String>,
    pub waiting_correlation: Option<String>,
    pub idempotency_key: Option<String>,
    /// Who started the run (or last retried it): what its steps may do.
    pub started_by: StartedBy,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

/// Who started a run, and so what its steps may do (issue 14): a run never gets more than the credential
/// that started it. The host checks each step against it when the step executes, and looks the token up
/// again each time, so revoking a token stops its runs' further steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StartedBy {
    /// `session`, `token`, `inbound:<source>`, or `unknown` (a run from before this was recorded: it may
    /// only do what `workflows:write` allows until it is retried).
    pub kind: String,
    /// The API token that started the run (`kind = token`).
    pub token_id: Option<i64>,
    /// The scopes its steps may use (`notifications:write`, …); `null`: all of its owner's (a browser session).
    pub scopes: Option<Vec<String>>,
}

/// `scopes` column value meaning "every scope" (a browser session).
const ALL_SCOPES: &str = "*";

impl StartedBy {
    /// A browser session: everything its user may do.
    pub fn session() -> StartedBy {
        StartedBy { kind: "session".into(), token_id: None, scopes: None }
    }

    /// An API token: its scopes, for as long as the token stays valid.
    pub fn token<S: Into<String>>(token_id: i64, scopes: impl IntoIterator<Item = S>) -> StartedBy {
        StartedBy { kind: "token".into(), token_id: Some(token_id), scopes: Some(scopes.into_iter().map(Into::into).collect()) }
    }

    /// An inbound webhook source: the scopes configured for it.
    pub fn inbound<S: Into<String>>(source: &str, scopes: impl IntoIterator<Item = S>) -> StartedBy {
        StartedBy { kind: format!("inbound:{source}"), token_id: None, scopes: Some(scopes.into_iter().map(Into::into).collect()) }
    }

    pub fn allows(&self, scope: &str) -> bool {
        self.scopes.as_ref().is_none_or(|s| s.iter().any(|x| x == scope))
    }

    pub(crate) fn scopes_column(&self) -> String {
        match &self.scopes {
            None => ALL_SCOPES.into(),
            Some(s) => s.join(" "),
        }
    }

    pub(crate) fn from_columns(kind: String, token_id: Option<i64>, scopes: &str) -> StartedBy {
        let scopes = (scopes != ALL_SCOPES).then(|| scopes.split_whitespace().map(String::from).collect());
        StartedBy { kind, token_id, scopes }
    }
}

/// What the host hears when a run reaches a final status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub id: RunId,
    pub owner: String,
    pub workflow: String,
    pub status: RunStatus,
    pub failed_step: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub finished_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AttemptOutcome {
    /// In flight (or its worker died: see `Interrupted`).
    Running,
    /// A `delay` or `wait_inbound` in progress.
    Waiting,
    Succeeded,
    Failed,
    /// Its worker stopped mid-attempt (crash, lost lease): the effect may or may not have happened.
    Interrupted,
    /// Abandoned by a cancel (a wait that was cut short).
    Cancelled,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Running => "running",
            AttemptOutcome::Waiting => "waiting",
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Interrupted => "interrupted",
            AttemptOutcome::Cancelled => "cancelled",
        }
    }

    pub(crate) fn parse(s: &str) -> AttemptOutcome {
        match s {
            "waiting" => AttemptOutcome::Waiting,
            "succeeded" => AttemptOutcome::Succeeded,
            "failed" => AttemptOutcome::Failed,
            "interrupted" => AttemptOutcome::Interrupted,
            "cancelled" => AttemptOutcome::Cancelled,
            _ => AttemptOutcome::Running,
        }
    }
}

/// One attempt at one step (or at its compensation), as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = StepAttempt))]
pub struct AttemptRecord {
    pub id: i64,
    pub step_index: i64,
    pub step_name: String,
    pub phase: Phase,
    pub attempt: i64,
    pub outcome: AttemptOutcome,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub output: Option<Value>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// For a failed attempt that will be retried: when.
    pub next_attempt_at_ms: Option<i64>,
    /// The engine instance that made it.
    pub worker: Option<String>,
}

/// Consecutive attempts at one step in one phase: one row of the run's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineEntry {
    pub step_index: i64,
    pub step_name: String,
    pub phase: Phase,
    pub attempts: Vec<AttemptRecord>,
}

/// A run's history in the order it happened, compensations included.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Timeline {
    pub run: RunRecord,
    pub entries: Vec<TimelineEntry>,
}

impl Timeline {
    pub(crate) fn group(run: RunRecord, attempts: Vec<AttemptRecord>) -> Timeline {
        let mut entries: Vec<TimelineEntry> = Vec::new();
        for a in attempts {
            match entries.last_mut() {
                Some(e) if e.step_index == a.step_index && e.phase == a.phase => e.attempts.push(a),
                _ => entries.push(TimelineEntry { step_index: a.step_index, step_name: a.step_name.clone(), phase: a.phase, attempts: vec![a] }),
            }
        }
        Timeline { run, entries }
    }
}

/// A page request: at most `limit` items after `cursor` (the `next_cursor` of the previous page).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Page {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl Page {
    pub fn first(limit: u32) -> Page {
        Page { limit: Some(limit), cursor: None }
    }

    pub fn after(limit: u32, cursor: impl Into<String>) -> Page {
        Page { limit: Some(limit), cursor: Some(cursor.into()) }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Paged<T> {
    pub items: Vec<T>,
    /// Pass back as `Page::cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Which runs to list.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub workflow: Option<String>,
}
