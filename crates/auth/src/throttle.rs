//! Failed-login throttling per account and per client address, a per-address limit for sign-ups, and
//! each user's stored bytes per day.
//!
//! Both are GCRA limiters whose state is one row per key in the app database (`rate_limits`), so every
//! instance behind the load balancer shares one allowance, and a restart forgets nothing. (governor,
//! which this replaced, keeps its state in the process: with two instances an attacker had twice the
//! guesses.) Each count is a single conditional `UPDATE`/`INSERT`, atomic on SQLite and PostgreSQL, so
//! parallel requests cannot all slip through before the first is counted.
//!
//! A login attempt is counted *before* Argon2 runs and refunded when it turns out not to be a wrong
//! password (a success, a database error): a locked key is refused without hashing, and a user who
//! signs in often is never locked out by it. [`AddressRateLimit`] counts every attempt, for actions that
//! should be rare per address whatever their outcome (sign-ups: each one that passes the policy costs
//! an Argon2 hash, and each one tells whether a username is taken).
//!
//! Times are wall-clock milliseconds, so the instances' clocks must agree (NTP) to within a refill.

use serde::Deserialize;
use sqlx::AnyPool;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::AuthError;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ThrottleConfig {
    /// Failures allowed in a burst for one username before it is locked.
    pub account_burst: u32,
    /// One more failure is allowed for the username every this many seconds.
    pub account_refill_secs: u64,
    /// The same for one client address (catches password spraying across usernames).
    pub ip_burst: u32,
    pub ip_refill_secs: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self { account_burst: 5, account_refill_secs: 60, ip_burst: 20, ip_refill_secs: 10 }
    }
}

/// Expired rows are deleted once every this many counts (per limiter, per process).
const SWEEP_EVERY: u32 = 1024;

/// One GCRA over the `rate_limits` table: `burst` events at once, then one more every `interval_ms`.
/// A key's row holds its theoretical arrival time (TAT); an event costing `t` fits while
/// `max(tat, now) + t - now <= limit` (`limit` = `burst * interval`).
#[derive(Clone)]
struct SharedGcra {
    pool: AnyPool,
    namespace: &'static str,
    interval_ms: i64,
    limit_ms: i64,
    counts: Arc<AtomicU32>,
}

