//! Secrets that are shown once (a new API token, a webhook endpoint's signing secret) for form posts
//! made without JavaScript. With JavaScript the secret comes back in the server function's answer and
//! lives only in the page's action; a plain form post is answered with a redirect back to the page
//! instead, so the secret rides along in a short-lived HttpOnly cookie that the page's next render
//! takes and clears. The server keeps nothing.

use contract::Problem;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShownOnce {
    /// Which page shows it: `token`, `endpoint` or `rotate:<endpoint id>`.
    pub kind: String,
    pub title: String,
    pub secret: String,
    /// Where to go next (the new endpoint's page).
    pub link: Option<String>,
}

/// The cookie's name over plain HTTP (dev mode)…
pub const COOKIE: &str = "shown-once";
/// …and over HTTPS, where the `__Host-` prefix makes the browser insist on `Secure`, `Path=/` and no
/// `Domain`, so no sibling subdomain or plain-HTTP page can plant or overwrite it.
pub const SECURE_COOKIE: &str = "__Host-shown-once";

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;
    use http::header::{HeaderValue, ACCEPT, COOKIE as COOKIE_HEADER, ORIGIN, SET_COOKIE};

    fn parts() -> Option<http::request::Parts> {
        use_context::<http::request::Parts>()
    }

    /// A form the browser posted itself (no JavaScript): it will be redirected back to the page.
    pub fn is_plain_form_post() -> bool {
        parts().and_then(|p| p.headers.get(ACCEPT).and_then(|v| v.to_str().ok()).map(|v| v.contains("text/html"))).unwrap_or(false)
    }

    /// The server's cookies are `Secure` (`session.cookie_secure`); a request that arrived over HTTPS
    /// (nginx's `X-Forwarded-Proto`, an `https://` Origin) gets the secure cookie even without it.
    fn secure() -> bool {
        crate::api::ssr::services().is_some_and(|s| s.secure_cookies)
            || parts().is_some_and(|p| {
                p.headers.get("x-forwarded-proto").is_some_and(|v| v == "https")
                    || p.headers.get(ORIGIN).and_then(|v| v.to_str().ok()).is_some_and(|o| o.starts_with("https://"))
            })
    }

    /// `secure`: the `__Host-` cookie with `Secure`; else the plain-HTTP one.
    fn set_cookie(value: &str, max_age: u32, secure: bool) {
        let Some(res) = use_context::<leptos_axum::ResponseOptions>() else { return };
        let cookie = if secure {
            format!("{SECURE_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}; Secure")
        } else {
            format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}")
        };
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.append_header(SET_COOKIE, v);
        }
    }

    /// Hex keeps any secret and title cookie-safe without another dependency.
    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Option<Vec<u8>> {
        if !s.len().is_multiple_of(2) {
            return None;
        }
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
    }

    /// For a plain form post only: hands the secret to the page the browser is sent back to.
    pub fn stash(once: &ShownOnce) {
        if is_plain_form_post() {
            if let Ok(json) = serde_json::to_vec(once) {
                set_cookie(&hex(&json), 60, secure());
            }
        }
    }

    /// The stashed secret for this page, if any; the cookie is cleared either way once read.
    pub fn take(kind: &str) -> Option<ShownOnce> {
        let p = parts()?;
        let cookie = |name: &str| {
            p.headers
                .get_all(COOKIE_HEADER)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .find_map(|c| c.trim().split_once('=').filter(|(n, _)| *n == name).map(|(_, v)| v.to_string()))
        };
        // Whichever the post set: a page load carries no Origin, so it cannot tell by itself.
        let (raw, secure) = match cookie(SECURE_COOKIE) {
            Some(raw) => (raw, true),
            None => (cookie(COOKIE)?, false),
        };
        let once: ShownOnce = serde_json::from_slice(&unhex(&raw)?).ok()?;
        if once.kind != kind {
            return None;
        }
        set_cookie("", 0, secure);
        Some(once)
    }
}

/// The secret a plain form post left for the page `kind`, once.
#[server]
pub async fn take_shown_once(kind: String) -> Result<Option<ShownOnce>, Problem> {
    Ok(ssr::take(&kind))
}
