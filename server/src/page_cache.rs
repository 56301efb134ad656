//! Signed-in pages whose every byte follows from the session: rendered once per session and
//! generation of the user's sessions (`server::session_cache`), then replayed with a fresh CSP nonce.
//!
//! A full Leptos render of a hydratable page costs about three times the app's floor (`/healthz`);
//! replaying the bytes it made costs one map lookup and one copy. The page is replayed only while
//! everything it shows is unchanged:
//! - it is one of [`SESSION_PAGES`], which show nothing but the user, this session, the user's
//!   sessions and the session policy (every change to which bumps the generation);
//! - the request's session was vouched for at the generation the page was rendered at, by the
//!   session cache, which also enforces the idle and absolute limits before this layer runs (so a
//!   revoked, expired or signed-out session never reaches a replay);
//! - it is younger than [`crate::session_cache::MAX_AGE`] and no session it lists has expired since;
//! - a plain `GET` without a query (a query changes what a page shows: `?changed=…`).
//!
//! Each replay gets its own nonce: the rendered body is kept cut at its nonce, and the pieces are
//! joined with a new one, which the replay's `Content-Security-Policy` names. A page is never shared
//! between sessions, and its size bounds what is kept ([`TOTAL_BYTES`]).

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tower_sessions::session::Id;
use tower_sessions::Session;

use crate::session_cache::SessionCache;
use crate::state::AppState;

/// The pages drawn only from the signed-in session. A page that shows anything else (notifications,
/// workflows, tokens, webhooks) must not be listed: nothing would tell this cache it changed.
pub const SESSION_PAGES: &[&str] = &["/success", "/settings/password"];

/// A rendered page larger than this is served but not kept.
const MAX_PAGE_BYTES: usize = 256 * 1024;
/// Rendered pages kept at most, in bytes (a `/success` page is about 12 KB).
const TOTAL_BYTES: u64 = 64 << 20;

/// One rendered page, cut at its nonce.
struct Rendered {
    user_id: i64,
    generation: u64,
    at: Instant,
    /// Unix seconds at which a session the page lists expires (it would no longer be listed).
    until: i64,
    headers: HeaderMap,
    pieces: Vec<Bytes>,
}

impl Rendered {
    fn len(&self) -> usize {
        self.pieces.iter().map(Bytes::len).sum()
    }
}

#[derive(Clone)]
struct Weight;

impl quick_cache::Weighter<(Id, u8), Arc<Rendered>> for Weight {
    fn weight(&self, _: &(Id, u8), page: &Arc<Rendered>) -> u64 {
        page.len() as u64 + 512
    }
}

/// See the module documentation. Cheap to clone (shared).
#[derive(Clone)]
pub struct PageCache {
    pages: Arc<quick_cache::sync::Cache<(Id, u8), Arc<Rendered>, Weight>>,
    /// Pages replayed, and rendered (`/metrics`).
    hits: Arc<AtomicU64>,
    misses: Arc<AtomicU64>,
}

impl Default for PageCache {
    fn default() -> Self {
        Self { pages: Arc::new(quick_cache::sync::Cache::with_weighter(10_000, TOTAL_BYTES, Weight)), hits: Arc::default(), misses: Arc::default() }
    }
}

impl PageCache {
    /// Forgets the pages of session `id` (it ended here).
    pub fn forget(&self, id: &Id) {
        for slot in 0..SESSION_PAGES.len() {
            self.pages.remove(&(*id, slot as u8));
        }
    }

    /// (replayed, rendered) since start.
    pub fn counts(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }

    /// The counters in Prometheus' text format.
    pub fn render_metrics(&self) -> String {
        let (hits, misses) = self.counts();
        format!(
            "# HELP page_cache_requests_total Requests for session-only pages by how they were answered.\n\
             # TYPE page_cache_requests_total counter\n\
             page_cache_requests_total{{answered=\"replayed\"}} {hits}\n\
             page_cache_requests_total{{answered=\"rendered\"}} {misses}\n"
        )
    }
}

/// The nonce a page's `Content-Security-Policy` allows scripts by.
fn nonce_of(headers: &HeaderMap) -> Option<&str> {
    let csp = headers.get(header::CONTENT_SECURITY_POLICY)?.to_str().ok()?;
    let rest = &csp[csp.find("'nonce-")? + "'nonce-".len()..];
    let nonce = &rest[..rest.find('\'')?];
    (nonce.len() >= 16).then_some(nonce)
}

/// `body` cut at every occurrence of `nonce` (which a 128-bit random value only has where the
/// render put it).
fn cut_at(body: &Bytes, nonce: &str) -> Vec<Bytes> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for i in memchr::memmem::find_iter(body, nonce.as_bytes()) {
        pieces.push(body.slice(start..i));
        start = i + nonce.len();
    }
    pieces.push(body.slice(start..));
    pieces
}

