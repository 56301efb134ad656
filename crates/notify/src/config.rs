//! Everything the pipeline can be tuned with, and its defaults. The server fills this from its
//! `notify.*` settings; nothing below reads the environment.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::error::NotifyError;
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
    /// The machine's limit: fresh backlog (waiting and in flight; retries waiting for their time are
    /// not counted) above which every enqueue answers `Backpressure`. Each user is held to
    /// `quotas.backlog_per_owner` well before it, so one user's backlog alone cannot reach it.
    pub high_water: u64,
    /// Redis: a message pending this long on a consumer is considered abandoned and reclaimed.
    pub reclaim_idle_ms: u64,
    pub rate_limits: RateLimits,
    pub retry: RetrySchedule,
    pub webhook: WebhookConfig,
    /// Real e-mail over SMTP (`notify.email.*`); without a host, e-mail is simulated.
    pub email: crate::email::EmailConfig,
    /// Real Web Push (`notify.push.*`); without a VAPID key, push is simulated.
    pub push: PushConfig,
    /// The SMS provider's HTTP API (`notify.sms.*`, Twilio's shape); without a URL, SMS is simulated in
    /// the process.
    pub sms: SmsConfig,
    pub providers: SimulatedProviders,
    /// Name of this worker in the Redis consumer group (default: host name and process id).
    pub consumer_name: Option<String>,
    /// What one user may put through the pipeline (`notify.quotas.*`).
    pub quotas: Quotas,
    /// The clock every due time and attempt time comes from (wall time; tests move an adjustable one).
    #[serde(skip)]
    pub clock: crate::Clock,
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
            high_water: 1_000_000,
            reclaim_idle_ms: 30_000,
            rate_limits: RateLimits::default(),
            retry: RetrySchedule::default(),
            webhook: WebhookConfig::default(),
            email: crate::email::EmailConfig::default(),
            push: PushConfig::default(),
            sms: SmsConfig::default(),
            providers: SimulatedProviders::default(),
            consumer_name: None,
            quotas: Quotas::default(),
            clock: crate::Clock::system(),
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
    /// Notifications one user may have waiting (not yet attempted) at once, API enqueues and runs
    /// together: past it their enqueues get 429 and their runs' producers wait, while other users'
    /// notifications go on being accepted (and, the lanes being fair, delivered) as before.
    pub backlog_per_owner: u64,
    /// Real e-mails (SMTP, outside simulation runs) one user may send per UTC day (429 beyond).
    pub emails_per_day: u64,
    /// Real Web Push messages one user may send per UTC day (429 beyond).
    pub pushes_per_day: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            concurrent_runs: 3,
            notifications_per_run: 1_000_000,
            notifications_per_day: 5_000_000,
            enqueue_per_sec: 1_000,
            backlog_per_owner: 200_000,
            emails_per_day: 1_000,
            pushes_per_day: 10_000,
        }
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

/// Retries of webhook deliveries (endpoint messages and the default webhook channel; a simulation
/// run's webhooks keep [`RetrySchedule`]): Svix's schedule, so a receiver down for a deploy, a night or
/// a day loses nothing. Attempt 1 is immediate, then one attempt after each wait; after the last
/// the message is a dead letter (about 27.6 hours after the first attempt with the defaults).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct WebhookRetry {
    /// The wait after each failed attempt, in ms; attempts in all are one more than its length.
    pub schedule_ms: Vec<u64>,
    /// Each wait moves by up to this share either way (0.1: ±10 %), so a burst's retries spread out.
    pub jitter: f64,
    /// Longest `Retry-After` a receiver may ask for with 429, 502, 503 or 504 (ms); a longer one is cut
    /// to this. The wait is the longer of the schedule's and the receiver's.
    pub max_retry_after_ms: u64,
    /// Retries one endpoint may have waiting; past it, its oldest waiting retries become dead letters
    /// (its owner is told, and can recover them once the receiver is back). 0: no cap.
    pub max_pending_per_endpoint: u64,
}

/// Svix: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const SVIX_SCHEDULE_MS: [u64; 7] = [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000];

impl Default for WebhookRetry {
    fn default() -> Self {
        Self { schedule_ms: SVIX_SCHEDULE_MS.to_vec(), jitter: 0.1, max_retry_after_ms: 3_600_000, max_pending_per_endpoint: 100_000 }
    }
}

