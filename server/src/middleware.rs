//! Cross-cutting request handling: security headers, cross-site request refusal, loading the signed-in
//! user, and sending anonymous visitors of protected pages to the login.

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use std::net::{IpAddr, SocketAddr};
use tower_sessions::Session;

use crate::error::AppError;
use crate::state::AppState;

/// `X-Instance: <name>` on every answer when `instance_name` is set, so an operator (and the tests of the
/// two-instance deployment) can tell which instance behind nginx answered. Off by default.
pub async fn instance_header(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    if let Some(name) = state.settings.instance_name.as_deref().filter(|n| !n.is_empty()) {
        if let Ok(v) = HeaderValue::from_str(name) {
            res.headers_mut().insert("x-instance", v);
        }
    }
    res
}

/// Headers every response carries. HTML pages set their own CSP with a per-response nonce (see
/// `app::shell`); anything else gets a policy that allows nothing.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let is_static = req.uri().path().starts_with("/pkg/");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("permissions-policy", HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"));
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        // A static script's CSP is what a Web Worker started from it runs under: the crypto lab's
        // worker imports its module and compiles WASM from this site, nothing else.
        let csp = if is_static {
            "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'"
        } else {
            "default-src 'none'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        };
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    }
    // Pages and API answers depend on who is signed in: never store them. Hashed assets are cached
    // by nginx's rules instead, but a missing asset's 404 is not cacheable either.
    if (!is_static || !res.status().is_success()) && !res.headers().contains_key(header::CACHE_CONTROL) {
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Server functions answer every error 500 unless told otherwise. A refusal tells its status through
/// `app::api::ssr::ERROR_STATUS_HEADER`; arguments that do not decode (the function never ran) are
/// the caller's fault: 400. Only a genuine failure stays 500. Redirects (plain form posts) are left as
/// they are.
pub async fn server_fn_status(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let wanted = res.headers_mut().remove(app::api::ssr::ERROR_STATUS_HEADER);
    if res.status() != StatusCode::INTERNAL_SERVER_ERROR || !res.headers().contains_key("serverfnerror") {
        return res;
    }
    if let Some(status) = wanted.and_then(|v| v.to_str().ok()?.parse::<u16>().ok()).and_then(|c| StatusCode::from_u16(c).ok()) {
        *res.status_mut() = status;
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    if [&b"Args|"[..], b"MissingArg|", b"Deserialization|"].iter().any(|p| bytes.starts_with(p)) {
        parts.status = StatusCode::BAD_REQUEST;
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// Refuses state-changing requests that did not come from this site, on top of `SameSite=Strict`.
/// Browsers send `Sec-Fetch-Site`; older ones at least send `Origin`, which must name this host (or
/// a configured origin). A request with neither is refused too.
pub async fn refuse_cross_site(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    // No ambient credential to abuse: inbound webhooks are signed, and a request carrying a bearer
    // token (which no browser adds by itself, and which the API then uses instead of the cookie).
    // An API request without a cookie has no session to ride on either: the API answers it (401).
    let path = req.uri().path();
    let api = path.starts_with("/api/v1/");
    if path.starts_with("/api/v1/inbound/")
        || (api && (req.headers().contains_key(header::AUTHORIZATION) || !req.headers().contains_key(header::COOKIE)))
    {
        return next.run(req).await;
    }
    match is_same_site(req.headers(), &state.settings.allowed_origins) {
        Ok(()) => next.run(req).await,
        Err(why) if api => {
            crate::api::ApiError::new(StatusCode::FORBIDDEN, "cross_site", format!("Cross-site request refused: {why}.")).into_response()
        }
        Err(why) => AppError::Status(StatusCode::FORBIDDEN, format!("Cross-site request refused: {why}.")).into_response(),
    }
}

pub fn is_same_site(headers: &HeaderMap, allowed_origins: &[String]) -> Result<(), &'static str> {
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => Ok(()),
            _ => Err("it came from another site"),
        };
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).ok_or("no Origin or Sec-Fetch-Site header")?;
    if allowed_origins.iter().any(|o| o.trim_end_matches('/') == origin) {
        return Ok(());
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).ok_or("no Host header")?;
    let origin_host = url::Url::parse(origin)
        .ok()
        .and_then(|u| u.host_str().map(|h| match u.port() { Some(p) => format!("{h}:{p}"), None => h.to_string() }))
        .ok_or("malformed Origin")?;
    if origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err("its Origin does not match this site")
    }
}

