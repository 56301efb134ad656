//! What a run is: its status, its per-step state, its attempt log, and the records the API returns.

use contract::Owner;
use serde::{Deserialize, Serialize};

pub use contract::workflows::{
    AttemptOutcome, AttemptRecord, Phase, RunListing, RunRecord, RunStatus, StartedBy, StepState, StepStatus, Timeline, TimelineEntry,
};

pub type RunId = String;

/// Per-step state of a run, stored as JSON beside the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RunState {
    pub steps: Vec<StepState>,
}

/// What the host hears when a run reaches a final status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub id: RunId,
    pub owner: Owner,
    pub workflow: String,
    pub status: RunStatus,
    pub failed_step: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub finished_at_ms: i64,
}

/// `scopes` column value meaning "every scope" (a browser session).
const ALL_SCOPES: &str = "*";

/// How [`StartedBy::scopes`] is stored: space-separated, or [`ALL_SCOPES`].
pub(crate) fn scopes_column(by: &StartedBy) -> String {
    match &by.scopes {
        None => ALL_SCOPES.into(),
        Some(s) => s.join(" "),
    }
}

pub(crate) fn started_by_from_columns(kind: String, token_id: Option<i64>, scopes: &str) -> StartedBy {
    let scopes = (scopes != ALL_SCOPES).then(|| scopes.split_whitespace().map(String::from).collect());
    StartedBy { kind, token_id, scopes }
}

/// Consecutive attempts at the same step in the same phase make one timeline entry.
pub(crate) fn group_timeline(run: RunRecord, attempts: Vec<AttemptRecord>) -> Timeline {
    let mut entries: Vec<TimelineEntry> = Vec::new();
    for a in attempts {
        match entries.last_mut() {
            Some(e) if e.step_index == a.step_index && e.phase == a.phase => e.attempts.push(a),
            _ => entries.push(TimelineEntry { step_index: a.step_index, step_name: a.step_name.clone(), phase: a.phase, attempts: vec![a] }),
        }
    }
    Timeline { run, entries }
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
