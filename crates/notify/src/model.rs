//! The values that flow through the pipeline: what producers hand in, what workers lease, and what is
//! recorded about each attempt.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::error::NotifyError;

/// Where a notification goes. Email, SMS and push are simulated providers (no real messages leave).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Webhook,
    Email,
    Sms,
    Push,
    /// Does nothing and succeeds: measures the pipeline itself.
    Noop,
}

impl Channel {
    /// Every channel, in the order of [`PerChannel`]'s fields (so a new channel must be added there,
    /// where the compiler asks for it, before it can be listed here).
    pub const ALL: [Channel; PerChannel::<()>::LEN] =
        PerChannel { webhook: Channel::Webhook, email: Channel::Email, sms: Channel::Sms, push: Channel::Push, noop: Channel::Noop }.into_array();

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Webhook => "webhook",
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
            Channel::Noop => "noop",
        }
    }

    /// The channel a queue written before channels were stored by name meant by its number. Frozen:
    /// those numbers were the enum's positions when they were written, whatever the enum is now.
    pub(crate) fn from_legacy_code(code: i64) -> Option<Channel> {
        const LEGACY: [Channel; 5] = [Channel::Webhook, Channel::Email, Channel::Sms, Channel::Push, Channel::Noop];
        LEGACY.get(usize::try_from(code).ok()?).copied()
    }

    pub fn is_simulated(self) -> bool {
        matches!(self, Channel::Email | Channel::Sms | Channel::Push)
    }
}

/// One value per channel, by name: counters, rate limiters, weights. Adding a channel is a compile
/// error here (the struct and the matches below), and so everywhere one is built, instead of an array
/// indexed by the enum's position that compiles and then panics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerChannel<T> {
    pub webhook: T,
    pub email: T,
    pub sms: T,
    pub push: T,
    pub noop: T,
}

impl<T> PerChannel<T> {
    pub const LEN: usize = 5;

    pub fn from_fn(mut f: impl FnMut(Channel) -> T) -> Self {
        PerChannel { webhook: f(Channel::Webhook), email: f(Channel::Email), sms: f(Channel::Sms), push: f(Channel::Push), noop: f(Channel::Noop) }
    }

    pub fn get(&self, c: Channel) -> &T {
        match c {
            Channel::Webhook => &self.webhook,
            Channel::Email => &self.email,
            Channel::Sms => &self.sms,
            Channel::Push => &self.push,
            Channel::Noop => &self.noop,
        }
    }

    pub fn get_mut(&mut self, c: Channel) -> &mut T {
        match c {
            Channel::Webhook => &mut self.webhook,
            Channel::Email => &mut self.email,
            Channel::Sms => &mut self.sms,
            Channel::Push => &mut self.push,
            Channel::Noop => &mut self.noop,
        }
    }

    pub const fn into_array(self) -> [T; 5]
    where
        T: Copy,
    {
        [self.webhook, self.email, self.sms, self.push, self.noop]
    }

    /// Each channel with its value, in [`Channel::ALL`]'s order.
    pub fn iter(&self) -> impl Iterator<Item = (Channel, &T)> {
        Channel::ALL.into_iter().map(move |c| (c, self.get(c)))
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown channel {:?} (expected webhook, email, sms, push or noop)", truncate(s, 40)))
    }
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// What the pipeline keeps for a while and then prunes (issue 17), each by its own age: delivered
/// (and cancelled) notifications since they settled, dead letters since they died, failed attempts
/// since they were made, simulation runs since they finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Retained {
    Delivered,
    DeadLetters,
    Attempts,
    Runs,
}

impl Retained {
    pub const ALL: [Retained; 4] = [Retained::Delivered, Retained::DeadLetters, Retained::Attempts, Retained::Runs];

    pub fn as_str(self) -> &'static str {
        match self {
            Retained::Delivered => "notifications_delivered",
            Retained::DeadLetters => "notifications_dead",
            Retained::Attempts => "notification_attempts",
            Retained::Runs => "notification_runs",
        }
    }
}

