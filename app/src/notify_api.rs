//! The notifications dashboard's server functions. The pipeline is `crates/notify` (server only); the
//! runs and dead letters travel as `contract::notifications` types, which `notify` builds and the REST
//! API and the live-updates stream (SSE) send too.

// `start_simulation` takes one argument per form field (what `ActionForm` posts); the browser-side
// function the `#[server]` macro generates from it cannot carry an item-level allow.
#![allow(clippy::too_many_arguments)]

use contract::Problem;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The runs and dead letters as every client sees them (the same types the REST API answers with).
pub use contract::notifications::{DeadLetterView, RunRow, RunView};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    pub runs: Vec<RunRow>,
    pub dead_letters: Vec<DeadLetterView>,
    /// Whether a Redis URL is configured, so the Redis Streams backend can be chosen.
    pub redis_available: bool,
    /// Storage per store, for operators only (`APP_OPERATORS`); `None` for everyone else.
    pub storage: Option<contract::ops::StorageReport>,
}

/// Dead letters listed on the dashboard.
pub const DEAD_LETTERS_SHOWN: usize = 20;

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;
    use notify::NotifyService;

    pub fn service() -> Result<NotifyService, Problem> {
        Ok(crate::api::ssr::require_services()?.notify.clone())
    }

    pub use crate::api::ssr::owner;

    /// The user's newest dead letters that the dashboard shows (of their runs and their API
    /// notifications), newest first. The queue filters by owner, so others' newer ones never hide them,
    /// and each backend answers its newest, so reading as many as are shown is enough.
    pub async fn my_dead_letters(service: &NotifyService, me: &str) -> Result<Vec<notify::DeadLetter>, Problem> {
        service.dead_letters_of(Some(me), DEAD_LETTERS_SHOWN).await.map_err(Problem::from)
    }

    /// Who the operators are and what retention last measured (the server's pruner provides it).
    #[derive(Clone)]
    pub struct OpsView {
        pub is_operator: std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>,
        pub storage: std::sync::Arc<dyn Fn() -> contract::ops::StorageReport + Send + Sync>,
    }

    /// Storage per store if `me` is an operator.
    pub fn storage_for(me: &str) -> Option<contract::ops::StorageReport> {
        crate::api::ssr::services().filter(|s| (s.ops.is_operator)(me)).map(|s| (s.ops.storage)())
    }
}

/// The signed-in user's runs, the dead letters and what can be chosen; `None` when signed out.
#[server]
pub async fn notification_dashboard() -> Result<Option<Dashboard>, Problem> {
    use ssr::*;
    let Ok(me) = owner() else { return Ok(None) };
    let service = service()?;
    let runs: Vec<RunRow> = service.list_runs(&me).await.map_err(Problem::from)?.into_iter().map(Into::into).collect();
    let dead_letters = my_dead_letters(&service, &me).await?.into_iter().map(Into::into).collect();
    Ok(Some(Dashboard { runs, dead_letters, redis_available: service.has_redis(), storage: storage_for(&me) }))
}

/// One of the signed-in user's runs; `None` if there is no such run of theirs.
// Stable endpoint names (no hash suffix): scripts and the scale-out tests call these directly.
#[server(endpoint = "load_run")]
pub async fn load_run(id: i64) -> Result<Option<RunView>, Problem> {
    let me = ssr::owner()?;
    ssr::service()?.run_view(&me, id).await.map_err(Problem::from)
}

