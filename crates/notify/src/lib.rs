//! The notification pipeline: producers enqueue notifications on a durable queue (embedded SQLite or
//! Redis Streams); a worker pool delivers them under rate limits with retries, dead letters and an
//! attempt history; simulation runs load it for the dashboard. No web framework in here.
//!
//! # API (used by the server and the dashboard)
//! - [`NotifyService::new`]`(PipelineConfig)`, then [`start`](NotifyService::start) (workers, monitor,
//!   resumes interrupted runs) and [`shutdown`](NotifyService::shutdown) (stop leasing, finish in-flight
//!   deliveries, release leases).
//! - [`enqueue`](NotifyService::enqueue)`(Vec<NewNotification>) -> Result<Vec<NotificationId>, NotifyError>`
//!   (and [`enqueue_to`](NotifyService::enqueue_to) for the Redis backend); `NotifyError::Backpressure
//!   { retry_after }` above the high-water mark.
//! - [`start_run`](NotifyService::start_run)`(owner, SimParams) -> RunId`, [`cancel_run`](NotifyService::cancel_run)`(owner, id)`,
//!   [`list_runs`](NotifyService::list_runs)`(owner) -> Vec<RunSummary>`,
//!   [`run_snapshot`](NotifyService::run_snapshot)`(id) -> Option<RunSnapshot>` (cheap: call it every 500 ms),
//!   [`run_owner`](NotifyService::run_owner)`(id)`.
//! - [`dead_letters_of`](NotifyService::dead_letters_of)`(owner, limit)`, [`replay_dead_letters_of`](NotifyService::replay_dead_letters_of)`(owner, Replay)`
//!   (one owner's, filtered in each backend's query; `dead_letters` / `replay_dead_letters` are everyone's),
//!   [`attempts`](NotifyService::attempts)`(NotificationId)`.
//! - [`metrics_text`](NotifyService::metrics_text) (Prometheus text format).
//! - [`RedisWorker`]: a worker-only process against Redis ([`start_with`](RedisWorker::start_with) takes
//!   the same [`DeliveryExtensions`]).
//! - [`set_webhook_routing`](NotifyService::set_webhook_routing)`(WebhookRouting)`: per-job webhook targets
//!   (URL, keys, `webhook-id`, body) from a [`WebhookTargets`] resolver, with an [`AddressPolicy`] checked
//!   at connect time; [`add_attempt_observer`](NotifyService::add_attempt_observer) for every attempt's
//!   outcome and HTTP status ([`routing`]).
//! - [`signature`]: Standard Webhooks signing and verification; [`sink`]: a local webhook receiver that
//!   verifies and counts deliveries.
//! - [`SimParams::from_json`] / `validate`: field-level errors for bad simulation parameters.

pub mod channels;
mod clock;
pub mod config;
pub mod email;
pub mod error;
pub mod metrics;
pub mod model;
pub mod queue;
mod quotas;
pub mod routing;
pub mod runs;
pub mod service;
pub mod signature;
pub mod sim;
pub mod sink;
pub mod webpush;
mod worker;

pub use clock::Clock;
pub use config::{PipelineConfig, PushConfig, Quotas, RateLimits, RetrySchedule, SimulatedProviders, WebhookConfig, WebhookRetry, SVIX_SCHEDULE_MS};
pub use email::{EmailConfig, SmtpTls};
pub use error::{FieldError, NotifyError};
pub use model::{
    parse_batch, validate_batch, Attempt, AttemptOutcome, Backend, Channel, DeadLetter, Job, NewNotification, NotificationId, PerChannel, Priority,
    Replay, Retained, RetryClass, RunId, StoreSize, MAX_TTL_SECS,
};
pub use quotas::OwnerRate;
pub use routing::{
    AddressPolicy, AttemptObserver, AttemptReport, BoxFuture, DeliveryExtensions, PushTarget, PushTargets, RouteError, WebhookRouting, WebhookTarget,
    WebhookTargets,
};
pub use runs::{Percentiles, RunSnapshot, RunStatus, RunSummary};
pub use service::{NotifyService, RedisWorker};
pub use sim::{ChannelMix, Rate, SimParams};
