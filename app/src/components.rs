//! Pieces every page shares: the header with the signed-in user and the sign-out button.

use leptos::prelude::*;

use crate::api::whoami;

/// Bumped after anything that changes who is signed in, so the header refetches.
#[derive(Clone, Copy)]
pub struct AuthVersion(pub RwSignal<u32>);

impl AuthVersion {
    pub fn bump(&self) {
        self.0.update(|v| *v += 1);
    }
}

/// The main navigation: every page a person may want to reach.
pub const NAV: &[(&str, &str)] = &[
    ("/success", "Account"),
    ("/crypto", "Crypto lab"),
    ("/notifications", "Notifications"),
    ("/workflows", "Workflows"),
    ("/settings/tokens", "Settings"),
];

/// Is `path` in the section `href` opens? (`/settings/webhooks/ep_1` is under Settings.)
fn in_section(path: &str, href: &str) -> bool {
    let section = if href.starts_with("/settings/") { "/settings" } else { href };
    path == section || path == href || path.starts_with(&format!("{section}/"))
}

#[component]
pub fn Header() -> impl IntoView {
    let version = AuthVersion(RwSignal::new(0));
    provide_context(version);
    let who = Resource::new(move || version.0.get(), |_| whoami());
    let location = leptos_router::hooks::use_location();
    view! {
        <a class="skip-link" href="#main">"Skip to content"</a>
        <header class="app-header">
            <a class="brand" href="/">"Implementation-Eng"</a>
            <nav class="main-nav" aria-label="Main">
                {NAV.iter().map(|(href, label)| {
                    let current = move || in_section(&location.pathname.get(), href).then_some("page");
                    view! { <a href=*href aria-current=current>{*label}</a> }
                }).collect_view()}
            </nav>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match who.await {
                        Ok(Some(name)) => view! {
                            <div class="account">
                                <span class="who" data-testid="header-user">{name}</span>
                                <form method="post" action="/logout">
                                    <button type="submit" class="btn btn-secondary">"Sign out"</button>
                                </form>
                            </div>
                        }.into_any(),
                        _ => view! { <a class="btn btn-secondary" href="/login">"Sign in"</a> }.into_any(),
                    }
                })}
            </Transition>
        </header>
    }
}