/// How much a store holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StoreSize {
    pub rows: u64,
    /// The oldest row's age stamp (ms since the epoch), by the time it is pruned by.
    pub oldest_ms: Option<i64>,
    /// Bytes on disk of its rows and their indexes (rows sharing a table get their share by rows);
    /// `None` where the engine cannot say.
    pub bytes: Option<u64>,
}

/// Which queue carries a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The durable SQLite queue inside the server process (the default; nothing else to install).
    #[default]
    Embedded,
    /// Redis Streams with a consumer group; workers on other machines can join.
    Redis,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Redis => "redis",
        }
    }
}

impl FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "embedded" | "sqlite" => Ok(Backend::Embedded),
            "redis" => Ok(Backend::Redis),
            _ => Err(format!("unknown backend {:?} (expected embedded or redis)", truncate(s, 40))),
        }
    }
}

/// How urgent a notification is. Leasing serves `high` first, then `normal` and `bulk` (bulk gets at
/// least a quarter of each lease while both wait, so it is never starved); within a class each owner
/// gets an equal share. One-time codes and account mail are `high`, simulation runs `bulk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    High,
    #[default]
    Normal,
    Bulk,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Bulk];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Bulk => "bulk",
        }
    }

    /// As stored (SQLite's column, the Redis lane's name): 0, 1, 2.
    pub(crate) fn code(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_code(c: i64) -> Priority {
        match c {
            0 => Priority::High,
            2 => Priority::Bulk,
            _ => Priority::Normal,
        }
    }
}

impl FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown priority {:?} (expected high, normal or bulk)", truncate(s, 40)))
    }
}

/// A notification's id: unique per backend, stable across retries, and the receiver's dedup key
/// (sent as `webhook-id`). Written `emb_<n>` or `red_<n>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NotificationId {
    pub backend: Backend,
    pub seq: u64,
}

impl NotificationId {
    pub fn embedded(seq: u64) -> Self {
        Self { backend: Backend::Embedded, seq }
    }
    pub fn redis(seq: u64) -> Self {
        Self { backend: Backend::Redis, seq }
    }
}

impl fmt::Display for NotificationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.backend {
            Backend::Embedded => "emb",
            Backend::Redis => "red",
        };
        write!(f, "{prefix}_{}", self.seq)
    }
}

impl FromStr for NotificationId {
    type Err = NotifyError;
    fn from_str(s: &str) -> Result<Self, NotifyError> {
        let bad = || NotifyError::invalid("id", "not a notification id (emb_<n> or red_<n>)");
        let (prefix, n) = s.split_once('_').ok_or_else(bad)?;
        let seq = n.parse().map_err(|_| bad())?;
        match prefix {
            "emb" => Ok(Self::embedded(seq)),
            "red" => Ok(Self::redis(seq)),
            _ => Err(bad()),
        }
    }
}

impl Serialize for NotificationId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NotificationId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|e: NotifyError| serde::de::Error::custom(e.to_string()))
    }
}

/// The id of a simulation run.
pub type RunId = i64;

/// Longest recipient and idempotency key, and largest payload (serialised JSON), accepted.
pub const MAX_RECIPIENT_LEN: usize = 320;
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;
/// Most notifications in one enqueue call.
pub const MAX_BATCH: usize = 10_000;
/// Longest time to live a notification may ask for: 30 days (longer than any retry schedule).
pub const MAX_TTL_SECS: u64 = 30 * 86_400;

/// What a producer hands in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NewNotification {
    pub recipient: String,
    pub channel: Channel,
    /// Any JSON; delivered as the `data` of the webhook body (or to the simulated provider).
    #[serde(default)]
    pub payload: serde_json::Value,
    /// A second enqueue with the same key returns the first one's id and adds nothing.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// `high`, `normal` (the default) or `bulk`.
    #[serde(default)]
    pub priority: Priority,
    /// Seconds from now after which it is no longer worth sending (1 to 30 days' worth; none by
    /// default): a notification still waiting then, first attempt or retry, ends `expired`, unsent.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

