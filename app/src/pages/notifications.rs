//! `/notifications`: the notification pipeline's dashboard. Start a simulation, list runs, and watch the
//! selected one live (server-sent events push a [`RunView`] twice a second; nothing reloads). Dead
//! letters can be replayed. The pipeline itself is `crates/notify`; `docs/notifications.md` explains it.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};

use crate::notify_api::{
    load_run, notification_dashboard, push_subscriptions, AddPushSubscription, CancelSimulation, Dashboard, DeadLetterView, PushSubscription,
    RemovePushSubscription, ReplayDeadLetters, RunRow, RunView, StartSimulation,
};
use crate::time_fmt::{iso, utc};

/// `/notifications` as a lazily loaded route (its own WASM chunk with `cargo leptos build --split`).
pub struct NotificationsRoute;

#[leptos_router::lazy_route]
impl leptos_router::LazyRoute for NotificationsRoute {
    fn data() -> Self {
        NotificationsRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <NotificationsPage/> }.into_any()
    }
}

#[component]
pub fn NotificationsPage() -> impl IntoView {
    // Bumped after anything that changes the run list or the dead letters.
    let version = RwSignal::new(0u32);
    let dashboard = Resource::new(move || version.get(), |_| notification_dashboard());
    // Owned here, not by the dead-letter list: the list is rebuilt when the dashboard reloads, and the
    // replay's answer must outlive that.
    let replay = ServerAction::<ReplayDeadLetters>::new();
    Effect::new(move |_| {
        if let Some(Ok(_)) = replay.value().get() {
            version.update(|v| *v += 1);
        }
    });
    let query = use_query_map();
    let requested = Memo::new(move |_| query.read().get("run").and_then(|v| v.parse::<i64>().ok()));
    view! {
        <Title text="Notifications"/>
        <h1>"Notifications"</h1>
        <p class="muted">
            "A pipeline that carries a million notifications an hour with room to spare: a durable queue, rate-limited workers, retries with backoff and a dead-letter queue. Webhooks, e-mail (SMTP) and Web Push sent through the API are real; SMS goes to a simulated provider with Twilio's API shape, and simulations use simulated providers throughout. "
            <a href="/docs/notifications" rel="external">"How it works"</a>
        </p>
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match dashboard.await {
                    Ok(Some(d)) => view! { <DashboardView dashboard=d requested=requested.get() version replay/> }.into_any(),
                    Ok(None) => view! { <p><a href="/login?next=/notifications">"Sign in"</a>" to run simulations."</p> }.into_any(),
                    Err(_) => view! { <p class="alert alert-error" role="alert">"Could not load the dashboard. Reload the page to try again."</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn DashboardView(dashboard: Dashboard, requested: Option<i64>, version: RwSignal<u32>, replay: ServerAction<ReplayDeadLetters>) -> impl IntoView {
    let Dashboard { runs, dead_letters, redis_available, storage } = dashboard;
    let selected = requested.filter(|id| runs.iter().any(|r| r.id == *id)).or_else(|| runs.first().map(|r| r.id));
    let running = runs.iter().any(|r| r.status == "running");
    view! {
        <div class="dashboard-top">
            <StartForm redis_available running version/>
            <RunList runs selected/>
        </div>
        {match selected {
            Some(id) => view! { <RunPanel id version/> }.into_any(),
            None => ().into_any(),
        }}
        <DeadLetters letters=dead_letters replay/>
        <PushSubscriptions/>
        {storage.map(|report| view! { <Storage report/> })}
    }
}

/// The user's Web Push subscriptions: register one from a browser's `PushSubscription.toJSON()` parts
/// (its endpoint, `keys.p256dh`, `keys.auth`), list and delete them. A push notification names one of
/// these ids as its recipient; a push service's 404 or 410 deletes it.
#[component]
fn PushSubscriptions() -> impl IntoView {
    let add = ServerAction::<AddPushSubscription>::new();
    let remove = ServerAction::<RemovePushSubscription>::new();
    let subs = Resource::new(move || (add.version().get(), remove.version().get()), |_| push_subscriptions());
    let error_for = move |field: &'static str| {
        move || match add.value().get() {
            Some(Err(p)) => p.field(field).map(str::to_string),
            _ => None,
        }
    };
    let general_error = move || match add.value().get() {
        Some(Err(p)) if p.errors.is_empty() => Some(format!("Could not add the subscription: {}", p.detail)),
        _ => None,
    };
    view! {
        <section class="card" aria-labelledby="push-heading" data-testid="push-subscriptions">
            <h2 id="push-heading">"Web Push subscriptions"</h2>
            <p class="muted">
                "Push notifications are real: encrypted for the subscription (RFC 8291) and sent to its push service with this server's VAPID key (RFC 8292). Send one through the API with "
                <code>"\"channel\": \"push\""</code>" and a subscription's id as the recipient."
            </p>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match subs.await {
                        Ok(Some((rows, key))) => view! {
                            <p class="muted" data-testid="vapid-key">
                                {match key {
                                    Some(k) => view! { "Subscribe with applicationServerKey " <code>{k}</code> }.into_any(),
                                    None => view! { "Web Push is not set up on this server (no VAPID key)." }.into_any(),
                                }}
                            </p>
                            {if rows.is_empty() {
                                view! { <p class="empty">"No subscriptions yet."</p> }.into_any()
                            } else {
                                view! {
                                    <table class="table stack-on-phone">
                                        <thead><tr><th scope="col">"Id (the recipient)"</th><th scope="col">"Push endpoint"</th><th scope="col">"Added"</th><th scope="col"><span class="visually-hidden">"Actions"</span></th></tr></thead>
                                        <tbody>
                                            {rows.into_iter().map(|s| {
                                                let PushSubscription { id, endpoint, created_ms } = s;
                                                let (row_id, shown_id, label) = (id.clone(), id.clone(), format!("Delete subscription {id}"));
                                                view! {
                                                <tr data-subscription=row_id>
                                                    <td data-label="Id"><code>{shown_id}</code></td>
                                                    <td data-label="Push endpoint"><code>{endpoint}</code></td>
                                                    <td data-label="Added">{crate::time_fmt::utc_ms(created_ms)}</td>
                                                    <td>
                                                        <ActionForm action=remove>
                                                            <input type="hidden" name="id" value=id/>
                                                            <button type="submit" class="btn btn-danger btn-small" aria-label=label>"Delete"</button>
                                                        </ActionForm>
                                                    </td>
                                                </tr>
                                                }
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                }.into_any()
                            }}
                        }.into_any(),
                        Ok(None) => ().into_any(),
                        Err(_) => view! { <p class="alert alert-error" role="alert">"Could not load the subscriptions."</p> }.into_any(),
                    }
                })}
            </Transition>
            <ActionForm action=add>
                <PushField name="endpoint" kind="url" label="Push endpoint (URL)" error=error_for("endpoint")/>
                <PushField name="p256dh" kind="text" label="Public key (keys.p256dh, base64url)" error=error_for("p256dh")/>
                <PushField name="auth" kind="text" label="Auth secret (keys.auth, base64url)" error=error_for("auth")/>
                <p class="alert alert-error" role="alert" hidden=move || general_error().is_none()>{general_error}</p>
                <button type="submit" class="btn">"Add subscription"</button>
            </ActionForm>
        </section>
    }
}

/// Operators only: what each store holds, how long it keeps rows and when retention next looks.
#[component]
fn Storage(report: contract::ops::StorageReport) -> impl IntoView {
    use contract::ops::{human_bytes, human_secs};
    let when = |ms: Option<i64>| ms.map(crate::time_fmt::utc_ms).unwrap_or_else(|| "not yet".into());
    let files = report.files.iter().map(|f| format!("{} {}", f.name, human_bytes(f.bytes))).collect::<Vec<_>>().join(", ");
    let total = human_bytes(report.total_bytes());
    view! {
        <section class="card" aria-labelledby="storage-heading" data-testid="storage">
            <h2 id="storage-heading">"Storage"</h2>
            <p class="muted">
                {format!("As of {}; next retention pass {}. Stores hold {total}; files on disk: {files}.", when(report.measured_ms), when(report.next_pass_ms))}
            </p>
            <table class="table stack-on-phone">
                <thead><tr>
                    <th scope="col">"Store"</th><th scope="col">"Rows"</th><th scope="col">"Size"</th>
                    <th scope="col">"Oldest row"</th><th scope="col">"Kept for"</th><th scope="col">"Pruned"</th>
                </tr></thead>
                <tbody>
                    {report.stores.into_iter().map(|s| view! {
                        <tr data-store=s.name.clone()>
                            <td data-label="Store"><code>{s.name.clone()}</code></td>
                            <td data-label="Rows">{s.rows}</td>
                            <td data-label="Size">{s.bytes.map(human_bytes).unwrap_or_else(|| "—".into())}</td>
                            <td data-label="Oldest row">{s.oldest_ms.map(crate::time_fmt::utc_ms).unwrap_or_else(|| "—".into())}</td>
                            <td data-label="Kept for">{human_secs(s.keep_secs)}</td>
                            <td data-label="Pruned">{s.pruned}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
}

#[component]
fn StartForm(redis_available: bool, running: bool, version: RwSignal<u32>) -> impl IntoView {
    let start = ServerAction::<StartSimulation>::new();
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(id)) = start.value().get() {
            navigate(&format!("/notifications?run={id}"), Default::default());
            version.update(|v| *v += 1);
        }
    });
    let error_for = move |field: &'static str| {
        move || match start.value().get() {
            Some(Err(p)) => p.field(field).map(str::to_string),
            _ => None,
        }
    };
    // A refusal about this form's inputs is shown under them; anything else here.
    const INPUTS: &[&str] = &["count", "rate", "webhook", "email", "sms", "push", "mix", "failure_percent", "latency_ms", "backend", "ttl_secs"];
    let general_error = move || match start.value().get() {
        Some(Err(p)) if !p.errors.iter().any(|f| INPUTS.contains(&f.field.as_str())) => Some(format!("Could not start the simulation: {}", p.detail)),
        _ => None,
    };
    view! {
        <section class="card" aria-labelledby="new-simulation">
            <h2 id="new-simulation">"New simulation"</h2>
            <ActionForm action=start>
                <div class="stack">
                    <p class="alert alert-error" role="alert" hidden=move || general_error().is_none()>{general_error}</p>
                    <NumberField name="count" label="Notifications" value="2000" error=error_for("count")/>
                    <fieldset class="field">
                        <legend>"Rate"</legend>
                        <div class="segmented">
                            {[("1m-per-hour", "1M / hour"), ("10m-per-hour", "10M / hour"), ("max", "As fast as possible")].into_iter().map(|(value, label)| view! {
                                <label><input type="radio" name="rate" value=value checked={value == "1m-per-hour"}/>{label}</label>
                            }).collect_view()}
                        </div>
                        <FieldError error=error_for("rate")/>
                    </fieldset>
                    <fieldset class="field">
                        <legend>"Channel mix (relative weights)"</legend>
                        <div class="row row-4">
                            <NumberField name="webhook" label="Webhook" value="1" error=error_for("webhook")/>
                            <NumberField name="email" label="Email" value="1" error=error_for("email")/>
                            <NumberField name="sms" label="SMS" value="1" error=error_for("sms")/>
                            <NumberField name="push" label="Push" value="1" error=error_for("push")/>
                        </div>
                        <FieldError error=error_for("mix")/>
                        <p class="footnote">"A simulation's email, SMS and push go to simulated providers (they stand in for third-party services, so a million-notification run never reaches a real inbox). Its webhooks are real signed HTTP calls to the configured receiver."</p>
                    </fieldset>
                    <div class="row">
                        <NumberField name="failure_percent" label="Injected failures (%)" value="0" error=error_for("failure_percent")/>
                        <NumberField name="latency_ms" label="Added latency (ms)" value="0" error=error_for("latency_ms")/>
                        <NumberField name="ttl_secs" label="Expire after (s, optional)" value="" error=error_for("ttl_secs")/>
                        <div class="field">
                            <label for="backend">"Backend"</label>
                            <select id="backend" name="backend">
                                <option value="embedded" selected>"Embedded (SQLite)"</option>
                                <option value="redis" disabled={!redis_available}>
                                    {if redis_available { "Redis Streams" } else { "Redis Streams (not configured)" }}
                                </option>
                            </select>
                            <FieldError error=error_for("backend")/>
                        </div>
                    </div>
                    <button type="submit" class="btn btn-primary" data-testid="start-simulation" disabled=move || start.pending().get()>
                        {move || if start.pending().get() { "Starting…" } else { "Start simulation" }}
                    </button>
                    {running.then(|| view! { <p class="footnote">"A run is in progress; a new one shares the same workers."</p> })}
                </div>
            </ActionForm>
        </section>
    }
}

/// One input of the push subscription form, with its refusal under it.
#[component]
fn PushField(
    name: &'static str,
    kind: &'static str,
    label: &'static str,
    error: impl Fn() -> Option<String> + Send + Sync + Copy + 'static,
) -> impl IntoView {
    let id = format!("push-{name}");
    let err_id = format!("{id}-error");
    view! {
        <div class="field">
            <label for=id.clone()>{label}</label>
            <input id=id name=name type=kind required autocomplete="off" spellcheck="false"
                aria-invalid=move || error().is_some().then_some("true")
                aria-describedby=err_id.clone()/>
            <p class="field-error" id=err_id hidden=move || error().is_none()>{error}</p>
        </div>
    }
}

#[component]
fn NumberField(
    name: &'static str,
    label: &'static str,
    value: &'static str,
    error: impl Fn() -> Option<String> + Send + Sync + Copy + 'static,
) -> impl IntoView {
    let id = format!("sim-{name}");
    let err_id = format!("{id}-error");
    view! {
        <div class="field">
            <label for=id.clone()>{label}</label>
            <input id=id name=name type="text" inputmode="decimal" value=value autocomplete="off"
                aria-invalid=move || error().is_some().then_some("true")
                aria-describedby=err_id.clone()/>
            <p class="field-error" id=err_id hidden=move || error().is_none()>{error}</p>
        </div>
    }
}

#[component]
fn FieldError(error: impl Fn() -> Option<String> + Send + Sync + Copy + 'static) -> impl IntoView {
    view! { <p class="field-error" hidden=move || error().is_none()>{error}</p> }
}

#[component]
fn RunList(runs: Vec<RunRow>, selected: Option<i64>) -> impl IntoView {
    view! {
        <section class="card" aria-labelledby="runs-heading">
            <h2 id="runs-heading">"Runs"</h2>
            {if runs.is_empty() {
                view! { <p class="empty" data-testid="no-runs">"No runs yet. Start a simulation to see the pipeline at work."</p> }.into_any()
            } else {
                view! {
                    <ul class="run-list" data-testid="runs">
                        {runs.into_iter().map(|r| {
                            let current = (Some(r.id) == selected).then_some("true");
                            view! {
                                <li>
                                    <a href=format!("/notifications?run={}", r.id) aria-current=current>{format!("Run #{}", r.id)}</a>
                                    <StatusBadge status=r.status.clone()/>
                                    <span class="muted">{r.summary}</span>
                                    <span class="muted">
                                        {format!("{} delivered", r.delivered)}
                                        {(r.dead_lettered > 0).then(|| format!(", {} dead letters", r.dead_lettered))}
                                        " · "<time datetime=iso(r.started_at)>{utc(r.started_at)}</time>
                                    </span>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
        </section>
    }
}

#[component]
fn StatusBadge(status: String) -> impl IntoView {
    let class = match status.as_str() {
        "completed" => "badge badge-good",
        "failed" => "badge badge-bad",
        _ => "badge",
    };
    let label = match status.as_str() {
        "running" => "Running",
        "completed" => "Completed",
        "cancelled" => "Cancelled",
        "failed" => "Failed",
        _ => "Unknown",
    };
    view! { <span class=class data-testid="run-status">{label}</span> }
}

/// The selected run: its first state comes with the page, then the server pushes each change.
#[component]
fn RunPanel(id: i64, version: RwSignal<u32>) -> impl IntoView {
    let initial = Resource::new(move || id, load_run);
    let live = RwSignal::new(None::<RunView>);
    #[cfg(feature = "hydrate")]
    live_updates::follow(id, live, initial, version);
    #[cfg(not(feature = "hydrate"))]
    let _ = version;
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading the run…"</p> }>
            {move || Suspend::new(async move {
                match initial.await {
                    Ok(Some(first)) => {
                        let current = Signal::derive(move || live.get().filter(|v| v.id == first.id).unwrap_or_else(|| first.clone()));
                        view! { <RunDetails run=current/> }.into_any()
                    }
                    Ok(None) => view! { <p class="empty">"That run does not exist."</p> }.into_any(),
                    Err(_) => view! { <p class="alert alert-error" role="alert">"Could not load the run."</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn RunDetails(run: Signal<RunView>) -> impl IntoView {
    let cancel = ServerAction::<CancelSimulation>::new();
    let id = move || run.with(|r| r.id);
    let fmt_ms = |v: f64| if v >= 100.0 { format!("{v:.0} ms") } else { format!("{v:.1} ms") };
    view! {
        <section class="card" aria-labelledby="run-heading" data-testid="run-panel">
            <div class="card-header">
                <div class="heading-with-status">
                    <h2 id="run-heading">{move || format!("Run #{}", id())} " " {move || view! { <StatusBadge status=run.with(|r| r.status.clone())/> }}</h2>
                    <Show when=move || run.with(|r| r.is_running())>
                        <span class="live" data-testid="live">"● Live"</span>
                    </Show>
                </div>
                <Show when=move || run.with(|r| r.is_running())>
                    <ActionForm action=cancel>
                        <input type="hidden" name="id" value=id/>
                        <button type="submit" class="btn btn-danger" data-testid="cancel-run">"Cancel run"</button>
                    </ActionForm>
                </Show>
            </div>
            <p class="muted">{move || run.with(|r| r.summary.clone())}</p>
            <label for="run-progress" class="progress-label">
                {move || run.with(|r| format!("{} of {} settled ({}%)", r.settled(), r.count, (r.settled() * 100).checked_div(r.count).unwrap_or(0)))}
            </label>
            <progress id="run-progress" data-testid="run-progress" max=move || run.with(|r| r.count.max(1).to_string()) value=move || run.with(|r| r.settled().to_string())></progress>
            <p class="visually-hidden" role="status">{move || run.with(|r| (!r.is_running()).then(|| format!("Run #{} {}.", r.id, r.status)))}</p>
            <dl class="tiles">
                <div><dt>"Delivered"</dt><dd data-testid="delivered">{move || run.with(|r| r.delivered)}</dd></div>
                <div><dt>"Retried"</dt><dd data-testid="retried">{move || run.with(|r| r.retried)}</dd></div>
                <div><dt>"Dead letters"</dt><dd data-testid="dead-lettered">{move || run.with(|r| r.dead_lettered)}</dd></div>
                <div><dt>"Expired"</dt><dd data-testid="expired">{move || run.with(|r| r.expired)}</dd></div>
                <div><dt>"Backlog"</dt><dd data-testid="backlog">{move || run.with(|r| r.backlog)}</dd></div>
                <div><dt>"p50"</dt><dd>{move || run.with(|r| fmt_ms(r.end_to_end_ms[0]))}</dd></div>
                <div><dt>"p95"</dt><dd>{move || run.with(|r| fmt_ms(r.end_to_end_ms[1]))}</dd></div>
                <div><dt>"p99"</dt><dd data-testid="p99">{move || run.with(|r| fmt_ms(r.end_to_end_ms[2]))}</dd></div>
            </dl>
            <p class="footnote">"Latency is from enqueue to delivery, retries included. One delivery attempt: p50 "
                {move || run.with(|r| fmt_ms(r.attempt_ms[0]))}", p99 "{move || run.with(|r| fmt_ms(r.attempt_ms[2]))}"."</p>
            <h3>"Throughput"</h3>
            {move || run.with(|r| view! { <ThroughputChart series=r.throughput.clone() target=r.target_per_sec/> })}
        </section>
    }
}

/// Delivered per second over time, with the paced target as a dashed line; the table under it has the
/// same figures in 10-second windows (the chart's text alternative).
#[component]
fn ThroughputChart(series: Vec<(u32, u32)>, target: Option<f64>) -> impl IntoView {
    if series.is_empty() {
        return view! { <p class="empty">"No one-second samples yet (a run that finishes within its first second has none)."</p> }.into_any();
    }
    let (w, h, left, bottom) = (600.0_f64, 200.0_f64, 48.0_f64, 24.0_f64);
    let t_max = series.iter().map(|(t, _)| *t).max().unwrap_or(0).max(1) as f64;
    let v_max = series.iter().map(|(_, v)| *v as f64).chain(target).fold(1.0_f64, f64::max) * 1.1;
    let x = move |t: f64| left + t / t_max * (w - left - 8.0);
    let y = move |v: f64| (h - bottom) - v / v_max * (h - bottom - 8.0);
    let points = series.iter().map(|(t, v)| format!("{:.1},{:.1}", x(*t as f64), y(*v as f64))).collect::<Vec<_>>().join(" ");
    let windows = windows_of(&series, 10);
    view! {
        <svg class="chart" viewBox=format!("0 0 {w} {h}") role="img" aria-label="Line chart of notifications delivered per second; the table below lists the same figures">
            <line x1=left y1=h - bottom x2=w - 8.0 y2=h - bottom class="axis"/>
            <line x1=left y1="8" x2=left y2=h - bottom class="axis"/>
            <text x=left - 4.0 y="16" class="chart-label" text-anchor="end">{format!("{:.0}", v_max)}</text>
            <text x=left - 4.0 y=h - bottom class="chart-label" text-anchor="end">"0"</text>
            <text x=w - 8.0 y=h - 6.0 class="chart-label" text-anchor="end">{format!("{t_max:.0} s")}</text>
            <text x=left y=h - 6.0 class="chart-label">"0 s"</text>
            {target.map(|t| view! {
                <line x1=left y1=y(t) x2=w - 8.0 y2=y(t) class="target" stroke-dasharray="6 4"/>
                <text x=w - 10.0 y=y(t) - 4.0 class="chart-label" text-anchor="end">{format!("target {t:.0}/s")}</text>
            })}
            <polyline points=points class="line-1" fill="none"/>
        </svg>
        <div class="table-scroll" tabindex="0" role="region" aria-label="Throughput by 10-second window">
            <table class="table" data-testid="throughput-table">
                <thead><tr><th scope="col">"Window"</th><th scope="col">"Delivered per second"</th></tr></thead>
                <tbody>
                    {windows.into_iter().rev().take(60).map(|(start, rate)| view! {
                        <tr><td>{format!("{start}–{} s", start + 10)}</td><td>{format!("{rate:.1}")}</td></tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }.into_any()
}

/// Average delivered per second in each `size`-second window, as (window start, rate).
pub fn windows_of(series: &[(u32, u32)], size: u32) -> Vec<(u32, f64)> {
    let mut out: Vec<(u32, u64, u32)> = vec![];
    for (t, v) in series {
        let start = t / size * size;
        match out.last_mut() {
            Some((s, sum, n)) if *s == start => {
                *sum += *v as u64;
                *n += 1;
            }
            _ => out.push((start, *v as u64, 1)),
        }
    }
    out.into_iter().map(|(s, sum, n)| (s, sum as f64 / n.max(1) as f64)).collect()
}

#[component]
fn DeadLetters(letters: Vec<DeadLetterView>, replay: ServerAction<ReplayDeadLetters>) -> impl IntoView {
    let replayed = move || replay.value().get().and_then(|r| r.ok()).map(|n| format!("{n} put back in the queue."));
    view! {
        <section class="card" aria-labelledby="dead-heading">
            <div class="card-header">
                <h2 id="dead-heading">"Dead letters"</h2>
                {(!letters.is_empty()).then(|| view! {
                    <ActionForm action=replay>
                        <input type="hidden" name="which" value="all"/>
                        <button type="submit" class="btn btn-secondary" data-testid="replay-all">"Replay all"</button>
                    </ActionForm>
                })}
            </div>
            <p class="muted" role="status">{replayed}</p>
            {if letters.is_empty() {
                view! { <p class="empty" data-testid="no-dead-letters">"No dead letters: every notification so far was delivered or is still being tried."</p> }.into_any()
            } else {
                view! {
                    <table class="table stack-on-phone" data-testid="dead-letters">
                        <thead><tr><th scope="col">"Notification"</th><th scope="col">"Channel"</th><th scope="col">"Attempts"</th><th scope="col">"Last error"</th><th scope="col"><span class="visually-hidden">"Action"</span></th></tr></thead>
                        <tbody>
                            {letters.into_iter().map(|d| {
                                let label = format!("Replay {}", d.id);
                                view! {
                                    <tr>
                                        <td data-label="Notification"><code>{d.id.clone()}</code>{d.run.map(|r| format!(" (run #{r})"))}</td>
                                        <td data-label="Channel">{d.channel}</td>
                                        <td data-label="Attempts">{d.attempts}</td>
                                        <td data-label="Last error">{d.last_error.unwrap_or_default()}</td>
                                        <td>
                                            <ActionForm action=replay>
                                                <input type="hidden" name="which" value=d.id/>
                                                <button type="submit" class="btn btn-secondary btn-small" aria-label=label>"Replay"</button>
                                            </ActionForm>
                                        </td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

#[cfg(feature = "hydrate")]
mod live_updates {
    use super::*;
    use wasm_bindgen::{closure::Closure, JsCast};

    /// Opens the run's event stream (`/notifications/runs/{id}/events`) and puts every update in
    /// `live`. When the stream ends (the run is final), the run list is refreshed once.
    pub fn follow(id: i64, live: RwSignal<Option<RunView>>, initial: Resource<Result<Option<RunView>, crate::api::Problem>>, version: RwSignal<u32>) {
        let stream = StoredValue::new_local(None::<web_sys::EventSource>);
        Effect::new(move |_| {
            let Ok(source) = web_sys::EventSource::new(&format!("/notifications/runs/{id}/events")) else { return };
            let closer = source.clone();
            // The list is refreshed whenever the stream ends: a run that finished before its first
            // event (small runs do) must not stay "Running" in the list.
            let _ = initial;
            let mut refreshed = false;
            let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
                let Some(Ok(view)) = ev.data().as_string().map(|t| serde_json::from_str::<RunView>(&t)) else { return };
                let running = view.is_running();
                let _ = live.try_set(Some(view));
                if !running {
                    closer.close();
                    if !refreshed {
                        refreshed = true;
                        let _ = version.try_update(|v| *v += 1);
                    }
                }
            });
            source.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            // The closure lives as long as the stream; the stream is closed on cleanup.
            on_message.forget();
            stream.set_value(Some(source));
        });
        on_cleanup(move || {
            let _ = stream.try_with_value(|s| {
                if let Some(s) = s {
                    s.close();
                }
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::windows_of;

    #[test]
    fn windows_average_per_second_rates() {
        let series = [(0, 10), (1, 20), (9, 30), (10, 100), (12, 50)];
        assert_eq!(windows_of(&series, 10), vec![(0, 20.0), (10, 75.0)]);
        assert!(windows_of(&[], 10).is_empty());
    }
}
