//! `/settings/tokens` (API tokens) and `/settings/webhooks` (endpoints, their secrets and attempt
//! logs); the third tab, `/settings/password`, is `pages::password`. Every action is an `ActionForm` posting to a server function in `tokens_api` or
//! `webhooks_api`. A secret shown once lives only in its action's value: it is gone when the page is
//! left or "Done" is pressed.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::shown_once::take_shown_once;
use crate::time_fmt::{duration_ms, iso, utc, utc_ms};
use crate::tokens_api::{list_api_tokens, CreateApiToken, RevokeApiToken, TokenRow, EXPIRY_CHOICES, SCOPES};
use crate::webhooks_api::{
    webhook_endpoint_detail, webhooks_overview, AttemptView, CreateWebhookEndpoint, DeleteWebhookEndpoint, Endpoint, EndpointDetail, EventTypeView,
    MarkWebhookNoticeRead, RecoverWebhookMessages, ReplayWebhookMessage, RotateWebhookSecret, SendWebhookTest, SetWebhookEnabled, WebhooksDashboard,
};

pub struct TokensRoute;

#[leptos_router::lazy_route]
impl leptos_router::LazyRoute for TokensRoute {
    fn data() -> Self {
        TokensRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <TokensPage/> }.into_any()
    }
}

pub struct WebhooksRoute;

#[leptos_router::lazy_route]
impl leptos_router::LazyRoute for WebhooksRoute {
    fn data() -> Self {
        WebhooksRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <WebhooksPage/> }.into_any()
    }
}

pub struct EndpointRoute;

#[leptos_router::lazy_route]
impl leptos_router::LazyRoute for EndpointRoute {
    fn data() -> Self {
        EndpointRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <EndpointPage/> }.into_any()
    }
}

/// "API tokens | Webhooks | Password" under the page title.
#[component]
pub fn SettingsTabs(current: &'static str) -> impl IntoView {
    let tab = move |href: &'static str, label: &'static str| {
        view! { <a href=href aria-current=(current == href).then_some("page")>{label}</a> }
    };
    view! {
        <nav class="tabs" aria-label="Settings">
            {tab("/settings/tokens", "API tokens")}
            {tab("/settings/webhooks", "Webhooks")}
            {tab("/settings/password", "Password")}
        </nav>
    }
}

/// A message under a field, tied to it by `aria-describedby`.
#[component]
fn FieldError(id: &'static str, error: Signal<Option<String>>) -> impl IntoView {
    view! { <p class="field-error" id=id hidden=move || error.get().is_none()>{move || error.get()}</p> }
}

/// The one-time box: the secret in monospace, the warning, and Done (which forgets it).
#[component]
fn SecretOnce(title: String, secret: String, testid: &'static str, on_done: impl Fn() + 'static) -> impl IntoView {
    view! {
        <section class="alert alert-success secret-once" role="status" aria-labelledby="secret-title">
            <h2 id="secret-title" class="secret-title">{title}</h2>
            <p><strong>"Copy it now, it will not be shown again."</strong></p>
            <div class="with-button">
                <code class="secret" data-testid=testid>{secret}</code>
                <button type="button" class="btn btn-secondary" on:click=move |_| on_done()>"Done"</button>
            </div>
        </section>
    }
}

/// A secret a form post without JavaScript left for this page (see `shown_once`).
#[component]
fn StashedSecret(kind: String, testid: &'static str) -> impl IntoView {
    let stashed = Resource::new(move || kind.clone(), take_shown_once);
    let done = RwSignal::new(false);
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                stashed.await.ok().flatten().map(|once| view! {
                    <Show when=move || !done.get()>
                        <SecretOnce title=once.title.clone() secret=once.secret.clone() testid on_done=move || done.set(true)/>
                        {once.link.clone().map(|href| view! { <p><a href=href data-testid="open-new-endpoint">"Open the endpoint"</a></p> })}
                    </Show>
                })
            })}
        </Suspense>
    }
}

fn when(ts: Option<i64>, none: &'static str) -> AnyView {
    match ts {
        Some(t) => view! { <time datetime=iso(t)>{utc(t)}</time> }.into_any(),
        None => view! { <span class="muted">{none}</span> }.into_any(),
    }
}

