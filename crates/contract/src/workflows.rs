//! Workflow runs as clients see them: the REST API (`/api/v1/workflows/runs`) and the workflows pages
//! exchange these very types, and `flows` stores and returns them. Definitions cross as a
//! [`DefinitionSummary`] (`flows::DefinitionRecord::summary`), runs in a list as a [`RunListing`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The status of a run. `running`, `waiting` and `compensating` are active (the engine will come back to
/// the run); the other four are final until a manual [`retry`](flows::Store::retry_run).
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

    /// Running, waiting or compensating: the engine will come back to it (and a page keeps refreshing).
    pub fn is_active(self) -> bool {
        !self.is_final()
    }

    /// Failed runs can be retried from their failed step (or their failed compensation resumed).
    pub fn can_retry(self) -> bool {
        matches!(self, RunStatus::Failed | RunStatus::CompensationFailed)
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

    pub fn parse(s: &str) -> Phase {
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

/// A run as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunRecord {
    pub id: String,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

    pub fn parse(s: &str) -> AttemptOutcome {
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineEntry {
    pub step_index: i64,
    pub step_name: String,
    pub phase: Phase,
    pub attempts: Vec<AttemptRecord>,
}

/// A run's history in the order it happened, compensations included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Timeline {
    pub run: RunRecord,
    pub entries: Vec<TimelineEntry>,
}

impl RunRecord {
    /// The name of the step the run is at while it is active, given its definition's step names.
    pub fn current_step_name(&self, steps: &[String]) -> Option<String> {
        let i = usize::try_from(self.current_step).ok()?;
        self.status.is_active().then(|| steps.get(i).cloned()).flatten()
    }

    /// The name of the step that failed for good, if one did.
    pub fn failed_step_name(&self, steps: &[String]) -> Option<String> {
        self.failed_step.and_then(|i| usize::try_from(i).ok()).and_then(|i| steps.get(i).cloned())
    }
}

/// A run in a list: what the runs table shows, without the run's input and step outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunListing {
    pub id: String,
    pub workflow: String,
    pub status: RunStatus,
    /// The step the run is at (while it is active).
    pub current_step: Option<String>,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

impl RunListing {
    /// `steps`: the step names of the run's workflow.
    pub fn of(run: &RunRecord, steps: &[String]) -> RunListing {
        RunListing {
            id: run.id.clone(),
            workflow: run.workflow.clone(),
            status: run.status,
            current_step: run.current_step_name(steps),
            created_at_ms: run.created_at_ms,
            finished_at_ms: run.finished_at_ms,
        }
    }
}

/// A stored definition as the editor and the definitions list show it (`flows::DefinitionRecord::summary`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefinitionSummary {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub version: i64,
    /// `toml` or `json`: what the source is written in.
    pub format: String,
    pub source: String,
    /// The step names, in order.
    pub steps: Vec<String>,
    /// Keys the run input must have.
    pub input: Vec<String>,
    pub updated_at_ms: i64,
}

/// One run with its timeline and the step names of its definition (to name the current and failed steps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDetail {
    pub timeline: Timeline,
    pub steps: Vec<String>,
}

impl Timeline {
    /// Each step output whose pretty JSON is longer than `max_chars` becomes that text, cut and ending
    /// in "…" (a JSON string): what a page that refreshes every second needs, not 64 KiB responses.
    pub fn cut_outputs(&mut self, max_chars: usize) {
        for a in self.entries.iter_mut().flat_map(|e| e.attempts.iter_mut()) {
            if let Some(v) = &a.output {
                let s = serde_json::to_string_pretty(v).unwrap_or_default();
                if s.chars().count() > max_chars {
                    a.output = Some(Value::String(s.chars().take(max_chars).collect::<String>() + "…"));
                }
            }
        }
    }
}

/// How a page shows a step output: pretty JSON, or the text itself for a string (a cut output is one).
pub fn shown_output(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => serde_json::to_string_pretty(v).unwrap_or_default(),
    }
}