impl WebhookRetry {
    /// `attempts` in all, `wait_ms` apart, no jitter (tests and test stacks).
    pub fn every(wait_ms: u64, attempts: u32) -> Self {
        Self { schedule_ms: vec![wait_ms; attempts.saturating_sub(1) as usize], jitter: 0.0, ..Self::default() }
    }

    pub fn max_attempts(&self) -> u32 {
        self.schedule_ms.len() as u32 + 1
    }

    /// The wait after the `failed_attempts`-th failure (1-based), or `None` when that was the last
    /// attempt. `retry_after` is what the receiver asked for (capped).
    pub fn delay(&self, failed_attempts: u32, retry_after: Option<Duration>) -> Option<Duration> {
        let base = *self.schedule_ms.get(failed_attempts.checked_sub(1)? as usize)?;
        let jitter = self.jitter.clamp(0.0, 1.0);
        let spread = base as f64 * jitter * (rand::random::<f64>() * 2.0 - 1.0);
        let scheduled = Duration::from_millis((base as f64 + spread).max(0.0) as u64);
        let asked = retry_after.map(|d| d.min(Duration::from_millis(self.max_retry_after_ms))).unwrap_or_default();
        Some(scheduled.max(asked))
    }
}

/// How long each kind of job is retried: the backoff for simulated channels and simulation runs, the
/// webhook schedule for every other webhook job. A job's own fields choose (see [`Job::retry_class`]),
/// so every worker of every instance applies the same policy to it.
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicies {
    pub standard: RetrySchedule,
    pub webhook: WebhookRetry,
    /// Real e-mail's schedule, when SMTP is set up (simulated e-mail keeps `standard`).
    pub email: Option<WebhookRetry>,
    /// Real push messages follow the webhook schedule (a push service down for hours loses nothing).
    pub push_real: bool,
}

impl RetryPolicies {
    pub fn of(c: &PipelineConfig) -> Self {
        Self {
            standard: c.retry.clone(),
            webhook: c.webhook.retry.clone(),
            email: c.email.is_real().then(|| c.email.retry.clone()),
            push_real: c.push.is_real(),
        }
    }

    /// The wait before `job` is tried again after its `number`-th attempt failed; `None`: dead letter.
    pub fn next(&self, job: &crate::model::Job, number: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if let (Some(email), Channel::Email, None) = (&self.email, job.channel, job.run) {
            return email.delay(number, None);
        }
        if let (true, Channel::Push, None) = (self.push_real, job.channel, job.run) {
            return self.webhook.delay(number, retry_after);
        }
        match job.retry_class() {
            crate::model::RetryClass::Webhook => self.webhook.delay(number, retry_after),
            crate::model::RetryClass::Standard => (number < self.standard.max_attempts.max(1)).then(|| self.standard.delay(number)),
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookConfig {
    /// Where webhook notifications are POSTed (the local sink by default).
    pub url: String,
    /// `whsec_...` signing secret shared with the receiver.
    pub secret: String,
    /// How long a receiver has to answer (the Standard Webhooks advice is 15 s).
    pub timeout_ms: u64,
    /// Idle keep-alive connections kept per host.
    pub pool_max_idle: usize,
    /// Retries of webhook deliveries (`notify.webhook.retry.*`).
    pub retry: WebhookRetry,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"[redacted]")
            .field("timeout_ms", &self.timeout_ms)
            .field("pool_max_idle", &self.pool_max_idle)
            .field("retry", &self.retry)
            .finish()
    }
}

/// The documentation example secret: fine for the local sink, never for a real receiver.
pub const DEV_WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:3100/webhook".into(),
            secret: DEV_WEBHOOK_SECRET.into(),
            timeout_ms: 15_000,
            pool_max_idle: 256,
            retry: WebhookRetry::default(),
        }
    }
}

/// Real Web Push (`notify.push.*`): this server's VAPID identity. Without a key, push is simulated
/// (the library, dev mode's own documented key aside) or refused at enqueue.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PushConfig {
    /// The VAPID private key: 32 bytes, base64url (`openssl ecparam -name prime256v1 -genkey` gives
    /// one; any Web Push library's "generate VAPID keys" prints it). Never logged.
    pub vapid_private_key: String,
    /// The contact push services see in each VAPID token (`mailto:` or `https:`).
    pub subject: String,
    /// With no key: simulate users' push (true) or refuse it at enqueue (false). `None`: the server
    /// decides (refused in production); here, simulated.
    pub simulate_when_unset: Option<bool>,
}

