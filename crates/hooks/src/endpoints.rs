//! The endpoint registry: what each owner registered, its `whsec_` secret (shown once, at creation and
//! at rotation) and its health. Every operation is scoped to an owner; someone else's endpoint is
//! "not found", never "forbidden", so ids do not leak.

use contract::Owner;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::{FieldError, HooksError};
use crate::{new_id, now_ms, page, Hooks, Page, PageRequest};
use notify::signature::SigningKey;

pub const MAX_URL_LEN: usize = 2048;
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// An endpoint as its owner sees it: the type every client reads (`contract::webhooks`).
pub use contract::webhooks::Endpoint;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewEndpoint {
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    /// Deliveries per second at most (1 to 10,000); absent: no limit of its own.
    pub rate_limit_per_sec: Option<u32>,
}

/// A partial update; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndpointUpdate {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// A new limit (1 to 10,000 a second), or 0 to remove it.
    pub rate_limit_per_sec: Option<u32>,
}

/// The most a rate limit may be, per second.
pub const MAX_RATE_LIMIT_PER_SEC: u32 = 10_000;

fn check_rate_limit(rate: Option<u32>, allow_zero: bool, errors: &mut Vec<FieldError>) -> Option<u32> {
    match rate {
        Some(0) if allow_zero => None,
        Some(n @ 1..=MAX_RATE_LIMIT_PER_SEC) => Some(n),
        None => None,
        Some(_) => {
            let low = if allow_zero { 0 } else { 1 };
            errors.push(FieldError::new("rate_limit_per_sec", format!("from {low} to {MAX_RATE_LIMIT_PER_SEC} a second")));
            None
        }
    }
}

/// The answer to a creation: the only time (with rotation) the secret is shown.
#[derive(Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedEndpoint {
    pub endpoint: Endpoint,
    pub secret: String,
}

impl std::fmt::Debug for CreatedEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedEndpoint").field("endpoint", &self.endpoint).field("secret", &"[redacted]").finish()
    }
}

/// A new signing secret, shown once (`contract::webhooks`).
pub use contract::webhooks::RotatedSecret;

pub(crate) const ENDPOINT_COLUMNS: &str = "seq, id, url, description, event_types, enabled, disabled_reason, \
     consecutive_failures, previous_secret_until_ms, rate_limit_per_sec, created_ms, updated_ms";

pub(crate) fn endpoint_from_row(r: &AnyRow, now: i64) -> Result<(i64, Endpoint), sqlx::Error> {
    let event_types: String = r.try_get("event_types")?;
    let until: Option<i64> = r.try_get("previous_secret_until_ms")?;
    Ok((
        r.try_get("seq")?,
        Endpoint {
            id: r.try_get("id")?,
            url: r.try_get("url")?,
            description: r.try_get("description")?,
            event_types: serde_json::from_str(&event_types).unwrap_or_default(),
            enabled: r.try_get::<i64, _>("enabled")? != 0,
            disabled_reason: r.try_get("disabled_reason")?,
            consecutive_failures: r.try_get("consecutive_failures")?,
            previous_secret_until_ms: until.filter(|u| *u > now),
            rate_limit_per_sec: r.try_get::<Option<i64>, _>("rate_limit_per_sec")?.and_then(|n| u32::try_from(n).ok()),
            created_ms: r.try_get("created_ms")?,
            updated_ms: r.try_get("updated_ms")?,
        },
    ))
}

/// The rules for an endpoint description (creation and update): at most [`MAX_DESCRIPTION_CHARS`]
/// characters, no control characters but line breaks.
pub fn check_description(d: &str, errors: &mut Vec<FieldError>) {
    if d.chars().count() > MAX_DESCRIPTION_CHARS {
        errors.push(FieldError::new("description", format!("at most {MAX_DESCRIPTION_CHARS} characters")));
    } else if d.chars().any(|c| c.is_control() && c != '\n') {
        errors.push(FieldError::new("description", "must not contain control characters"));
    }
}

