//! `/workflows` (definitions, the editor, runs) and `/workflows/runs/{id}` (one run's timeline, which
//! refreshes every second while the run is running, waiting or compensating). The engine is
//! `crates/flows`; the server functions are in `workflows_api`.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::time_fmt::{clock_ms, duration_ms, iso, utc_ms};
use crate::workflows_api::{
    shown_output, workflow_run, workflows_overview, AttemptOutcome, AttemptRecord, CancelWorkflowRun, DefinitionSummary, RetryWorkflowRun, RunDetail,
    RunListing, RunStatus, SaveWorkflow, StartWorkflowRun, TimelineEntry, WorkflowsDashboard, ONBOARDING,
};

pub struct WorkflowsRoute;

#[leptos_router::lazy_route]
impl leptos_router::LazyRoute for WorkflowsRoute {
    fn data() -> Self {
        WorkflowsRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <WorkflowsPage/> }.into_any()
    }
}

pub struct RunRoute;

#[leptos_router::lazy_route]
impl leptos_router::LazyRoute for RunRoute {
    fn data() -> Self {
        RunRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <RunPage/> }.into_any()
    }
}

/// The example input a Start run form begins with: a placeholder per input key.
fn sample_input(d: &DefinitionSummary) -> String {
    if d.name == ONBOARDING {
        return "{\"email\": \"ada@example.com\", \"name\": \"Ada\"}".into();
    }
    let fields: Vec<String> = d.input.iter().map(|k| format!("\"{k}\": \"\"")).collect();
    format!("{{{}}}", fields.join(", "))
}

const NEW_DEFINITION: &str =
    "name = \"my_workflow\"\ninput = [\"email\"]\n\n[[steps]]\nname = \"wait_a_moment\"\naction = { type = \"delay\", ms = 300 }\n";

fn status_label(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Running => "Running",
        RunStatus::Waiting => "Waiting",
        RunStatus::Compensating => "Compensating",
        RunStatus::Completed => "Completed",
        RunStatus::Failed => "Failed",
        RunStatus::CompensationFailed => "Compensation failed",
        RunStatus::Cancelled => "Cancelled",
    }
}

#[component]
fn StatusChip(status: RunStatus) -> impl IntoView {
    let class = match status {
        RunStatus::Completed => "badge badge-good",
        RunStatus::Failed | RunStatus::CompensationFailed => "badge badge-bad",
        RunStatus::Waiting => "badge badge-info",
        RunStatus::Compensating => "badge badge-warn",
        RunStatus::Running | RunStatus::Cancelled => "badge",
    };
    view! { <span class=class data-testid="run-status" data-status=status.as_str()>{status_label(status)}</span> }
}

