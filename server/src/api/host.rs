//! What workflow steps do in this product (`flows::StepHost`): HTTP calls behind the SSRF guard,
//! notifications through the pipeline, events through the webhook endpoints, and the two functions the
//! onboarding example calls (`create_account`, `delete_account`, on a demo customers table). When a run
//! finishes, `workflow.completed` or `workflow.failed` goes to the owner's endpoints. Internal failures
//! reach the run's timeline as a generic message with an id; the detail is in the log under that id.

use crate::now_ms;
use contract::{Owner, PublicError};
use flows::{HttpCaller, ResolvedAction, StepContext, StepError, StepHost};
use serde_json::{json, Value};
use std::sync::Arc;

/// The onboarding example's demo customers (made by its `call` step below), pruned with the workflow
/// runs that made them.
pub const RETAINED_DEMO_CUSTOMERS: &[db::Prunable] =
    &[db::Prunable { table: "demo_customers", key: "id", older_than: "created_ms < $1", age: "created_ms", in_secs: false }];

pub struct ServerHost {
    pub notify: notify::NotifyService,
    pub hooks: hooks::Hooks,
    pub pool: sqlx::AnyPool,
    pub http: HttpCaller,
    /// Outbound `http` step requests per owner per second, on this instance (no burst beyond a second's).
    http_rate: notify::OwnerRate,
    http_per_sec: u32,
    /// The owner's stored bytes per day: runs' inputs and outputs, and what steps send.
    storage: Option<crate::limits::Storage>,
}

/// The workflows' SSRF guard (`flows.allow_networks`, the app's own address refused): the name is
/// resolved and every address judged before the request, then again by the resolver the connection
/// goes through, for this request's port. A name that answers a public address to the check and a
/// private one to the connection (DNS rebinding) is refused, and nothing is read from it.
pub struct StepUrlPolicy {
    pub guard: hooks::UrlGuard,
}

#[async_trait::async_trait]
impl flows::HttpPolicy for StepUrlPolicy {
    async fn check(&self, url: &url::Url) -> Result<(), String> {
        self.guard.check(url.as_str()).await.map(|_| ()).map_err(|e| e.to_string())
    }

    fn resolver(&self, url: &url::Url) -> Option<Arc<dyn flows::reqwest::dns::Resolve>> {
        let port = url.port_or_known_default()?;
        Some(Arc::new(notify::routing::GuardedResolver::new(Arc::new(self.guard.for_port(port)))))
    }

    fn refused(&self, e: &flows::reqwest::Error) -> bool {
        notify::routing::refused_by_policy(e)
    }
}

/// An internal failure as a (retryable) step error: the detail goes to the log under a fresh id, the
/// timeline, which the run's owner reads, shows only that id.
fn internal_error(code: &str, e: &dyn std::fmt::Debug) -> StepError {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let id = &id[..12];
    tracing::error!(error_id = %id, code, error = ?e, "workflow step failed on our side");
    StepError::retryable(code, format!("internal error (error id {id})"))
}

impl ServerHost {
    /// `guard`: where `http` steps may go (`Settings::flows_guard`).
    pub fn new(notify: notify::NotifyService, hooks: hooks::Hooks, pool: sqlx::AnyPool, guard: hooks::UrlGuard) -> Self {
        let http = HttpCaller::with_policy(Arc::new(StepUrlPolicy { guard }));
        Self { notify, hooks, pool, http, http_rate: notify::OwnerRate::new(10, 10), http_per_sec: 10, storage: None }
    }

    /// Holds runs to their owner's stored bytes per day (`limits.stored_bytes_per_day`).
    pub fn with_storage(mut self, storage: crate::limits::Storage) -> Self {
        self.storage = Some(storage);
        self
    }

    /// Counts what a step hands on to be stored elsewhere (an event's message). Nothing was done yet and
    /// room comes back gradually, so the step is tried again later.
    async fn charge_sent(&self, owner: &Owner, bytes: u64) -> Result<(), StepError> {
        self.charge_storage(owner, bytes).await.map_err(|m| StepError::retryable("quota_exceeded", m))
    }

    /// Outbound `http` step requests one owner may start per second (`flows.http_requests_per_sec`; 0: no limit).
    pub fn with_http_rate(mut self, per_sec: u32) -> Self {
        self.http_rate = notify::OwnerRate::new(per_sec, per_sec);
        self.http_per_sec = per_sec;
        self
    }

