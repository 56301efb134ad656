//! The workflows pages' server functions and the view types they exchange. Definitions, runs and
//! timelines are `crates/flows` (server only); these mirror what the pages show, so the browser build
//! does not depend on it.

use contract::Problem;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The built-in example every user gets (installed on first look).
pub const ONBOARDING: &str = "customer_onboarding";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefinitionView {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub version: i64,
    /// toml or json: what the source is written in.
    pub format: String,
    pub source: String,
    pub steps: usize,
    /// Keys the run input must have.
    pub input: Vec<String>,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    pub id: String,
    pub workflow: String,
    pub status: String,
    /// The step the run is at (while it is not final).
    pub current_step: Option<String>,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowsDashboard {
    pub definitions: Vec<DefinitionView>,
    pub runs: Vec<RunRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepAttemptView {
    pub attempt: i64,
    /// running, waiting, succeeded, failed, interrupted or cancelled.
    pub outcome: String,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// Pretty JSON, cut at [`OUTPUT_SHOWN_CHARS`].
    pub output: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub next_attempt_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntryView {
    pub step_index: i64,
    pub step_name: String,
    /// forward or compensate.
    pub phase: String,
    pub attempts: Vec<StepAttemptView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDetailView {
    pub id: String,
    pub workflow: String,
    pub definition_version: i64,
    pub status: String,
    pub current_step: Option<String>,
    pub failed_step: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub waiting_source: Option<String>,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub timeline: Vec<TimelineEntryView>,
}

impl RunDetailView {
    /// Running, waiting or compensating: the page keeps refreshing.
    pub fn is_active(&self) -> bool {
        is_active(&self.status)
    }

    pub fn can_retry(&self) -> bool {
        matches!(self.status.as_str(), "failed" | "compensation_failed")
    }
}

pub fn is_active(status: &str) -> bool {
    matches!(status, "running" | "waiting" | "compensating")
}

pub const OUTPUT_SHOWN_CHARS: usize = 600;
pub const RUNS_SHOWN: u32 = 50;

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;

    pub fn engine() -> Result<flows::Engine, Problem> {
        use_context::<flows::Engine>().ok_or_else(|| Problem::internal("workflow engine missing"))
    }

    /// Workflows belong to the username (as in the REST API).
    pub fn owner() -> Result<String, Problem> {
        crate::api::ssr::signed_in().map(|s| s.username).ok_or_else(crate::api::ssr::sign_in_first)
    }

    pub fn step_name(run: &flows::RunRecord, steps: &[String]) -> Option<String> {
        let i = usize::try_from(run.current_step).ok()?;
        (!run.status.is_final()).then(|| steps.get(i).cloned()).flatten()
    }

    pub fn pretty(v: &serde_json::Value) -> String {
        let s = serde_json::to_string_pretty(v).unwrap_or_default();
        if s.chars().count() > OUTPUT_SHOWN_CHARS {
            s.chars().take(OUTPUT_SHOWN_CHARS).collect::<String>() + "…"
        } else {
            s
        }
    }
}

/// The signed-in user's definitions (the built-in example included) and latest runs; `None` when
/// signed out.
#[server]
pub async fn workflows_overview() -> Result<Option<WorkflowsDashboard>, Problem> {
    use ssr::*;
    let Ok(me) = owner() else { return Ok(None) };
    let engine = engine()?;
    let store = engine.store();
    store.install_builtins(&me).await.map_err(Problem::from)?;
    let defs = store.list_definitions(&me, flows::Page::first(100)).await.map_err(Problem::from)?;
    let runs = engine.list_runs(&me, &flows::RunFilter::default(), flows::Page::first(RUNS_SHOWN)).await.map_err(Problem::from)?;
    let step_names = |workflow: &str| -> Vec<String> {
        defs.items.iter().find(|d| d.name == workflow).map(|d| d.definition.steps.iter().map(|s| s.name.clone()).collect()).unwrap_or_default()
    };
    let runs = runs
        .items
        .iter()
        .map(|r| RunRow {
            id: r.id.clone(),
            workflow: r.workflow.clone(),
            status: r.status.as_str().to_string(),
            current_step: step_name(r, &step_names(&r.workflow)),
            created_at_ms: r.created_at_ms,
            finished_at_ms: r.finished_at_ms,
        })
        .collect();
    let definitions = defs
        .items
        .into_iter()
        .map(|d| DefinitionView {
            id: d.id,
            steps: d.definition.steps.len(),
            input: d.definition.input.clone(),
            description: d.definition.description.clone(),
            name: d.name,
            version: d.version,
            format: d.format.as_str().to_string(),
            source: d.source,
            updated_at_ms: d.updated_at_ms,
        })
        .collect();
    Ok(Some(WorkflowsDashboard { definitions, runs }))
}

/// Stores a definition from the editor (a new one when `id` is empty, else a new version of `id`) and
/// answers "name vN". Nothing is stored unless all of it validates: a 422 problem lists every refused
/// field by its path in the definition.
#[server]
pub async fn save_workflow(id: String, format: String, source: String) -> Result<String, Problem> {
    let me = ssr::owner()?;
    let engine = ssr::engine()?;
    let format = flows::Format::parse(&format)?;
    if source.trim().is_empty() {
        return Err(Problem::invalid("source", "Write a workflow definition first."));
    }
    let saved = match id.trim() {
        "" => engine.store().create_definition(&me, &source, format).await,
        id => match id.parse::<i64>() {
            Ok(n) => engine.store().update_definition(&me, n, &source, format).await,
            Err(_) => return Err(Problem::not_found("No such workflow.")),
        },
    };
    let d = saved?;
    Ok(format!("{} v{}", d.name, d.version))
}

/// Starts a run of a definition with the JSON typed in the form, then opens the run's page (answers
/// the run's id). A refused input is a 422 problem about `input`.
#[server]
pub async fn start_workflow_run(definition_id: i64, input: String) -> Result<String, Problem> {
    let me = ssr::owner()?;
    let input: serde_json::Value = match input.trim() {
        "" => serde_json::json!({}),
        text => serde_json::from_str(text).map_err(|e| Problem::invalid("input", format!("Not valid JSON: {e}.")))?,
    };
    // A signed-in page may do everything its user may.
    let new =
        flows::NewRun { definition: flows::DefinitionRef::Id(definition_id), input, idempotency_key: None, started_by: flows::StartedBy::session() };
    match ssr::engine()?.start_run(&me, new).await {
        Ok(run_id) => {
            leptos_axum::redirect(&format!("/workflows/runs/{run_id}"));
            Ok(run_id)
        }
        Err(e) => {
            // The input's own keys (`input.email`) belong under the input box.
            Err(Problem::from(e).renaming_fields(|field| if field.starts_with("input") { "input".into() } else { field.into() }))
        }
    }
}

/// One of the user's runs with its timeline; `None` if there is no such run of theirs.
#[server]
pub async fn workflow_run(id: String) -> Result<Option<RunDetailView>, Problem> {
    let me = ssr::owner()?;
    let engine = ssr::engine()?;
    let t = match engine.timeline(&me, &id).await {
        Ok(t) => t,
        Err(flows::FlowsError::NotFound) => return Ok(None),
        Err(e) => return Err(Problem::from(e)),
    };
    let run = &t.run;
    let step_names: Vec<String> = match run.definition_id {
        Some(d) => {
            engine.store().get_definition(&me, d).await.map(|d| d.definition.steps.iter().map(|s| s.name.clone()).collect()).unwrap_or_default()
        }
        None => vec![],
    };
    let name_at = |i: Option<i64>| i.and_then(|i| usize::try_from(i).ok()).and_then(|i| step_names.get(i).cloned());
    let timeline = t
        .entries
        .iter()
        .map(|e| TimelineEntryView {
            step_index: e.step_index,
            step_name: e.step_name.clone(),
            phase: e.phase.as_str().to_string(),
            attempts: e
                .attempts
                .iter()
                .map(|a| StepAttemptView {
                    attempt: a.attempt,
                    outcome: a.outcome.as_str().to_string(),
                    started_at_ms: a.started_at_ms,
                    finished_at_ms: a.finished_at_ms,
                    output: a.output.as_ref().map(ssr::pretty),
                    error_code: a.error_code.clone(),
                    error_message: a.error_message.clone(),
                    next_attempt_at_ms: a.next_attempt_at_ms,
                })
                .collect(),
        })
        .collect();
    Ok(Some(RunDetailView {
        id: run.id.clone(),
        workflow: run.workflow.clone(),
        definition_version: run.definition_version,
        status: run.status.as_str().to_string(),
        current_step: ssr::step_name(run, &step_names),
        failed_step: name_at(run.failed_step),
        error_code: run.error_code.clone(),
        error_message: run.error_message.clone(),
        waiting_source: run.waiting_source.clone(),
        created_at_ms: run.created_at_ms,
        finished_at_ms: run.finished_at_ms,
        timeline,
    }))
}

/// Retries a failed run from its failed step (or resumes a failed compensation).
#[server]
pub async fn retry_workflow_run(id: String) -> Result<(), Problem> {
    let me = ssr::owner()?;
    ssr::engine()?.retry_run(&me, &id, &flows::StartedBy::session()).await.map_err(Problem::from)?;
    Ok(())
}

/// Cancels a run that is still going; its completed steps are undone.
#[server]
pub async fn cancel_workflow_run(id: String) -> Result<(), Problem> {
    let me = ssr::owner()?;
    ssr::engine()?.cancel_run(&me, &id).await.map_err(Problem::from)?;
    Ok(())
}
