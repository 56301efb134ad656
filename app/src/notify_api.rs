//! The notifications dashboard's server functions and the view types they exchange. The pipeline is
//! `crates/notify` (server only); these mirror what the page shows, so the browser build does not
//! depend on it. The server's live-updates stream (SSE) sends the same [`RunView`] as JSON.

// `start_simulation` takes one argument per form field (what `ActionForm` posts); the browser-side
// function the `#[server]` macro generates from it cannot carry an item-level allow.
#![allow(clippy::too_many_arguments)]

use contract::Problem;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// One simulation run as the dashboard shows it, live (and as `/api/v1/runs/{id}` returns it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RunView {
    pub id: i64,
    /// running, completed, cancelled or failed.
    pub status: String,
    /// The parameters in words: "10,000 at 1M / hour · webhook, email · embedded".
    pub summary: String,
    pub count: u64,
    pub produced: u64,
    pub delivered: u64,
    pub failed_attempts: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub cancelled: u64,
    pub backlog: u64,
    /// Enqueue to delivered, retries included: p50, p95, p99 in milliseconds.
    #[cfg_attr(feature = "ssr", schema(value_type = Vec<f64>))]
    pub end_to_end_ms: [f64; 3],
    /// One successful delivery attempt: p50, p95, p99 in milliseconds.
    #[cfg_attr(feature = "ssr", schema(value_type = Vec<f64>))]
    pub attempt_ms: [f64; 3],
    /// (seconds since start, delivered in that second).
    #[cfg_attr(feature = "ssr", schema(value_type = Vec<Vec<u32>>))]
    pub throughput: Vec<(u32, u32)>,
    /// The paced rate, per second (none for "as fast as possible").
    pub target_per_sec: Option<f64>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

impl RunView {
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }

    /// Settled notifications (delivered, dead-lettered or dropped by a cancel) out of `count`.
    pub fn settled(&self) -> u64 {
        (self.delivered + self.dead_lettered + self.cancelled).min(self.count)
    }
}

/// A run in the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RunRow {
    pub id: i64,
    pub status: String,
    pub summary: String,
    pub count: u64,
    pub delivered: u64,
    pub dead_lettered: u64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterView {
    pub id: String,
    pub run: Option<i64>,
    pub channel: String,
    pub recipient: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub dead_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    pub runs: Vec<RunRow>,
    pub dead_letters: Vec<DeadLetterView>,
    /// Whether a Redis URL is configured, so the Redis Streams backend can be chosen.
    pub redis_available: bool,
}

/// A refused start: each problem with the form field it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct StartOutcome {
    pub run_id: Option<i64>,
    pub errors: Vec<(String, String)>,
    pub message: Option<String>,
}