impl std::fmt::Debug for PushConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushConfig")
            .field("vapid_private_key", &if self.vapid_private_key.is_empty() { "" } else { "[redacted]" })
            .field("subject", &self.subject)
            .field("simulate_when_unset", &self.simulate_when_unset)
            .finish()
    }
}

impl Default for PushConfig {
    fn default() -> Self {
        Self { vapid_private_key: String::new(), subject: "mailto:admin@localhost".into(), simulate_when_unset: None }
    }
}

impl PushConfig {
    pub fn is_real(&self) -> bool {
        !self.vapid_private_key.trim().is_empty()
    }

    /// The identity, if a key is set; a key that is not one is a settings error.
    pub fn vapid(&self) -> Result<Option<crate::webpush::Vapid>, NotifyError> {
        if !self.is_real() {
            return Ok(None);
        }
        if !(self.subject.starts_with("mailto:") || self.subject.starts_with("https:")) {
            return Err(NotifyError::invalid("notify.push.subject", "must be a mailto: or https: URL"));
        }
        crate::webpush::Vapid::from_base64url(&self.vapid_private_key, self.subject.clone())
            .map(Some)
            .ok_or_else(|| NotifyError::invalid("notify.push.vapid_private_key", "must be a P-256 private key: 32 bytes, base64url"))
    }
}

/// An SMS provider with Twilio's Messages API (`notify.sms.*`): the local sink's simulated one in dev
/// and tests (`http://127.0.0.1:3100/sms`), or Twilio itself (`https://api.twilio.com`) with a real
/// account. Empty `url`: SMS is simulated in the process.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SmsConfig {
    /// The API's base: `{url}/2010-04-01/Accounts/{account_sid}/Messages.json` is posted to.
    pub url: String,
    pub account_sid: String,
    /// Never logged.
    pub auth_token: String,
    /// The sending number, E.164.
    pub from: String,
}

impl std::fmt::Debug for SmsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsConfig")
            .field("url", &self.url)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &if self.auth_token.is_empty() { "" } else { "[redacted]" })
            .field("from", &self.from)
            .finish()
    }
}

impl Default for SmsConfig {
    fn default() -> Self {
        Self { url: String::new(), account_sid: "ACsimulated".into(), auth_token: String::new(), from: "+15005550006".into() }
    }
}

impl SmsConfig {
    pub fn is_set(&self) -> bool {
        !self.url.trim().is_empty()
    }

    pub(crate) fn messages_url(&self) -> String {
        format!("{}/2010-04-01/Accounts/{}/Messages.json", self.url.trim().trim_end_matches('/'), self.account_sid.trim())
    }
}

/// A phone number in E.164 form: `+`, then 7 to 15 digits, the first not 0.
pub fn is_e164(n: &str) -> bool {
    n.strip_prefix('+').is_some_and(|d| (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0'))
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
    fn webhooks_follow_the_svix_schedule_with_jitter_and_honour_retry_after_up_to_a_cap() {
        let r = WebhookRetry::default();
        assert_eq!(r.max_attempts(), 8);
        let total: u64 = r.schedule_ms.iter().sum();
        assert_eq!(total, 99_305_000, "27 h 35 min 5 s from the first attempt to the last");
        for _ in 0..200 {
            let d = r.delay(1, None).unwrap().as_millis();
            assert!((4_500..=5_500).contains(&d), "{d}");
            let d = r.delay(7, None).unwrap().as_millis();
            assert!((32_400_000..=39_600_000).contains(&d), "{d}");
            // A receiver asking for longer gets it, up to the cap; asking for less changes nothing.
            let asked = r.delay(1, Some(Duration::from_secs(120))).unwrap().as_millis();
            assert_eq!(asked, 120_000);
            let capped = r.delay(1, Some(Duration::from_secs(86_400))).unwrap().as_millis();
            assert_eq!(capped, 3_600_000);
            assert!(r.delay(2, Some(Duration::from_secs(1))).unwrap().as_millis() >= 270_000);
        }
        assert_eq!(r.delay(8, None), None, "the eighth failure was the last attempt");
        assert_eq!(r.delay(0, None), None);
        let none = WebhookRetry { schedule_ms: vec![], ..r };
        assert_eq!((none.max_attempts(), none.delay(1, None)), (1, None));
    }

    #[test]
    fn the_secret_never_prints() {
        assert!(!format!("{:?}", WebhookConfig::default()).contains("MfKQ"));
    }
}
