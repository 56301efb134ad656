//! Pieces the sign-up and password-change pages share: a password input with a show/hide toggle and,
//! for a new password, the live length hint of the policy in `auth::policy` (ASVS 5.0: at least 8
//! characters, 15 or more recommended, at most 128, no composition rules). There is no `maxlength`: a
//! browser would silently cut a pasted password; the server refuses an over-long one with a message.

use leptos::prelude::*;

/// The policy's numbers as the page shows them (the server's `PasswordPolicy::ASVS` enforces them).
pub const MIN_CHARS: usize = 8;
pub const RECOMMENDED_CHARS: usize = 15;
pub const MAX_CHARS: usize = 128;

/// What the hint under a new password says for `len` characters (code points, as the server counts).
pub fn length_hint(len: usize) -> String {
    match len {
        0 => format!("{RECOMMENDED_CHARS} or more characters recommended (at least {MIN_CHARS}). Spaces and any other characters are allowed."),
        n if n < MIN_CHARS => format!("{n} so far: at least {MIN_CHARS} needed, {RECOMMENDED_CHARS} or more characters recommended."),
        n if n < RECOMMENDED_CHARS => format!("{n} characters: {RECOMMENDED_CHARS} or more characters recommended."),
        n if n <= MAX_CHARS => format!("{n} characters: a good length."),
        n => format!("{n} characters: at most {MAX_CHARS} are accepted."),
    }
}

/// A message under a field, tied to it by `aria-describedby`.
#[component]
pub fn FieldMessage(id: String, message: Signal<Option<String>>) -> impl IntoView {
    view! { <p class="field-error" id=id hidden=move || message.get().is_none()>{move || message.get()}</p> }
}

/// A labelled password input; its `id` is also its form field name. `new` means
/// `autocomplete="new-password"` (else `current-password`); `hint` adds the live length hint; `toggle`
/// adds a Show/Hide button, which appears once the page is hydrated (it needs JavaScript).
#[component]
pub fn PasswordField(
    id: &'static str,
    label: &'static str,
    #[prop(optional)] new: bool,
    #[prop(optional)] hint: bool,
    #[prop(optional)] toggle: bool,
    error: Signal<Option<String>>,
) -> impl IntoView {
    let shown = RwSignal::new(false);
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let len = RwSignal::new(0usize);
    let error_id = format!("{id}-error");
    let hint_id = format!("{id}-hint");
    let described = if hint { format!("{hint_id} {error_id}") } else { error_id.clone() };
    let autocomplete = if new { "new-password" } else { "current-password" };
    view! {
        <div class="field">
            <label for=id>{label}</label>
            <div class="with-button">
                <input
                    id=id
                    name=id
                    type=move || if shown.get() { "text" } else { "password" }
                    autocomplete=autocomplete
                    autocapitalize="none"
                    spellcheck="false"
                    required
                    aria-invalid=move || error.get().map(|_| "true")
                    aria-describedby=described
                    on:input=move |ev| len.set(event_target_value(&ev).chars().count())
                />
                {toggle.then(|| view! {
                    <button
                        type="button"
                        class="btn btn-secondary"
                        aria-controls=id
                        aria-pressed=move || if shown.get() { "true" } else { "false" }
                        aria-label=move || if shown.get() { format!("Hide {}", label.to_lowercase()) } else { format!("Show {}", label.to_lowercase()) }
                        hidden=move || !hydrated.get()
                        data-testid=format!("{id}-toggle")
                        on:click=move |_| shown.update(|s| *s = !*s)
                    >
                        {move || if shown.get() { "Hide" } else { "Show" }}
                    </button>
                })}
            </div>
            {hint.then(|| view! { <p class="footnote field-hint" id=hint_id aria-live="polite">{move || length_hint(len.get())}</p> })}
            <FieldMessage id=error_id message=error/>
        </div>
    }
}

/// Moves keyboard focus to the element with `id` on the next frame (after the message it is about
/// is shown), so keyboard and screen-reader users land on what needs fixing.
pub fn focus_later(id: String) {
    #[cfg(feature = "hydrate")]
    request_animation_frame(move || {
        use wasm_bindgen::JsCast;
        let el = web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id(&id));
        if let Some(el) = el.and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok()) {
            let _ = el.focus();
        }
    });
    #[cfg(not(feature = "hydrate"))]
    let _ = id;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_follows_the_policy() {
        assert!(length_hint(0).contains("15 or more characters recommended"));
        assert!(length_hint(7).contains("at least 8 needed"));
        assert!(length_hint(8).contains("15 or more characters recommended"));
        assert!(length_hint(15).contains("good length"));
        assert!(length_hint(128).contains("good length"));
        assert!(length_hint(129).contains("at most 128"));
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn the_numbers_are_the_servers() {
        let p = auth::PasswordPolicy::ASVS;
        assert_eq!((MIN_CHARS, RECOMMENDED_CHARS, MAX_CHARS), (p.min_chars, p.recommended_chars, p.max_chars));
    }
}
