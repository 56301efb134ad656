//! Progressive enhancement for plain HTML forms. Every form in the app posts to a real server route and
//! works without JavaScript; once hydrated, [`submit`] sends the same form with `fetch` and asks for JSON,
//! so the page can show the outcome inline instead of reloading.

use serde::Deserialize;

/// The JSON the form routes answer with when asked for it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct FormReply {
    #[serde(default)]
    pub redirect: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    /// The form field `error` is about; `None`: the form as a whole.
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub retry_after: Option<u64>,
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
    serde_json::from_str::<FormReply>(&text).unwrap_or_else(|_| {
        if resp.ok() {
            FormReply { redirect: None, error: None, field: None, retry_after: None }
        } else {
            failed("Something went wrong. Please try again.")
        }
    })
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
