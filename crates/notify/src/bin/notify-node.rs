//! A minimal pipeline process, used by the crash tests (they SIGKILL it) and handy for trying the
//! pipeline without the web server:
//!
//! ```text
//! notify-node --queue sqlite:///tmp/q.db --webhook http://127.0.0.1:3100/webhook --count 100000
//! notify-node --worker-only --redis redis://127.0.0.1:6379 --webhook http://127.0.0.1:3100/webhook
//! ```
//! With `--count`, starts a webhook run (unless one is already running, which then resumes) and exits
//! when no run is left running.

use notify::{Backend, Channel, ChannelMix, NotifyService, PipelineConfig, Rate, RedisWorker, RunStatus, SimParams};
use std::time::Duration;

/// Whose runs this node starts.
const NODE: contract::Owner = contract::Owner::from_static("node");

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let mut cfg = PipelineConfig::default();
    if let Some(q) = value("--queue") {
        cfg.queue_url = q;
    }
    cfg.redis_url = value("--redis");
    if let Some(w) = value("--webhook") {
        cfg.webhook.url = w;
    }
    if let Some(n) = value("--concurrency").and_then(|v| v.parse().ok()) {
        cfg.concurrency = n;
    }
    if let Some(n) = value("--reclaim-ms").and_then(|v| v.parse().ok()) {
        cfg.reclaim_idle_ms = n;
    }
    cfg.consumer_name = value("--consumer");
    if let Some(p) = value("--prefix") {
        cfg.redis_prefix = p;
    }
    let count: Option<u64> = value("--count").and_then(|v| v.parse().ok());
    let backend = if value("--backend").as_deref() == Some("redis") { Backend::Redis } else { Backend::Embedded };

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let code = rt.block_on(async move {
        if flag("--worker-only") {
            let worker = match RedisWorker::start(cfg).await {
                Ok(w) => w,
                Err(e) => {
                    eprintln!("error: {e}");
                    return 1;
                }
            };
            println!("worker ready");
            let _ = tokio::signal::ctrl_c().await;
            worker.shutdown().await;
            return 0;
        }
        let service = match NotifyService::new(cfg).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        };
        if let Err(e) = service.start().await {
            eprintln!("error: {e}");
            return 1;
        }
        let Some(count) = count else {
            let _ = tokio::signal::ctrl_c().await;
            service.shutdown().await;
            return 0;
        };
        let runs = service.list_runs(&NODE).await.unwrap_or_default();
        let id = match runs.iter().find(|r| r.status == RunStatus::Running) {
            Some(r) => {
                println!("resumed run {} at {}", r.id, r.produced);
                r.id
            }
            None => {
                let params = SimParams { count, rate: Rate::Max, mix: ChannelMix::only(Channel::Webhook), backend, ..SimParams::default() };
                match service.start_operator_run(&NODE, params).await {
                    Ok(id) => {
                        println!("started run {id}");
                        id
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        return 1;
                    }
                }
            }
        };
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            match service.run_snapshot(id).await {
                Ok(Some(s)) if s.status != RunStatus::Running => {
                    println!("run {id} {} delivered={} dead={}", s.status.as_str(), s.delivered, s.dead_lettered);
                    break;
                }
                _ => {}
            }
        }
        service.shutdown().await;
        0
    });
    std::process::exit(code);
}
