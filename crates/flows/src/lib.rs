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
pub use store::{
    is_reserved_event_type, DefinitionRecord, DefinitionRef, InboundEffect, InboundSource, Limits, NewRun, StartRun, Store, MIGRATIONS,
    RESERVED_EVENT_PREFIXES,
};
