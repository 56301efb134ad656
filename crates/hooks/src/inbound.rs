//! Webhooks in (`/api/v1/inbound/{source}`): Standard Webhooks verification with the source's
//! configured secrets (notify's [`SigningKey`], the same code that signs ours), a timestamp tolerance
//! against replays, and dedup on `webhook-id`.
//!
//! A repeated `webhook-id` with a valid signature is answered as [`Inbound::Duplicate`] (the server
//! answers 200 and does nothing): the sender is most likely retrying because our first answer was lost,
//! and an error would make it retry until it gives up on us. Only verified requests are recorded, so a
//! forger cannot burn ids.

use serde::Serialize;
use std::collections::HashMap;

use crate::config::InboundConfig;
use crate::error::HooksError;
use crate::now_ms;
use notify::signature::{verify_with_any, SignatureError, SigningKey, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};

pub const MAX_WEBHOOK_ID_LEN: usize = 255;

/// A verified, first-seen webhook.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InboundEvent {
    pub source: String,
    pub webhook_id: String,
    /// The sender's `webhook-timestamp` (unix seconds).
    pub timestamp: i64,
    pub payload: serde_json::Value,
    /// The workflow configured for this source, to be triggered by the caller.
    pub workflow: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Accepted(InboundEvent),
    /// Verified, but this `webhook-id` was accepted before: do nothing, answer 2xx.
    Duplicate {
        source: String,
        webhook_id: String,
    },
}

struct Source {
    keys: Vec<SigningKey>,
    workflow: Option<String>,
}

pub struct InboundVerifier {
    pool: sqlx::AnyPool,
    sources: HashMap<String, Source>,
    tolerance_secs: u64,
    max_body_bytes: usize,
}

impl std::fmt::Debug for InboundVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundVerifier").field("sources", &self.sources.keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

impl InboundVerifier {
    /// Fails (422, naming the setting) on a source without a secret or with a malformed one.
    pub fn new(pool: sqlx::AnyPool, cfg: &InboundConfig) -> Result<Self, HooksError> {
        let mut sources = HashMap::new();
        let mut errors = vec![];
        for (name, s) in &cfg.sources {
            let field = format!("hooks.inbound.sources.{name}.secrets");
            let keys: Vec<SigningKey> = s.secrets.iter().filter_map(|k| SigningKey::from_secret(k.expose()).ok()).collect();
            if s.secrets.is_empty() {
                errors.push(crate::FieldError::new(field, "at least one whsec_ secret is needed"));
            } else if keys.len() != s.secrets.len() {
                errors.push(crate::FieldError::new(field, "must be whsec_ followed by base64"));
            }
            sources.insert(name.clone(), Source { keys, workflow: s.workflow.clone() });
        }
        if !errors.is_empty() {
            return Err(HooksError::Invalid(errors));
        }
        Ok(Self { pool, sources, tolerance_secs: cfg.tolerance_secs, max_body_bytes: cfg.max_body_bytes })
    }

    /// Verifies one request to `/api/v1/inbound/{source}` at `now` (unix seconds) and records its id.
    /// Errors: unknown source 404; body too large 413; missing or ill-formed headers or a non-JSON body
    /// 400; a timestamp outside the tolerance, either way, 401 `stale_timestamp`; no matching signature
    /// 401 `invalid_signature`.
    pub async fn receive(&self, source: &str, headers: &http::HeaderMap, body: &[u8], now: i64) -> Result<Inbound, HooksError> {
        let event = self.verify(source, headers, body, now)?;
        let mut conn = self.pool.acquire().await?;
        Ok(if self.claim(&mut conn, &event, body).await? {
            Inbound::Accepted(event)
        } else {
            Inbound::Duplicate { source: event.source, webhook_id: event.webhook_id }
        })
    }

