//! Events out: a message is stored once and fanned out as one `notify` webhook notification per
//! subscribed endpoint (routed to the endpoint by the job's internal `route`, which users cannot set,
//! on behalf of the endpoint's owner; recipient `endpoint:<id>` for display only; payload
//! `{"message_id": …}`). At each attempt the
//! pipeline asks [`EndpointTargets`] where to send it (URL, current and overlapping secrets, body) and
//! tells [`DeliveryLog`] how it went: the attempt log, the failure streak and automatic disabling live
//! here; signing, retries, backoff and dead letters are the pipeline's.

use contract::Owner;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;
use std::sync::{Arc, Weak};

use crate::error::HooksError;
use crate::events;
use crate::{new_id, now_ms, page, rfc3339, Hooks, Inner, Page, PageRequest};
use notify::signature::SigningKey;
use notify::{
    AttemptObserver, AttemptOutcome, AttemptReport, BoxFuture, Channel, DeliveryExtensions, Job, NewNotification, RouteError, WebhookRouting,
    WebhookTarget, WebhookTargets,
};

/// Recipient prefix of the notifications that carry endpoint deliveries (for display: the route decides).
pub const RECIPIENT_PREFIX: &str = "endpoint:";
/// Largest `data` accepted by [`Hooks::emit`], serialised.
pub const MAX_DATA_BYTES: usize = 64 * 1024;

/// Is this notification an endpoint delivery? Observers that turn notification outcomes into
/// `notification.*` events must skip these, or every event delivery would cause another event.
pub fn is_endpoint_delivery(job: &Job) -> bool {
    endpoint_of(job).is_some()
}

/// The endpoint a job delivers to: its internal route, which only [`Hooks`]' fan-out sets. A user's
/// notification addressed `endpoint:<id>` has no route and is an ordinary webhook notification.
///
/// One exception, for jobs queued before routes existed (older code addressed them by recipient alone):
/// a webhook job with neither route nor owner whose recipient is `endpoint:<id>`. Users could not make
/// those (the API always sets the owner), so they are the old fan-out's, and still delivered.
fn endpoint_of(job: &Job) -> Option<&str> {
    if job.channel != Channel::Webhook {
        return None;
    }
    match (&job.route, &job.owner) {
        (Some(route), _) => Some(route.as_str()),
        (None, None) => job.recipient.strip_prefix(RECIPIENT_PREFIX),
        (None, Some(_)) => None,
    }
}

/// May this job use that endpoint? Only on behalf of its owner (a pre-route job has no owner; its
/// message must then be the endpoint owner's, which the target lookup's join ensures).
fn owner_may_use(job: &Job, endpoint_owner: &str) -> bool {
    match &job.owner {
        Some(o) => o == endpoint_owner,
        None => job.route.is_none(),
    }
}

/// A stored event message.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    pub id: String,
    pub event_type: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageDetail {
    pub message: Message,
    /// The exact body sent: `{"type", "timestamp", "data"}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: serde_json::Value,
    pub deliveries: Vec<DeliveryRecord>,
}

/// One notification enqueued for a (message, endpoint); replays add more.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryRecord {
    pub notification_id: String,
    pub message_id: String,
    pub endpoint_id: String,
    /// `pending`, `retrying`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub last_attempt_ms: Option<i64>,
    pub created_ms: i64,
}

/// One delivery attempt (`contract::webhooks`).
pub use contract::webhooks::AttemptRecord;

/// Something the owner should be told about: the type every client reads (`contract::webhooks`).
pub use contract::webhooks::OwnerNotice;

fn outcome_name(o: AttemptOutcome) -> &'static str {
    match o {
        AttemptOutcome::Delivered => "delivered",
        AttemptOutcome::Retrying => "retrying",
        AttemptOutcome::DeadLettered => "failed",
    }
}

fn message_id_of(job: &Job) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(&job.payload).ok()?;
    v.get("message_id")?.as_str().map(str::to_string)
}