/// Puts the signed-in user (if any, and still valid) into the request's extensions.
pub async fn load_signed_in(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if let Some(session) = req.extensions().get::<Session>().cloned() {
        match state.sessions.current(&session).await {
            Ok(Some(signed)) => {
                req.extensions_mut().insert(signed);
            }
            Ok(None) => {}
            Err(e) => return e.into_response(),
        }
    }
    next.run(req).await
}

/// Sends anonymous visitors of a protected page to `/login?next=<the page>`.
pub async fn require_sign_in(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let protected = app::PROTECTED_PAGES.iter().any(|p| path == *p || path.starts_with(&format!("{p}/")));
    if protected && req.extensions().get::<auth::sessions::SignedIn>().is_none() {
        let target = req.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or(path);
        return Redirect::to(&login_path(target)).into_response();
    }
    next.run(req).await
}

/// `/login?next=<target>`, with `target` percent-encoded.
pub fn login_path(target: &str) -> String {
    let next: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
    format!("/login?next={next}")
}

/// The client's address: the peer, or nginx's `X-Real-IP` when the peer is a trusted local proxy.
pub fn client_ip(headers: &HeaderMap, peer: Option<&ConnectInfo<SocketAddr>>, trust_proxy: bool) -> Option<IpAddr> {
    let peer_ip = peer.map(|c| c.0.ip());
    if trust_proxy && peer_ip.is_none_or(|ip| ip.is_loopback()) {
        if let Some(ip) = headers.get("x-real-ip").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok()) {
            return Some(ip);
        }
    }
    peer_ip
}


/// tower-sessions builds its removal cookie (on logout or expiry) from the request's cookie, which has
/// no attributes; browsers ignore a `__Host-` cookie without `Secure`, so the stale cookie would stay.
/// This gives every session `Set-Cookie` the full set of attributes.
pub async fn complete_session_cookie_attributes(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let secure = state.settings.cookie_secure();
    let prefix = format!("{}=", crate::session_cookie_name(secure));
    let fixed: Vec<HeaderValue> = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| match v.to_str() {
            Ok(s) if s.starts_with(&prefix) => {
                let mut s = s.to_string();
                for (attr, text) in [("httponly", "; HttpOnly"), ("samesite", "; SameSite=Strict"), ("secure", "; Secure")] {
                    if (attr != "secure" || secure) && !s.to_ascii_lowercase().contains(attr) {
                        s.push_str(text);
                    }
                }
                HeaderValue::from_str(&s).unwrap_or_else(|_| v.clone())
            }
            _ => v.clone(),
        })
        .collect();
    res.headers_mut().remove(header::SET_COOKIE);
    for v in fixed {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn same_site_rules() {
        assert!(is_same_site(&headers(&[("sec-fetch-site", "same-origin")]), &[]).is_ok());
        assert!(is_same_site(&headers(&[("sec-fetch-site", "cross-site")]), &[]).is_err());
        assert!(is_same_site(&headers(&[("sec-fetch-site", "same-site")]), &[]).is_err());
        assert!(is_same_site(&headers(&[("origin", "https://app.example:8443"), ("host", "app.example:8443")]), &[]).is_ok());
        assert!(is_same_site(&headers(&[("origin", "https://evil.example"), ("host", "app.example")]), &[]).is_err());
        assert!(is_same_site(&headers(&[("origin", "null"), ("host", "app.example")]), &[]).is_err());
        assert!(is_same_site(&headers(&[("host", "app.example")]), &[]).is_err());
        let allowed = vec!["https://public.example".to_string()];
        assert!(is_same_site(&headers(&[("origin", "https://public.example"), ("host", "10.0.0.5:3000")]), &allowed).is_ok());
    }

    #[test]
    fn real_ip_is_trusted_only_from_a_local_proxy() {
        let h = headers(&[("x-real-ip", "203.0.113.9")]);
        let local = ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 5000)));
        let remote = ConnectInfo(SocketAddr::from(([198, 51, 100, 1], 5000)));
        assert_eq!(client_ip(&h, Some(&local), true), Some("203.0.113.9".parse().unwrap()));
        assert_eq!(client_ip(&h, Some(&remote), true), Some("198.51.100.1".parse().unwrap()));
        assert_eq!(client_ip(&h, Some(&local), false), Some("127.0.0.1".parse().unwrap()));
    }
}
