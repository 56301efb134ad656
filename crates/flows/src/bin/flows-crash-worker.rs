//! A worker process for the crash tests (tests/crash.rs): runs an engine over a database with a host
//! that appends every call to a log file, so a test can SIGKILL it mid-run and count what happened.
//!
//! flows-crash-worker --db URL --log FILE --instance NAME [--start slow|delay] [--until RUN_ID] [--slow-ms N]
//!
//! `--start` starts a run of one of the two test workflows and prints `started <id>`; the process exits
//! (printing `run <id> <status>`) when that run, or the `--until` run, reaches a final status.

use async_trait::async_trait;
use flows::*;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// Whose runs the crash tests make.
const CRASH: contract::Owner = contract::Owner::from_static("crash");

struct LoggingHost {
    log: std::path::PathBuf,
    slow_ms: u64,
}

impl LoggingHost {
    fn line(&self, s: String) {
        // One write per line with O_APPEND: a SIGKILL leaves whole lines behind.
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        f.write_all(format!("{s}\n").as_bytes()).expect("log write");
    }
}

#[async_trait]
impl StepHost for LoggingHost {
    async fn execute(&self, ctx: &StepContext, _action: &ResolvedAction) -> Result<Value, StepError> {
        self.line(format!("{} {} start", ctx.step_name, ctx.attempt));
        if ctx.step_name == "slow" {
            tokio::time::sleep(Duration::from_millis(self.slow_ms)).await;
        }
        self.line(format!("{} {} done", ctx.step_name, ctx.attempt));
        Ok(json!({"step": ctx.step_name, "attempt": ctx.attempt}))
    }
}

fn workflow(name: &str) -> WorkflowDefinition {
    let call = |n: &str| {
        json!({"name": n, "action": {"type": "call", "name": n}, "timeout_ms": 60000,
               "retry": {"initial_interval_ms": 10, "max_interval_ms": 10, "max_attempts": 3}})
    };
    let steps = match name {
        "slow" => json!([call("one"), call("two"), call("slow"), call("four")]),
        "delay" => json!([call("one"), {"name": "pause", "action": {"type": "delay", "ms": 1500}}, call("two")]),
        other => panic!("unknown test workflow {other}"),
    };
    WorkflowDefinition::from_json(&json!({"name": name, "steps": steps}).to_string()).expect("test workflow")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |k: &str| args.iter().position(|a| a == k).and_then(|i| args.get(i + 1)).cloned();
    let url = arg("--db").expect("--db URL");
    let host = Arc::new(LoggingHost {
        log: arg("--log").expect("--log FILE").into(),
        slow_ms: arg("--slow-ms").map(|v| v.parse().expect("--slow-ms N")).unwrap_or(0),
    });
    let store = Store::new(db::connect(&url).await.expect("connect"));
    store.migrate().await.expect("migrate");
    let cfg = EngineConfig {
        instance_id: arg("--instance").unwrap_or_else(|| "worker".into()),
        lease_ms: 1000,
        poll_ms: 20,
        max_concurrent_runs: 4,
        max_runs_per_owner: 4,
    };
    let engine = Engine::new(store.clone(), host, cfg);
    let until = match arg("--start") {
        Some(w) => {
            let id = engine
                .start_run(
                    &CRASH,
                    NewRun {
                        definition: DefinitionRef::Inline(workflow(&w)),
                        input: json!({}),
                        idempotency_key: None,
                        started_by: StartedBy::session(),
                    },
                )
                .await
                .expect("start run");
            println!("started {id}");
            id
        }
        None => arg("--until").expect("--start or --until"),
    };
    engine.spawn().await;
    loop {
        let run = store.get_run(&CRASH, &until).await.expect("run");
        if run.status.is_final() {
            engine.shutdown().await;
            println!("run {} {}", run.id, run.status.as_str());
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