    /// [`Self::receive`]'s checks, without recording anything: pair with [`Self::claim`] on the
    /// transaction that carries out the webhook's effect, so a failure leaves the id unclaimed for the
    /// sender's retry.
    pub fn verify(&self, source: &str, headers: &http::HeaderMap, body: &[u8], now: i64) -> Result<InboundEvent, HooksError> {
        let src = self.sources.get(source).ok_or(HooksError::UnknownSource)?;
        if body.len() > self.max_body_bytes {
            return Err(HooksError::TooLarge);
        }
        let checked = check_request(&src.keys, headers, body, now, self.tolerance_secs)?;
        Ok(InboundEvent {
            source: source.to_string(),
            webhook_id: checked.webhook_id,
            timestamp: checked.timestamp,
            payload: checked.payload,
            workflow: src.workflow.clone(),
        })
    }

    /// Records a verified webhook's id on `conn` (a transaction, typically): `false` if it was recorded
    /// before (a duplicate: do nothing). Of two concurrent copies, the second waits for the first's
    /// transaction and then finds the id taken, or claims it if that transaction rolled back.
    pub async fn claim(&self, conn: &mut sqlx::AnyConnection, event: &InboundEvent, body: &[u8]) -> Result<bool, HooksError> {
        let r = sqlx::query(
            "INSERT INTO inbound_webhooks (source, webhook_id, webhook_timestamp, received_ms, payload) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (source, webhook_id) DO NOTHING",
        )
        .bind(&event.source)
        .bind(&event.webhook_id)
        .bind(event.timestamp)
        .bind(now_ms())
        .bind(String::from_utf8_lossy(body).into_owned())
        .execute(&mut *conn)
        .await?;
        Ok(r.rows_affected() == 1)
    }
}

/// What [`check_request`] found in a request whose signature verified.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedRequest {
    pub webhook_id: String,
    /// The sender's `webhook-timestamp` (unix seconds).
    pub timestamp: i64,
    pub payload: serde_json::Value,
}

/// Everything [`InboundVerifier::receive`] checks before it records the id, without a database: the
/// three headers (present, plain text, not empty once trimmed; an id of at most [`MAX_WEBHOOK_ID_LEN`]
/// bytes without spaces or control characters), the timestamp's tolerance, a signature by any of `keys`,
/// and a JSON body. Errors are the ones `receive` answers with.
pub fn check_request(
    keys: &[SigningKey],
    headers: &http::HeaderMap,
    body: &[u8],
    now: i64,
    tolerance_secs: u64,
) -> Result<CheckedRequest, HooksError> {
    let header = |name: &str| -> Result<&str, HooksError> {
        let v = headers.get(name).ok_or_else(|| HooksError::BadRequest(format!("The {name} header is missing.")))?;
        let v = v.to_str().map_err(|_| HooksError::BadRequest(format!("The {name} header is not plain text.")))?.trim();
        if v.is_empty() {
            return Err(HooksError::BadRequest(format!("The {name} header is empty.")));
        }
        Ok(v)
    };
    let (id, ts, sig) = (header(HEADER_ID)?, header(HEADER_TIMESTAMP)?, header(HEADER_SIGNATURE)?);
    if id.len() > MAX_WEBHOOK_ID_LEN || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(HooksError::BadRequest(format!("The {HEADER_ID} header is not a valid id.")));
    }
    match verify_with_any(keys, id, ts, sig, body, now, tolerance_secs) {
        Ok(()) => {}
        Err(SignatureError::BadTimestamp) => return Err(HooksError::BadRequest(format!("The {HEADER_TIMESTAMP} header is not a unix timestamp."))),
        Err(SignatureError::TimestampOutOfTolerance) => return Err(HooksError::StaleTimestamp),
        Err(SignatureError::NoMatch | SignatureError::BadSecret) => return Err(HooksError::BadSignature),
    }
    let timestamp: i64 = ts.parse().unwrap_or_default();
    let payload: serde_json::Value = serde_json::from_slice(body).map_err(|_| HooksError::BadRequest("The body is not JSON.".into()))?;
    Ok(CheckedRequest { webhook_id: id.to_string(), timestamp, payload })
}
