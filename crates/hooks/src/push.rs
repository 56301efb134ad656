//! Web Push subscriptions (issue 20): what a browser's `PushSubscription.toJSON()` gives, registered by
//! its owner, and the push channel's [`notify::PushTargets`]: a push notification's recipient is the id
//! of one of its owner's subscriptions. The endpoint URL is user-supplied, so it is held to the same
//! address guard as webhook endpoints at registration, and again at connect time when delivered.
//! A push service's 404 or 410 deletes the subscription (the browser unsubscribed or it expired).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use contract::Owner;
use serde::Deserialize;
use sqlx::Row;
use std::sync::{Arc, Weak};

use crate::error::{FieldError, HooksError};
use crate::{new_id, now_ms, Hooks, Inner};
use notify::{BoxFuture, Job, PushTarget, PushTargets, RouteError};

/// Subscriptions one user may have (browsers and devices).
pub const MAX_SUBSCRIPTIONS_PER_OWNER: i64 = 100;

/// The keys of a subscription, base64url as browsers give them.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubscriptionKeys {
    /// The browser's P-256 public key, uncompressed (65 bytes), base64url.
    pub p256dh: String,
    /// The 16-byte authentication secret, base64url.
    pub auth: String,
}

/// A browser's `PushSubscription.toJSON()`: what registering one takes.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewSubscription {
    pub endpoint: String,
    pub keys: SubscriptionKeys,
    /// As browsers send it (usually null); not used.
    #[serde(rename = "expirationTime", default)]
    pub expiration_time: Option<i64>,
}

/// A registered subscription as its owner sees it (`contract::push`).
pub use contract::push::Subscription;

fn key(field: &str, value: &str, len: usize, errors: &mut Vec<FieldError>) -> Vec<u8> {
    match B64URL.decode(value.trim().trim_end_matches('=')) {
        Ok(b) if b.len() == len => b,
        _ => {
            errors.push(FieldError::new(field, format!("must be {len} bytes, base64url")));
            vec![]
        }
    }
}

impl Hooks {
    /// Registers `new` for `owner`: the endpoint is an http(s) URL the address guard allows, the
    /// public key a point on P-256, the auth secret 16 bytes. The same endpoint again replaces its keys
    /// (a browser re-subscribing) and keeps its id.
    pub async fn create_subscription(&self, owner: &Owner, new: NewSubscription) -> Result<Subscription, HooksError> {
        let mut errors = vec![];
        let endpoint = new.endpoint.trim().to_string();
        if endpoint.is_empty() || endpoint.len() > crate::endpoints::MAX_URL_LEN {
            errors.push(FieldError::new("endpoint", format!("an http(s) URL of at most {} bytes", crate::endpoints::MAX_URL_LEN)));
        } else if let Err(e) = self.inner.guard.check(&endpoint).await {
            // The guard names the field `url`; here it is the subscription's endpoint.
            errors.extend(e.field_errors().iter().map(|f| FieldError::new("endpoint", f.message.clone())));
        }
        let p256dh = key("keys.p256dh", &new.keys.p256dh, 65, &mut errors);
        if p256dh.len() == 65 && !notify::webpush::is_public_key(&p256dh) {
            errors.push(FieldError::new("keys.p256dh", "is not a P-256 public key"));
        }
        let auth = key("keys.auth", &new.keys.auth, 16, &mut errors);
        if !errors.is_empty() {
            return Err(HooksError::Invalid(errors));
        }
        let pool = self.pool();
        let known: Option<String> = sqlx::query_scalar("SELECT id FROM push_subscriptions WHERE owner = $1 AND endpoint = $2")
            .bind(owner)
            .bind(&endpoint)
            .fetch_optional(pool)
            .await?;
        if known.is_none() {
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM push_subscriptions WHERE owner = $1").bind(owner).fetch_one(pool).await?;
            if count >= MAX_SUBSCRIPTIONS_PER_OWNER {
                return Err(HooksError::Conflict(format!(
                    "You have {count} push subscriptions, the most one user may have. Delete one you no longer use."
                )));
            }
        }
        // One statement for new and known alike, so two registrations of one browser at once make one row.
        let row = sqlx::query(
            "INSERT INTO push_subscriptions (id, owner, endpoint, p256dh, auth, created_ms) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (owner, endpoint) DO UPDATE SET p256dh = excluded.p256dh, auth = excluded.auth RETURNING id, created_ms",
        )
        .bind(new_id("psub"))
        .bind(owner)
        .bind(&endpoint)
        .bind(B64URL.encode(p256dh))
        .bind(B64URL.encode(auth))
        .bind(now_ms())
        .fetch_one(pool)
        .await?;
        Ok(Subscription { id: row.try_get("id")?, endpoint, created_ms: row.try_get("created_ms")? })
    }

