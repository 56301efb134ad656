//! The Leptos application: the HTML shell, the routes, and the pages. Pages stay thin: they render
//! what a server function returns and post forms to the server; the rules live in `crates/`.

pub mod account_api;
pub mod api;
mod assets;
pub mod components;
pub mod crypto_api;
#[cfg(feature = "hydrate")]
pub mod crypto_wasm;
pub mod enhance;
pub mod notify_api;
pub mod pages;
pub mod shown_once;
pub mod time_fmt;
pub mod tokens_api;
pub mod webhooks_api;
pub mod workflows_api;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path, Lazy, SsrMode,
};

// The post-login redirect rules: plain std in a module of their own, so fuzz/ can compile that one file
// (`#[path]`) without building Leptos.
mod redirect;
pub use redirect::{safe_next, DEFAULT_AFTER_LOGIN};

/// Pages that need a signed-in user. The server redirects anonymous visitors to
/// `/login?next=<path>` before rendering any of them.
pub const PROTECTED_PAGES: &[&str] = &["/success", "/notifications", "/settings/tokens", "/settings/webhooks", "/settings/password", "/workflows"];

/// The HTML document around the app. On the server it also picks this response's CSP nonce.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        let nonce = leptos::nonce::Nonce::new();
        if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
            if let Ok(v) = http::HeaderValue::from_str(&content_security_policy(&nonce)) {
                res.insert_header(http::header::CONTENT_SECURITY_POLICY, v);
            }
        }
        provide_context(nonce);
    }
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <assets::AssetTags options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// Only our own scripts (by nonce) and WASM compilation; nothing may frame us.
#[cfg(feature = "ssr")]
pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // `<body data-hydrated>` (the end-to-end tests wait for it) is set by the frontend crate once the
    // whole page, lazy routes included, is hydrated.
    view! {
        <Title formatter=|t: String| if t.is_empty() { "Implementation-Eng".to_string() } else { format!("{t} · Implementation-Eng") }/>
        <Router>
            <components::Header/>
            <main id="main" class="page">
                <Routes fallback=pages::not_found::NotFound>
                    // Async: the whole page is rendered before it is sent, so it is complete without
                    // JavaScript (streamed Suspense chunks need a script to swap them in). The crypto
                    // lab and the dashboard are lazy routes: their code loads when they are opened.
                    <Route path=path!("/login") view=pages::login::LoginPage ssr=SsrMode::Async/>
                    <Route path=path!("/success") view=pages::success::SuccessPage ssr=SsrMode::Async/>
                    <Route path=path!("/crypto") view={Lazy::<pages::crypto::CryptoRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/notifications") view={Lazy::<pages::notifications::NotificationsRoute>::new()} ssr=SsrMode::Async/>
                    // Issue 5's settings and workflow pages: lazy too, each its own chunk.
                    <Route path=path!("/settings/tokens") view={Lazy::<pages::settings::TokensRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/settings/webhooks") view={Lazy::<pages::settings::WebhooksRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/settings/webhooks/:id") view={Lazy::<pages::settings::EndpointRoute>::new()} ssr=SsrMode::Async/>
                    // Sign-up (when the server offers it) and password change: lazy as well.
                    <Route path=path!("/signup") view={Lazy::<pages::signup::SignupRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/settings/password") view={Lazy::<pages::password::PasswordRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/workflows") view={Lazy::<pages::workflows::WorkflowsRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/workflows/runs/:id") view={Lazy::<pages::workflows::RunRoute>::new()} ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}