impl NewNotification {
    pub fn new(channel: Channel, recipient: impl Into<String>, payload: serde_json::Value) -> Self {
        Self { recipient: recipient.into(), channel, payload, idempotency_key: None, priority: Priority::Normal, ttl_secs: None }
    }

    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Field-level checks; `index` names the position in a batch.
    pub fn validate(&self, index: usize, errors: &mut Vec<crate::FieldError>) {
        let field = |name: &str| format!("notifications[{index}].{name}");
        if self.recipient.trim().is_empty() {
            errors.push(crate::FieldError::new(field("recipient"), "must not be empty"));
        } else if self.recipient.len() > MAX_RECIPIENT_LEN {
            errors.push(crate::FieldError::new(field("recipient"), format!("at most {MAX_RECIPIENT_LEN} bytes")));
        } else if self.recipient.contains('\0') {
            errors.push(crate::FieldError::new(field("recipient"), "must not contain NUL"));
        }
        if let Some(k) = &self.idempotency_key {
            if k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY_LEN {
                errors.push(crate::FieldError::new(field("idempotency_key"), format!("1 to {MAX_IDEMPOTENCY_KEY_LEN} bytes")));
            }
        }
        if let Some(ttl) = self.ttl_secs {
            if ttl == 0 || ttl > MAX_TTL_SECS {
                errors.push(crate::FieldError::new(field("ttl_secs"), format!("1 to {MAX_TTL_SECS} seconds")));
            }
        }
        let size = serde_json::to_string(&self.payload).map(|s| s.len()).unwrap_or(usize::MAX);
        if size > MAX_PAYLOAD_BYTES {
            errors.push(crate::FieldError::new(field("payload"), format!("at most {MAX_PAYLOAD_BYTES} bytes of JSON")));
        }
    }
}

/// Reads an enqueue request body: `{...}` (one notification), `[{...}, ...]` or `{"notifications": [...]}`.
/// Each item is decoded strictly (unknown fields are errors); the first 20 bad items are named. Shape
/// only: [`validate_batch`] applies the field rules.
pub fn parse_batch(body: &[u8]) -> Result<Vec<NewNotification>, NotifyError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| NotifyError::invalid("body", "is not valid JSON"))?;
    let (items, prefix) = match value {
        serde_json::Value::Array(items) => (items, "notifications"),
        serde_json::Value::Object(mut o) if o.contains_key("notifications") => match o.remove("notifications") {
            Some(serde_json::Value::Array(items)) if o.is_empty() => (items, "notifications"),
            _ => return Err(NotifyError::invalid("notifications", "must be the only field, and a list")),
        },
        one @ serde_json::Value::Object(_) => (vec![one], "notification"),
        _ => return Err(NotifyError::invalid("body", "must be a notification object or a list of them")),
    };
    let mut out = Vec::with_capacity(items.len());
    let mut errors = vec![];
    for (i, item) in items.into_iter().enumerate() {
        match serde_json::from_value::<NewNotification>(item) {
            Ok(n) => out.push(n),
            Err(e) => {
                let field = if prefix == "notification" { "notification".to_string() } else { format!("notifications[{i}]") };
                errors.push(crate::FieldError::new(field, e.to_string()));
            }
        }
        if errors.len() >= 20 {
            break;
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(NotifyError::Invalid(errors))
    }
}

/// The checks an enqueue applies before anything is stored: 1 to [`MAX_BATCH`] items, each passing
/// [`NewNotification::validate`].
pub fn validate_batch(items: &[NewNotification]) -> Result<(), NotifyError> {
    if items.is_empty() {
        return Err(NotifyError::invalid("notifications", "send at least one notification"));
    }
    if items.len() > MAX_BATCH {
        return Err(NotifyError::invalid("notifications", format!("at most {MAX_BATCH} in one request")));
    }
    let mut errors = vec![];
    for (i, n) in items.iter().enumerate() {
        n.validate(i, &mut errors);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(NotifyError::Invalid(errors))
    }
}