fn delivery_from_row(r: &AnyRow) -> Result<DeliveryRecord, sqlx::Error> {
    Ok(DeliveryRecord {
        notification_id: r.try_get("notification_id")?,
        message_id: r.try_get("message_id")?,
        endpoint_id: r.try_get("endpoint_id")?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        last_attempt_ms: r.try_get("last_attempt_ms")?,
        created_ms: r.try_get("created_ms")?,
    })
}

fn attempt_from_row(r: &AnyRow) -> Result<(i64, AttemptRecord), sqlx::Error> {
    Ok((
        r.try_get("seq")?,
        AttemptRecord {
            message_id: r.try_get("message_id")?,
            endpoint_id: r.try_get("endpoint_id")?,
            notification_id: r.try_get("notification_id")?,
            attempt: r.try_get("attempt")?,
            at_ms: r.try_get("at_ms")?,
            duration_ms: r.try_get("duration_ms")?,
            status_code: r.try_get("status_code")?,
            outcome: r.try_get("outcome")?,
            error: r.try_get("error")?,
        },
    ))
}

const ATTEMPT_COLUMNS: &str = "seq, message_id, endpoint_id, notification_id, attempt, at_ms, duration_ms, status_code, outcome, error";
const DELIVERY_COLUMNS: &str = "notification_id, message_id, endpoint_id, state, attempts, last_attempt_ms, created_ms";

impl Hooks {
    /// Plugs endpoint routing and the attempt log into a pipeline (the one given to [`Hooks::new`], or
    /// another in the same process).
    pub fn attach(&self, notify: &notify::NotifyService) -> Result<(), HooksError> {
        let ext = self.extensions();
        if let Some(r) = ext.routing {
            notify.set_webhook_routing(r)?;
        }
        for o in ext.observers {
            notify.add_attempt_observer(o);
        }
        Ok(())
    }

    /// The same, for `notify::RedisWorker::start_with` in a worker process.
    pub fn extensions(&self) -> DeliveryExtensions {
        let weak = Arc::downgrade(&self.inner);
        DeliveryExtensions {
            routing: Some(WebhookRouting {
                targets: Arc::new(EndpointTargets(weak.clone())),
                policy: self.inner.guard.clone(),
                push: Some(self.push_targets()),
            }),
            observers: vec![Arc::new(DeliveryLog(weak))],
        }
    }

    /// An observer that turns the final outcome of ordinary notifications into `notification.delivered`
    /// and `notification.dead_lettered` events for the owner `owner_of` names (add it with
    /// `NotifyService::add_attempt_observer`). Endpoint deliveries and simulation runs never produce
    /// events, so an event delivery cannot cause another event.
    pub fn notification_events<F>(&self, owner_of: F) -> Arc<dyn AttemptObserver>
    where
        F: Fn(&Job) -> Option<String> + Send + Sync + 'static,
    {
        Arc::new(NotificationEvents { hooks: Arc::downgrade(&self.inner), owner_of: Box::new(owner_of) })
    }

    fn notify(&self) -> Result<&notify::NotifyService, HooksError> {
        self.inner.notify.as_ref().ok_or(HooksError::Unavailable)
    }

    /// Stores an event for `owner` and sends it to each of the owner's enabled endpoints subscribed to
    /// its type. The message id is the `webhook-id` of every delivery, retries and replays included.
    pub async fn emit(&self, owner: &Owner, event_type: &str, data: serde_json::Value) -> Result<Message, HooksError> {
        self.emit_metered(owner, event_type, data, true, None).await
    }

    /// `emit`, optionally outside the owner's outbound budget (events the pipeline itself raises) and
    /// leaving out one endpoint (the failing one an operational event is about).
    async fn emit_metered(
        &self,
        owner: &Owner,
        event_type: &str,
        data: serde_json::Value,
        metered: bool,
        except: Option<&str>,
    ) -> Result<Message, HooksError> {
        let endpoints: Vec<String> =
            self.subscribers(owner, event_type).await?.into_iter().map(|e| e.id).filter(|id| Some(id.as_str()) != except).collect();
        if metered {
            self.spend_outbound(owner, endpoints.len())?;
        }
        let message = self.store_message(owner, event_type, &data).await?;
        if let Err(e) = self.fan_out(owner, &message.id, &endpoints).await {
            // All or nothing: the caller may try again (e.g. after a 429) without a half-sent twin.
            let _ = sqlx::query("DELETE FROM webhook_messages WHERE id = $1").bind(&message.id).execute(self.pool()).await;
            return Err(e);
        }
        Ok(message)
    }

