//! Cross-cutting request handling: security headers, cross-site request refusal, loading the signed-in
//! user, and sending anonymous visitors of protected pages to the login.

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use std::net::{IpAddr, SocketAddr};
use tower_sessions::Session;

pub use app::api::ssr::ClientAddr;
use hooks::ssrf::Network;

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

/// The error contract's last mile, around every route:
/// - an internal failure is logged here, once, with the request's method and path, under the
///   `error_id` its problem shows the client (handlers and errors never log it themselves);
/// - a server function's error (always 500 from Leptos, its body a problem) gets the problem's status,
///   `application/problem+json` and `Retry-After`; a plain form post's redirect is left as it is;
/// - an error answered in plain text by a layer (a body over its limit, a wrong method) becomes a
///   problem, and so does any error for a client that asked for JSON or called `/api/`.
pub async fn problems(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let wants_json = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"));
    let api = path.starts_with("/api/");
    let mut res = next.run(req).await;
    let log = |f: contract::InternalFailure| {
        tracing::error!(error_id = %f.error_id, %method, %path, detail = %f.detail, "internal error");
    };
    if let Some(f) = res.extensions_mut().remove::<contract::InternalFailure>() {
        log(f);
    }
    if let Some(location) = res.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).filter(|l| l.contains("__err")) {
        contract::pending::take_mentioned_in(location).into_iter().for_each(log);
        return res;
    }
    if res.headers().contains_key("serverfnerror") {
        let (mut parts, body) = res.into_parts();
        let bytes = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
        contract::pending::take_mentioned_in(&String::from_utf8_lossy(&bytes)).into_iter().for_each(log);
        if let Ok(problem) = serde_json::from_slice::<contract::Problem>(&bytes) {
            parts.status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
            if let Some(secs) = problem.retry_after {
                parts.headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
        }
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    }
    let status = res.status();
    let content_type = res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let plain = content_type.is_empty() || content_type.starts_with("text/plain");
    if !(status.is_client_error() || status.is_server_error())
        || content_type.starts_with("application/problem+json")
        || !(plain || wants_json || api)
    {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.map(|b| String::from_utf8_lossy(&b).trim().to_string()).unwrap_or_default();
    let kind = contract::Kind::of_status(status.as_u16());
    let detail = match kind {
        contract::Kind::Internal => contract::INTERNAL_MESSAGE.to_string(),
        _ if text.is_empty() || !plain => status.canonical_reason().unwrap_or("Error").to_string(),
        _ => text.chars().take(200).collect(),
    };
    let code = if status == StatusCode::METHOD_NOT_ALLOWED { "method_not_allowed" } else { kind.code() };
    let mut problem = contract::Problem::new(kind, code, detail);
    // Keep the layer's own status (405, 408, …) even where the kind is only its nearest.
    problem.status = status.as_u16();
    problem.title = status.canonical_reason().unwrap_or("Error").to_string();
    let mut out = problem.into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
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
        Err(why) => contract::Problem::new(contract::Kind::Forbidden, "cross_site", format!("Cross-site request refused: {why}.")).into_response(),
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
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        })
        .ok_or("malformed Origin")?;
    if origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err("its Origin does not match this site")
    }
}

