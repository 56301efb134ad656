//! `/login`: a plain HTML form that posts to the server's `/login` route. Without JavaScript the server
//! answers with a redirect (success) or this page re-rendered with the error (failure); once hydrated the
//! same form is sent with fetch and the error is shown inline, without a reload.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};

use crate::api::LoginFailure;
use crate::components::AuthVersion;
use crate::enhance::{enhanced_submit, FormReply};
use crate::safe_next;

#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let next = Memo::new(move |_| safe_next(query.read().get("next").as_deref()));
    // Set only when the server re-renders this page after a failed plain form post.
    let failure = SharedValue::new(|| {
        #[cfg(feature = "ssr")]
        {
            use_context::<http::request::Parts>().and_then(|p| p.extensions.get::<LoginFailure>().cloned())
        }
        #[cfg(not(feature = "ssr"))]
        {
            None::<LoginFailure>
        }
    })
    .into_inner();
    // Whether to offer the sign-up link: the server's setting, shipped with the page.
    let signup_offered = SharedValue::new(|| {
        #[cfg(feature = "ssr")]
        {
            crate::account_api::ssr::signup_offered()
        }
        #[cfg(not(feature = "ssr"))]
        {
            false
        }
    })
    .into_inner();
    let error = RwSignal::new(failure.as_ref().map(|f| f.message.clone()));
    let username = failure.map(|f| f.username).unwrap_or_default();
    let pending = RwSignal::new(false);
    let error_box = NodeRef::<leptos::html::Div>::new();
    let navigate = use_navigate();
    let auth_version = use_context::<AuthVersion>();

    let on_submit = enhanced_submit(pending, move |reply: FormReply| match reply {
        FormReply { redirect: Some(to), .. } => {
            if let Some(v) = auth_version {
                v.bump();
            }
            navigate(&to, Default::default());
        }
        FormReply { error: message, .. } => {
            error.set(Some(message.unwrap_or_else(|| "Something went wrong. Please try again.".into())));
            // Move focus to the message so keyboard and screen-reader users land on it.
            request_animation_frame(move || {
                if let Some(el) = error_box.get_untracked() {
                    let _ = el.focus();
                }
            });
        }
    });

    view! {
        <Title text="Sign in"/>
        <section class="card auth-card" aria-labelledby="login-title">
            <h1 id="login-title">"Sign in"</h1>
            <p class="muted">"Use your account to continue."</p>
            <div
                class="alert alert-error"
                id="login-error"
                role="alert"
                tabindex="-1"
                node_ref=error_box
                hidden=move || error.get().is_none()
            >
                {move || error.get().unwrap_or_default()}
            </div>
            <form method="post" action="/login" class="stack" on:submit=on_submit>
                <input type="hidden" name="next" value=move || next.get()/>
                <div class="field">
                    <label for="username">"Username"</label>
                    <input
                        id="username"
                        name="username"
                        type="text"
                        autocomplete="username"
                        autocapitalize="none"
                        spellcheck="false"
                        required
                        maxlength="64"
                        value=username
                        aria-describedby="login-error"
                    />
                </div>
                <div class="field">
                    <label for="password">"Password"</label>
                    <input
                        id="password"
                        name="password"
                        type="password"
                        autocomplete="current-password"
                        required
                        aria-describedby="login-error"
                    />
                </div>
                <button type="submit" class="btn btn-primary btn-block" disabled=move || pending.get()>
                    {move || if pending.get() { "Signing in…" } else { "Sign in" }}
                </button>
            </form>
            <p class="footnote">"Too many attempts? Wait a moment and try again."</p>
            {signup_offered.then(|| view! {
                <p class="footnote">"No account yet? "<a href="/signup" data-testid="signup-link">"Create one"</a></p>
            })}
        </section>
    }
}