impl RunDetail {
    pub fn current_step(&self) -> Option<String> {
        self.timeline.run.current_step_name(&self.steps)
    }

    pub fn failed_step(&self) -> Option<String> {
        self.timeline.run.failed_step_name(&self.steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(status: RunStatus, current_step: i64, failed_step: Option<i64>) -> RunRecord {
        RunRecord {
            id: "r".into(),
            owner: "alice".into(),
            definition_id: Some(1),
            workflow: "w".into(),
            definition_version: 1,
            status,
            input: Value::Null,
            current_step,
            attempt: 0,
            steps: vec![],
            cancel_requested: false,
            failed_step,
            error_code: None,
            error_message: None,
            wake_at_ms: None,
            waiting_source: None,
            waiting_correlation: None,
            idempotency_key: None,
            started_by: StartedBy::session(),
            created_at_ms: 1,
            updated_at_ms: 1,
            finished_at_ms: None,
        }
    }

    #[test]
    fn step_names_only_while_they_mean_something() {
        let steps = vec!["a".to_string(), "b".to_string()];
        assert_eq!(run(RunStatus::Running, 1, None).current_step_name(&steps).as_deref(), Some("b"));
        // Final runs are at no step; compensation past step 0 is at −1; a step beyond the definition is none.
        assert_eq!(run(RunStatus::Completed, 1, None).current_step_name(&steps), None);
        assert_eq!(run(RunStatus::Compensating, -1, None).current_step_name(&steps), None);
        assert_eq!(run(RunStatus::Running, 5, None).current_step_name(&steps), None);
        assert_eq!(run(RunStatus::Failed, 0, Some(0)).failed_step_name(&steps).as_deref(), Some("a"));
        let listing = RunListing::of(&run(RunStatus::Waiting, 0, None), &steps);
        assert_eq!((listing.status, listing.current_step.as_deref()), (RunStatus::Waiting, Some("a")));
    }

    #[test]
    fn long_outputs_are_cut_for_pages() {
        let attempt = |output: Value| AttemptRecord {
            id: 1,
            step_index: 0,
            step_name: "a".into(),
            phase: Phase::Forward,
            attempt: 1,
            outcome: AttemptOutcome::Succeeded,
            started_at_ms: 1,
            finished_at_ms: Some(2),
            output: Some(output),
            error_code: None,
            error_message: None,
            next_attempt_at_ms: None,
            worker: None,
        };
        let long = serde_json::json!({ "body": "x".repeat(5000) });
        let short = serde_json::json!({ "ok": true });
        let mut t = Timeline {
            run: run(RunStatus::Completed, 0, None),
            entries: vec![TimelineEntry {
                step_index: 0,
                step_name: "a".into(),
                phase: Phase::Forward,
                attempts: vec![attempt(long), attempt(short.clone())],
            }],
        };
        t.cut_outputs(600);
        let shown: Vec<String> = t.entries[0].attempts.iter().map(|a| shown_output(a.output.as_ref().unwrap())).collect();
        assert_eq!(shown[0].chars().count(), 601);
        assert!(shown[0].starts_with("{\n  \"body\": \"xxx") && shown[0].ends_with('…'));
        assert_eq!(t.entries[0].attempts[1].output, Some(short.clone()));
        assert_eq!(shown[1], serde_json::to_string_pretty(&short).unwrap());
    }

    #[test]
    fn status_classes() {
        assert!(RunStatus::ACTIVE.iter().all(|s| s.is_active() && !s.can_retry()));
        assert!(RunStatus::Failed.can_retry() && RunStatus::CompensationFailed.can_retry() && !RunStatus::Cancelled.can_retry());
        for s in ["running", "compensation_failed", "cancelled"] {
            assert_eq!(RunStatus::parse(s).unwrap().as_str(), s);
        }
        // The wire form is the same snake_case the database stores.
        assert_eq!(serde_json::to_string(&RunStatus::CompensationFailed).unwrap(), "\"compensation_failed\"");
    }
}