#[component]
pub fn WorkflowsPage() -> impl IntoView {
    let save = ServerAction::<SaveWorkflow>::new();
    let overview = Resource::new(move || save.version().get(), |_| workflows_overview());
    view! {
        <Title text="Workflows"/>
        <h1>"Workflows"</h1>
        <p class="muted">"Multi-step processes as data. Each step is retried; if one fails for good, the done steps are undone, last first. Also in the API: "<code>"/api/v1/workflows"</code>"."</p>
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match overview.await {
                    Ok(Some(o)) => view! { <WorkflowsView overview=o save/> }.into_any(),
                    Ok(None) => view! { <p><a href="/login?next=/workflows">"Sign in"</a>" to run workflows."</p> }.into_any(),
                    Err(_) => view! { <p class="alert alert-error" role="alert">"Could not load your workflows. Reload the page to try again."</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn WorkflowsView(overview: WorkflowsDashboard, save: ServerAction<SaveWorkflow>) -> impl IntoView {
    let WorkflowsDashboard { definitions, runs } = overview;
    // Which definition the editor holds: None for a new one.
    let editing = RwSignal::new(None::<DefinitionSummary>);
    view! {
        <div class="dashboard-top">
            <section class="card" aria-labelledby="definitions-heading">
                <h2 id="definitions-heading">"Definitions"</h2>
                <ul class="run-list" data-testid="definitions">
                    {definitions.into_iter().map(|d| view! { <DefinitionItem definition=d editing/> }).collect_view()}
                </ul>
                <button type="button" class="btn btn-secondary" on:click=move |_| editing.set(None)>"New workflow"</button>
            </section>
            <Editor editing save/>
        </div>
        <RunList runs/>
    }
}

#[component]
fn DefinitionItem(definition: DefinitionSummary, editing: RwSignal<Option<DefinitionSummary>>) -> impl IntoView {
    let start = ServerAction::<StartWorkflowRun>::new();
    let d = definition;
    let input_id = format!("input-{}", d.id);
    let err_id = format!("{input_id}-error");
    let error = move || match start.value().get() {
        Some(Err(p)) => Some(p.field("input").map(str::to_string).unwrap_or_else(|| format!("Could not start the run: {}", p.detail))),
        _ => None,
    };
    let built_in = d.name == ONBOARDING;
    let for_edit = d.clone();
    let (def_id, sample, label) = (d.id, sample_input(&d), format!("Input for {} (JSON)", d.name));
    let meta = format!("{}v{} · {} steps", if built_in { "built-in · " } else { "" }, d.version, d.steps.len());
    view! {
        <li data-testid="definition" data-name=d.name.clone()>
            <strong>{d.name.clone()}</strong>
            <span class="muted">{meta}</span>
            <ActionForm action=start>
                <input type="hidden" name="definition_id" value=def_id/>
                <div class="field">
                    <label for=input_id.clone()>{label}</label>
                    <textarea id=input_id name="input" rows="2" aria-describedby=err_id.clone() aria-invalid=move || error().map(|_| "true")>{sample}</textarea>
                    <p class="field-error" id=err_id hidden=move || error().is_none()>{error}</p>
                </div>
                <div class="with-button">
                    <button type="submit" class="btn btn-primary btn-small" data-testid="start-run" disabled=move || start.pending().get()>"Start run"</button>
                    {(!built_in).then(|| view! {
                        <button type="button" class="btn btn-secondary btn-small" on:click=move |_| editing.set(Some(for_edit.clone()))>"Edit"</button>
                    })}
                </div>
            </ActionForm>
        </li>
    }
}

#[component]
fn Editor(editing: RwSignal<Option<DefinitionSummary>>, save: ServerAction<SaveWorkflow>) -> impl IntoView {
    // Every refused field by its path in the definition; a refusal about no field is said once.
    let errors = move || match save.value().get() {
        Some(Err(p)) => p.errors.into_iter().map(|f| (f.field, f.message)).collect(),
        _ => vec![],
    };
    let message = move || match save.value().get() {
        Some(Err(p)) if p.errors.is_empty() => Some(format!("Could not save: {}", p.detail)),
        _ => None,
    };
    let saved = move || save.value().get().and_then(|r| r.ok()).map(|d| format!("Saved {d}."));
    view! {
        <section class="card" aria-labelledby="editor-heading">
            <h2 id="editor-heading">{move || editing.with(|e| match e {
                Some(d) => format!("Edit {} (v{} → saves as v{})", d.name, d.version, d.version + 1),
                None => "New workflow".to_string(),
            })}</h2>
            <ActionForm action=save>
                <div class="stack">
                    <input type="hidden" name="id" prop:value=move || editing.with(|e| e.as_ref().map(|d| d.id.to_string()).unwrap_or_default())/>
                    <div class="field narrow">
                        <label for="definition-format">"Format"</label>
                        <select id="definition-format" name="format" prop:value=move || editing.with(|e| e.as_ref().map(|d| d.format.clone()).unwrap_or_else(|| "toml".into()))>
                            <option value="toml">"TOML"</option>
                            <option value="json">"JSON"</option>
                        </select>
                    </div>
                    <div class="field">
                        <label for="definition-source">"Definition"</label>
                        <textarea id="definition-source" name="source" rows="14" spellcheck="false" aria-describedby="definition-errors"
                            aria-invalid=move || (!errors().is_empty()).then_some("true")
                            prop:value=move || editing.with(|e| e.as_ref().map(|d| d.source.clone()).unwrap_or_else(|| NEW_DEFINITION.into()))>{NEW_DEFINITION}</textarea>
                        <div id="definition-errors" data-testid="definition-errors">
                            <Show when=move || !errors().is_empty()>
                                <p class="field-error">{move || format!("{} problem{} — nothing was saved:", errors().len(), if errors().len() == 1 { "" } else { "s" })}</p>
                                <ul class="field-error">
                                    {move || errors().into_iter().map(|(field, m)| view! { <li><code>{field}</code>": "{m}</li> }).collect_view()}
                                </ul>
                            </Show>
                        </div>
                    </div>
                    <p class="alert alert-error" role="alert" hidden=move || message().is_none()>{message}</p>
                    <p class="muted" role="status" data-testid="saved">{saved}</p>
                    <button type="submit" class="btn btn-primary" data-testid="save-workflow" disabled=move || save.pending().get()>"Save"</button>
                </div>
            </ActionForm>
        </section>
    }
}

#[component]
fn RunList(runs: Vec<RunListing>) -> impl IntoView {
    view! {
        <section class="card" aria-labelledby="runs-heading">
            <h2 id="runs-heading">"Runs"</h2>
            {if runs.is_empty() {
                view! { <p class="empty" data-testid="no-runs">"No runs yet. Start one above."</p> }.into_any()
            } else {
                view! {
                    <table class="table stack-on-phone" data-testid="runs">
                        <thead><tr><th scope="col">"Run"</th><th scope="col">"Workflow"</th><th scope="col">"Status"</th><th scope="col">"Current step"</th><th scope="col">"Started"</th><th scope="col">"Finished"</th></tr></thead>
                        <tbody>
                            {runs.into_iter().map(|r| view! {
                                <tr>
                                    <td data-label="Run"><a href=format!("/workflows/runs/{}", r.id)><code>{r.id.clone()}</code></a></td>
                                    <td data-label="Workflow">{r.workflow}</td>
                                    <td data-label="Status"><StatusChip status=r.status/></td>
                                    <td data-label="Current step">{r.current_step.unwrap_or_else(|| "—".into())}</td>
                                    <td data-label="Started"><time datetime=iso(r.created_at_ms / 1000)>{utc_ms(r.created_at_ms)}</time></td>
                                    <td data-label="Finished">{r.finished_at_ms.map(utc_ms).unwrap_or_else(|| "—".into())}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

/// `/workflows/runs/{id}`: the run's status and timeline, refetched every second while it is active.
#[component]
pub fn RunPage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.read().get("id").unwrap_or_default());
    let retry = ServerAction::<RetryWorkflowRun>::new();
    let cancel = ServerAction::<CancelWorkflowRun>::new();
    let tick = RwSignal::new(0u32);
    let run = Resource::new(
        move || (id.get(), retry.version().get(), cancel.version().get(), tick.get()),
        |(id, ..)| async move {
            // A text that is no run id is no run of theirs either.
            match id.parse() {
                Ok(id) => workflow_run(id).await,
                Err(_) => Ok(None),
            }
        },
    );
    #[cfg(feature = "hydrate")]
    {
        // Poll while the last answer says the run is still going (or before the first answer).
        if let Ok(handle) = set_interval_with_handle(
            move || {
                let active = run.get_untracked().map(|r| r.ok().flatten().is_some_and(|r| r.timeline.run.status.is_active())).unwrap_or(true);
                if active {
                    tick.update(|t| *t += 1);
                }
            },
            std::time::Duration::from_secs(1),
        ) {
            on_cleanup(move || handle.clear());
        }
    }
    let action_error = move || {
        [retry.value().get().and_then(|r| r.err()), cancel.value().get().and_then(|r| r.err())].into_iter().flatten().next().map(|e| e.to_string())
    };
    view! {
        <Title text="Workflow run"/>
        <p><a href="/workflows">"← Workflows"</a></p>
        <p class="alert alert-error" role="alert" hidden=move || action_error().is_none()>{action_error}</p>
        <Transition fallback=|| view! { <p class="muted">"Loading the run…"</p> }>
            {move || Suspend::new(async move {
                match run.await {
                    Ok(Some(r)) => view! { <RunDetails run=r retry cancel/> }.into_any(),
                    Ok(None) => view! { <h1>"Workflow run"</h1><p class="empty">"That run does not exist."</p> }.into_any(),
                    Err(_) => view! { <h1>"Workflow run"</h1><p class="alert alert-error" role="alert">"Could not load the run. Reload the page to try again."</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn RunDetails(run: RunDetail, retry: ServerAction<RetryWorkflowRun>, cancel: ServerAction<CancelWorkflowRun>) -> impl IntoView {
    let (current_step, failed_step) = (run.current_step(), run.failed_step());
    let (run, timeline) = (run.timeline.run, run.timeline.entries);
    let summary = {
        let mut s = format!("Started {}", utc_ms(run.created_at_ms));
        if let Some(f) = run.finished_at_ms {
            s += &format!(" · {} {}", status_label(run.status).to_lowercase(), utc_ms(f));
        }
        if let Some(step) = &failed_step {
            s += &format!(" at {step}");
        }
        if let Some(code) = &run.error_code {
            s += &format!(" ({code})");
        }
        if run.status == RunStatus::Waiting {
            if let (Some(step), Some(source)) = (&current_step, &run.waiting_source) {
                s += &format!(" · waiting at {step} for an inbound {source} webhook");
            }
        }
        s
    };
    let (id_retry, id_cancel) = (run.id.clone(), run.id.clone());
    view! {
        <section class="card" aria-labelledby="run-heading" data-testid="run-detail">
            <div class="card-header">
                <div class="heading-with-status">
                    <h1 id="run-heading" class="run-title">{format!("Run {} · {}", run.id, run.workflow)}</h1>
                    <StatusChip status=run.status/>
                    {run.status.is_active().then(|| view! { <span class="live" data-testid="live">"● Live"</span> })}
                </div>
                {run.status.can_retry().then(move || view! {
                    <ActionForm action=retry>
                        <input type="hidden" name="id" value=id_retry/>
                        <button type="submit" class="btn btn-primary" data-testid="retry-run">"Retry run"</button>
                    </ActionForm>
                })}
                {run.status.is_active().then(move || view! {
                    <ActionForm action=cancel>
                        <input type="hidden" name="id" value=id_cancel/>
                        <button type="submit" class="btn btn-danger" data-testid="cancel-run">"Cancel run"</button>
                    </ActionForm>
                })}
            </div>
            <p class="muted" data-testid="run-summary">{summary}</p>
            {current_step.map(|s| view! { <p class="muted">"Current step: "<strong data-testid="current-step">{s}</strong></p> })}
            {run.error_message.clone().map(|m| view! { <p class="alert alert-error">{m}</p> })}
            <p class="visually-hidden" role="status">{(!run.status.is_active()).then(|| format!("Run {} {}.", run.id, status_label(run.status).to_lowercase()))}</p>
            <h2>"Timeline"</h2>
            {if timeline.is_empty() {
                view! { <p class="empty">"No step has started yet."</p> }.into_any()
            } else {
                view! {
                    <ol class="timeline" data-testid="timeline">
                        {timeline.into_iter().map(|e| view! { <TimelineItem entry=e/> }).collect_view()}
                    </ol>
                }.into_any()
            }}
        </section>
    }
}

#[component]
fn TimelineItem(entry: TimelineEntry) -> impl IntoView {
    let phase = entry.phase.as_str();
    let class = format!("timeline-entry phase-{phase}");
    view! {
        <li class=class data-testid="timeline-entry" data-step=entry.step_name.clone() data-phase=phase>
            <h3><span class="mono">{format!("#{} {}", entry.step_index, entry.step_name.clone())}</span>" "<span class="badge">{phase}</span></h3>
            <ul class="attempts">
                {entry.attempts.into_iter().map(|a| view! { <AttemptItem attempt=a/> }).collect_view()}
            </ul>
        </li>
    }
}

#[component]
fn AttemptItem(attempt: AttemptRecord) -> impl IntoView {
    let a = attempt;
    let outcome_class = match a.outcome {
        AttemptOutcome::Succeeded => "badge badge-good",
        AttemptOutcome::Failed | AttemptOutcome::Interrupted => "badge badge-bad",
        AttemptOutcome::Waiting => "badge badge-info",
        AttemptOutcome::Running | AttemptOutcome::Cancelled => "badge",
    };
    let outcome = a.outcome.as_str();
    let took = a.finished_at_ms.map(|f| duration_ms(f - a.started_at_ms));
    view! {
        <li data-testid="step-attempt" data-outcome=outcome>
            <span>{format!("attempt {}", a.attempt)}</span>
            <span class=outcome_class>{outcome}</span>
            <span class="mono">{clock_ms(a.started_at_ms)}</span>
            {a.finished_at_ms.map(|f| view! { <span class="muted">"→ "<span class="mono">{clock_ms(f)}</span></span> })}
            {took.map(|t| view! { <span class="muted">{t}</span> })}
            {a.error_code.map(|c| view! { <span class="field-error">"error "<code>{c}</code>" "{a.error_message.unwrap_or_default()}</span> })}
            {a.next_attempt_at_ms.map(|n| view! { <span class="muted">{format!("retry at {}", clock_ms(n))}</span> })}
            {a.output.map(|o| view! { <pre class="output" tabindex="0" aria-label="Output"><code>{shown_output(&o)}</code></pre> })}
        </li>
    }
}
