//! Progressive enhancement for plain HTML forms. Every form in the app posts to a real server route and
//! works without JavaScript; once hydrated, [`submit`] sends the same form with `fetch` and asks for JSON,
//! so the page can show the outcome inline instead of reloading.

use crate::api::Problem;
use serde::Deserialize;

/// What a form route answered, as a page shows it: where to go next, or what was refused.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FormReply {
    pub redirect: Option<String>,
    pub error: Option<String>,
    /// The form input `error` is about, by its `name`; `None`: the form as a whole.
    pub field: Option<String>,
    pub retry_after: Option<u64>,
}

impl FormReply {
    /// Reads an answer's body: `{"redirect": …}` on success, a problem on refusal (its first
    /// `errors` entry names the input; every form here refuses one input at a time).
    pub fn parse(body: &str) -> Option<FormReply> {
        #[derive(Deserialize)]
        struct Redirect {
            redirect: String,
        }
        if let Ok(p) = serde_json::from_str::<Problem>(body) {
            return Some(FormReply::from(p));
        }
        serde_json::from_str::<Redirect>(body).ok().map(|r| FormReply { redirect: Some(r.redirect), ..Default::default() })
    }
}

impl From<Problem> for FormReply {
    fn from(p: Problem) -> Self {
        let first = p.errors.first();
        FormReply {
            redirect: None,
            error: Some(first.map_or_else(|| p.detail.clone(), |f| f.message.clone())),
            field: first.map(|f| f.field.clone()),
            retry_after: p.retry_after,
        }
    }
}

/// Posts `form` (its action, its fields) as `application/x-www-form-urlencoded` and decodes the reply.
/// Network failures become an error reply with a plain message.
#[cfg(feature = "hydrate")]
pub async fn submit(form: web_sys::HtmlFormElement) -> FormReply {
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;

    fn failed(msg: &str) -> FormReply {
        FormReply { redirect: None, error: Some(msg.to_string()), field: None, retry_after: None }
    }

    let Ok(data) = web_sys::FormData::new_with_form(&form) else { return failed("Could not read the form.") };
    let Ok(params) = web_sys::UrlSearchParams::new_with_str_sequence_sequence(&data) else {
        return failed("Could not read the form.");
    };
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_credentials(web_sys::RequestCredentials::SameOrigin);
    let headers = web_sys::Headers::new().expect("headers");
    let _ = headers.set("Accept", "application/json");
    let _ = headers.set("Content-Type", "application/x-www-form-urlencoded");
    init.set_headers(&headers);
    init.set_body(&params.to_string().into());
    let Ok(request) = web_sys::Request::new_with_str_and_init(&form.action(), &init) else {
        return failed("Could not send the form.");
    };
    let window = web_sys::window().expect("window");
    let Ok(resp) = JsFuture::from(window.fetch_with_request(&request)).await else {
        return failed("The server could not be reached. Check your connection and try again.");
    };
    let resp: web_sys::Response = resp.unchecked_into();
    let text = match resp.text() {
        Ok(p) => JsFuture::from(p).await.ok().and_then(|t| t.as_string()).unwrap_or_default(),
        Err(_) => String::new(),
    };
    FormReply::parse(&text).unwrap_or_else(|| if resp.ok() { FormReply::default() } else { failed("Something went wrong. Please try again.") })
}

/// A submit handler that, once hydrated, sends the form with [`submit`] and hands the reply to `then`.
/// Before hydration (or without JavaScript) the browser posts the form itself.
pub fn enhanced_submit(
    pending: leptos::prelude::RwSignal<bool>,
    then: impl Fn(FormReply) + Clone + 'static,
) -> impl FnMut(leptos::ev::SubmitEvent) + 'static {
    move |ev: leptos::ev::SubmitEvent| {
        #[cfg(feature = "hydrate")]
        {
            use leptos::prelude::*;
            use wasm_bindgen::JsCast;
            ev.prevent_default();
            if pending.get_untracked() {
                return;
            }
            let Some(form) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlFormElement>().ok()) else {
                return;
            };
            pending.set(true);
            let then = then.clone();
            leptos::task::spawn_local(async move {
                let reply = submit(form).await;
                pending.set(false);
                then(reply);
            });
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = (&ev, &pending, &then);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_its_input_by_the_problems_errors_and_a_success_its_redirect() {
        let p = Problem::invalid("confirm_password", "The two new passwords are not the same.").with_retry_after(3);
        let reply = FormReply::parse(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(reply.field.as_deref(), Some("confirm_password"));
        assert_eq!((reply.error.as_deref(), reply.retry_after), (Some("The two new passwords are not the same."), Some(3)));
        let whole = FormReply::parse(&serde_json::to_string(&Problem::unauthorized("Invalid username or password.")).unwrap()).unwrap();
        assert_eq!((whole.field, whole.error.as_deref()), (None, Some("Invalid username or password.")));
        assert_eq!(FormReply::parse(r#"{"redirect":"/success"}"#).unwrap().redirect.as_deref(), Some("/success"));
        assert_eq!(FormReply::parse("not json"), None);
    }
}
