//! Shared test helpers: a scripted host that records every call, definitions from JSON, engines over
//! every database in `db::testing::engines()`, and polling with a deadline.
#![allow(dead_code)]

use async_trait::async_trait;
use contract::Owner;
use flows::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One call the host saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub run_id: String,
    pub step: String,
    pub phase: Phase,
    pub attempt: u32,
    pub action: ResolvedAction,
    pub worker: String,
}

/// Behaviour by key: the step name for forward attempts, `<step>/compensate` for compensations.
#[derive(Default)]
pub struct Script {
    /// Fail the first n attempts with this error, then succeed.
    pub fail_first: HashMap<String, (u32, StepError)>,
    pub fail_always: HashMap<String, StepError>,
    pub sleep_ms: HashMap<String, u64>,
}

pub struct ScriptedHost {
    pub name: String,
    pub script: Mutex<Script>,
    pub calls: Mutex<Vec<Call>>,
    /// Every attempt's context, in call order.
    pub contexts: Mutex<Vec<StepContext>>,
    pub finished: Mutex<Vec<RunSummary>>,
    counts: Mutex<HashMap<(String, String), u32>>,
    /// Bytes each owner may still store (`None`: no allowance): charged by the engine.
    pub storage_left: Mutex<Option<HashMap<String, u64>>>,
}

impl ScriptedHost {
    pub fn new(name: &str) -> Arc<ScriptedHost> {
        Arc::new(ScriptedHost {
            name: name.into(),
            script: Mutex::new(Script::default()),
            calls: Mutex::new(Vec::new()),
            contexts: Mutex::new(Vec::new()),
            finished: Mutex::new(Vec::new()),
            counts: Mutex::new(HashMap::new()),
            storage_left: Mutex::new(None),
        })
    }

    /// Gives every owner in `owners` `bytes` of storage; others get none.
    pub fn storage(&self, owners: &[Owner], bytes: u64) {
        *self.storage_left.lock().unwrap() = Some(owners.iter().map(|o| (o.to_string(), bytes)).collect());
    }

    pub fn fail_first(&self, key: &str, n: u32, e: StepError) {
        self.script.lock().unwrap().fail_first.insert(key.into(), (n, e));
    }

    pub fn fail_always(&self, key: &str, e: StepError) {
        self.script.lock().unwrap().fail_always.insert(key.into(), e);
    }

    pub fn sleep(&self, key: &str, ms: u64) {
        self.script.lock().unwrap().sleep_ms.insert(key.into(), ms);
    }

    /// The runs `on_run_finished` was called for, once there are `n`: the engine calls it after it
    /// stores the final status, so a test that saw the status may get here first.
    pub async fn finished_runs(&self, n: usize) -> Vec<RunSummary> {
        wait_for("on_run_finished", Duration::from_secs(10), || async { self.finished.lock().unwrap().len() >= n }).await;
        self.finished.lock().unwrap().clone()
    }

    pub fn calls_for(&self, run_id: &str) -> Vec<Call> {
        self.calls.lock().unwrap().iter().filter(|c| c.run_id == run_id).cloned().collect()
    }

    /// `step` or `step/compensate`, in call order.
    pub fn trace(&self, run_id: &str) -> Vec<String> {
        self.calls_for(run_id).iter().map(|c| key(&c.step, c.phase)).collect()
    }
}

fn key(step: &str, phase: Phase) -> String {
    match phase {
        Phase::Forward => step.to_string(),
        Phase::Compensate => format!("{step}/compensate"),
    }
}