impl SharedGcra {
    fn new(pool: AnyPool, namespace: &'static str, burst: u32, refill_secs: u64) -> Self {
        let interval_ms = i64::try_from(refill_secs.max(1).saturating_mul(1000)).unwrap_or(i64::MAX / 4);
        let limit_ms = i64::from(burst.max(1)).saturating_mul(interval_ms);
        Self { pool, namespace, interval_ms, limit_ms, counts: Arc::default() }
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.namespace)
    }

    /// Counts one event for `key` if it fits; otherwise `Ok(Err(wait))`, counting nothing.
    async fn acquire(&self, key: &str) -> Result<Result<(), Duration>, AuthError> {
        self.acquire_cost(key, self.interval_ms).await
    }

    /// Counts an event that costs `t` ms of allowance (at most `limit_ms`: the caller checks).
    async fn acquire_cost(&self, key: &str, t: i64) -> Result<Result<(), Duration>, AuthError> {
        let key = self.key(key);
        let limit = self.limit_ms;
        // A row can appear between the UPDATE and the INSERT (another instance's first count): go round
        // again rather than refuse an event that fits.
        for _ in 0..3 {
            let now = now_ms();
            let counted = sqlx::query(
                "UPDATE rate_limits SET tat_ms = (CASE WHEN tat_ms > $2 THEN tat_ms ELSE $2 END) + $3 \
                 WHERE key = $1 AND (CASE WHEN tat_ms > $2 THEN tat_ms ELSE $2 END) + $3 - $2 <= $4",
            )
            .bind(&key)
            .bind(now)
            .bind(t)
            .bind(limit)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if counted == 1 {
                self.sweep_now_and_then(now).await;
                return Ok(Ok(()));
            }
            let inserted = sqlx::query("INSERT INTO rate_limits (key, tat_ms) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(&key)
                .bind(now + t)
                .execute(&self.pool)
                .await?
                .rows_affected();
            if inserted == 1 {
                self.sweep_now_and_then(now).await;
                return Ok(Ok(()));
            }
            let tat: Option<i64> = sqlx::query_scalar("SELECT tat_ms FROM rate_limits WHERE key = $1").bind(&key).fetch_optional(&self.pool).await?;
            // The next event fits once `tat + t - now <= limit`.
            let wait_ms = tat.map_or(0, |tat| tat + t - now - limit);
            if wait_ms > 0 {
                return Ok(Err(Duration::from_millis(wait_ms as u64)));
            }
        }
        // Three rounds of losing a race to other requests for this very key: refuse this one briefly.
        Ok(Err(Duration::from_secs(1)))
    }

    /// Gives back one event counted by [`acquire`](Self::acquire).
    async fn refund(&self, key: &str) -> Result<(), AuthError> {
        self.refund_cost(key, self.interval_ms).await
    }

    async fn refund_cost(&self, key: &str, t: i64) -> Result<(), AuthError> {
        sqlx::query("UPDATE rate_limits SET tat_ms = tat_ms - $2 WHERE key = $1").bind(self.key(key)).bind(t).execute(&self.pool).await?;
        Ok(())
    }

    /// A row whose TAT has passed is a full allowance, the same as no row: delete those now and then,
    /// so the table stays as small as the set of keys recently counted.
    async fn sweep_now_and_then(&self, now: i64) {
        if self.counts.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY != SWEEP_EVERY - 1 {
            return;
        }
        if let Err(e) = sqlx::query("DELETE FROM rate_limits WHERE tat_ms < $1").bind(now).execute(&self.pool).await {
            tracing::warn!(error = %e, "could not sweep expired rate limits");
        }
    }
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Retry-After is in whole seconds; never tell a client to come back in 0.
fn at_least_a_second(d: Duration) -> Duration {
    d.max(Duration::from_secs(1))
}

pub struct LoginThrottle {
    accounts: SharedGcra,
    addresses: SharedGcra,
}

impl LoginThrottle {
    pub fn new(pool: AnyPool, config: &ThrottleConfig) -> Self {
        Self {
            accounts: SharedGcra::new(pool.clone(), "login-account", config.account_burst, config.account_refill_secs),
            addresses: SharedGcra::new(pool, "login-address", config.ip_burst, config.ip_refill_secs),
        }
    }

    fn account_key(username: &str) -> String {
        username.to_lowercase()
    }

    /// Counts an attempt for the username and the address, or refuses it (counting nothing) if either
    /// has no allowance left. [`guard`](Self::guard) calls [`refund`](Self::refund) unless the attempt
    /// was a wrong password.
    async fn begin(&self, username: &str, ip: Option<IpAddr>) -> Result<(), AuthError> {
        let account = Self::account_key(username);
        if let Err(wait) = self.accounts.acquire(&account).await? {
            return Err(AuthError::Throttled { retry_after: at_least_a_second(wait) });
        }
        if let Some(ip) = ip {
            let address = self.addresses.acquire(&ip.to_string()).await;
            if !matches!(address, Ok(Ok(()))) {
                self.accounts.refund(&account).await?;
            }
            if let Err(wait) = address? {
                return Err(AuthError::Throttled { retry_after: at_least_a_second(wait) });
            }
        }
        Ok(())
    }

    /// Gives back what [`begin`](Self::begin) counted: the attempt was not a wrong password.
    async fn refund(&self, username: &str, ip: Option<IpAddr>) -> Result<(), AuthError> {
        self.accounts.refund(&Self::account_key(username)).await?;
        if let Some(ip) = ip {
            self.addresses.refund(&ip.to_string()).await?;
        }
        Ok(())
    }

    /// Runs `attempt` between [`begin`](Self::begin) and, unless it ends in
    /// [`AuthError::InvalidCredentials`], [`refund`](Self::refund).
    pub async fn guard<T, F>(&self, username: &str, ip: Option<IpAddr>, attempt: F) -> Result<T, AuthError>
    where
        F: std::future::Future<Output = Result<T, AuthError>>,
    {
        self.begin(username, ip).await?;
        let result = attempt.await;
        if !matches!(result, Err(AuthError::InvalidCredentials)) {
            if let Err(e) = self.refund(username, ip).await {
                // The attempt stays counted: the user loses one try, nothing else.
                tracing::warn!(error = %e, "could not refund a login attempt");
            }
        }
        result
    }
}

/// Attempts per client address, successful or not. No address (a request without peer information) is
/// one shared key, so it is limited too rather than waved through.
pub struct AddressRateLimit {
    limiter: SharedGcra,
}

impl AddressRateLimit {
    /// `burst` attempts at once, then one more every `refill_secs`; `namespace` keeps limits apart.
    pub fn new(pool: AnyPool, namespace: &'static str, burst: u32, refill_secs: u64) -> Self {
        Self { limiter: SharedGcra::new(pool, namespace, burst, refill_secs) }
    }

    /// Counts one attempt from `ip`; `Ok(Err(wait))` says how long until the next one is allowed.
    pub async fn check(&self, ip: Option<IpAddr>) -> Result<Result<(), Duration>, AuthError> {
        let key = ip.map_or_else(|| "-".to_string(), |ip| ip.to_string());
        Ok(self.limiter.acquire(&key).await?.map_err(at_least_a_second))
    }
}

const DAY_MS: i64 = 86_400_000;

/// The bytes one user may add to storage over a rolling day (issue 14): notification payloads,
/// workflow inputs and step outputs, inbound messages. A GCRA whose burst is the whole day's allowance,
/// refilled evenly over 24 hours: a user who spent it all gets room back bit by bit (a 10 KiB payload
/// fits again after 24 h × 10 KiB / allowance), never a cliff at midnight. Each byte costs
/// `86,400,000 ms / bytes_per_day` of the key's allowance, rounded up per charge; the state is the
/// `rate_limits` table, so every instance shares one allowance.
pub struct StoredBytes {
    limiter: SharedGcra,
    per_day: u64,
}

impl StoredBytes {
    /// `bytes_per_day` 0: no limit.
    pub fn new(pool: AnyPool, bytes_per_day: u64) -> Self {
        let mut limiter = SharedGcra::new(pool, "bytes", 1, 1);
        limiter.limit_ms = DAY_MS;
        Self { limiter, per_day: bytes_per_day }
    }

    fn cost(&self, bytes: u64) -> i64 {
        let ms = (u128::from(bytes) * DAY_MS as u128).div_ceil(u128::from(self.per_day.max(1)));
        i64::try_from(ms).unwrap_or(i64::MAX / 4).max(1)
    }

    /// Counts `bytes` stored for `owner`, or `Ok(Err(wait))` (counting nothing) when the day's allowance
    /// has not that much room: `wait` is how long until it has (a whole day for more than the allowance).
    pub async fn charge(&self, owner: &str, bytes: u64) -> Result<Result<(), Duration>, AuthError> {
        if self.per_day == 0 || bytes == 0 {
            return Ok(Ok(()));
        }
        if bytes > self.per_day {
            return Ok(Err(Duration::from_millis(DAY_MS as u64)));
        }
        Ok(self.limiter.acquire_cost(owner, self.cost(bytes)).await?.map_err(at_least_a_second))
    }

    /// Gives back what [`charge`](Self::charge) counted for something that was then not stored.
    pub async fn refund(&self, owner: &str, bytes: u64) -> Result<(), AuthError> {
        if self.per_day == 0 || bytes == 0 || bytes > self.per_day {
            return Ok(());
        }
        self.limiter.refund_cost(owner, self.cost(bytes)).await
    }

    /// The refusal's words, the same wherever bytes are counted.
    pub fn refusal(&self, bytes: u64, wait: Duration) -> String {
        if bytes > self.per_day {
            return format!("This needs {bytes} bytes of storage, more than the {} a user may store in a day.", self.per_day);
        }
        format!(
            "You have stored close to {} bytes in the last 24 hours (the most a user may); this needs {bytes} more. \
             Room comes back gradually: try again in {} seconds.",
            self.per_day,
            wait.as_secs_f64().ceil().max(1.0) as u64
        )
    }
}
