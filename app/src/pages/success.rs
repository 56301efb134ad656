//! `/success`: who is signed in, when this session started and ends, and the user's other sessions with
//! buttons to end them. The server only renders it for a signed-in user (others are redirected to login).

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::{session_overview, Overview, SessionInfo};
use crate::enhance::{enhanced_submit, FormReply};
use crate::time_fmt::{iso, utc};

#[component]
pub fn SuccessPage() -> impl IntoView {
    let version = RwSignal::new(0u32);
    let overview = Resource::new(move || version.get(), |_| session_overview());
    view! {
        <Title text="Signed in"/>
        <Transition fallback=|| view! { <p class="muted">"Loading your session…"</p> }>
            {move || Suspend::new(async move {
                match overview.await {
                    Ok(Some(o)) => view! { <SessionDetails overview=o version/> }.into_any(),
                    Ok(None) => view! {
                        <section class="card narrow">
                            <h1>"Your session has ended"</h1>
                            <p><a href="/login?next=/success">"Sign in again"</a></p>
                        </section>
                    }.into_any(),
                    Err(_) => view! {
                        <p class="alert alert-error" role="alert">"Could not load your session. Reload the page to try again."</p>
                    }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn SessionDetails(overview: Overview, version: RwSignal<u32>) -> impl IntoView {
    let Overview { username, current, absolute_expires_at, idle_expires_at, idle_timeout_secs, others } = overview;
    let message = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let after = move |reply: FormReply| {
        message.set(reply.error);
        version.update(|v| *v += 1);
    };
    let has_others = !others.is_empty();
    let idle_minutes = (idle_timeout_secs / 60).max(1);
    view! {
        <h1>"You are signed in"</h1>
        <section class="card" aria-labelledby="this-session">
            <h2 id="this-session">"This session"</h2>
            <dl class="facts">
                <dt>"Username"</dt>
                <dd data-testid="username">{username}</dd>
                <dt>"Signed in at"</dt>
                <dd data-testid="signed-in-at"><time datetime=iso(current.created_at)>{utc(current.created_at)}</time></dd>
                <dt>"Expires if inactive at"</dt>
                <dd data-testid="idle-expiry">
                    <time datetime=iso(idle_expires_at)>{utc(idle_expires_at)}</time>
                    <span class="muted">{format!(" (after {idle_minutes} minutes without activity)")}</span>
                </dd>
                <dt>"Absolute expiry"</dt>
                <dd data-testid="absolute-expiry"><time datetime=iso(absolute_expires_at)>{utc(absolute_expires_at)}</time></dd>
            </dl>
        </section>
        <Capabilities/>
        <section class="card" aria-labelledby="other-sessions">
            <div class="card-header">
                <h2 id="other-sessions">"Your other sessions"</h2>
                <Show when=move || has_others>
                    <form method="post" action="/sessions/revoke-others" on:submit=enhanced_submit(pending, after)>
                        <button type="submit" class="btn btn-danger" data-testid="end-all-others">"End all other sessions"</button>
                    </form>
                </Show>
            </div>
            <p class="alert alert-error" role="alert" hidden=move || message.get().is_none()>{move || message.get()}</p>
            {if others.is_empty() {
                view! { <p class="empty" data-testid="no-other-sessions">"No other active sessions."</p> }.into_any()
            } else {
                view! {
                    <table class="table stack-on-phone" data-testid="other-sessions">
                        <thead>
                            <tr>
                                <th scope="col">"Device"</th>
                                <th scope="col">"IP address"</th>
                                <th scope="col">"Signed in"</th>
                                <th scope="col">"Last active"</th>
                                <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                            </tr>
                        </thead>
                        <tbody>
                            {others.into_iter().map(|s| view! { <SessionRow session=s pending after/> }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

#[component]
fn SessionRow(session: SessionInfo, pending: RwSignal<bool>, after: impl Fn(FormReply) + Clone + Send + Sync + 'static) -> impl IntoView {
    let device = device_summary(&session.user_agent);
    let label = format!("End the session on {device}");
    view! {
        <tr>
            <td data-label="Device">{device}</td>
            <td data-label="IP address">{session.client_ip}</td>
            <td data-label="Signed in"><time datetime=iso(session.created_at)>{utc(session.created_at)}</time></td>
            <td data-label="Last active"><time datetime=iso(session.last_seen_at)>{utc(session.last_seen_at)}</time></td>
            <td>
                <form method="post" action="/sessions/revoke" on:submit=enhanced_submit(pending, after)>
                    <input type="hidden" name="handle" value=session.handle/>
                    <button type="submit" class="btn btn-secondary btn-small" aria-label=label>"End"</button>
                </form>
            </td>
        </tr>
    }
}

/// What the product does, each with the seed question it answers. The success page doubles as the
/// landing page after login.
#[component]
fn Capabilities() -> impl IntoView {
    // (name, what it is, seed question, link once the page exists)
    const CAPABILITIES: &[(&str, &str, &str, Option<&str>)] = &[
        ("Secure login and sessions", "Argon2id passwords, rotating server-side sessions you can list and end.", "B.1", Some("/success")),
        ("Crypto lab", "Hashing and encryption in your browser (WASM), cross-checked by the server.", "A.3", Some("/crypto")),
        ("Integration protocols", "REST API, signed webhooks in and out, orchestrated workflows.", "A.1", None),
        ("Notification streaming", "A million notifications an hour: queue, retries, dead letters, live dashboard.", "A.2", Some("/notifications")),
    ];
    view! {
        <section class="card" aria-labelledby="capabilities">
            <h2 id="capabilities">"What you can do here"</h2>
            <ul class="capabilities">
                {CAPABILITIES.iter().map(|(name, what, seed, link)| view! {
                    <li>
                        {match link {
                            Some(href) => view! { <a href=*href class="capability-name">{*name}</a> }.into_any(),
                            None => view! { <span class="capability-name">{*name}</span> <span class="badge">"Coming soon"</span> }.into_any(),
                        }}
                        <span class="badge badge-neutral">{format!("Seed {seed}")}</span>
                        <p class="muted">{*what}</p>
                    </li>
                }).collect_view()}
            </ul>
        </section>
    }
}

/// "Chrome on Linux" from a user agent string; good enough to tell one's own devices apart.
pub fn device_summary(ua: &str) -> String {
    let browser = [("Edg/", "Edge"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari"), ("curl/", "curl"), ("python", "Python")]
        .iter()
        .find(|(needle, _)| ua.contains(needle))
        .map(|(_, name)| *name);
    let os = [("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"), ("Windows", "Windows"), ("Mac OS X", "macOS"), ("Linux", "Linux")]
        .iter()
        .find(|(needle, _)| ua.contains(needle))
        .map(|(_, name)| *name);
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b.to_string(),
        (None, Some(o)) => format!("Browser on {o}"),
        (None, None) if ua.is_empty() => "Unknown device".to_string(),
        (None, None) => ua.chars().take(40).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::device_summary;

    #[test]
    fn summarises_common_agents() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36";
        assert_eq!(device_summary(chrome), "Chrome on Linux");
        assert_eq!(device_summary("curl/8.1"), "curl");
        assert_eq!(device_summary(""), "Unknown device");
    }
}