#[component]
pub fn TokensPage() -> impl IntoView {
    let create = ServerAction::<CreateApiToken>::new();
    let revoke = ServerAction::<RevokeApiToken>::new();
    let tokens = Resource::new(move || (create.version().get(), revoke.version().get()), |_| list_api_tokens());
    let outcome = move || create.value().get().and_then(|r| r.ok());
    let error_for = move |field: &'static str| {
        Signal::derive(move || match create.value().get() {
            Some(Err(p)) => p.field(field).map(str::to_string),
            _ => None,
        })
    };
    // A refusal about one of the form's inputs is shown under it; anything else here.
    const INPUTS: &[&str] = &["name", "scopes", "expires_days"];
    let general = move || match create.value().get() {
        Some(Err(p)) if !p.errors.iter().any(|f| INPUTS.contains(&f.field.as_str())) => Some(format!("Could not create the token: {}", p.detail)),
        _ => None,
    };
    view! {
        <Title text="API tokens"/>
        <h1>"Settings"</h1>
        <SettingsTabs current="/settings/tokens"/>
        <p class="muted">"Tokens let scripts and other systems call the API as you: send one as "<code>"Authorization: Bearer ie_…"</code>". "<a href="/api/docs" rel="external">"API reference"</a></p>
        <StashedSecret kind="token".to_string() testid="new-token"/>
        {move || outcome().map(|o| (o.name, o.token)).map(|(name, token)| view! {
            <SecretOnce title=format!("Token “{name}” created") secret=token testid="new-token" on_done=move || create.value().set(None)/>
        })}
        <section class="card" aria-labelledby="tokens-heading">
            <h2 id="tokens-heading">"Your tokens"</h2>
            <p class="muted">"Newest first. A revoked token stops working at once."</p>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match tokens.await {
                        Ok(Some(rows)) => view! { <TokenTable rows revoke/> }.into_any(),
                        Ok(None) => view! { <p><a href="/login?next=/settings/tokens">"Sign in"</a>" to manage your tokens."</p> }.into_any(),
                        Err(_) => view! { <p class="alert alert-error" role="alert">"Could not load your tokens. Reload the page to try again."</p> }.into_any(),
                    }
                })}
            </Transition>
            <p class="footnote">"Also from the command line: "<code>"server token create <username> --name NAME --scopes a,b"</code></p>
        </section>
        <section class="card" aria-labelledby="new-token-heading">
            <h2 id="new-token-heading">"New token"</h2>
            <p class="muted">"For a script or another system."</p>
            <ActionForm action=create>
                <div class="stack">
                    <p class="alert alert-error" role="alert" hidden=move || general().is_none()>{general}</p>
                    <div class="field">
                        <label for="token-name">"Name"</label>
                        <input id="token-name" name="name" type="text" maxlength="100" autocomplete="off" required
                            aria-invalid=move || error_for("name").get().map(|_| "true")
                            aria-describedby="token-name-hint token-name-error"/>
                        <p class="footnote" id="token-name-hint">"So you know which system uses it."</p>
                        <FieldError id="token-name-error" error=error_for("name")/>
                    </div>
                    <fieldset class="field" aria-describedby="token-scopes-hint token-scopes-error">
                        <legend>"Scopes"</legend>
                        <div class="checks">
                            {SCOPES.iter().enumerate().map(|(i, scope)| view! {
                                <label><input type="checkbox" name=format!("scopes[{i}]") value=*scope/>{*scope}</label>
                            }).collect_view()}
                        </div>
                        <p class="footnote" id="token-scopes-hint">"Only what the system needs: a request outside its scopes is refused (403)."</p>
                        <FieldError id="token-scopes-error" error=error_for("scopes")/>
                    </fieldset>
                    <div class="field narrow">
                        <label for="token-expiry">"Expires"</label>
                        <select id="token-expiry" name="expires_days" aria-describedby="token-expiry-hint token-expiry-error">
                            {EXPIRY_CHOICES.iter().map(|(value, label)| view! {
                                <option value=*value selected=*value == "30">{*label}</option>
                            }).collect_view()}
                        </select>
                        <p class="footnote" id="token-expiry-hint">"Every token expires, after a year at most."</p>
                        <FieldError id="token-expiry-error" error=error_for("expires_days")/>
                    </div>
                    <div class="field narrow">
                        <label for="token-current-password">"Current password"</label>
                        <input id="token-current-password" name="current_password" type="password" autocomplete="current-password" required
                            aria-describedby="token-current-password-hint"/>
                        <p class="footnote" id="token-current-password-hint">"A token acts as you, so we ask for your password again."</p>
                    </div>
                    <button type="submit" class="btn btn-primary" data-testid="create-token" disabled=move || create.pending().get()>"Create token"</button>
                </div>
            </ActionForm>
        </section>
    }
}

