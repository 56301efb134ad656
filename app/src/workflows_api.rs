//! The workflows pages' server functions. Runs and timelines cross as `flows`'s own records, which
//! live in `contract::workflows` so the browser build needs no `flows`.

use contract::ids::{WorkflowId, WorkflowRunId};
pub use contract::workflows::{shown_output, AttemptOutcome, AttemptRecord, DefinitionSummary, RunDetail, RunListing, RunStatus, TimelineEntry};
use contract::Problem;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The built-in example every user gets (installed on first look).
pub const ONBOARDING: &str = "customer_onboarding";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowsDashboard {
    pub definitions: Vec<DefinitionSummary>,
    pub runs: Vec<RunListing>,
}

/// Step outputs are shown cut at this many characters (the run's API has them whole).
pub const OUTPUT_SHOWN_CHARS: usize = 600;
pub const RUNS_SHOWN: u32 = 50;

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;

    pub fn engine() -> Result<flows::Engine, Problem> {
        Ok(crate::api::ssr::require_services()?.flows.clone())
    }

    pub use crate::api::ssr::owner;
}

/// The signed-in user's definitions (the built-in example included) and latest runs; `None` when
/// signed out.
#[server]
pub async fn workflows_overview() -> Result<Option<WorkflowsDashboard>, Problem> {
    use ssr::*;
    let Ok(me) = owner() else { return Ok(None) };
    let engine = engine()?;
    let store = engine.store();
    let mut defs = store.list_definitions(&me, flows::Page::first(100)).await.map_err(Problem::from)?;
    // The built-in example is installed on first look; once it is listed there is nothing to do.
    if !flows::builtin::all().iter().all(|(name, _)| defs.items.iter().any(|d| d.name == *name)) {
        store.install_builtins(&me).await.map_err(Problem::from)?;
        defs = store.list_definitions(&me, flows::Page::first(100)).await.map_err(Problem::from)?;
    }
    let runs = engine.list_runs(&me, &flows::RunFilter::default(), flows::Page::first(RUNS_SHOWN)).await.map_err(Problem::from)?;
    let definitions: Vec<DefinitionSummary> = defs.items.iter().map(flows::DefinitionRecord::summary).collect();
    let steps_of = |workflow: &str| definitions.iter().find(|d| d.name == workflow).map(|d| d.steps.clone()).unwrap_or_default();
    let runs = runs.items.iter().map(|r| RunListing::of(r, &steps_of(&r.workflow))).collect();
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
pub async fn start_workflow_run(definition_id: WorkflowId, input: String) -> Result<String, Problem> {
    let me = ssr::owner()?;
    let input: serde_json::Value = match input.trim() {
        "" => serde_json::json!({}),
        text => serde_json::from_str(text).map_err(|e| Problem::invalid("input", format!("Not valid JSON: {e}.")))?,
    };
    // A signed-in page may do everything its user may.
    let new = flows::NewRun {
        definition: flows::DefinitionRef::Id(definition_id.get()),
        input,
        idempotency_key: None,
        started_by: flows::StartedBy::session(),
    };
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
pub async fn workflow_run(id: WorkflowRunId) -> Result<Option<RunDetail>, Problem> {
    let me = ssr::owner()?;
    let engine = ssr::engine()?;
    let mut timeline = match engine.timeline(&me, &id).await {
        Ok(t) => t,
        Err(flows::FlowsError::NotFound) => return Ok(None),
        Err(e) => return Err(Problem::from(e)),
    };
    // The definition may have been deleted since; the run then shows step numbers only.
    let steps = match timeline.run.definition_id {
        Some(d) => engine.store().get_definition(&me, d).await.map(|d| d.definition.step_names()).unwrap_or_default(),
        None => vec![],
    };
    timeline.cut_outputs(OUTPUT_SHOWN_CHARS);
    Ok(Some(RunDetail { timeline, steps }))
}

/// Retries a failed run from its failed step (or resumes a failed compensation).
#[server]
pub async fn retry_workflow_run(id: WorkflowRunId) -> Result<(), Problem> {
    let me = ssr::owner()?;
    ssr::engine()?.retry_run(&me, &id, &flows::StartedBy::session()).await.map_err(Problem::from)?;
    Ok(())
}

/// Cancels a run that is still going; its completed steps are undone.
#[server]
pub async fn cancel_workflow_run(id: WorkflowRunId) -> Result<(), Problem> {
    let me = ssr::owner()?;
    ssr::engine()?.cancel_run(&me, &id).await.map_err(Problem::from)?;
    Ok(())
}
