//! The notification subcommands: `server simulate` (a run, headless, with a progress bar and a
//! summary), `server worker` (worker-only against Redis) and `server sink` (the local webhook sink).

use indicatif::{ProgressBar, ProgressStyle};
use notify::sink::{Sink, SinkConfig};
use notify::{Backend, NotifyService, PipelineConfig, RedisWorker, RunStatus, SimParams};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::cli::SimulateArgs;

/// Whose runs `server simulate` makes (the operator's: not held to the users' quotas).
const CLI: contract::Owner = contract::Owner::from_static("cli");

fn field_errors(e: &notify::NotifyError) -> String {
    match e.field_errors() {
        [] => e.to_string(),
        errors => errors.iter().map(|f| format!("--{}: {}", f.field.replace('_', "-"), f.message)).collect::<Vec<_>>().join("\n"),
    }
}

/// Builds the run's parameters from the flags; every problem names its flag.
pub fn sim_params(a: &SimulateArgs) -> Result<SimParams, String> {
    let mut errors = vec![];
    let rate = a.rate.parse().map_err(|m: String| errors.push(format!("--rate: {m}"))).ok();
    let mix = a.mix.parse().map_err(|e: Vec<notify::FieldError>| {
        errors.extend(e.into_iter().map(|f| format!("--mix: {}: {}", f.field.trim_start_matches("mix."), f.message)))
    });
    let backend = a.backend.parse::<Backend>().map_err(|m| errors.push(format!("--backend: {m}"))).ok();
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    let p = SimParams {
        count: a.count,
        rate: rate.expect("checked"),
        mix: mix.expect("checked"),
        failure_rate: a.failure_rate,
        latency_ms: a.latency_ms,
        backend: backend.expect("checked"),
        ttl_secs: None,
    };
    p.validate().map_err(|e| field_errors(&e))?;
    Ok(p)
}

pub async fn simulate(mut cfg: PipelineConfig, a: SimulateArgs) -> Result<(), String> {
    let params = sim_params(&a)?;
    if let Some(url) = &a.redis {
        cfg.redis_url = Some(url.clone());
    }
    // The embedded queue belongs to one process: the CLI uses its own file unless told otherwise.
    cfg.queue_url = a.queue.clone().unwrap_or_else(|| cfg.queue_url.replace("notify.db", "notify-simulate.db"));
    if let Some(url) = &a.webhook_url {
        cfg.webhook.url = url.clone();
    }
    if params.backend == Backend::Redis && a.no_local_workers {
        cfg.workers = false;
    }
    let service = NotifyService::new(cfg).await.map_err(|e| field_errors(&e))?;
    service.start().await.map_err(|e| e.to_string())?;
    let id = service.start_operator_run(&CLI, params.clone()).await.map_err(|e| field_errors(&e))?;
    let bar = ProgressBar::new(params.count);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} settled  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let snap = loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = &mut ctrl_c => {
                bar.println("cancelling the run…");
                service.cancel_run(&CLI, id).await.map_err(|e| e.to_string())?;
            }
        }
        let Some(s) = service.run_snapshot(id).await.map_err(|e| e.to_string())? else { continue };
        bar.set_position(s.delivered + s.dead_lettered + s.cancelled + s.expired);
        let rate = s.throughput.last().map(|(_, r)| *r).unwrap_or(0);
        bar.set_message(format!("{rate}/s  retried {}  dead {}  backlog {}", s.retried, s.dead_lettered, s.backlog));
        if s.status != RunStatus::Running {
            break s;
        }
    };
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "run {id} {}: {} produced, {} delivered in {secs:.2} s ({:.0}/s)",
        snap.status.as_str(),
        snap.produced,
        snap.delivered,
        snap.delivered as f64 / secs
    );
    println!(
        "attempt latency p50/p95/p99: {}/{}/{} ms; end to end p50/p95/p99: {}/{}/{} ms",
        snap.latency_ms.p50, snap.latency_ms.p95, snap.latency_ms.p99, snap.end_to_end_ms.p50, snap.end_to_end_ms.p95, snap.end_to_end_ms.p99
    );
    println!(
        "failed attempts {}, retried {}, dead-lettered {}, cancelled {}, expired {}",
        snap.failed_attempts, snap.retried, snap.dead_lettered, snap.cancelled, snap.expired
    );
    service.shutdown().await;
    if snap.status == RunStatus::Failed {
        Err("the run failed (see the log)".into())
    } else {
        Ok(())
    }
}

pub async fn worker(settings: &crate::config::Settings, redis: Option<String>) -> Result<(), String> {
    let mut cfg = settings.notify_config();
    if let Some(url) = redis {
        cfg.redis_url = Some(url);
    }
    if cfg.redis_url.is_none() {
        return Err("--redis URL (or APP_NOTIFY__REDIS_URL) is required".into());
    }
    // Jobs for registered endpoints are addressed `endpoint:<id>`: without the app database a worker
    // would not know their URL or secret, log no attempt and emit no `notification.*` event, and
    // would send them to the configured default URL. So the worker opens it, as the instances do.
    let pool = auth::db::connect(&settings.database_url).await.map_err(|e| format!("app database: {e}"))?;
    crate::state::migrate_all(&pool).await.map_err(|e| e.to_string())?;
    // Events this worker emits are enqueued on Redis, where every worker sees them. Its handle only
    // enqueues: no workers of its own, and an in-memory embedded queue, never the instances' file
    // (opening that would re-deliver what a live instance holds).
    let mut enqueue_only = cfg.clone();
    enqueue_only.workers = false;
    enqueue_only.queue_url = "sqlite::memory:".into();
    let events_queue = NotifyService::new(enqueue_only).await.map_err(|e| field_errors(&e))?;
    let mut hooks_cfg = settings.hooks.clone();
    hooks_cfg.backend = Backend::Redis;
    let (hooks_pool, events_queue_for_pruning) = (pool.clone(), events_queue.clone());
    let hooks = hooks::Hooks::new(pool, hooks_cfg, Some(events_queue)).map_err(|e| format!("webhooks: {e}"))?;
    let mut extensions = hooks.extensions();
    extensions.observers.push(hooks.notification_events(|job| job.owner.clone()));
    let worker = RedisWorker::start_with(cfg, extensions).await.map_err(|e| field_errors(&e))?;
    // Workers prune too (issue 17): the shared database when no instance holds the lease, and Redis's
    // dead letters (its queue file is in memory).
    let pruner = std::sync::Arc::new(crate::retention::Pruner::new(hooks_pool, events_queue_for_pruning, &settings.retention)).spawn();
    tracing::info!("worker running against Redis; Ctrl-C or SIGTERM stops it after in-flight deliveries");
    stop_signal().await;
    pruner.abort();
    worker.shutdown().await;
    drop(hooks);
    Ok(())
}

pub async fn sink(addr: SocketAddr, cfg: SinkConfig) -> Result<(), String> {
    let sink = Sink::start(addr, cfg).await?;
    println!("webhook sink on {} (POST /webhook, GET /stats)", sink.url());
    stop_signal().await;
    println!("{}", serde_json::to_string(&sink.stats()).unwrap_or_default());
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term => {} }
}