/// Known types only, each once, in the given order: the list to store, with an error per unknown type.
pub fn check_event_types(types: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for (i, t) in types.iter().enumerate() {
        let t = t.trim();
        if !crate::events::is_known(t) {
            let shown: String = t.chars().take(60).collect();
            errors.push(FieldError::new(format!("event_types[{i}]"), format!("unknown event type {shown:?}")));
        } else if !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    out
}

impl Hooks {
    /// Checks a URL for an endpoint: length, form, and the SSRF guard (names are resolved).
    async fn check_url(&self, url: &str, errors: &mut Vec<FieldError>) -> String {
        let url = url.trim();
        if url.is_empty() {
            errors.push(FieldError::new("url", "must not be empty"));
        } else if url.len() > MAX_URL_LEN {
            errors.push(FieldError::new("url", format!("at most {MAX_URL_LEN} characters")));
        } else {
            match self.inner.guard.check(url).await {
                // Stored as parsed, so what was checked is what is connected to (2130706433 → 127.0.0.1).
                Ok(parsed) => return parsed.to_string(),
                Err(e) => errors.extend(e.field_errors().iter().cloned()),
            }
        }
        url.to_string()
    }

    /// Registers an endpoint. The answer carries its `whsec_` secret, which is never shown again.
    pub async fn create_endpoint(&self, owner: &Owner, new: NewEndpoint) -> Result<CreatedEndpoint, HooksError> {
        let mut errors = vec![];
        let url = self.check_url(&new.url, &mut errors).await;
        check_description(&new.description, &mut errors);
        let types = check_event_types(&new.event_types, &mut errors);
        let rate = check_rate_limit(new.rate_limit_per_sec, false, &mut errors);
        if !errors.is_empty() {
            return Err(HooksError::Invalid(errors));
        }
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_endpoints WHERE owner = $1").bind(owner).fetch_one(self.pool()).await?;
        let max = self.inner.config.max_endpoints_per_owner;
        if count >= max as i64 {
            return Err(HooksError::Conflict(format!("You already have {max} endpoints, the most allowed.")));
        }
        let (id, secret, now) = (new_id("ep"), SigningKey::generate_secret(), now_ms());
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, owner, url, description, event_types, secret, enabled, \
             consecutive_failures, rate_limit_per_sec, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, 1, 0, $8, $7, $7)",
        )
        .bind(&id)
        .bind(owner)
        .bind(&url)
        .bind(new.description.trim())
        .bind(serde_json::to_string(&types).unwrap_or_else(|_| "[]".into()))
        .bind(self.inner.sealer.seal(&id, &secret))
        .bind(now)
        .bind(rate.map(i64::from))
        .execute(self.pool())
        .await?;
        Ok(CreatedEndpoint { endpoint: self.get_endpoint(owner, &id).await?, secret })
    }

    /// The owner's endpoints, newest first.
    pub async fn list_endpoints(&self, owner: &Owner, req: PageRequest) -> Result<Page<Endpoint>, HooksError> {
        let (fetch, before) = req.bounds()?;
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE owner = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3");
        let rows = sqlx::query(&sql).bind(owner).bind(before).bind(fetch).fetch_all(self.pool()).await?;
        let now = now_ms();
        let rows = rows.iter().map(|r| endpoint_from_row(r, now)).collect::<Result<Vec<_>, _>>()?;
        Ok(page(rows, fetch))
    }

    pub async fn get_endpoint(&self, owner: &Owner, id: &str) -> Result<Endpoint, HooksError> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE owner = $1 AND id = $2");
        let row = sqlx::query(&sql).bind(owner).bind(id).fetch_optional(self.pool()).await?.ok_or(HooksError::NotFound)?;
        Ok(endpoint_from_row(&row, now_ms())?.1)
    }

    /// Changes URL, description or subscriptions (the secret and health stay).
    pub async fn update_endpoint(&self, owner: &Owner, id: &str, update: EndpointUpdate) -> Result<Endpoint, HooksError> {
        let current = self.get_endpoint(owner, id).await?;
        let mut errors = vec![];
        let url = match &update.url {
            Some(u) => self.check_url(u, &mut errors).await,
            None => current.url,
        };
        let description = update.description.as_deref().map(str::trim).unwrap_or(&current.description).to_string();
        check_description(&description, &mut errors);
        let types = match &update.event_types {
            Some(t) => check_event_types(t, &mut errors),
            None => current.event_types,
        };
        let rate = match update.rate_limit_per_sec {
            Some(r) => check_rate_limit(Some(r), true, &mut errors),
            None => current.rate_limit_per_sec,
        };
        if !errors.is_empty() {
            return Err(HooksError::Invalid(errors));
        }
        sqlx::query(
            "UPDATE webhook_endpoints SET url = $1, description = $2, event_types = $3, updated_ms = $4, rate_limit_per_sec = $7 \
             WHERE owner = $5 AND id = $6",
        )
        .bind(&url)
        .bind(&description)
        .bind(serde_json::to_string(&types).unwrap_or_else(|_| "[]".into()))
        .bind(now_ms())
        .bind(owner)
        .bind(id)
        .bind(rate.map(i64::from))
        .execute(self.pool())
        .await?;
        self.get_endpoint(owner, id).await
    }

    /// Removes the endpoint. Deliveries still queued for it are dropped when their turn comes; its
    /// attempts stay in the messages' logs.
    pub async fn delete_endpoint(&self, owner: &Owner, id: &str) -> Result<(), HooksError> {
        let r = sqlx::query("DELETE FROM webhook_endpoints WHERE owner = $1 AND id = $2").bind(owner).bind(id).execute(self.pool()).await?;
        if r.rows_affected() == 0 {
            return Err(HooksError::NotFound);
        }
        Ok(())
    }

    /// A new secret (returned once). The old one keeps signing beside it for the configured overlap, so
    /// receivers can switch without dropping a message; rotating again within the overlap retires the
    /// oldest at once.
    pub async fn rotate_secret(&self, owner: &Owner, id: &str) -> Result<RotatedSecret, HooksError> {
        let secret = SigningKey::generate_secret();
        let now = now_ms();
        let until = now + (self.inner.config.rotation_overlap_secs as i64).saturating_mul(1000);
        let r = sqlx::query(
            "UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_until_ms = $1, secret = $2, updated_ms = $3 \
             WHERE owner = $4 AND id = $5",
        )
        .bind(until)
        .bind(self.inner.sealer.seal(id, &secret))
        .bind(now)
        .bind(owner)
        .bind(id)
        .execute(self.pool())
        .await?;
        if r.rows_affected() == 0 {
            return Err(HooksError::NotFound);
        }
        Ok(RotatedSecret { secret, previous_secret_until_ms: until })
    }

    /// Rewrites every endpoint secret not sealed with the first of `hooks.secret_keys` (sealed with an
    /// older key, or stored before sealing) under that key. Run at start-up: safe beside other instances
    /// doing the same (each row is replaced only if it still holds what was read). Returns how many
    /// rows were rewritten; a secret no configured key opens is logged and left as it is.
    pub async fn reseal_secrets(&self) -> Result<u64, HooksError> {
        let rows = sqlx::query("SELECT id, secret, previous_secret FROM webhook_endpoints").fetch_all(self.pool()).await?;
        let sealer = &self.inner.sealer;
        let mut rewritten = 0;
        for row in rows {
            let id: String = row.try_get("id")?;
            let secret: String = row.try_get("secret")?;
            let previous: Option<String> = row.try_get("previous_secret")?;
            if sealer.is_current(&secret) && previous.as_deref().is_none_or(|p| sealer.is_current(p)) {
                continue;
            }
            let reseal = |stored: &str| sealer.open(&id, stored).map(|plain| sealer.seal(&id, &plain));
            let (new_secret, new_previous) = match (reseal(&secret), previous.as_deref().map(reseal).transpose()) {
                (Ok(s), Ok(p)) => (s, p),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(endpoint = %id, error = %e, "cannot reseal an endpoint secret; it keeps its old form");
                    continue;
                }
            };
            let r = sqlx::query(
                "UPDATE webhook_endpoints SET secret = $1, previous_secret = $2 WHERE id = $3 AND secret = $4                  AND (previous_secret = $5 OR (previous_secret IS NULL AND $5 IS NULL))",
            )
            .bind(&new_secret)
            .bind(&new_previous)
            .bind(&id)
            .bind(&secret)
            .bind(&previous)
            .execute(self.pool())
            .await?;
            rewritten += r.rows_affected();
        }
        Ok(rewritten)
    }

    /// Enables (clearing the failure streak and reason) or disables an endpoint. Messages are not sent
    /// to a disabled endpoint, and those already queued for it are dropped.
    pub async fn set_enabled(&self, owner: &Owner, id: &str, enabled: bool) -> Result<Endpoint, HooksError> {
        let sql = if enabled {
            "UPDATE webhook_endpoints SET enabled = 1, disabled_reason = NULL, consecutive_failures = 0, failing_since_ms = NULL, \
             updated_ms = $1 WHERE owner = $2 AND id = $3"
        } else {
            "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = 'Disabled by its owner.', updated_ms = $1 \
             WHERE owner = $2 AND id = $3"
        };
        let r = sqlx::query(sql).bind(now_ms()).bind(owner).bind(id).execute(self.pool()).await?;
        if r.rows_affected() == 0 {
            return Err(HooksError::NotFound);
        }
        self.get_endpoint(owner, id).await
    }

    /// The owner's enabled endpoints that want `event_type`.
    pub(crate) async fn subscribers(&self, owner: &Owner, event_type: &str) -> Result<Vec<Endpoint>, HooksError> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE owner = $1 AND enabled = 1 ORDER BY seq");
        let rows = sqlx::query(&sql).bind(owner).fetch_all(self.pool()).await?;
        let now = now_ms();
        let all = rows.iter().map(|r| endpoint_from_row(r, now).map(|(_, e)| e)).collect::<Result<Vec<_>, _>>()?;
        Ok(all.into_iter().filter(|e| e.subscribes_to(event_type)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_must_be_known_and_are_deduplicated() {
        let mut errors = vec![];
        let out = check_event_types(&["workflow.failed".into(), " workflow.failed".into(), "user.created".into()], &mut errors);
        assert_eq!(out, ["workflow.failed"]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "event_types[2]");
    }

    #[test]
    fn descriptions_are_bounded() {
        let mut errors = vec![];
        check_description(&"é".repeat(MAX_DESCRIPTION_CHARS), &mut errors);
        assert!(errors.is_empty());
        check_description(&"é".repeat(MAX_DESCRIPTION_CHARS + 1), &mut errors);
        check_description("bell\u{7}", &mut errors);
        assert_eq!(errors.len(), 2);
    }
}
