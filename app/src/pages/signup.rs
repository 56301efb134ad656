//! `/signup`: create an account, when the server offers it (`signup.enabled`). Like the login: a plain
//! form posting to the server's `/signup` route (a redirect to `/success` on success, this page
//! re-rendered with the message under its field otherwise), sent with fetch once hydrated. When sign-up
//! is off the page says so with a 404, and the route refuses posts.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_navigate;

use crate::account_api::{load_form_page, FormPageState};
use crate::components::AuthVersion;
use crate::enhance::{enhanced_submit, FormReply};
use crate::pages::new_password::{focus_later, FieldMessage, PasswordField};

pub struct SignupRoute;

#[leptos_router::lazy_route]
impl leptos_router::LazyRoute for SignupRoute {
    fn data() -> Self {
        SignupRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <SignupPage/> }.into_any()
    }
}

#[component]
pub fn SignupPage() -> impl IntoView {
    let state = Resource::new(|| (), |_| load_form_page());
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let state = state.await.unwrap_or_default();
                if state.signup_offered { view! { <SignupForm state/> }.into_any() } else { view! { <SignupTurnedOff/> }.into_any() }
            })}
        </Suspense>
    }
}

#[component]
fn SignupTurnedOff() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        res.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Sign-up is turned off"/>
        <section class="card narrow" data-testid="signup-off">
            <h1>"Sign-up is turned off"</h1>
            <p>"This server does not let people create their own accounts. Ask whoever runs it for one, or "<a href="/login">"sign in"</a>"."</p>
        </section>
    }
}

#[component]
fn SignupForm(state: FormPageState) -> impl IntoView {
    let failure = state.failure.unwrap_or_default();
    let username_error = RwSignal::new(failure.for_field("username"));
    let password_error = RwSignal::new(failure.for_field("password"));
    let general = RwSignal::new(failure.general().filter(|m| !m.is_empty()));
    let username = failure.username.clone();
    let pending = RwSignal::new(false);
    let navigate = use_navigate();
    let auth_version = use_context::<AuthVersion>();

    let on_submit = enhanced_submit(pending, move |reply: FormReply| match reply {
        FormReply { redirect: Some(to), .. } => {
            if let Some(v) = auth_version {
                v.bump();
            }
            navigate(&to, Default::default());
        }
        FormReply { error, field, .. } => {
            let message = error.unwrap_or_else(|| "Something went wrong. Please try again.".into());
            username_error.set(None);
            password_error.set(None);
            general.set(None);
            match field.as_deref() {
                Some("username") => {
                    username_error.set(Some(message));
                    focus_later("username".into());
                }
                Some("password") => {
                    password_error.set(Some(message));
                    focus_later("password".into());
                }
                _ => {
                    general.set(Some(message));
                    focus_later("signup-error".into());
                }
            }
        }
    });

    view! {
        <Title text="Create an account"/>
        <section class="card auth-card" aria-labelledby="signup-title">
            <h1 id="signup-title">"Create an account"</h1>
            <p class="muted">"Choose a username and a password."</p>
            <div class="alert alert-error" id="signup-error" role="alert" tabindex="-1" hidden=move || general.get().is_none()>
                {move || general.get().unwrap_or_default()}
            </div>
            <form method="post" action="/signup" class="stack" on:submit=on_submit>
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
                        value=username
                        aria-invalid=move || username_error.get().map(|_| "true")
                        aria-describedby="username-error"
                    />
                    <FieldMessage id="username-error".to_string() message=username_error.into()/>
                </div>
                <PasswordField id="password" label="Password" new=true hint=true toggle=true error=password_error.into()/>
                <button type="submit" class="btn btn-primary btn-block" disabled=move || pending.get()>
                    {move || if pending.get() { "Creating your account…" } else { "Create account" }}
                </button>
            </form>
            <p class="footnote">"Already have an account? "<a href="/login">"Sign in"</a></p>
            <p class="footnote">"Paste from your password manager is fine. A passphrase of a few words works well."</p>
        </section>
    }
}