/// Dead letters listed on the dashboard.
pub const DEAD_LETTERS_SHOWN: usize = 20;

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;
    use notify::{NotifyService, Rate, RunSnapshot, RunSummary, SimParams};

    pub fn service() -> Result<NotifyService, Problem> {
        use_context::<NotifyService>().ok_or_else(|| Problem::internal("notification service missing"))
    }

    pub fn owner() -> Result<String, Problem> {
        crate::api::ssr::signed_in().map(|s| s.username).ok_or_else(crate::api::ssr::sign_in_first)
    }

    fn thousands(n: u64) -> String {
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    }

    fn rate_words(rate: Rate) -> String {
        match rate {
            Rate::Max => "as fast as possible".into(),
            Rate::PerHour(n) if n % 1_000_000 == 0 => format!("{}M / hour", n / 1_000_000),
            Rate::PerHour(n) if n % 1_000 == 0 => format!("{}k / hour", n / 1_000),
            Rate::PerHour(n) => format!("{} / hour", thousands(n)),
        }
    }

    pub fn summary(p: &SimParams) -> String {
        let channels: Vec<String> = notify::Channel::ALL
            .iter()
            .filter(|c| p.mix.weight(**c) > 0)
            .map(|c| if p.mix.weight(*c) == 1 { c.as_str().to_string() } else { format!("{} ×{}", c.as_str(), p.mix.weight(*c)) })
            .collect();
        let mut s = format!("{} at {} · {} · {}", thousands(p.count), rate_words(p.rate), channels.join(", "), p.backend.as_str());
        if p.failure_rate > 0.0 {
            s += &format!(" · {}% failures", (p.failure_rate * 100.0).round());
        }
        if p.latency_ms > 0 {
            s += &format!(" · +{} ms", p.latency_ms);
        }
        s
    }

    pub fn view_of(s: RunSnapshot) -> RunView {
        let target_per_sec = match s.params.rate {
            Rate::PerHour(n) => Some(n as f64 / 3600.0),
            Rate::Max => None,
        };
        RunView {
            id: s.id,
            status: s.status.as_str().to_string(),
            summary: summary(&s.params),
            count: s.params.count,
            produced: s.produced,
            delivered: s.delivered,
            failed_attempts: s.failed_attempts,
            retried: s.retried,
            dead_lettered: s.dead_lettered,
            cancelled: s.cancelled,
            backlog: s.backlog,
            end_to_end_ms: [s.end_to_end_ms.p50, s.end_to_end_ms.p95, s.end_to_end_ms.p99],
            attempt_ms: [s.latency_ms.p50, s.latency_ms.p95, s.latency_ms.p99],
            throughput: s.throughput,
            target_per_sec,
            started_at: s.started_at,
            finished_at: s.finished_at,
        }
    }

    pub fn row_of(r: RunSummary) -> RunRow {
        RunRow {
            id: r.id,
            status: r.status.as_str().to_string(),
            summary: summary(&r.params),
            count: r.params.count,
            delivered: r.delivered,
            dead_lettered: r.dead_lettered,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }

    /// A run of the signed-in user's, as the page and the live stream show it.
    pub async fn run_for(service: &NotifyService, owner: &str, id: i64) -> Result<Option<RunView>, notify::NotifyError> {
        if service.run_owner(id).await?.as_deref() != Some(owner) {
            return Ok(None);
        }
        Ok(service.run_snapshot(id).await?.map(view_of))
    }

    /// The user's own dead letters (of their runs and their API notifications), newest first; the
    /// queue filters by owner, so others' newer ones never hide them.
    pub async fn my_dead_letters(service: &NotifyService, me: &str) -> Result<Vec<notify::DeadLetter>, Problem> {
        service.dead_letters_of(Some(me), MAX_DEAD_LETTERS_SCANNED).await.map_err(Problem::from)
    }

    /// How many dead letters one dashboard request reads.
    pub const MAX_DEAD_LETTERS_SCANNED: usize = 10_000;
}

/// The signed-in user's runs, the dead letters and what can be chosen; `None` when signed out.
#[server]
pub async fn notification_dashboard() -> Result<Option<Dashboard>, Problem> {
    use ssr::*;
    let Ok(me) = owner() else { return Ok(None) };
    let service = service()?;
    let runs: Vec<RunRow> = service.list_runs(&me).await.map_err(Problem::from)?.into_iter().map(row_of).collect();
    let dead_letters = my_dead_letters(&service, &me)
        .await?
        .into_iter()
        .take(DEAD_LETTERS_SHOWN)
        .map(|d| DeadLetterView {
            id: d.id.to_string(),
            run: d.run,
            channel: d.channel.as_str().to_string(),
            recipient: d.recipient,
            attempts: d.attempts,
            last_error: d.last_error,
            dead_at_ms: d.dead_at_ms,
        })
        .collect();
    Ok(Some(Dashboard { runs, dead_letters, redis_available: service.has_redis() }))
}

/// One of the signed-in user's runs; `None` if there is no such run of theirs.
// Stable endpoint names (no hash suffix): scripts and the scale-out tests call these directly.
#[server(endpoint = "load_run")]
pub async fn load_run(id: i64) -> Result<Option<RunView>, Problem> {
    let me = ssr::owner()?;
    ssr::run_for(&ssr::service()?, &me, id).await.map_err(Problem::from)
}

/// Starts a simulation from the dashboard's form. Every field arrives as text, so a bad value is a
/// message under its field rather than a failed request.
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
) -> Result<StartOutcome, Problem> {
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
    });
    let params = match notify::SimParams::from_value(&body) {
        Ok(p) => p,
        Err(e) => return Ok(refusal(e)),
    };
    match ssr::service()?.start_run(&me, params).await {
        Ok(id) => Ok(StartOutcome { run_id: Some(id), ..Default::default() }),
        Err(e) => Ok(refusal(e)),
    }
}

#[cfg(feature = "ssr")]
fn refusal(e: notify::NotifyError) -> StartOutcome {
    // Form field names differ from the API's in one place: the failure rate is typed in percent.
    let field = |f: &str| match f {
        "failure_rate" => "failure_percent".to_string(),
        f => f.strip_prefix("mix.").unwrap_or(f).to_string(),
    };
    let errors: Vec<(String, String)> = e.field_errors().iter().map(|fe| (field(&fe.field), fe.message.clone())).collect();
    let message = errors.is_empty().then(|| e.to_string());
    StartOutcome { run_id: None, errors, message }
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