    /// "Send test event": a `test.ping` to this one endpoint, whatever it subscribes to.
    pub async fn send_test(&self, owner: &Owner, endpoint_id: &str) -> Result<Message, HooksError> {
        let ep = self.get_endpoint(owner, endpoint_id).await?;
        if !ep.enabled {
            return Err(HooksError::Conflict("This endpoint is disabled; enable it first.".into()));
        }
        self.spend_outbound(owner, 1)?;
        let data = serde_json::json!({ "endpoint_id": ep.id, "message": "This is a test event." });
        let message = self.store_message(owner, events::TEST_PING, &data).await?;
        self.fan_out(owner, &message.id, &[ep.id]).await?;
        Ok(message)
    }

    async fn store_message(&self, owner: &Owner, event_type: &str, data: &serde_json::Value) -> Result<Message, HooksError> {
        if !events::is_known(event_type) {
            return Err(HooksError::invalid("event_type", "unknown event type"));
        }
        let data = serde_json::to_string(data).map_err(|e| HooksError::internal("serialising event data", e))?;
        if data.len() > MAX_DATA_BYTES {
            return Err(HooksError::invalid("data", format!("at most {MAX_DATA_BYTES} bytes of JSON")));
        }
        self.notify()?;
        let (id, now) = (new_id("msg"), now_ms());
        // Written once, sent byte for byte on every attempt: the Standard Webhooks payload shape.
        let payload =
            format!(r#"{{"type":{},"timestamp":{},"data":{}}}"#, serde_json::Value::from(event_type), serde_json::Value::from(rfc3339(now)), data);
        sqlx::query("INSERT INTO webhook_messages (id, owner, event_type, payload, created_ms) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(owner)
            .bind(event_type)
            .bind(&payload)
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(Message { id, event_type: event_type.to_string(), created_ms: now })
    }

    /// One notification per endpoint of `owner`'s, routed to it, and a delivery row for each.
    /// Takes `requests` from the owner's outbound budget, or says when to come back.
    pub(crate) fn spend_outbound(&self, owner: &Owner, requests: usize) -> Result<(), HooksError> {
        self.inner
            .outbound
            .check(owner, requests)
            .map_err(|wait| HooksError::RateLimited { per_sec: self.inner.config.outbound_per_sec, retry_after_secs: wait.as_secs() + 1 })
    }

    pub(crate) async fn fan_out(&self, owner: &Owner, message_id: &str, endpoints: &[String]) -> Result<Vec<DeliveryRecord>, HooksError> {
        if endpoints.is_empty() {
            return Ok(vec![]);
        }
        let items = endpoints
            .iter()
            .map(|ep| {
                let n = NewNotification::new(Channel::Webhook, format!("{RECIPIENT_PREFIX}{ep}"), serde_json::json!({ "message_id": message_id }));
                (ep.clone(), n)
            })
            .collect();
        let ids = self.notify()?.enqueue_routed(owner, self.inner.config.backend, items).await?;
        let now = now_ms();
        let mut out = vec![];
        for (ep, id) in endpoints.iter().zip(ids) {
            // The worker may have got there first (its row then holds the real state).
            sqlx::query(
                "INSERT INTO webhook_deliveries (notification_id, message_id, endpoint_id, state, attempts, created_ms) \
                 VALUES ($1, $2, $3, 'pending', 0, $4) ON CONFLICT (notification_id) DO NOTHING",
            )
            .bind(id.to_string())
            .bind(message_id)
            .bind(ep)
            .bind(now)
            .execute(self.pool())
            .await?;
            out.push(DeliveryRecord {
                notification_id: id.to_string(),
                message_id: message_id.to_string(),
                endpoint_id: ep.clone(),
                state: "pending".into(),
                attempts: 0,
                last_attempt_ms: None,
                created_ms: now,
            });
        }
        Ok(out)
    }

    /// Sends a message again, with the same `webhook-id`: to one endpoint, or (without one) to every
    /// enabled endpoint it was sent to before. Returns the new deliveries.
    pub async fn replay(&self, owner: &Owner, message_id: &str, endpoint_id: Option<&str>) -> Result<Vec<DeliveryRecord>, HooksError> {
        self.message(owner, message_id).await?;
        let targets: Vec<String> = match endpoint_id {
            Some(ep) => {
                let ep = self.get_endpoint(owner, ep).await?;
                if !ep.enabled {
                    return Err(HooksError::Conflict("This endpoint is disabled; enable it first.".into()));
                }
                vec![ep.id]
            }
            None => {
                sqlx::query_scalar(
                    "SELECT DISTINCT d.endpoint_id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
                 WHERE d.message_id = $1 AND e.owner = $2 AND e.enabled = 1 ORDER BY d.endpoint_id",
                )
                .bind(message_id)
                .bind(owner)
                .fetch_all(self.pool())
                .await?
            }
        };
        self.spend_outbound(owner, targets.len())?;
        self.fan_out(owner, message_id, &targets).await
    }

    async fn message(&self, owner: &Owner, id: &str) -> Result<(Message, String), HooksError> {
        let row = sqlx::query("SELECT id, event_type, payload, created_ms FROM webhook_messages WHERE owner = $1 AND id = $2")
            .bind(owner)
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(HooksError::NotFound)?;
        Ok((
            Message { id: row.try_get("id")?, event_type: row.try_get("event_type")?, created_ms: row.try_get("created_ms")? },
            row.try_get("payload")?,
        ))
    }

    /// A message with its body and every delivery of it.
    pub async fn get_message(&self, owner: &Owner, id: &str) -> Result<MessageDetail, HooksError> {
        let (message, payload) = self.message(owner, id).await?;
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE message_id = $1 ORDER BY seq");
        let rows = sqlx::query(&sql).bind(id).fetch_all(self.pool()).await?;
        let deliveries = rows.iter().map(delivery_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(MessageDetail { message, payload: serde_json::from_str(&payload).unwrap_or_default(), deliveries })
    }

    /// The owner's messages, newest first.
    pub async fn list_messages(&self, owner: &Owner, req: PageRequest) -> Result<Page<Message>, HooksError> {
        let (fetch, before) = req.bounds()?;
        let rows =
            sqlx::query("SELECT seq, id, event_type, created_ms FROM webhook_messages WHERE owner = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3")
                .bind(owner)
                .bind(before)
                .bind(fetch)
                .fetch_all(self.pool())
                .await?;
        let rows = rows
            .iter()
            .map(|r| {
                Ok((r.try_get("seq")?, Message { id: r.try_get("id")?, event_type: r.try_get("event_type")?, created_ms: r.try_get("created_ms")? }))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(page(rows, fetch))
    }

    /// Every attempt to deliver one message, newest first.
    pub async fn message_attempts(&self, owner: &Owner, message_id: &str, req: PageRequest) -> Result<Page<AttemptRecord>, HooksError> {
        self.message(owner, message_id).await?;
        self.attempts_where("message_id", message_id, req).await
    }

    /// Every attempt made to one endpoint, newest first.
    pub async fn endpoint_attempts(&self, owner: &Owner, endpoint_id: &str, req: PageRequest) -> Result<Page<AttemptRecord>, HooksError> {
        self.get_endpoint(owner, endpoint_id).await?;
        self.attempts_where("endpoint_id", endpoint_id, req).await
    }

    async fn attempts_where(&self, column: &'static str, value: &str, req: PageRequest) -> Result<Page<AttemptRecord>, HooksError> {
        let (fetch, before) = req.bounds()?;
        let sql = format!("SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts WHERE {column} = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3");
        let rows = sqlx::query(&sql).bind(value).bind(before).bind(fetch).fetch_all(self.pool()).await?;
        let rows = rows.iter().map(attempt_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(page(rows, fetch))
    }

    /// Notices for the owner (e.g. "endpoint disabled"), newest first.
    pub async fn notices(&self, owner: &Owner, req: PageRequest) -> Result<Page<OwnerNotice>, HooksError> {
        let (fetch, before) = req.bounds()?;
        let rows = sqlx::query(
            "SELECT seq, kind, endpoint_id, message, created_ms, read_ms FROM webhook_owner_notices \
             WHERE owner = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
        )
        .bind(owner)
        .bind(before)
        .bind(fetch)
        .fetch_all(self.pool())
        .await?;
        let rows = rows
            .iter()
            .map(|r| {
                let seq: i64 = r.try_get("seq")?;
                Ok((
                    seq,
                    OwnerNotice {
                        id: seq,
                        kind: r.try_get("kind")?,
                        endpoint_id: r.try_get("endpoint_id")?,
                        message: r.try_get("message")?,
                        created_ms: r.try_get("created_ms")?,
                        read: r.try_get::<Option<i64>, _>("read_ms")?.is_some(),
                    },
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(page(rows, fetch))
    }

    pub async fn mark_notice_read(&self, owner: &Owner, id: i64) -> Result<(), HooksError> {
        let r = sqlx::query("UPDATE webhook_owner_notices SET read_ms = $1 WHERE owner = $2 AND seq = $3")
            .bind(now_ms())
            .bind(owner)
            .bind(id)
            .execute(self.pool())
            .await?;
        if r.rows_affected() == 0 {
            return Err(HooksError::NotFound);
        }
        Ok(())
    }
}

/// Where each endpoint delivery goes: looked up at every attempt, so a changed URL, a rotated secret or
/// a disabled endpoint takes effect on the next retry.
struct EndpointTargets(Weak<Inner>);

impl WebhookTargets for EndpointTargets {
    fn resolve<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<Option<WebhookTarget>, RouteError>> {
        Box::pin(async move {
            let Some(endpoint_id) = endpoint_of(job) else { return Ok(None) };
            let Some(inner) = self.0.upgrade() else { return Err(RouteError::Retry("shutting down".into())) };
            let message_id = message_id_of(job).ok_or_else(|| RouteError::GiveUp("malformed delivery".into()))?;
            let row = sqlx::query(
                "SELECT e.owner, e.url, e.secret, e.previous_secret, e.previous_secret_until_ms, e.enabled, e.rate_limit_per_sec, m.payload \
                 FROM webhook_endpoints e JOIN webhook_messages m ON m.owner = e.owner WHERE e.id = $1 AND m.id = $2",
            )
            .bind(endpoint_id)
            .bind(&message_id)
            .fetch_optional(&inner.pool)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "webhook target lookup failed");
                RouteError::Retry("endpoint lookup failed".into())
            })?
            .ok_or_else(|| RouteError::GiveUp("endpoint or message deleted".into()))?;
            let get = |e: sqlx::Error| {
                tracing::warn!(error = %e, "webhook target row");
                RouteError::Retry("endpoint lookup failed".into())
            };
            // Someone else's job never reaches an endpoint, nor is it logged there (see DeliveryLog).
            let endpoint_owner: String = row.try_get("owner").map_err(get)?;
            if !owner_may_use(job, &endpoint_owner) {
                return Err(RouteError::GiveUp("not the endpoint owner's".into()));
            }
            if row.try_get::<i64, _>("enabled").map_err(get)? == 0 {
                return Err(RouteError::GiveUp("endpoint disabled".into()));
            }
            let url: String = row.try_get("url").map_err(get)?;
            // The allowlist may have changed since registration; names are checked again at connect time.
            inner.guard.check_syntax(&url).map_err(|_| RouteError::GiveUp("address not allowed".into()))?;
            // Sealed at rest (see `sealing`); a secret that does not open is a configuration error (its
            // key was removed from hooks.secret_keys) that retrying cannot fix.
            let open = |stored: &str| {
                inner.sealer.open(endpoint_id, stored).map_err(|e| {
                    tracing::error!(endpoint = %endpoint_id, error = %e, "cannot open an endpoint secret");
                    RouteError::GiveUp("endpoint secret unavailable".into())
                })
            };
            let secret: String = row.try_get("secret").map_err(get)?;
            let mut keys = vec![SigningKey::from_secret(&open(&secret)?).map_err(|_| RouteError::GiveUp("bad endpoint secret".into()))?];
            let previous: Option<String> = row.try_get("previous_secret").map_err(get)?;
            let until: Option<i64> = row.try_get("previous_secret_until_ms").map_err(get)?;
            if let (Some(p), Some(until)) = (previous, until) {
                if until > now_ms() {
                    keys.extend(open(&p).ok().and_then(|p| SigningKey::from_secret(&p).ok()));
                }
            }
            let rate_limit_per_sec = row.try_get::<Option<i64>, _>("rate_limit_per_sec").map_err(get)?.and_then(|r| u32::try_from(r).ok());
            Ok(Some(WebhookTarget { url, keys, message_id, body: row.try_get("payload").map_err(get)?, rate_limit_per_sec }))
        })
    }
}

type OwnerOf = Box<dyn Fn(&Job) -> Option<String> + Send + Sync>;

struct NotificationEvents {
    hooks: Weak<Inner>,
    owner_of: OwnerOf,
}

impl AttemptObserver for NotificationEvents {
    fn on_attempt<'a>(&'a self, report: &'a AttemptReport) -> BoxFuture<'a, ()> {
        let event_type = match report.attempt.outcome {
            AttemptOutcome::Delivered => events::NOTIFICATION_DELIVERED,
            AttemptOutcome::DeadLettered => events::NOTIFICATION_DEAD_LETTERED,
            AttemptOutcome::Retrying => return Box::pin(async {}),
        };
        let job = &report.job;
        if is_endpoint_delivery(job) || job.run.is_some() {
            return Box::pin(async {});
        }
        let (Some(owner), Some(inner)) = ((self.owner_of)(job), self.hooks.upgrade()) else { return Box::pin(async {}) };
        let data = serde_json::json!({
            "notification_id": job.id.to_string(),
            "channel": job.channel.as_str(),
            "recipient": job.recipient,
            "attempts": report.attempt.number,
            "error": report.attempt.error,
        });
        // Emitting enqueues; do it beside the worker rather than in its way.
        tokio::spawn(async move {
            if let Err(e) = (Hooks { inner }).emit_metered(&Owner::from(owner), event_type, data, false, None).await {
                tracing::warn!(error = %e, event_type, "could not emit a notification event");
            }
        });
        Box::pin(async {})
    }
}

/// Writes each endpoint attempt to the log and keeps the endpoint's failure streak.
struct DeliveryLog(Weak<Inner>);

impl AttemptObserver for DeliveryLog {
    fn on_attempt<'a>(&'a self, report: &'a AttemptReport) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(endpoint_id) = endpoint_of(&report.job) else { return };
            let Some(inner) = self.0.upgrade() else { return };
            let hooks = Hooks { inner };
            if let Err(e) = hooks.record_attempt(endpoint_id, report).await {
                tracing::warn!(error = %e, notification = %report.job.id, "could not record a webhook attempt");
            }
        })
    }
}

impl Hooks {
    async fn record_attempt(&self, endpoint_id: &str, report: &AttemptReport) -> Result<(), HooksError> {
        let endpoint_owner: Option<String> =
            sqlx::query_scalar("SELECT owner FROM webhook_endpoints WHERE id = $1").bind(endpoint_id).fetch_optional(self.pool()).await?;
        if endpoint_owner.is_some_and(|o| !owner_may_use(&report.job, &o)) {
            // Not the owner's job: nothing goes into their log or their failure streak.
            return Ok(());
        }
        let message_id = message_id_of(&report.job).unwrap_or_default();
        let a = &report.attempt;
        let notification_id = report.job.id.to_string();
        let outcome = outcome_name(a.outcome);
        // One transaction, so whoever reads the log sees the delivery's state to match.
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (message_id, endpoint_id, notification_id, attempt, at_ms, duration_ms, status_code, outcome, error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&message_id)
        .bind(endpoint_id)
        .bind(&notification_id)
        .bind(a.number as i64)
        .bind(a.at_ms)
        .bind((a.latency_us / 1000) as i64)
        .bind(report.status.map(|s| s as i64))
        .bind(outcome)
        .bind(a.error.as_deref())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO webhook_deliveries (notification_id, message_id, endpoint_id, state, attempts, last_attempt_ms, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (notification_id) DO UPDATE SET state = $4, attempts = $5, last_attempt_ms = $6",
        )
        .bind(&notification_id)
        .bind(&message_id)
        .bind(endpoint_id)
        .bind(outcome)
        .bind(a.number as i64)
        .bind(a.at_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if report.refused {
            // Nothing was sent (the endpoint is gone or disabled): not the receiver's failure.
            return Ok(());
        }
        if report.status == Some(410) {
            // The receiver says the endpoint is gone (Standard Webhooks): stop now, not after days.
            let reason = "Disabled automatically: the endpoint answered 410 Gone.";
            return self.disable_automatically(endpoint_id, a.at_ms, reason, "answered 410 Gone").await;
        }
        match a.outcome {
            AttemptOutcome::Delivered => {
                sqlx::query(
                    "UPDATE webhook_endpoints SET consecutive_failures = 0, failing_since_ms = NULL \
                     WHERE id = $1 AND (consecutive_failures <> 0 OR failing_since_ms IS NOT NULL)",
                )
                .bind(endpoint_id)
                .execute(self.pool())
                .await?;
            }
            AttemptOutcome::Retrying => {
                sqlx::query("UPDATE webhook_endpoints SET failing_since_ms = $1 WHERE id = $2 AND failing_since_ms IS NULL")
                    .bind(a.at_ms)
                    .bind(endpoint_id)
                    .execute(self.pool())
                    .await?;
            }
            AttemptOutcome::DeadLettered => {
                self.message_exhausted(endpoint_id, &message_id, report).await?;
                self.count_failed_message(endpoint_id, a.at_ms).await?
            }
        }
        Ok(())
    }

    /// A message ran out of attempts at one endpoint: the owner's other endpoints hear it as
    /// `message.attempt.exhausted`, and the owner gets a notice, one unread notice per endpoint that
    /// counts them (a dead receiver at full rate must not bury every other notice). Operational events
    /// that are themselves exhausted raise nothing, so a failing endpoint cannot cause a chain.
    async fn message_exhausted(&self, endpoint_id: &str, message_id: &str, report: &AttemptReport) -> Result<(), HooksError> {
        let row = sqlx::query("SELECT owner, event_type FROM webhook_messages WHERE id = $1").bind(message_id).fetch_optional(self.pool()).await?;
        let Some(row) = row else { return Ok(()) };
        let (owner, event_type): (String, String) = (row.try_get("owner")?, row.try_get("event_type")?);
        if events::OPERATIONAL.contains(&event_type.as_str()) {
            return Ok(());
        }
        let a = &report.attempt;
        let now = a.at_ms;
        let text = format!(" message(s) to endpoint {endpoint_id} ran out of attempts, the last one {message_id} ({event_type}).");
        sqlx::query(
            "INSERT INTO webhook_owner_notices (owner, kind, endpoint_id, message, created_ms, repeats) \
             VALUES ($1, 'message_exhausted', $2, '1' || $3, $4, 1) \
             ON CONFLICT (owner, endpoint_id) WHERE kind = 'message_exhausted' AND read_ms IS NULL DO UPDATE SET \
             repeats = webhook_owner_notices.repeats + 1, created_ms = excluded.created_ms, \
             message = CAST(webhook_owner_notices.repeats + 1 AS TEXT) || $3",
        )
        .bind(&owner)
        .bind(endpoint_id)
        .bind(&text)
        .bind(now)
        .execute(self.pool())
        .await?;
        if self.inner.notify.is_some() {
            let data = serde_json::json!({
                "message_id": message_id,
                "endpoint_id": endpoint_id,
                "event_type": event_type,
                "attempts": a.number,
                "last_attempt": { "timestamp": rfc3339(a.at_ms), "status_code": report.status, "error": a.error },
            });
            let (hooks, endpoint_id) = (self.clone(), endpoint_id.to_string());
            tokio::spawn(async move {
                let r = hooks.emit_metered(&Owner::from(owner), events::MESSAGE_ATTEMPT_EXHAUSTED, data, false, Some(&endpoint_id)).await;
                if let Err(e) = r {
                    tracing::warn!(error = %e, "could not emit message.attempt.exhausted");
                }
            });
        }
        Ok(())
    }

    /// One more message that could not be delivered; disables the endpoint when the streak is long enough.
    async fn count_failed_message(&self, endpoint_id: &str, now: i64) -> Result<(), HooksError> {
        let row = sqlx::query(
            "UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1, failing_since_ms = COALESCE(failing_since_ms, $1) \
             WHERE id = $2 RETURNING consecutive_failures, failing_since_ms, enabled, owner, url",
        )
        .bind(now)
        .bind(endpoint_id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(()) };
        let failures: i64 = row.try_get("consecutive_failures")?;
        let since: i64 = row.try_get::<Option<i64>, _>("failing_since_ms")?.unwrap_or(now);
        let rule = &self.inner.config.auto_disable;
        let due = rule.after_failed_messages > 0
            && failures >= rule.after_failed_messages as i64
            && now - since >= (rule.min_failing_secs as i64).saturating_mul(1000);
        if !due || row.try_get::<i64, _>("enabled")? == 0 {
            return Ok(());
        }
        let reason = format!("Disabled automatically after {failures} messages in a row could not be delivered.");
        let why = format!("{failures} messages in a row could not be delivered");
        self.disable_automatically(endpoint_id, now, &reason, &why).await
    }

    /// Disables an endpoint the pipeline gave up on, tells its owner (a notice, and `endpoint.disabled`
    /// to their other endpoints), once however many workers get here.
    async fn disable_automatically(&self, endpoint_id: &str, now: i64, reason: &str, why: &str) -> Result<(), HooksError> {
        // Disabling and telling the owner commit together.
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query(
            "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $1, updated_ms = $2 WHERE id = $3 AND enabled = 1 \
             RETURNING owner, url, consecutive_failures",
        )
        .bind(reason)
        .bind(now)
        .bind(endpoint_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(()); // another worker disabled it first and told the owner
        };
        let (owner, url, failures): (String, String, i64) = (row.try_get("owner")?, row.try_get("url")?, row.try_get("consecutive_failures")?);
        sqlx::query("INSERT INTO webhook_owner_notices (owner, kind, endpoint_id, message, created_ms) VALUES ($1, 'endpoint_disabled', $2, $3, $4)")
            .bind(&owner)
            .bind(endpoint_id)
            .bind(format!("Endpoint {url} was disabled: {why}. Fix it, then enable it again (and recover the messages it missed)."))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(endpoint = endpoint_id, why, "webhook endpoint disabled automatically");
        if self.inner.notify.is_some() {
            // Tell the owner's other endpoints too (this one is disabled, so it is not among them).
            let (hooks, endpoint_id, reason) = (self.clone(), endpoint_id.to_string(), reason.to_string());
            tokio::spawn(async move {
                let data = serde_json::json!({ "endpoint_id": endpoint_id, "url": url, "consecutive_failures": failures, "reason": reason });
                if let Err(e) = hooks.emit(&Owner::from(owner), events::ENDPOINT_DISABLED, data).await {
                    tracing::warn!(error = %e, "could not emit endpoint.disabled");
                }
            });
        }
        Ok(())
    }
}