    async fn call(&self, ctx: &StepContext, name: &str, args: &Value) -> Result<Value, StepError> {
        let text = |k: &str| args.get(k).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty());
        match name {
            "create_account" => {
                let email = text("email").ok_or_else(|| StepError::permanent("invalid_args", "create_account needs an email"))?;
                let name = text("name").unwrap_or("");
                if !email.contains('@') || email.len() > 254 {
                    return Err(StepError::permanent("invalid_email", "not an email address"));
                }
                // A repeated attempt of the same run's step finds what the first one made.
                let existing: Option<(String, String)> =
                    sqlx::query_as("SELECT id, run_id FROM demo_customers WHERE owner = $1 AND lower(email) = lower($2)")
                        .bind(&ctx.owner)
                        .bind(email)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(|e| internal_error("database", &e))?;
                match existing {
                    Some((id, run)) if run == ctx.run_id => return Ok(json!({ "id": id, "email": email })),
                    Some(_) => return Err(StepError::permanent("email_taken", "an account with this email exists")),
                    None => {}
                }
                let id = format!("cus_{}", uuid::Uuid::new_v4().simple());
                let inserted = sqlx::query("INSERT INTO demo_customers (id, owner, email, name, run_id, created_ms) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(&id)
                    .bind(&ctx.owner)
                    .bind(email)
                    .bind(name)
                    .bind(&ctx.run_id)
                    .bind(now_ms())
                    .execute(&self.pool)
                    .await;
                match inserted {
                    Ok(_) => Ok(json!({ "id": id, "email": email })),
                    Err(e) if db::is_unique_violation(&e) => Err(StepError::permanent("email_taken", "an account with this email exists")),
                    Err(e) => Err(internal_error("database", &e)),
                }
            }
            "delete_account" => {
                let id = text("account_id").ok_or_else(|| StepError::permanent("invalid_args", "delete_account needs an account_id"))?;
                let r = sqlx::query("DELETE FROM demo_customers WHERE owner = $1 AND id = $2")
                    .bind(&ctx.owner)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| internal_error("database", &e))?;
                Ok(json!({ "deleted": r.rows_affected() }))
            }
            other => Err(StepError::permanent("unknown_function", format!("no function named {:?}", other.chars().take(40).collect::<String>()))),
        }
    }
}

/// The scope a step needs beyond `workflows:write` (which started the run): sending a notification or
/// emitting an event is what the notifications and webhooks APIs guard.
fn required_scope(action: &ResolvedAction) -> Option<auth::tokens::Scope> {
    match action {
        ResolvedAction::Notify { .. } => Some(auth::tokens::Scope::NotificationsWrite),
        ResolvedAction::EmitEvent { .. } => Some(auth::tokens::Scope::WebhooksWrite),
        ResolvedAction::Http(_) | ResolvedAction::Call { .. } => None,
    }
}

/// A run may do what the credential that started it may, checked as each step executes (issue 14): a
/// token is looked up every time, so once it is revoked or expired its runs' further steps fail.
async fn authorize(pool: &sqlx::AnyPool, ctx: &StepContext, action: &ResolvedAction) -> Result<(), StepError> {
    let by = &ctx.started_by;
    let mut allowed = by.scopes.clone();
    if let Some(token_id) = by.token_id {
        let live = auth::tokens::ApiTokenStore::new(pool.clone())
            .live_scopes(token_id)
            .await
            .map_err(|e| {
                tracing::warn!(run = %ctx.run_id, error = %e, "could not look up the run's API token");
                StepError::retryable("unavailable", "could not check the API token that started this run; will retry")
            })?
            .ok_or_else(|| StepError::permanent("token_revoked", "the API token that started this run was revoked or has expired"))?;
        // What the token may do now, and no more than it could when it started the run.
        let live: Vec<String> = live.iter().map(|s| s.as_str().to_string()).collect();
        allowed = Some(allowed.unwrap_or_default().into_iter().filter(|s| live.contains(s)).collect());
    }
    match required_scope(action) {
        Some(scope) if allowed.as_ref().is_some_and(|a| !a.iter().any(|s| s == scope.as_str())) => Err(StepError::permanent(
            "forbidden",
            format!("this run was started by {} without the {} scope this step needs", by.kind, scope.as_str()),
        )),
        _ => Ok(()),
    }
}

#[async_trait::async_trait]
impl StepHost for ServerHost {
    async fn execute(&self, ctx: &StepContext, action: &ResolvedAction) -> Result<Value, StepError> {
        authorize(&self.pool, ctx, action).await?;
        match action {
            // The policy (`StepUrlPolicy`) judges the URL before the request and again at connect time.
            ResolvedAction::Http(req) => {
                if self.http_rate.check(&ctx.owner, 1).is_err() {
                    let limit = self.http_per_sec;
                    return Err(StepError::retryable(
                        "rate_limited",
                        format!("more than {limit} workflow HTTP requests per second; tried again later"),
                    ));
                }
                self.http.call(req, ctx.timeout).await
            }
            ResolvedAction::Notify { channel, recipient, payload } => {
                let channel: notify::Channel = channel.parse().map_err(|m: String| StepError::permanent("invalid_channel", m))?;
                let mut n = notify::NewNotification::new(channel, recipient.clone(), payload.clone());
                n.idempotency_key = Some(ctx.idempotency_key.clone());
                match crate::notifications::enqueue_owned(&self.notify, self.storage.as_ref(), &ctx.owner, notify::Backend::Embedded, vec![n]).await {
                    Ok(ids) => Ok(json!({ "notification_id": ids.first().map(|i| i.to_string()) })),
                    Err(notify::NotifyError::QuotaExceeded { message, .. }) => Err(StepError::retryable("quota_exceeded", message)),
                    Err(e) if e.status() < 500 && e.retry_after_secs().is_none() => Err(StepError::permanent("invalid_notification", e.to_string())),
                    Err(e @ notify::NotifyError::Internal(_)) => Err(internal_error("queue", &e)),
                    Err(e) => Err(StepError::retryable("queue", e.to_string())),
                }
            }
            ResolvedAction::EmitEvent { event_type, payload } => {
                let bytes = (event_type.len() + payload.to_string().len()) as u64;
                self.charge_sent(&ctx.owner, bytes).await?;
                let emitted = self.hooks.emit(&ctx.owner, event_type, payload.clone()).await;
                if emitted.is_err() {
                    self.refund_storage(&ctx.owner, bytes).await;
                }
                match emitted {
                    Ok(m) => Ok(json!({ "message_id": m.id })),
                    Err(e) if e.status() < 500 && e.retry_after_secs().is_none() => Err(StepError::permanent(e.code(), e.to_string())),
                    Err(e @ hooks::HooksError::Internal(_)) => Err(internal_error(e.code(), &e)),
                    Err(e) => Err(StepError::retryable(e.code(), e.to_string())),
                }
            }
            ResolvedAction::Call { name, args } => self.call(ctx, name, args).await,
        }
    }

