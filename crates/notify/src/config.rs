//! Everything the pipeline can be tuned with, and its defaults. The server fills this from its
//! `notify.*` settings; nothing below reads the environment.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::model::Channel;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PipelineConfig {
    /// The embedded queue's own SQLite file (kept apart from the app database so queue churn never
    /// blocks sign-in).
    pub queue_url: String,
    /// Redis for the scale-out backend; `None` leaves it off.
    pub redis_url: Option<String>,
    /// Key prefix in Redis, so several deployments can share one server.
    pub redis_prefix: String,
    /// Run workers in this process (off for an API-only node in front of Redis workers).
    pub workers: bool,
    /// Deliveries in flight at once, per backend.
    pub concurrency: usize,
    /// Notifications leased per round trip to the queue.
    pub lease_batch: usize,
    /// Backlog (waiting + in flight + delayed retries) above which enqueue answers `Backpressure`.
    pub high_water: u64,
    /// Redis: a message pending this long on a consumer is considered abandoned and reclaimed.
    pub reclaim_idle_ms: u64,
    pub rate_limits: RateLimits,
    pub retry: RetrySchedule,
    pub webhook: WebhookConfig,
    pub providers: SimulatedProviders,
    /// Name of this worker in the Redis consumer group (default: host name and process id).
    pub consumer_name: Option<String>,
    /// What one user may put through the pipeline (`notify.quotas.*`).
    pub quotas: Quotas,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            queue_url: "sqlite://data/notify.db".into(),
            redis_url: None,
            redis_prefix: "notify".into(),
            workers: true,
            concurrency: 256,
            lease_batch: 1024,
            high_water: 200_000,
            reclaim_idle_ms: 30_000,
            rate_limits: RateLimits::default(),
            retry: RetrySchedule::default(),
            webhook: WebhookConfig::default(),
            providers: SimulatedProviders::default(),
            consumer_name: None,
            quotas: Quotas::default(),
        }
    }
}

/// Per-user limits, so one user cannot starve the others or fill the disk (issue 14). They apply to
/// users' runs and API enqueues; the operator's own runs (`server simulate`, benchmarks) and the
/// pipeline's internal sends (webhook event deliveries) are not held to them. 0 turns one off. Counts
/// live in the embedded queue's file (`notify.db`), so they are per instance.
///
/// The defaults keep the product's headline working for a single user: a dashboard run of a million
/// (`notifications_per_run`) at a million an hour or at full speed, several of them a day
/// (`notifications_per_day` is five such runs), and the API's own rate (`enqueue_per_sec`, 1,000/s, is
/// 3.6 million an hour, with a full 10,000-item batch as the burst).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Quotas {
    /// Simulation runs one user may have running at once (429 beyond).
    pub concurrent_runs: u32,
    /// Most notifications in one user's run (422 beyond).
    pub notifications_per_run: u64,
    /// Notifications one user may enqueue per UTC day, runs (their whole count, at start) and API
    /// enqueues together (429 until midnight UTC beyond).
    pub notifications_per_day: u64,
    /// Sustained notifications per second one user may enqueue through the API (429 beyond); the burst
    /// is one full batch (10,000) or a second's worth, whichever is larger.
    pub enqueue_per_sec: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Self { concurrent_runs: 3, notifications_per_run: 1_000_000, notifications_per_day: 5_000_000, enqueue_per_sec: 1_000 }
    }
}

/// Token buckets, in deliveries per second; 0 means no limit (the default, so benchmarks measure the
/// pipeline; real provider contracts go here).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimits {
    pub global_per_sec: u32,
    pub webhook_per_sec: u32,
    pub email_per_sec: u32,
    pub sms_per_sec: u32,
    pub push_per_sec: u32,
    pub noop_per_sec: u32,
}

impl RateLimits {
    pub fn for_channel(&self, c: Channel) -> u32 {
        match c {
            Channel::Webhook => self.webhook_per_sec,
            Channel::Email => self.email_per_sec,
            Channel::Sms => self.sms_per_sec,
            Channel::Push => self.push_per_sec,
            Channel::Noop => self.noop_per_sec,
        }
    }
}

/// Exponential backoff with "equal jitter": attempt n waits between half and all of
/// `min(base * 2^(n-1), max)`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RetrySchedule {
    pub base_ms: u64,
    pub max_delay_ms: u64,
    /// Attempts in total (the first one included) before a notification is dead-lettered.
    pub max_attempts: u32,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self { base_ms: 1_000, max_delay_ms: 10 * 60_000, max_attempts: 6 }
    }
}

impl RetrySchedule {
    /// The delay after the `failed_attempts`-th failure (1-based).
    pub fn delay(&self, failed_attempts: u32) -> Duration {
        let exp = failed_attempts.saturating_sub(1).min(40);
        let full = self.base_ms.saturating_mul(1u64 << exp).min(self.max_delay_ms.max(1));
        let half = full / 2;
        Duration::from_millis(half + rand::random::<u64>() % (full - half + 1))
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookConfig {
    /// Where webhook notifications are POSTed (the local sink by default).
    pub url: String,
    /// `whsec_...` signing secret shared with the receiver.
    pub secret: String,
    pub timeout_ms: u64,
    /// Idle keep-alive connections kept per host.
    pub pool_max_idle: usize,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"[redacted]")
            .field("timeout_ms", &self.timeout_ms)
            .field("pool_max_idle", &self.pool_max_idle)
            .finish()
    }
}

/// The documentation example secret: fine for the local sink, never for a real receiver.
pub const DEV_WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

impl Default for WebhookConfig {
    fn default() -> Self {
        Self { url: "http://127.0.0.1:3100/webhook".into(), secret: DEV_WEBHOOK_SECRET.into(), timeout_ms: 5_000, pool_max_idle: 256 }
    }
}

/// Defaults for the simulated email, SMS and push providers (a run's own settings take precedence).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SimulatedProviders {
    pub latency_ms: u32,
    pub failure_rate: f64,
}

impl Default for SimulatedProviders {
    fn default() -> Self {
        Self { latency_ms: 0, failure_rate: 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let s = RetrySchedule { base_ms: 100, max_delay_ms: 1_000, max_attempts: 5 };
        for _ in 0..200 {
            let d1 = s.delay(1).as_millis();
            assert!((50..=100).contains(&d1), "{d1}");
            let d3 = s.delay(3).as_millis();
            assert!((200..=400).contains(&d3), "{d3}");
            let d30 = s.delay(30).as_millis();
            assert!((500..=1000).contains(&d30), "{d30}");
        }
    }

    #[test]
    fn the_secret_never_prints() {
        assert!(!format!("{:?}", WebhookConfig::default()).contains("MfKQ"));
    }
}
