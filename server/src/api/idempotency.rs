//! `Idempotency-Key` on POSTs that create things: the first answer to a key is stored (24 hours) and
//! given again, with `Idempotency-Replayed: true`, to a retry with the same key and the same request;
//! the same key with a different request is a 422, and a retry while the first is still running a 409.
//! Keys are per user. 5xx answers are not kept, so a retry after a failure really retries.
//!
//! Some answers carry a secret (a new endpoint's `whsec_` signing secret), and a retry must get it
//! again or the client has an endpoint whose secret it never saw. So every stored answer is sealed with
//! the key that seals endpoint secrets (`hooks.secret_keys`, AES-256-GCM, the owner and key as associated
//! data): the table never holds a secret in clear, and a replay opens it. Without a sealing key (only
//! possible outside dev and production, which both have one) an answer is not kept at all.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::future::Future;

use super::{ApiError, Caller};
use crate::now_ms;
use crate::AppState;

pub const HEADER: &str = "idempotency-key";
/// Stored answers, pruned by age (`retention.idempotency_secs`, default a day): a retry after that is
/// a new request.
pub const RETAINED: &[db::Prunable] =
    &[db::Prunable { table: "api_idempotency", key: "(owner, idem_key)", older_than: "created_ms < $1", age: "created_ms", in_secs: false }];
const MAX_STORED_BODY: usize = 256 * 1024;

/// The key, if the request has one; a malformed key is refused.
pub fn key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(HEADER) else { return Ok(None) };
    let k = v.to_str().ok().map(str::trim).filter(|k| !k.is_empty() && k.len() <= 255 && k.chars().all(|c| c.is_ascii_graphic()));
    k.map(|k| Some(k.to_string())).ok_or_else(|| ApiError::invalid("Idempotency-Key", "1 to 255 printable ASCII characters"))
}

/// Runs `create` at most once per (caller, key, request): see the module docs.
pub async fn once<F, Fut>(state: &AppState, caller: &Caller, headers: &HeaderMap, route: &str, body: &[u8], create: F) -> Response
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Response>,
{
    let key = match key(headers) {
        Ok(Some(k)) => k,
        Ok(None) => return create().await,
        Err(e) => return e.into_response(),
    };
    let hash = {
        let mut h = Sha256::new();
        h.update(route.as_bytes());
        h.update([0]);
        h.update(body);
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD_NO_PAD, h.finalize())
    };
    let owner = caller.owner();
    let claimed = sqlx::query("INSERT INTO api_idempotency (owner, idem_key, request_hash, status, body, created_ms) VALUES ($1, $2, $3, 0, '', $4)")
        .bind(owner)
        .bind(&key)
        .bind(&hash)
        .bind(now_ms())
        .execute(&state.pool)
        .await;
    match claimed {
        Ok(_) => {}
        Err(e) if db::is_unique_violation(&e) => return replay(state, owner, &key, &hash).await,
        Err(e) => return contract::Problem::internal(format!("idempotency claim: {e}")).into_response(),
    }

    let res = create().await;
    let (parts, body) = res.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_STORED_BODY).await {
        Ok(b) => b,
        Err(e) => {
            forget(state, owner, &key).await;
            return contract::Problem::internal(format!("idempotency body: {e}")).into_response();
        }
    };
    let sealed = sealer(state).filter(hooks::Sealer::has_keys).map(|s| s.seal(&associated_data(owner, &key), &String::from_utf8_lossy(&bytes)));
    if parts.status.is_server_error() || sealed.is_none() {
        forget(state, owner, &key).await;
    } else {
        let stored = sqlx::query("UPDATE api_idempotency SET status = $1, body = $2 WHERE owner = $3 AND idem_key = $4")
            .bind(parts.status.as_u16() as i64)
            .bind(sealed)
            .bind(owner)
            .bind(&key)
            .execute(&state.pool)
            .await;
        if let Err(e) = stored {
            tracing::warn!(error = %e, "could not store an idempotent answer");
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The sealer of `hooks.secret_keys`; `None` (logged) if a key is malformed, which start-up refuses anyway.
fn sealer(state: &AppState) -> Option<hooks::Sealer> {
    hooks::Sealer::new(&state.settings.hooks.secret_keys).map_err(|e| tracing::error!(error = %e, "idempotency: sealing keys")).ok()
}

/// Binds a sealed answer to its owner and key: copied onto another row, it does not open.
fn associated_data(owner: &str, key: &str) -> String {
    format!("idempotency\0{owner}\0{key}")
}

async fn replay(state: &AppState, owner: &str, key: &str, hash: &str) -> Response {
    let row: Result<Option<(String, i64, String)>, _> =
        sqlx::query_as("SELECT request_hash, status, body FROM api_idempotency WHERE owner = $1 AND idem_key = $2")
            .bind(owner)
            .bind(key)
            .fetch_optional(&state.pool)
            .await;
    match row {
        Ok(Some((stored_hash, _, _))) if stored_hash != hash => {
            contract::Problem::new(contract::Kind::Invalid, "idempotency_key_reused", "This Idempotency-Key was used for a different request.")
                .into_response()
        }
        Ok(Some((_, 0, _))) => {
            contract::Problem::new(contract::Kind::Conflict, "conflict", "A request with this Idempotency-Key is still in progress.").into_response()
        }
        Ok(Some((_, status, stored))) => {
            // Rows from before sealing are opened as they are (and a migration dropped any with a secret).
            let body = match sealer(state).map(|s| s.open(&associated_data(owner, key), &stored)) {
                Some(Ok(body)) => body,
                _ => {
                    tracing::warn!("a stored idempotent answer does not open (its sealing key is gone)");
                    return contract::Problem::new(
                        contract::Kind::Conflict,
                        "idempotency_answer_lost",
                        "The answer to this Idempotency-Key can no longer be read: check whether the first request took effect before retrying with a new key.",
                    )
                    .into_response();
                }
            };
            let status = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK);
            let mut res = (status, body).into_response();
            let h = res.headers_mut();
            let ct = if status.is_success() { "application/json" } else { "application/problem+json" };
            h.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
            h.insert("idempotency-replayed", HeaderValue::from_static("true"));
            res
        }
        // Purged between the insert and now: tell the client to try again.
        Ok(None) => contract::Problem::new(contract::Kind::Conflict, "conflict", "Retry the request.").into_response(),
        Err(e) => contract::Problem::internal(format!("idempotency read: {e}")).into_response(),
    }
}

async fn forget(state: &AppState, owner: &str, key: &str) {
    let _ = sqlx::query("DELETE FROM api_idempotency WHERE owner = $1 AND idem_key = $2").bind(owner).bind(key).execute(&state.pool).await;
}