#[component]
fn TokenTable(rows: Vec<TokenRow>, revoke: ServerAction<RevokeApiToken>) -> impl IntoView {
    if rows.is_empty() {
        return view! { <p class="empty" data-testid="no-tokens">"No tokens yet."</p> }.into_any();
    }
    view! {
        <table class="table stack-on-phone" data-testid="tokens">
            <thead><tr>
                <th scope="col">"Name"</th><th scope="col">"Prefix"</th><th scope="col">"Scopes"</th><th scope="col">"Created"</th>
                <th scope="col">"Last used"</th><th scope="col">"Expires"</th><th scope="col"><span class="visually-hidden">"Action"</span></th>
            </tr></thead>
            <tbody>
                {rows.into_iter().map(|TokenRow { token: t, expired }| {
                    let label = format!("Revoke {}", t.name);
                    view! {
                        <tr data-testid="token-row">
                            <td data-label="Name">{t.name.clone()}</td>
                            <td data-label="Prefix"><code data-testid="token-prefix">{format!("{}…", t.prefix)}</code></td>
                            <td data-label="Scopes">{t.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")}</td>
                            <td data-label="Created">{when(Some(t.created_at), "")}</td>
                            <td data-label="Last used">{when(t.last_used_at, "never")}</td>
                            <td data-label="Expires">
                                {if expired { view! { <span class="badge">"Expired"</span> }.into_any() } else { when(t.expires_at, "never") }}
                            </td>
                            <td>
                                <ActionForm action=revoke>
                                    <input type="hidden" name="id" value=t.id/>
                                    <button type="submit" class="btn btn-danger btn-small" aria-label=label>"Revoke"</button>
                                </ActionForm>
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

#[component]
pub fn WebhooksPage() -> impl IntoView {
    let create = ServerAction::<CreateWebhookEndpoint>::new();
    let mark_read = ServerAction::<MarkWebhookNoticeRead>::new();
    let overview = Resource::new(move || (create.version().get(), mark_read.version().get()), |_| webhooks_overview());
    view! {
        <Title text="Webhooks"/>
        <h1>"Settings"</h1>
        <SettingsTabs current="/settings/webhooks"/>
        <p class="muted">"We POST signed events to your URLs (Standard Webhooks). Verify each with its endpoint's secret."</p>
        <StashedSecret kind="endpoint".to_string() testid="new-secret"/>
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match overview.await {
                    Ok(Some(o)) => view! { <WebhooksView overview=o create mark_read/> }.into_any(),
                    Ok(None) => view! { <p><a href="/login?next=/settings/webhooks">"Sign in"</a>" to manage your webhooks."</p> }.into_any(),
                    Err(_) => view! { <p class="alert alert-error" role="alert">"Could not load your endpoints. Reload the page to try again."</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn WebhooksView(
    overview: WebhooksDashboard,
    create: ServerAction<CreateWebhookEndpoint>,
    mark_read: ServerAction<MarkWebhookNoticeRead>,
) -> impl IntoView {
    let WebhooksDashboard { endpoints, notices, event_types } = overview;
    let catalogue = event_types.clone();
    let outcome = move || create.value().get().and_then(|r| r.ok());
    let error_for = move |field: &'static str| {
        Signal::derive(move || match create.value().get() {
            Some(Err(p)) => p.field(field).map(str::to_string),
            _ => None,
        })
    };
    let general = move || match create.value().get() {
        Some(Err(p)) => Some(format!("Could not add the endpoint: {}", p.detail)),
        _ => None,
    };
    view! {
        {notices.into_iter().map(|n| view! {
            <section class="alert alert-error notice" aria-label="Endpoint notice" data-testid="notice">
                <p>{n.message}</p>
                <ActionForm action=mark_read>
                    <input type="hidden" name="id" value=n.id/>
                    <button type="submit" class="btn btn-secondary btn-small">"Mark as read"</button>
                </ActionForm>
            </section>
        }).collect_view()}
        {move || outcome().map(|o| (o.endpoint_id, o.secret)).map(|(id, secret)| view! {
            <SecretOnce title=format!("Endpoint {id} added: its signing secret") secret testid="new-secret" on_done=move || create.value().set(None)/>
            <p><a href=format!("/settings/webhooks/{id}") data-testid="open-new-endpoint">"Open the endpoint"</a></p>
        })}
        <div class="dashboard-top">
            <section class="card" aria-labelledby="add-endpoint">
                <h2 id="add-endpoint">"Add endpoint"</h2>
                <ActionForm action=create>
                    <div class="stack">
                        <p class="alert alert-error" role="alert" hidden=move || general().is_none()>{general}</p>
                        <div class="field">
                            <label for="endpoint-url">"URL"</label>
                            <input id="endpoint-url" name="url" type="text" inputmode="url" autocomplete="off" placeholder="https://hooks.example.com/ie"
                                aria-invalid=move || error_for("url").get().map(|_| "true")
                                aria-describedby="endpoint-url-hint endpoint-url-error"/>
                            <p class="footnote" id="endpoint-url-hint">"Public addresses only: private, loopback and link-local ones are refused."</p>
                            <FieldError id="endpoint-url-error" error=error_for("url")/>
                        </div>
                        <div class="field">
                            <label for="endpoint-description">"Description"</label>
                            <input id="endpoint-description" name="description" type="text" autocomplete="off"
                                aria-invalid=move || error_for("description").get().map(|_| "true")
                                aria-describedby="endpoint-description-error"/>
                            <FieldError id="endpoint-description-error" error=error_for("description")/>
                        </div>
                        <div class="field">
                            <label for="endpoint-rate">"Rate limit (messages a second, optional)"</label>
                            <input id="endpoint-rate" name="rate_limit_per_sec" type="number" min="1" max="10000" inputmode="numeric" autocomplete="off"
                                aria-invalid=move || error_for("rate_limit_per_sec").get().map(|_| "true")
                                aria-describedby="endpoint-rate-hint endpoint-rate-error"/>
                            <p class="footnote" id="endpoint-rate-hint">"For a receiver that cannot take a burst: messages over it wait in the queue."</p>
                            <FieldError id="endpoint-rate-error" error=error_for("rate_limit_per_sec")/>
                        </div>
                        <fieldset class="field" aria-describedby="endpoint-events-error">
                            <legend>"Event types (none checked = all)"</legend>
                            <div class="checks checks-1">
                                {event_types.iter().enumerate().map(|(i, e)| view! {
                                    <label title=e.description.clone()><input type="checkbox" name=format!("event_types[{i}]") value=e.name.clone()/><code>{e.name.clone()}</code></label>
                                }).collect_view()}
                            </div>
                            <FieldError id="endpoint-events-error" error=error_for("event_types")/>
                        </fieldset>
                        <button type="submit" class="btn btn-primary" data-testid="add-endpoint" disabled=move || create.pending().get()>"Add endpoint"</button>
                    </div>
                </ActionForm>
            </section>
            <section class="card" aria-labelledby="endpoints-heading">
                <h2 id="endpoints-heading">"Endpoints"</h2>
                <EndpointList endpoints/>
            </section>
        </div>
        <EventCatalogue event_types=catalogue/>
    }
}

/// What each event type means. Its example body and JSON Schema are one click away in the API
/// reference (the OpenAPI document's `webhooks`), which is rendered once per process.
#[component]
fn EventCatalogue(event_types: Vec<EventTypeView>) -> impl IntoView {
    view! {
        <section class="card" aria-labelledby="event-types-heading">
            <h2 id="event-types-heading">"Event types"</h2>
            <p class="muted">
                "Every delivery's body is "<code>"{\"type\", \"timestamp\", \"data\"}"</code>". Each type's example and JSON Schema are in the "
                <a href="/api/docs#webhook-events" rel="external">"API reference"</a>" (the OpenAPI document's "<code>"webhooks"</code>")."
            </p>
            <ul class="event-types" data-testid="event-types">
                {event_types.into_iter().map(|e| view! {
                    <li data-testid="event-type" data-name=e.name.clone()>
                        <a href=format!("/api/docs#event-{}", e.name) rel="external"><code class="event-name">{e.name.clone()}</code></a>
                        <p>{e.description}</p>
                    </li>
                }).collect_view()}
            </ul>
        </section>
    }
}

fn events_summary(types: &[String]) -> String {
    match types.len() {
        0 => "all events".into(),
        1 => types[0].clone(),
        n => format!("{n} types"),
    }
}

#[component]
fn EnabledBadge(endpoint: Endpoint) -> impl IntoView {
    if endpoint.enabled {
        view! { <span class="badge badge-good" data-testid="endpoint-status">"Enabled"</span> }.into_any()
    } else {
        view! {
            <span class="badge badge-bad" data-testid="endpoint-status">"Disabled"</span>
            {endpoint.disabled_reason.map(|r| view! { <span class="muted">" "{r}</span> })}
        }
        .into_any()
    }
}

#[component]
fn EndpointList(endpoints: Vec<Endpoint>) -> impl IntoView {
    if endpoints.is_empty() {
        return view! { <p class="empty" data-testid="no-endpoints">"No endpoints yet. Add one to receive events."</p> }.into_any();
    }
    view! {
        <table class="table stack-on-phone" data-testid="endpoints">
            <thead><tr><th scope="col">"URL"</th><th scope="col">"Events"</th><th scope="col">"Failures"</th><th scope="col">"Status"</th></tr></thead>
            <tbody>
                {endpoints.into_iter().map(|e| view! {
                    <tr data-testid="endpoint-row">
                        <td data-label="URL">
                            <a href=format!("/settings/webhooks/{}", e.id)><code>{e.url.clone()}</code></a>
                            {(!e.description.is_empty()).then(|| view! { <br/><span class="muted">{e.description.clone()}</span> })}
                        </td>
                        <td data-label="Events">{events_summary(&e.event_types)}</td>
                        <td data-label="Failures">{e.consecutive_failures}</td>
                        <td data-label="Status"><EnabledBadge endpoint=e.clone()/></td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

/// `/settings/webhooks/{id}`: one endpoint, its actions and its attempt log. While something was sent
/// in the last 30 seconds the log refreshes every second.
#[component]
pub fn EndpointPage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.read().get("id").unwrap_or_default());
    let test = ServerAction::<SendWebhookTest>::new();
    let replay = ServerAction::<ReplayWebhookMessage>::new();
    let rotate = ServerAction::<RotateWebhookSecret>::new();
    let toggle = ServerAction::<SetWebhookEnabled>::new();
    let delete = ServerAction::<DeleteWebhookEndpoint>::new();
    let recover = ServerAction::<RecoverWebhookMessages>::new();
    let tick = RwSignal::new(0u32);
    let detail = Resource::new(
        move || {
            (
                id.get(),
                test.version().get(),
                replay.version().get(),
                rotate.version().get(),
                toggle.version().get(),
                recover.version().get(),
                tick.get(),
            )
        },
        // A text that is no endpoint id is no endpoint of theirs either.
        |(id, ..)| async move {
            match id.parse() {
                Ok(id) => webhook_endpoint_detail(id).await,
                Err(_) => Ok(None),
            }
        },
    );
    #[cfg(feature = "hydrate")]
    {
        // Follow deliveries for a while after each send.
        let until = StoredValue::new(0.0_f64);
        Effect::new(move |_| {
            let _ = (test.version().get(), replay.version().get(), recover.version().get());
            until.set_value(js_sys::Date::now() + 30_000.0);
        });
        if let Ok(handle) = set_interval_with_handle(
            move || {
                if js_sys::Date::now() < until.get_value() {
                    tick.update(|t| *t += 1);
                }
            },
            std::time::Duration::from_secs(1),
        ) {
            on_cleanup(move || handle.clear());
        }
    }
    let sent = move || match test.value().get() {
        Some(Ok(m)) => Some(format!("Test event {m} queued.")),
        Some(Err(e)) => Some(format!("Could not send a test event: {}", e.detail)),
        None => None,
    };
    let replayed = move || match replay.value().get() {
        Some(Ok(m)) => Some(format!("Message {m} queued again.")),
        Some(Err(e)) => Some(format!("Could not replay: {}", e.detail)),
        None => None,
    };
    let recovered = move || match recover.value().get() {
        Some(Ok(r)) => Some(format!("Recovering {} missed message(s).", r.total)),
        Some(Err(e)) => Some(format!("Could not recover: {}", e.field("since").unwrap_or(&e.detail))),
        None => None,
    };
    let other_error = move || {
        [toggle.value().get().and_then(|r| r.err()), delete.value().get().and_then(|r| r.err())].into_iter().flatten().next().map(|e| e.to_string())
    };
    view! {
        <Title text="Webhook endpoint"/>
        <h1>"Settings"</h1>
        <SettingsTabs current="/settings/webhooks"/>
        <p><a href="/settings/webhooks">"← All endpoints"</a></p>
        {move || view! { <StashedSecret kind=format!("rotate:{}", id.get()) testid="rotated-secret"/> }}
        {move || match rotate.value().get() {
            Some(Ok(r)) => view! {
                <SecretOnce title="New signing secret".to_string() secret=r.secret testid="rotated-secret" on_done=move || rotate.value().set(None)/>
                <p class="muted">"The previous secret also signs every delivery until "<time datetime=iso(r.previous_secret_until_ms / 1000)>{utc_ms(r.previous_secret_until_ms)}</time>"."</p>
            }.into_any(),
            Some(Err(e)) => view! { <p class="alert alert-error" role="alert">{format!("Could not rotate the secret: {}", e.detail)}</p> }.into_any(),
            None => ().into_any(),
        }}
        <p class="alert alert-error" role="alert" hidden=move || other_error().is_none()>{other_error}</p>
        <p class="muted" role="status" data-testid="endpoint-status-message">{move || recovered().or_else(sent).or_else(replayed)}</p>
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(Some(d)) => view! { <EndpointDetailView detail=d test replay rotate toggle delete recover/> }.into_any(),
                    Ok(None) => view! { <p class="empty">"That endpoint does not exist."</p> }.into_any(),
                    Err(_) => view! { <p class="alert alert-error" role="alert">"Could not load the endpoint. Reload the page to try again."</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn EndpointDetailView(
    detail: EndpointDetail,
    test: ServerAction<SendWebhookTest>,
    replay: ServerAction<ReplayWebhookMessage>,
    rotate: ServerAction<RotateWebhookSecret>,
    toggle: ServerAction<SetWebhookEnabled>,
    delete: ServerAction<DeleteWebhookEndpoint>,
    recover: ServerAction<RecoverWebhookMessages>,
) -> impl IntoView {
    let EndpointDetail { endpoint: e, attempts, recoveries, suggested_since } = detail;
    let id = e.id.clone();
    // One copy per form: each form's children own theirs.
    let (id_test, id_rotate, id_toggle, id_delete, id_recover) = (id.clone(), id.clone(), id.clone(), id.clone(), id.clone());
    let enabled = e.enabled;
    let events = if e.event_types.is_empty() { "all events".to_string() } else { e.event_types.join(", ") };
    view! {
        <section class="card" aria-labelledby="endpoint-heading" data-testid="endpoint-detail">
            <div class="card-header">
                <h2 id="endpoint-heading"><code>{e.url.clone()}</code></h2>
                <div class="actions">
                    <ActionForm action=test>
                        <input type="hidden" name="id" value=id_test/>
                        <button type="submit" class="btn btn-primary" data-testid="send-test">"Send test"</button>
                    </ActionForm>
                    <ActionForm action=rotate>
                        <input type="hidden" name="id" value=id_rotate/>
                        <div class="with-button">
                            <label for="rotate-current-password" class="visually-hidden">"Current password"</label>
                            <input id="rotate-current-password" name="current_password" type="password" autocomplete="current-password"
                                required placeholder="Current password"/>
                            <button type="submit" class="btn btn-secondary" data-testid="rotate-secret">"Rotate secret"</button>
                        </div>
                    </ActionForm>
                    <ActionForm action=toggle>
                        <input type="hidden" name="id" value=id_toggle/>
                        <input type="hidden" name="enabled" value=if enabled { "false" } else { "true" }/>
                        <button type="submit" class="btn btn-secondary" data-testid="toggle-endpoint">{if enabled { "Disable" } else { "Enable" }}</button>
                    </ActionForm>
                    <ActionForm action=delete>
                        <input type="hidden" name="id" value=id_delete/>
                        <button type="submit" class="btn btn-danger" data-testid="delete-endpoint">"Delete"</button>
                    </ActionForm>
                </div>
            </div>
            <p class="muted">{e.id.clone()}{(!e.description.is_empty()).then(|| format!(" · {}", e.description))}" · "{events}</p>
            <p>
                <EnabledBadge endpoint=e.clone()/>" "<span class="muted">{format!("{} failed messages in a row", e.consecutive_failures)}</span>
                {e.rate_limit_per_sec.map(|r| view! { <span class="muted" data-testid="rate-limit">{format!(" · at most {r} a second")}</span> })}
            </p>
            {e.previous_secret_until_ms.map(|u| view! {
                <p class="muted">"Secret rotated: the previous secret also signs every delivery until "<time datetime=iso(u / 1000)>{utc_ms(u)}</time>"."</p>
            })}
            <h3>"Recover missed messages"</h3>
            <p class="muted">
                "Sends this endpoint, once each and in the background, every message it missed since a time: those that failed here and those made while it was disabled."
            </p>
            <ActionForm action=recover>
                <input type="hidden" name="id" value=id_recover/>
                <div class="with-button">
                    <label for="recover-since">"Since (UTC)"</label>
                    <input id="recover-since" name="since" type="datetime-local" required value=suggested_since/>
                    <button type="submit" class="btn btn-secondary" data-testid="recover" disabled=!enabled>"Recover"</button>
                </div>
            </ActionForm>
            {(!recoveries.is_empty()).then(|| view! {
                <ul class="recoveries" data-testid="recoveries">
                    {recoveries.into_iter().map(|r| {
                        let state = match r.status.as_str() {
                            "running" => format!("Recovering: {} of {} sent", r.sent, r.total),
                            "completed" => format!("Recovered: {} of {} sent", r.sent, r.total),
                            _ => format!("Stopped (the endpoint was disabled): {} of {} sent", r.sent, r.total),
                        };
                        view! {
                            <li data-testid="recovery" data-status=r.status.clone()>
                                {state}<span class="muted">" · since "<time datetime=iso(r.since_ms / 1000)>{utc_ms(r.since_ms)}</time></span>
                            </li>
                        }
                    }).collect_view()}
                </ul>
            })}
            <h3>"Attempts"</h3>
            <p class="muted">"Every delivery attempt, newest first; a retry keeps the message id."</p>
            <AttemptTable attempts endpoint_id=id replay/>
        </section>
    }
}

#[component]
fn AttemptTable(attempts: Vec<AttemptView>, endpoint_id: String, replay: ServerAction<ReplayWebhookMessage>) -> impl IntoView {
    if attempts.is_empty() {
        return view! { <p class="empty" data-testid="no-attempts">"No attempts yet. Send a test event to see one."</p> }.into_any();
    }
    view! {
        <table class="table stack-on-phone" data-testid="attempts">
            <thead><tr>
                <th scope="col">"Time"</th><th scope="col">"Message"</th><th scope="col">"Event type"</th><th scope="col">"Status"</th>
                <th scope="col">"Outcome"</th><th scope="col">"Duration"</th><th scope="col">"Error"</th><th scope="col"><span class="visually-hidden">"Action"</span></th>
            </tr></thead>
            <tbody>
                {attempts.into_iter().map(|a| {
                    let AttemptView { attempt: a, event_type } = a;
                    let label = format!("Replay {}", a.message_id);
                    let (message_id, endpoint_id) = (a.message_id.clone(), endpoint_id.clone());
                    let outcome_class = match a.outcome.as_str() {
                        "delivered" => "badge badge-good",
                        "failed" => "badge badge-bad",
                        _ => "badge",
                    };
                    view! {
                        <tr data-testid="attempt-row">
                            <td data-label="Time"><time datetime=iso(a.at_ms / 1000)>{utc_ms(a.at_ms)}</time></td>
                            <td data-label="Message"><code>{a.message_id.clone()}</code>{(a.attempt > 1).then(|| format!(" (attempt {})", a.attempt))}</td>
                            <td data-label="Event type">{event_type.unwrap_or_else(|| "—".into())}</td>
                            <td data-label="Status" data-testid="attempt-status">{a.status_code.map(|c| c.to_string()).unwrap_or_else(|| "—".into())}</td>
                            <td data-label="Outcome"><span class=outcome_class data-testid="attempt-outcome">{a.outcome}</span></td>
                            <td data-label="Duration">{duration_ms(a.duration_ms)}</td>
                            <td data-label="Error">{a.error.unwrap_or_default()}</td>
                            <td>
                                <ActionForm action=replay>
                                    <input type="hidden" name="message_id" value=message_id/>
                                    <input type="hidden" name="endpoint_id" value=endpoint_id/>
                                    <button type="submit" class="btn btn-secondary btn-small" aria-label=label>"Replay"</button>
                                </ActionForm>
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}