/// Puts the signed-in user (if any, and still valid) into the request's extensions, with the session
/// generation it was checked at (when known).
pub async fn load_signed_in(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if let Some(session) = req.extensions().get::<Session>().cloned() {
        match state.sessions.current(&session).await {
            Ok(Some((signed, generation))) => {
                req.extensions_mut().insert(signed);
                if let Some(g) = generation {
                    req.extensions_mut().insert(app::api::ssr::SessionGeneration(g));
                }
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

/// The client's address, derived in this one place for every use (login throttle, sign-up and crypto
/// lab limits, the session list): the connection's peer, unless the peer is a trusted proxy
/// (`trusted_proxies`); then the address it names: `X-Real-IP` (what nginx sets), else the right-most
/// address in `X-Forwarded-For`, else in `Forwarded: for=`, that is not itself a trusted proxy. From any
/// other peer these headers are the client's own claim and are ignored, so nobody picks the address
/// their limits are counted under. Without peer information nothing is trusted.
pub fn client_addr(headers: &HeaderMap, peer: Option<IpAddr>, trusted: &[Network]) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    if let Some(ip) = headers.get("x-real-ip").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<IpAddr>().ok()) {
        return Some(ip.to_canonical());
    }
    // Each proxy appends the address it saw: walking back from the right, the first one not vouched
    // for is the client (or the nearest hop that could have made the rest up).
    let chains = [forwarded_chain(headers, "x-forwarded-for", parse_xff_item), forwarded_chain(headers, "forwarded", parse_forwarded_item)];
    if let Some(chain) = chains.into_iter().flatten().find(|c| !c.is_empty()) {
        return Some(chain.iter().rev().find(|ip| !is_trusted(**ip)).copied().unwrap_or(chain[0]));
    }
    Some(peer)
}

/// Every address in every `name` header, in order; `None` when one of them does not parse (a
/// header that cannot be read whole is not believed in part).
fn forwarded_chain(headers: &HeaderMap, name: &str, item: fn(&str) -> Option<IpAddr>) -> Option<Vec<IpAddr>> {
    let mut chain = Vec::new();
    for value in headers.get_all(name) {
        for part in value.to_str().ok()?.split(',') {
            chain.push(item(part.trim())?.to_canonical());
        }
    }
    Some(chain)
}

fn parse_xff_item(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

/// One element of RFC 7239 `Forwarded`: `for=192.0.2.43;proto=https` or `for="[2001:db8::1]:4711"`.
fn parse_forwarded_item(element: &str) -> Option<IpAddr> {
    let value = element.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case("for").then(|| v.trim().trim_matches('"'))
    })?;
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    // An IPv4 address may carry a port; an unbracketed IPv6 address may not.
    value.parse().ok().or_else(|| value.rsplit_once(':').and_then(|(ip, _port)| ip.parse::<std::net::Ipv4Addr>().ok()).map(IpAddr::V4))
}

/// Puts the request's [`ClientAddr`] (see [`client_addr`]) into its extensions, where handlers and
/// server functions (`app::api::ssr::client_addr`) read it.
pub async fn client_address(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let ip = client_addr(req.headers(), peer, state.settings.trusted_proxies());
    req.extensions_mut().insert(ClientAddr(ip));
    next.run(req).await
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
    fn proxy_headers_are_believed_only_from_trusted_peers() {
        let loopback: Vec<Network> = vec!["127.0.0.1/32".parse().unwrap(), "::1/128".parse().unwrap()];
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let local = ip("127.0.0.1");
        let remote = ip("198.51.100.1");
        let h = headers(&[("x-real-ip", "203.0.113.9"), ("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(client_addr(&h, local, &loopback), ip("203.0.113.9"), "nginx's X-Real-IP first");
        assert_eq!(client_addr(&h, remote, &loopback), remote, "a stranger's headers are ignored");
        assert_eq!(client_addr(&h, local, &[]), local, "nothing trusted: the peer");
        assert_eq!(client_addr(&h, None, &loopback), None, "no peer: nothing trusted");
        // IPv4-mapped peers are the IPv4 address.
        assert_eq!(client_addr(&h, ip("::ffff:127.0.0.1"), &loopback), ip("203.0.113.9"));
        assert_eq!(client_addr(&h, ip("::ffff:198.51.100.1"), &loopback), remote);
        // X-Forwarded-For: the right-most address that is not a trusted proxy.
        let xff = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 127.0.0.1")]);
        assert_eq!(client_addr(&xff, local, &loopback), ip("203.0.113.9"));
        assert_eq!(client_addr(&headers(&[("x-forwarded-for", "127.0.0.1")]), local, &loopback), local);
        assert_eq!(client_addr(&headers(&[("x-forwarded-for", "junk, 1.2.3.4")]), local, &loopback), local, "unreadable: ignored");
        // Forwarded (RFC 7239), with quotes, brackets and ports.
        let fwd = headers(&[("forwarded", r#"for=6.6.6.6, for="[2001:db8::17]:4711";proto=https"#)]);
        assert_eq!(client_addr(&fwd, local, &loopback), ip("2001:db8::17"));
        let fwd = headers(&[("forwarded", "for=192.0.2.60:8080;proto=http;by=203.0.113.43")]);
        assert_eq!(client_addr(&fwd, local, &loopback), ip("192.0.2.60"));
        assert_eq!(client_addr(&headers(&[("forwarded", "for=unknown")]), local, &loopback), local);
    }

    /// What the `tracing` events of one test wrote (a current-thread runtime keeps them on this thread).
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    async fn through_problems(handler: axum::routing::MethodRouter) -> (Response, String, String) {
        use tower::ServiceExt;
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let app = axum::Router::new().route("/x", handler).layer(axum::middleware::from_fn(problems));
        let res = app.oneshot(Request::post("/x").body(axum::body::Body::empty()).unwrap()).await.unwrap();
        let (parts, body) = res.into_parts();
        let text = String::from_utf8(axum::body::to_bytes(body, 1 << 16).await.unwrap().to_vec()).unwrap();
        let logged = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        (Response::from_parts(parts, axum::body::Body::empty()), text, logged)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_internal_failure_is_logged_once_under_the_id_the_client_sees_and_its_detail_never_sent() {
        let (res, body, logged) =
            through_problems(axum::routing::post(|| async { contract::Problem::internal("disk full at /var/lib/secret") })).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let p: contract::Problem = serde_json::from_str(&body).unwrap();
        let id = p.error_id.expect("an error id for the client to quote");
        assert!(!body.contains("secret"), "{body}");
        assert_eq!(logged.matches("disk full at /var/lib/secret").count(), 1, "{logged}");
        assert!(logged.contains(&id) && logged.contains("/x"), "{logged}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_server_functions_problem_gets_its_status_and_its_internal_detail_is_logged() {
        use leptos::server_fn::error::FromServerFnError;
        let refusal = || async {
            let mut res = Response::new(axum::body::Body::from(contract::Problem::not_found("No such run.").ser()));
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            res.headers_mut().insert("serverfnerror", HeaderValue::from_static("/api/x"));
            res
        };
        let (res, body, _) = through_problems(axum::routing::post(refusal)).await;
        assert_eq!(
            (res.status(), &res.headers()[header::CONTENT_TYPE]),
            (StatusCode::NOT_FOUND, &HeaderValue::from_static("application/problem+json"))
        );
        assert!(body.contains("No such run."));

        let failure = || async {
            let mut res = Response::new(axum::body::Body::from(contract::Problem::internal("pool timed out at 10.0.0.7").ser()));
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            res.headers_mut().insert("serverfnerror", HeaderValue::from_static("/api/x"));
            res
        };
        let (res, body, logged) = through_problems(axum::routing::post(failure)).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let id = serde_json::from_str::<contract::Problem>(&body).unwrap().error_id.unwrap();
        assert!(!body.contains("10.0.0.7"), "{body}");
        assert_eq!(logged.matches("pool timed out at 10.0.0.7").count(), 1, "{logged}");
        assert!(logged.contains(&id), "{logged}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_plain_text_refusal_by_a_layer_becomes_a_problem() {
        let (res, body, _) = through_problems(axum::routing::post(|| async { (StatusCode::PAYLOAD_TOO_LARGE, "length limit exceeded") })).await;
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let p: contract::Problem = serde_json::from_str(&body).unwrap();
        assert_eq!((p.code.as_str(), p.detail.as_str()), ("payload_too_large", "length limit exceeded"));
    }
}