#[async_trait]
impl StepHost for ScriptedHost {
    async fn execute(&self, ctx: &StepContext, action: &ResolvedAction) -> Result<Value, StepError> {
        let k = key(&ctx.step_name, ctx.phase);
        self.contexts.lock().unwrap().push(ctx.clone());
        self.calls.lock().unwrap().push(Call {
            run_id: ctx.run_id.clone(),
            step: ctx.step_name.clone(),
            phase: ctx.phase,
            attempt: ctx.attempt,
            action: action.clone(),
            worker: self.name.clone(),
        });
        let n = {
            let mut c = self.counts.lock().unwrap();
            let n = c.entry((ctx.run_id.clone(), k.clone())).or_insert(0);
            *n += 1;
            *n
        };
        let (sleep, fail) = {
            let s = self.script.lock().unwrap();
            let fail = s.fail_always.get(&k).cloned().or_else(|| s.fail_first.get(&k).filter(|(m, _)| n <= *m).map(|(_, e)| e.clone()));
            (s.sleep_ms.get(&k).copied(), fail)
        };
        if let Some(ms) = sleep {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if let Some(e) = fail {
            return Err(e);
        }
        Ok(match action {
            ResolvedAction::Call { name, args } if name == "create_account" => {
                json!({"id": format!("acc_{}", args["email"].as_str().unwrap_or("?"))})
            }
            ResolvedAction::Call { name, args } => json!({"call": name, "args": args, "attempt": ctx.attempt}),
            ResolvedAction::Notify { recipient, .. } => json!({"sent_to": recipient}),
            ResolvedAction::EmitEvent { event_type, .. } => json!({"event": event_type}),
            ResolvedAction::Http(r) => json!({"url": r.url}),
        })
    }

    async fn on_run_finished(&self, run: &RunSummary) {
        self.finished.lock().unwrap().push(run.clone());
    }

    async fn charge_storage(&self, owner: &Owner, bytes: u64) -> Result<(), String> {
        let mut left = self.storage_left.lock().unwrap();
        let Some(left) = left.as_mut() else { return Ok(()) };
        let mine = left.entry(owner.to_string()).or_default();
        if *mine < bytes {
            return Err(format!("{owner} has {mine} bytes left; this needs {bytes}"));
        }
        *mine -= bytes;
        Ok(())
    }

    async fn refund_storage(&self, owner: &Owner, bytes: u64) {
        if let Some(left) = self.storage_left.lock().unwrap().as_mut() {
            *left.entry(owner.to_string()).or_default() += bytes;
        }
    }
}

pub fn def(v: Value) -> WorkflowDefinition {
    WorkflowDefinition::from_json(&v.to_string()).unwrap_or_else(|e| panic!("test definition: {e}"))
}

/// A `call` step with fast retries.
pub fn call_step(name: &str, compensate: bool) -> Value {
    let mut s = json!({
        "name": name,
        "action": {"type": "call", "name": name},
        "retry": {"initial_interval_ms": 10, "max_interval_ms": 50, "max_attempts": 3},
        "timeout_ms": 5000,
    });
    if compensate {
        s["compensate"] = json!({"type": "call", "name": format!("undo_{name}")});
    }
    s
}

pub fn config(name: &str) -> EngineConfig {
    EngineConfig { instance_id: name.into(), lease_ms: 2000, poll_ms: 20, max_concurrent_runs: 8, max_runs_per_owner: 8 }
}

/// The inbound source the tests wait on, and its owner.
pub const SOURCE_OWNER: Owner = Owner::from_static("alice");

/// `crm` belongs to [`SOURCE_OWNER`].
pub fn sources() -> HashMap<String, InboundSource> {
    HashMap::from([("crm".to_string(), InboundSource { owner: SOURCE_OWNER, scopes: vec!["workflows:write".into()], workflow: None })])
}

/// A migrated store on one test database, with [`sources`].
pub async fn store(db: &db::testing::TestDb) -> Store {
    let store = Store::new(db.connect().await).with_inbound_sources(sources());
    store.migrate().await.expect("migrate");
    store
}

pub async fn engine(store: &Store, host: Arc<ScriptedHost>, name: &str) -> Engine {
    let e = Engine::new(store.clone(), host, config(name));
    e.spawn().await;
    e
}

pub fn inline(d: WorkflowDefinition, input: Value) -> NewRun {
    NewRun { definition: DefinitionRef::Inline(d), input, idempotency_key: None, started_by: StartedBy::session() }
}

pub use testkit::wait_for;

/// Waits until the run reaches `status` (failing fast if it ends in another final status).
pub async fn wait_status(store: &Store, owner: &Owner, id: &str, status: RunStatus) -> RunRecord {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = store.get_run(owner, id).await.unwrap();
        if r.status == status {
            return r;
        }
        if r.status.is_final() {
            panic!("run ended {:?} instead of {status:?}: {r:?}", r.status);
        }
        assert!(Instant::now() < deadline, "timed out waiting for {status:?}; run is {r:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The timeline as `step/phase:outcome` strings, attempt by attempt.
pub fn outcomes(t: &Timeline) -> Vec<String> {
    t.entries.iter().flat_map(|e| e.attempts.iter().map(move |a| format!("{}/{}:{}", e.step_name, e.phase.as_str(), a.outcome.as_str()))).collect()
}