    /// `owner`'s subscriptions, newest first.
    pub async fn list_subscriptions(&self, owner: &Owner) -> Result<Vec<Subscription>, HooksError> {
        let rows = sqlx::query("SELECT id, endpoint, created_ms FROM push_subscriptions WHERE owner = $1 ORDER BY created_ms DESC, id LIMIT 100")
            .bind(owner)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok(Subscription { id: r.try_get("id")?, endpoint: r.try_get("endpoint")?, created_ms: r.try_get("created_ms")? }))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Deletes `owner`'s subscription `id`; someone else's is "not found".
    pub async fn delete_subscription(&self, owner: &Owner, id: &str) -> Result<(), HooksError> {
        if delete(self.pool(), owner, id).await? == 0 {
            return Err(HooksError::NotFound);
        }
        Ok(())
    }

    /// The push channel's targets, for `notify::WebhookRouting::push`.
    pub(crate) fn push_targets(&self) -> Arc<dyn PushTargets> {
        Arc::new(SubscriptionTargets(Arc::downgrade(&self.inner)))
    }
}

/// Deletes `owner`'s subscription `id` (by its owner, or because its push service said it is gone);
/// how many rows went.
async fn delete(pool: &sqlx::AnyPool, owner: &str, id: &str) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM push_subscriptions WHERE owner = $1 AND id = $2").bind(owner).bind(id).execute(pool).await?.rows_affected())
}

struct SubscriptionTargets(Weak<Inner>);

impl SubscriptionTargets {
    fn inner(&self) -> Result<Arc<Inner>, RouteError> {
        self.0.upgrade().ok_or_else(|| RouteError::Retry("shutting down".into()))
    }
}

fn lookup_failed(e: sqlx::Error) -> RouteError {
    tracing::warn!(error = %e, "push subscription lookup failed");
    RouteError::Retry("subscription lookup failed".into())
}

impl PushTargets for SubscriptionTargets {
    fn resolve<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<PushTarget, RouteError>> {
        Box::pin(async move {
            let inner = self.inner()?;
            // A job without an owner (the operator's) reaches no user's subscription.
            let owner = job.owner.as_deref().ok_or_else(|| RouteError::GiveUp("no such push subscription".into()))?;
            let row = sqlx::query("SELECT endpoint, p256dh, auth FROM push_subscriptions WHERE owner = $1 AND id = $2")
                .bind(owner)
                .bind(&job.recipient)
                .fetch_optional(&inner.pool)
                .await
                .map_err(lookup_failed)?
                .ok_or_else(|| RouteError::GiveUp("no such push subscription".into()))?;
            let text = |c: &str| row.try_get::<String, _>(c).map_err(lookup_failed);
            let decode =
                |c: &str| -> Result<Vec<u8>, RouteError> { B64URL.decode(text(c)?).map_err(|_| RouteError::GiveUp("stored keys unreadable".into())) };
            Ok(PushTarget { endpoint: text("endpoint")?, p256dh: decode("p256dh")?, auth: decode("auth")? })
        })
    }

    fn owns<'a>(&'a self, owner: &'a str, id: &'a str) -> BoxFuture<'a, Result<bool, RouteError>> {
        Box::pin(async move {
            let inner = self.inner()?;
            let found = sqlx::query("SELECT 1 AS one FROM push_subscriptions WHERE owner = $1 AND id = $2")
                .bind(owner)
                .bind(id)
                .fetch_optional(&inner.pool)
                .await
                .map_err(lookup_failed)?;
            Ok(found.is_some())
        })
    }

    fn gone<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let (Ok(inner), Some(owner)) = (self.inner(), job.owner.as_deref()) else { return };
            if let Err(e) = delete(&inner.pool, owner, &job.recipient).await {
                tracing::warn!(error = %e, "could not delete a gone push subscription");
            }
        })
    }
}
