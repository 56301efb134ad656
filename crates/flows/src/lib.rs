//! Orchestrated workflows (issue 5): definitions as data (TOML or JSON), durable runs that resume after
//! a crash, retries with backoff, compensation of completed steps in reverse order (saga), and a
//! per-run timeline. No web framework in here: the server exposes it. See README.md for the model.
//!
//! # API
//! - [`WorkflowDefinition::parse`]`(text, Format)` / `from_toml` / `from_json`, `validate()` with
//!   field-addressed errors; [`builtin::onboarding`].
//! - [`Store`] (on `db::connect(url)`, migrated with `store.migrate()` or `db::migrate(&pool, &MIGRATIONS)`):
//!   definitions CRUD, `start_run`, `get_run`, `list_runs`, `timeline`, `retry_run`, `cancel_run`,
//!   `deliver_inbound` / `receive_inbound` — all usable without a running engine. Per owner (issue 14):
//!   inbound sources belong to one owner ([`InboundSource`]), runs carry who started them
//!   ([`StartedBy`]), and [`Limits`] cap active runs and stored definitions.
//! - [`Engine::new`]`(store, Arc<dyn StepHost>, EngineConfig)`, `spawn()` / `run()`, `shutdown()`; the same
//!   run operations as the store, waking the local claim loop.
//! - [`StepHost`]: the host executes `http`, `notify`, `emit_event` and `call` actions and hears about
//!   finished runs; [`HttpCaller`] executes `http` actions for it under a URL policy.
//! - [`FlowsError::status`] maps every error to its HTTP status.

pub mod builtin;
pub mod definition;
pub mod engine;
pub mod error;
pub mod host;
pub mod http;
pub mod run;
pub mod store;
pub mod template;

pub use definition::{Action, Format, RetryPolicy, StatusMatch, StepDef, WorkflowDefinition};
pub use engine::{Engine, EngineConfig};
pub use error::{FieldError, FlowsError};
pub use host::{HttpRequest, ResolvedAction, StepContext, StepError, StepHost};
pub use http::{HttpCaller, HttpPolicy, UrlCheck};
/// The HTTP client `HttpPolicy` speaks of (its resolver and error types), for hosts implementing it.
pub use reqwest;
pub use run::{
    AttemptOutcome, AttemptRecord, Page, Paged, Phase, RunFilter, RunId, RunListing, RunRecord, RunState, RunStatus, RunSummary, StartedBy,
    StepState, StepStatus, Timeline, TimelineEntry,
};
/// What retention prunes of workflows (issue 17): inbound messages by when they arrived, taken by a run
/// or not (a run that took one has its payload in its own record).
pub const RETAINED_INBOX: &[db::Prunable] =
    &[db::Prunable { table: "workflow_inbox", key: "id", older_than: "received_at_ms < $1", age: "received_at_ms", in_secs: false }];

/// Finished runs by when they finished, their attempt log first (active runs have no `finished_at_ms`;
/// a retry clears it).
pub const RETAINED_RUNS: &[db::Prunable] = &[
    db::Prunable {
        table: "workflow_step_attempts",
        key: "id",
        older_than: "run_id IN (SELECT id FROM workflow_runs WHERE finished_at_ms < $1)",
        age: "started_at_ms",
        in_secs: false,
    },
    db::Prunable { table: "workflow_runs", key: "seq", older_than: "finished_at_ms < $1", age: "finished_at_ms", in_secs: false },
];

pub use store::{
    is_reserved_event_type, DefinitionRecord, DefinitionRef, InboundEffect, InboundSource, Limits, NewRun, StartRun, Store, MIGRATIONS,
    RESERVED_EVENT_PREFIXES,
};