/// Starts a simulation from the dashboard's form and answers the new run's id. Every field arrives as
/// text, so a bad value is a 422 problem whose `errors` name the form's inputs.
#[server(endpoint = "start_simulation")]
pub async fn start_simulation(
    count: String,
    rate: String,
    webhook: String,
    email: String,
    sms: String,
    push: String,
    failure_percent: String,
    latency_ms: String,
    backend: String,
    // Absent from a form of before this field: no expiry.
    #[server(default)] ttl_secs: String,
) -> Result<i64, Problem> {
    let me = ssr::owner()?;
    let weight = |v: &str| -> serde_json::Value {
        match v.trim().parse::<i64>() {
            Ok(n) => n.into(),
            Err(_) if v.trim().is_empty() => 0.into(),
            Err(_) => v.into(),
        }
    };
    let number = |v: &str| -> serde_json::Value {
        match v.trim().parse::<f64>() {
            Ok(n) if n.fract() == 0.0 && n.abs() < 9e15 => (n as i64).into(),
            Ok(n) => n.into(),
            Err(_) => v.into(),
        }
    };
    let failure_rate = match failure_percent.trim().parse::<f64>() {
        Ok(p) => serde_json::json!(p / 100.0),
        Err(_) if failure_percent.trim().is_empty() => serde_json::json!(0),
        Err(_) => serde_json::json!(failure_percent),
    };
    let body = serde_json::json!({
        "count": number(&count),
        "rate": rate,
        "mix": { "webhook": weight(&webhook), "email": weight(&email), "sms": weight(&sms), "push": weight(&push) },
        "failure_rate": failure_rate,
        "latency_ms": number(&latency_ms),
        "backend": backend,
        "ttl_secs": if ttl_secs.trim().is_empty() { serde_json::Value::Null } else { number(&ttl_secs) },
    });
    let params = notify::SimParams::from_value(&body).map_err(refusal)?;
    ssr::service()?.start_run(&me, params).await.map_err(refusal)
}

/// The problem with the form's input names: they differ from the API's fields in two ways (the
/// failure rate is typed in percent; the mix's weights are inputs of their own).
#[cfg(feature = "ssr")]
fn refusal(e: notify::NotifyError) -> Problem {
    Problem::from(e).renaming_fields(|field| match field {
        "failure_rate" => "failure_percent".to_string(),
        other => other.strip_prefix("mix.").unwrap_or(other).to_string(),
    })
}

/// Cancels one of the signed-in user's running simulations.
#[server]
pub async fn cancel_simulation(id: i64) -> Result<(), Problem> {
    let me = ssr::owner()?;
    ssr::service()?.cancel_run(&me, id).await.map_err(Problem::from)
}

/// Puts dead letters back in the queue: `which` is a notification id, or `all`. Answers how many.
#[server]
pub async fn replay_dead_letters(which: String) -> Result<u64, Problem> {
    let me = ssr::owner()?;
    let service = ssr::service()?;
    // Only the user's own dead letters, whatever was asked for: the queue filters by owner.
    let which = if which == "all" { notify::Replay::All } else { notify::Replay::Ids(vec![which.parse().map_err(Problem::from)?]) };
    let single = matches!(which, notify::Replay::Ids(_));
    let n = service.replay_dead_letters_of(Some(&me), which).await.map_err(Problem::from)?;
    if single && n == 0 {
        return Err(Problem::not_found("No such dead letter of yours."));
    }
    Ok(n)
}

/// A Web Push subscription as every client sees it (the REST API answers the same type).
pub use contract::push::Subscription as PushSubscription;

/// The signed-in user's push subscriptions and this server's VAPID public key (what a browser
/// subscribes with); `None` when signed out.
#[server]
pub async fn push_subscriptions() -> Result<Option<(Vec<PushSubscription>, Option<String>)>, Problem> {
    let Ok(me) = ssr::owner() else { return Ok(None) };
    let services = crate::api::ssr::require_services()?;
    let rows = services.hooks.list_subscriptions(&me).await.map_err(Problem::from)?;
    Ok(Some((rows, services.notify.push_public_key())))
}

/// Registers a subscription from its three parts (a browser's `PushSubscription.toJSON()`: the
/// endpoint, `keys.p256dh` and `keys.auth`); a bad part is a 422 naming the form's input.
#[server]
pub async fn add_push_subscription(endpoint: String, p256dh: String, auth: String) -> Result<String, Problem> {
    let me = ssr::owner()?;
    let new = hooks::push::NewSubscription { endpoint, keys: hooks::push::SubscriptionKeys { p256dh, auth }, expiration_time: None };
    let sub = crate::api::ssr::require_services()?.hooks.create_subscription(&me, new).await;
    sub.map(|s| s.id).map_err(|e| Problem::from(e).renaming_fields(|f| f.strip_prefix("keys.").unwrap_or(f).to_string()))
}

/// Deletes one of the signed-in user's subscriptions.
#[server]
pub async fn remove_push_subscription(id: String) -> Result<(), Problem> {
    let me = ssr::owner()?;
    crate::api::ssr::require_services()?.hooks.delete_subscription(&me, &id).await.map_err(Problem::from)
}