/// A notification ready to insert: validated, payload serialised, simulation knobs attached.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub run: Option<RunId>,
    pub channel: Channel,
    pub recipient: String,
    pub payload: String,
    pub idempotency_key: Option<String>,
    pub sim: SimKnobs,
    pub owner: Option<String>,
    /// Internal routing (see [`Job::route`]); never taken from a [`NewNotification`].
    pub route: Option<String>,
    pub priority: Priority,
    /// When it stops being worth sending (unix ms), if ever.
    pub expires_ms: Option<i64>,
}

/// Injected behaviour for the simulated providers (per run; the configured defaults otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SimKnobs {
    pub failure_rate: f32,
    pub latency_ms: u32,
}

/// A leased notification, as a worker sees it.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: NotificationId,
    pub run: Option<RunId>,
    pub channel: Channel,
    pub recipient: String,
    pub payload: String,
    /// Attempts already made before this one.
    pub attempts: u32,
    pub created_ms: i64,
    pub sim: SimKnobs,
    /// Whose notification it is (a username): who enqueued it through the API, the owner of its
    /// simulation run, or the owner of the webhook endpoint it is delivered to. It scopes idempotency
    /// keys, dead letters and quotas. `None` for the operator (CLI runs of older files, internal sends).
    pub owner: Option<String>,
    /// Internal routing set only by the pipeline's own producers (the `hooks` crate sets the id of the
    /// registered webhook endpoint it fans an event out to). Users cannot set it: [`NewNotification`]
    /// has no such field, so the API and forms cannot reach it, whatever the recipient says.
    pub route: Option<String>,
    pub priority: Priority,
    /// Past this (unix ms) it is not sent but settled as expired.
    pub expires_ms: Option<i64>,
    /// Backend-specific handle (the Redis lane and stream entry id); empty for SQLite.
    pub(crate) receipt: String,
}

/// Which retry policy a job follows (see `config::RetryPolicies`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    /// `notify.retry`: exponential backoff (simulated channels, simulation runs).
    Standard,
    /// `notify.webhook.retry`: Svix's schedule, about 27 hours.
    Webhook,
}

/// The pending-retry cap's key of webhooks that go to the configured receiver (`notify.webhook.url`)
/// rather than to a registered endpoint (whose id is the key).
pub const DEFAULT_RECEIVER: &str = "-";

impl Job {
    /// Whose pending-retry cap this job's retries count under: its endpoint's, or the configured
    /// receiver's for any other webhook on the webhook schedule; `None` for everything else.
    pub fn cap_key(&self) -> Option<&str> {
        match (&self.route, self.retry_class()) {
            (Some(r), _) => Some(r.as_str()),
            (None, RetryClass::Webhook) => Some(DEFAULT_RECEIVER),
            (None, RetryClass::Standard) => None,
        }
    }

    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_ms.is_some_and(|e| now_ms >= e)
    }

    /// A webhook outside a simulation run is a real receiver's: it gets the long schedule. A run's
    /// webhooks measure the pipeline and keep the run's backoff.
    pub fn retry_class(&self) -> RetryClass {
        if self.channel == Channel::Webhook && self.run.is_none() {
            RetryClass::Webhook
        } else {
            RetryClass::Standard
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Delivered,
    /// Failed; will be retried.
    Retrying,
    /// Failed for the last time; moved to the dead-letter queue.
    DeadLettered,
}

impl AttemptOutcome {
    pub(crate) fn code(self) -> i64 {
        match self {
            AttemptOutcome::Delivered => 0,
            AttemptOutcome::Retrying => 1,
            AttemptOutcome::DeadLettered => 2,
        }
    }
    pub(crate) fn from_code(c: i64) -> Self {
        match c {
            0 => AttemptOutcome::Delivered,
            1 => AttemptOutcome::Retrying,
            _ => AttemptOutcome::DeadLettered,
        }
    }
}

/// One delivery attempt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: u32,
    /// Unix milliseconds when the attempt finished.
    pub at_ms: i64,
    pub outcome: AttemptOutcome,
    pub latency_us: u64,
    pub error: Option<String>,
}