/// `pieces` joined with `nonce`: the page as if rendered under that nonce.
fn joined(pieces: &[Bytes], nonce: &str) -> Bytes {
    let len = pieces.iter().map(Bytes::len).sum::<usize>() + nonce.len() * pieces.len().saturating_sub(1);
    let mut out = Vec::with_capacity(len);
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(nonce.as_bytes());
        }
        out.extend_from_slice(piece);
    }
    out.into()
}

/// Serves [`SESSION_PAGES`] from the cache when it can vouch for them, else renders and keeps them.
/// Runs after `load_signed_in` and `require_sign_in`.
pub async fn session_pages(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some((key, user_id, generation)) = cacheable(&req) else {
        return next.run(req).await;
    };
    let cache = &state.sessions.cache.pages;
    let now = auth::now_unix();
    if let Some(page) = cache.pages.get(&key) {
        if page.user_id == user_id && SessionCache::usable(page.at, page.generation, generation) && now < page.until {
            cache.hits.fetch_add(1, Ordering::Relaxed);
            return replay(&page);
        }
    }
    cache.misses.fetch_add(1, Ordering::Relaxed);
    // The user's sessions at this generation, read before the render: the render's own read is then
    // answered from memory (the same rows; it cannot fail where this did not), and the page is kept
    // only until the first session it lists expires (the list leaves it out from then on). A page
    // rendered while the sessions could not be read shows an error: it is not kept.
    let Ok(rows) = state.sessions.sessions_of(user_id, Some(generation)).await else {
        return next.run(req).await;
    };
    let until = rows.iter().map(|r| r.expires_at).min().unwrap_or(i64::MAX);
    let res = next.run(req).await;
    let Some(nonce) = nonce_of(res.headers()).map(str::to_owned) else {
        return res;
    };
    if res.status() != StatusCode::OK || res.headers().contains_key(header::SET_COOKIE) {
        return res;
    }
    let (parts, body) = res.into_parts();
    // Our own render, of a page whose size the session quota bounds: read whole.
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        // The render failed midway: it cannot be sent whole any more.
        Err(e) => return contract::Problem::internal(format!("rendering {}: {e}", SESSION_PAGES[key.1 as usize])).into_response(),
    };
    if bytes.len() > MAX_PAGE_BYTES {
        return Response::from_parts(parts, Body::from(bytes));
    }
    let mut headers = parts.headers.clone();
    headers.remove(header::CONTENT_SECURITY_POLICY);
    headers.remove(header::CONTENT_LENGTH);
    let page = Rendered { user_id, generation, at: Instant::now(), until, headers, pieces: cut_at(&bytes, &nonce) };
    cache.pages.insert(key, Arc::new(page));
    Response::from_parts(parts, Body::from(bytes))
}

/// The cache key of a request this layer may answer, with its user and the generation its session was
/// vouched for at; `None` for anything else.
fn cacheable(req: &Request) -> Option<((Id, u8), i64, u64)> {
    if req.method() != Method::GET || req.uri().query().is_some() {
        return None;
    }
    let slot = SESSION_PAGES.iter().position(|p| *p == req.uri().path())?;
    let generation = req.extensions().get::<app::api::ssr::SessionGeneration>()?.0;
    let user_id = req.extensions().get::<auth::sessions::SignedIn>()?.user_id;
    let id = req.extensions().get::<Session>()?.id()?;
    Some(((id, slot as u8), user_id, generation))
}

fn replay(page: &Rendered) -> Response {
    let nonce = leptos::nonce::Nonce::new();
    let mut res = Response::new(Body::from(joined(&page.pieces, &nonce)));
    *res.headers_mut() = page.headers.clone();
    if let Ok(csp) = HeaderValue::from_str(&app::content_security_policy(&nonce)) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_cut_at_its_nonce_and_joined_with_another() {
        let body = Bytes::from_static(b"<script nonce=\"N0nceN0nceN0nce12\">a</script><p>N0nce</p><script nonce=\"N0nceN0nceN0nce12\"></script>");
        let pieces = cut_at(&body, "N0nceN0nceN0nce12");
        assert_eq!(pieces.len(), 3);
        assert_eq!(joined(&pieces, "N0nceN0nceN0nce12"), body, "joined with its own nonce it is the page");
        let other = joined(&pieces, "fresh-fresh-fresh");
        assert_eq!(&other[..], b"<script nonce=\"fresh-fresh-fresh\">a</script><p>N0nce</p><script nonce=\"fresh-fresh-fresh\"></script>".as_slice());
        assert_eq!(cut_at(&Bytes::from_static(b"no nonce"), "N0nceN0nceN0nce12").len(), 1);
    }

    #[test]
    fn the_nonce_is_read_from_the_policy() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_str(&app::content_security_policy("abcdefghijklmnopqrstuv")).unwrap());
        assert_eq!(nonce_of(&h), Some("abcdefghijklmnopqrstuv"));
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'"));
        assert_eq!(nonce_of(&h), None, "a policy without a nonce: nothing to replay under");
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("script-src 'nonce-ab'"));
        assert_eq!(nonce_of(&h), None, "too short to be unguessable, or to be found only where it was put");
    }
}
