//! `/settings/password` (signed in): change the password. A plain form posting to the server's
//! `/settings/password` route, sent with fetch once hydrated. The server ends every other session of the
//! account and gives this one a new id; it answers with a redirect back here, `?changed=<sessions ended>`,
//! which this page turns into the confirmation.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};

use crate::account_api::{load_form_page, FormPageState};
use crate::enhance::{enhanced_submit, FormReply};
use crate::pages::new_password::{focus_later, PasswordField};
use crate::pages::settings::SettingsTabs;

pub struct PasswordRoute;

#[leptos_router::lazy_route]
impl leptos_router::LazyRoute for PasswordRoute {
    fn data() -> Self {
        PasswordRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <PasswordPage/> }.into_any()
    }
}

/// A password change revokes every API token of the account (whoever made the change necessary may
/// have minted one): the page says so before and after.
pub const TOKENS_REVOKED: &str = "Your API tokens were revoked: create new ones for your scripts.";

/// The confirmation for `?changed=<n>`; nothing for anything else.
pub fn changed_message(changed: Option<&str>) -> Option<String> {
    let n: u32 = changed?.parse().ok()?;
    let sessions = match n {
        0 => "Password changed. You had no other sessions; this one stays signed in.".to_string(),
        1 => "Password changed. 1 other session was signed out; this one stays signed in.".to_string(),
        n => format!("Password changed. {n} other sessions were signed out; this one stays signed in."),
    };
    Some(format!("{sessions} {TOKENS_REVOKED}"))
}

#[component]
pub fn PasswordPage() -> impl IntoView {
    let state = Resource::new(|| (), |_| load_form_page());
    view! {
        <Title text="Password"/>
        <h1>"Settings"</h1>
        <SettingsTabs current="/settings/password"/>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move { view! { <PasswordForm state=state.await.unwrap_or_default()/> } })}
        </Suspense>
    }
}

const FIELDS: [&str; 3] = ["current_password", "new_password", "confirm_password"];

#[component]
fn PasswordForm(state: FormPageState) -> impl IntoView {
    let query = use_query_map();
    let changed = Memo::new(move |_| changed_message(query.read().get("changed").as_deref()));
    let failure = state.failure.unwrap_or_default();
    let errors = FIELDS.map(|f| RwSignal::new(failure.for_field(f)));
    let general = RwSignal::new(failure.general().filter(|m| !m.is_empty()));
    let pending = RwSignal::new(false);
    let form = NodeRef::<leptos::html::Form>::new();
    let navigate = use_navigate();

    let on_submit = enhanced_submit(pending, move |reply: FormReply| {
        for e in errors {
            e.set(None);
        }
        general.set(None);
        match reply {
            FormReply { redirect: Some(to), .. } => {
                #[cfg(feature = "hydrate")]
                if let Some(f) = form.get_untracked() {
                    f.reset();
                }
                navigate(&to, Default::default());
            }
            FormReply { error, field, .. } => {
                let message = error.unwrap_or_else(|| "Something went wrong. Please try again.".into());
                match FIELDS.iter().position(|f| field.as_deref() == Some(*f)) {
                    Some(i) => {
                        errors[i].set(Some(message));
                        focus_later(FIELDS[i].to_string());
                    }
                    None => {
                        general.set(Some(message));
                        focus_later("password-form-error".into());
                    }
                }
            }
        }
    });

    view! {
        <p class="alert alert-success" role="status" data-testid="password-changed" hidden=move || changed.get().is_none()>
            {move || changed.get().unwrap_or_default()}
        </p>
        <section class="card" aria-labelledby="password-heading">
            <h2 id="password-heading">"Change password"</h2>
            <p class="muted">"Your other sessions are signed out and your API tokens revoked when it changes; this one stays signed in."</p>
            <div class="alert alert-error" id="password-form-error" role="alert" tabindex="-1" hidden=move || general.get().is_none()>
                {move || general.get().unwrap_or_default()}
            </div>
            <form method="post" action="/settings/password" class="stack narrow-form" node_ref=form on:submit=on_submit>
                <PasswordField id="current_password" label="Current password" toggle=true error=errors[0].into()/>
                <PasswordField id="new_password" label="New password" new=true hint=true toggle=true error=errors[1].into()/>
                <PasswordField id="confirm_password" label="Confirm new password" new=true error=errors[2].into()/>
                <div>
                    <button type="submit" class="btn btn-primary" data-testid="change-password" disabled=move || pending.get()>
                        {move || if pending.get() { "Changing…" } else { "Change password" }}
                    </button>
                </div>
            </form>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::{changed_message, TOKENS_REVOKED};

    #[test]
    fn only_a_number_makes_a_confirmation() {
        assert_eq!(
            changed_message(Some("2")).unwrap(),
            format!("Password changed. 2 other sessions were signed out; this one stays signed in. {TOKENS_REVOKED}")
        );
        assert!(changed_message(Some("1")).unwrap().contains("1 other session was"));
        assert!(changed_message(Some("0")).unwrap().contains("no other sessions"));
        assert!(changed_message(Some("0")).unwrap().ends_with(TOKENS_REVOKED), "the page says the tokens are gone");
        assert_eq!(changed_message(Some("<script>")), None);
        assert_eq!(changed_message(None), None);
    }
}