/// What a worker reports back for one job.
#[derive(Debug, Clone)]
pub(crate) struct Completion {
    pub job: Job,
    pub attempt: Attempt,
    /// When to try again (unix ms), for `Retrying`.
    pub retry_at_ms: Option<i64>,
    pub kind: Settle,
}

/// What became of a leased job besides an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settle {
    /// An attempt was made: `attempt` says how it went.
    Attempted,
    /// Its run was cancelled: dropped without an attempt (`attempt` is then meaningless).
    Cancelled,
    /// Not attempted (its endpoint's rate limit was reached): back in the queue, due at
    /// `retry_at_ms`, its attempts unchanged, nothing recorded.
    Deferred,
    /// Its time to live ran out before it could be sent: settled unsent, nothing recorded.
    Expired,
}

impl Completion {
    pub fn attempted(&self) -> bool {
        self.kind == Settle::Attempted
    }
}

/// A notification that ran out of attempts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeadLetter {
    pub id: NotificationId,
    pub run: Option<RunId>,
    pub channel: Channel,
    pub recipient: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub dead_at_ms: i64,
}

/// Which dead letters to put back in the queue.
#[derive(Debug, Clone, PartialEq)]
pub enum Replay {
    All,
    Ids(Vec<NotificationId>),
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_refuse_garbage() {
        let id = NotificationId::redis(42);
        assert_eq!(id.to_string(), "red_42");
        assert_eq!("red_42".parse::<NotificationId>().unwrap(), id);
        assert_eq!("emb_7".parse::<NotificationId>().unwrap(), NotificationId::embedded(7));
        for bad in ["", "emb", "emb_", "emb_-1", "xyz_1", "emb_1x"] {
            assert!(bad.parse::<NotificationId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn channels_parse_with_a_clear_error() {
        assert_eq!("SMS".parse::<Channel>().unwrap(), Channel::Sms);
        let e = "fax".parse::<Channel>().unwrap_err();
        assert!(e.contains("unknown channel \"fax\""), "{e}");
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>(), Ok(c), "names round-trip");
        }
        // The numbers older queues hold are frozen, whatever order the enum has now.
        let legacy: Vec<_> = (0..5).map(|n| Channel::from_legacy_code(n).unwrap().as_str()).collect();
        assert_eq!(legacy, ["webhook", "email", "sms", "push", "noop"]);
        assert_eq!(Channel::from_legacy_code(99), None);
    }

    #[test]
    fn per_channel_values_are_found_by_name_and_all_lists_each_channel_once() {
        let mut counts = PerChannel::<u64>::default();
        *counts.get_mut(Channel::Sms) += 2;
        *counts.get_mut(Channel::Noop) += 1;
        assert_eq!((counts.sms, counts.noop, counts.email), (2, 1, 0));
        let names = PerChannel::from_fn(Channel::as_str);
        assert_eq!(names.iter().map(|(c, n)| (c.as_str(), *n)).filter(|(a, b)| a == b).count(), Channel::ALL.len());
        let mut all = Channel::ALL.to_vec();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), PerChannel::<()>::LEN);
    }

    #[test]
    fn new_notifications_are_checked_field_by_field() {
        let mut n = NewNotification::new(Channel::Email, "", serde_json::json!({}));
        n.idempotency_key = Some(String::new());
        let mut errors = vec![];
        n.validate(3, &mut errors);
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["notifications[3].recipient", "notifications[3].idempotency_key"]);
        let big = NewNotification::new(Channel::Email, "a@b", serde_json::json!("x".repeat(MAX_PAYLOAD_BYTES)));
        let mut errors = vec![];
        big.validate(0, &mut errors);
        assert_eq!(errors[0].field, "notifications[0].payload");
    }
}
