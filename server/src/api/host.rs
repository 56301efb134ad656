//! What workflow steps do in this product (`flows::StepHost`): HTTP calls behind the SSRF guard,
//! notifications through the pipeline, events through the webhook endpoints, and the two functions the
//! onboarding example calls (`create_account`, `delete_account`, on a demo customers table). When a run
//! finishes, `workflow.completed` or `workflow.failed` goes to the owner's endpoints.

use flows::{HttpCaller, ResolvedAction, StepContext, StepError, StepHost};
use serde_json::{json, Value};
use std::sync::Arc;

pub struct ServerHost {
    pub notify: notify::NotifyService,
    pub hooks: hooks::Hooks,
    pub pool: sqlx::AnyPool,
    pub http: HttpCaller,
}

impl ServerHost {
    pub fn new(notify: notify::NotifyService, hooks: hooks::Hooks, pool: sqlx::AnyPool) -> Self {
        // The caller's check sees the URL only: names are resolved and judged in `execute` (below)
        // before the call; IP literals are judged here too.
        let guard = hooks.guard().clone();
        let check: flows::UrlCheck = Arc::new(move |url: &url::Url| {
            let url = guard.check_syntax(url.as_str())?;
            match url.host() {
                Some(url::Host::Ipv4(ip)) if !guard.permits(ip.into()) => Err("that address is not allowed".into()),
                Some(url::Host::Ipv6(ip)) if !guard.permits(ip.into()) => Err("that address is not allowed".into()),
                _ => Ok(()),
            }
        });
        Self { notify, hooks, pool, http: HttpCaller::new(check) }
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
                        .map_err(|e| StepError::retryable("database", e.to_string()))?;
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
                    Err(e) => Err(StepError::retryable("database", e.to_string())),
                }
            }
            "delete_account" => {
                let id = text("account_id").ok_or_else(|| StepError::permanent("invalid_args", "delete_account needs an account_id"))?;
                let r = sqlx::query("DELETE FROM demo_customers WHERE owner = $1 AND id = $2")
                    .bind(&ctx.owner)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| StepError::retryable("database", e.to_string()))?;
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

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[async_trait::async_trait]
impl StepHost for ServerHost {
    async fn execute(&self, ctx: &StepContext, action: &ResolvedAction) -> Result<Value, StepError> {
        authorize(&self.pool, ctx, action).await?;
        match action {
            ResolvedAction::Http(req) => {
                // Resolve the name and judge every address before connecting.
                self.hooks.guard().check(&req.url).await.map_err(|e| StepError::permanent("url_rejected", e.to_string()))?;
                self.http.call(req, ctx.timeout).await
            }
            ResolvedAction::Notify { channel, recipient, payload } => {
                let channel: notify::Channel = channel.parse().map_err(|m: String| StepError::permanent("invalid_channel", m))?;
                let mut n = notify::NewNotification::new(channel, recipient.clone(), payload.clone());
                n.idempotency_key = Some(ctx.idempotency_key.clone());
                match self.notify.enqueue_for(Some(&ctx.owner), notify::Backend::Embedded, vec![n]).await {
                    Ok(ids) => Ok(json!({ "notification_id": ids.first().map(|i| i.to_string()) })),
                    Err(e) if e.status().is_client_error() && e.retry_after_secs().is_none() => {
                        Err(StepError::permanent("invalid_notification", e.to_string()))
                    }
                    Err(e) => Err(StepError::retryable("queue", e.to_string())),
                }
            }
            ResolvedAction::EmitEvent { event_type, payload } => match self.hooks.emit(&ctx.owner, event_type, payload.clone()).await {
                Ok(m) => Ok(json!({ "message_id": m.id })),
                Err(e) if e.status().is_client_error() && e.retry_after_secs().is_none() => Err(StepError::permanent(e.code(), e.to_string())),
                Err(e) => Err(StepError::retryable(e.code(), e.to_string())),
            },
            ResolvedAction::Call { name, args } => self.call(ctx, name, args).await,
        }
    }

    async fn on_run_finished(&self, run: &flows::RunSummary) {
        let event = if run.status == flows::RunStatus::Completed { hooks::events::WORKFLOW_COMPLETED } else { hooks::events::WORKFLOW_FAILED };
        let data = json!({
            "run_id": run.id,
            "workflow": run.workflow,
            "status": run.status.as_str(),
            "failed_step": run.failed_step,
            "error_code": run.error_code,
            "error_message": run.error_message,
        });
        if let Err(e) = self.hooks.emit(&run.owner, event, data).await {
            tracing::warn!(run = %run.id, error = %e, "could not emit the workflow's final event");
        }
    }
}