    async fn charge_storage(&self, owner: &Owner, bytes: u64) -> Result<(), String> {
        match &self.storage {
            Some(s) => s.charge(owner, bytes).await.map_err(|o| o.message),
            None => Ok(()),
        }
    }

    async fn refund_storage(&self, owner: &Owner, bytes: u64) {
        if let Some(s) = &self.storage {
            s.refund(owner, bytes).await;
        }
    }

    async fn on_run_finished(&self, run: &flows::RunSummary) {
        let (event, data) = run_finished_event(run);
        if let Err(e) = self.hooks.emit(&run.owner, event, data).await {
            tracing::warn!(run = %run.id, error = %e, "could not emit the workflow's final event");
        }
    }
}

/// The event a finished run sends its owner's endpoints, and its `data` (described in `hooks::events`).
fn run_finished_event(run: &flows::RunSummary) -> (&'static str, Value) {
    let event = if run.status == flows::RunStatus::Completed { hooks::events::WORKFLOW_COMPLETED } else { hooks::events::WORKFLOW_FAILED };
    let data = json!({
        "run_id": run.id,
        "workflow": run.workflow,
        "status": run.status.as_str(),
        "failed_step": run.failed_step,
        "error_code": run.error_code,
        "error_message": run.error_message,
    });
    (event, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `on_run_finished` sends fits the catalogue's schema of its type, for every way a run ends,
    /// and has the same fields as the catalogue's example.
    #[test]
    fn a_finished_run_sends_the_event_the_catalogue_describes() {
        let run = |status, failed: Option<(&str, &str, &str)>| flows::RunSummary {
            id: "6f1c2a4e-9b1d-4c3e-8f00-0123456789ab".into(),
            owner: Owner::from("alice"),
            workflow: "customer_onboarding".into(),
            status,
            failed_step: failed.map(|f| f.0.into()),
            error_code: failed.map(|f| f.1.into()),
            error_message: failed.map(|f| f.2.into()),
            finished_at_ms: 1,
        };
        let why = Some(("notify_crm", "timeout", "no answer within 10000 ms"));
        let ends = [
            (run(flows::RunStatus::Completed, None), hooks::events::WORKFLOW_COMPLETED),
            (run(flows::RunStatus::Failed, why), hooks::events::WORKFLOW_FAILED),
            (run(flows::RunStatus::CompensationFailed, why), hooks::events::WORKFLOW_FAILED),
            (run(flows::RunStatus::Cancelled, None), hooks::events::WORKFLOW_FAILED),
        ];
        for (summary, want) in ends {
            let (event, data) = run_finished_event(&summary);
            assert_eq!(event, want, "{:?}", summary.status);
            let entry = hooks::events::find(event).unwrap();
            let body = json!({ "type": event, "timestamp": "2026-05-04T09:30:12.345Z", "data": data });
            testkit::json_schema::assert_fits(&entry.schema(), &body);
            let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<std::collections::BTreeSet<_>>();
            assert_eq!(keys(&body["data"]), keys(&entry.example()["data"]));
        }
        // And a status the event never carries is refused by its schema.
        let (_, data) = run_finished_event(&run(flows::RunStatus::Running, None));
        let body = json!({ "type": "workflow.failed", "timestamp": "2026-05-04T09:30:12.345Z", "data": data });
        assert!(!testkit::json_schema::violations(&hooks::events::find("workflow.failed").unwrap().schema(), &body).is_empty());
    }

    #[test]
    fn outbound_requests_are_counted_per_owner_per_second() {
        let rate = notify::OwnerRate::new(3, 3);
        let alice: Vec<bool> = (0..5).map(|_| rate.check("alice", 1).is_ok()).collect();
        let bob = rate.check("bob", 1).is_ok();
        assert_eq!(alice, [true, true, true, false, false]);
        assert!(bob, "another owner has a budget of their own");
        let unlimited = notify::OwnerRate::new(0, 0);
        assert!((0..100).all(|_| unlimited.check("alice", 1).is_ok()));
    }
}
