//! Failed-login throttling per account and per client address.
//!
//! governor's GCRA counts the failures. A key whose allowance is used up is locked until a cell frees up,
//! and a locked key is refused *before* Argon2 runs, so a throttled attempt costs the server nothing.
//! Successful logins are not counted: a user who signs in often is never locked out by it.
//!
//! [`AddressRateLimit`] is the other kind: every attempt counts, for actions that should be rare per
//! address whatever their outcome (sign-ups: each one that passes the policy costs an Argon2 hash, and
//! each one tells whether a username is taken).

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use serde::Deserialize;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

type Limiter<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

struct KeyedThrottle<K: Hash + Eq + Clone> {
    limiter: Limiter<K>,
    refill: Duration,
    locked_until: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq + Clone> KeyedThrottle<K> {
    fn new(burst: u32, refill_secs: u64) -> Self {
        let refill = Duration::from_secs(refill_secs.max(1));
        let quota = Quota::with_period(refill)
            .expect("refill period is positive")
            .allow_burst(NonZeroU32::new(burst.max(1)).expect("burst is positive"));
        Self {
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            refill,
            locked_until: Mutex::new(HashMap::new()),
        }
    }

    fn locked_for(&self, key: &K, now: Instant) -> Option<Duration> {
        let map = self.locked_until.lock().expect("throttle lock");
        map.get(key).and_then(|until| until.checked_duration_since(now)).filter(|d| !d.is_zero())
    }

    fn record_failure(&self, key: &K, now: Instant) {
        let lock_for = match self.limiter.check_key(key) {
            Ok(state) if state.remaining_burst_capacity() > 0 => None,
            Ok(_) => Some(self.refill),
            Err(not_until) => Some(not_until.wait_time_from(DefaultClock::default().now())),
        };
        if let Some(d) = lock_for {
            let mut map = self.locked_until.lock().expect("throttle lock");
            // Forget expired locks so the map stays as small as the set of keys under attack.
            if map.len() > 10_000 {
                map.retain(|_, until| *until > now);
            }
            map.insert(key.clone(), now + d);
        }
    }
}

pub struct LoginThrottle {
    accounts: KeyedThrottle<String>,
    addresses: KeyedThrottle<IpAddr>,
}

impl LoginThrottle {
    pub fn new(config: &ThrottleConfig) -> Self {
        Self {
            accounts: KeyedThrottle::new(config.account_burst, config.account_refill_secs),
            addresses: KeyedThrottle::new(config.ip_burst, config.ip_refill_secs),
        }
    }

    fn account_key(username: &str) -> String {
        username.to_lowercase()
    }

    /// Refuses the attempt if the username or the address is locked.
    pub fn check(&self, username: &str, ip: Option<IpAddr>) -> Result<(), AuthError> {
        let now = Instant::now();
        let account = self.accounts.locked_for(&Self::account_key(username), now);
        let address = ip.and_then(|ip| self.addresses.locked_for(&ip, now));
        match account.into_iter().chain(address).max() {
            Some(retry_after) => Err(AuthError::Throttled { retry_after }),
            None => Ok(()),
        }
    }

    pub fn record_failure(&self, username: &str, ip: Option<IpAddr>) {
        let now = Instant::now();
        self.accounts.record_failure(&Self::account_key(username), now);
        if let Some(ip) = ip {
            self.addresses.record_failure(&ip, now);
        }
    }
}

/// Attempts per client address, successful or not. No address (a request without peer information) is
/// one shared key, so it is limited too rather than waved through.
pub struct AddressRateLimit {
    limiter: RateLimiter<Option<IpAddr>, DefaultKeyedStateStore<Option<IpAddr>>, DefaultClock>,
}

impl AddressRateLimit {
    /// `burst` attempts at once, then one more every `refill_secs`.
    pub fn new(burst: u32, refill_secs: u64) -> Self {
        let quota = Quota::with_period(Duration::from_secs(refill_secs.max(1)))
            .expect("refill period is positive")
            .allow_burst(NonZeroU32::new(burst.max(1)).expect("burst is positive"));
        Self { limiter: RateLimiter::keyed(quota) }
    }

    /// Counts one attempt from `ip`; `Err` carries how long until the next one is allowed.
    pub fn check(&self, ip: Option<IpAddr>) -> Result<(), Duration> {
        // Forget addresses whose allowance is full again, so the map stays as small as the set of busy ones.
        if self.limiter.len() > 10_000 {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()).max(Duration::from_secs(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(account_burst: u32, ip_burst: u32) -> ThrottleConfig {
        ThrottleConfig { account_burst, account_refill_secs: 60, ip_burst, ip_refill_secs: 60 }
    }

    #[test]
    fn account_is_locked_after_its_burst_of_failures() {
        let t = LoginThrottle::new(&cfg(3, 100));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert!(t.check("alice", Some(ip)).is_ok());
            t.record_failure("alice", Some(ip));
        }
        let err = t.check("ALICE", Some(ip)).unwrap_err();
        assert_eq!(err.status(), http::StatusCode::TOO_MANY_REQUESTS);
        let secs = err.retry_after_secs().unwrap();
        assert!((1..=60).contains(&secs), "{secs}");
        // Another account from another address is untouched.
        assert!(t.check("bob", Some("10.0.0.2".parse().unwrap())).is_ok());
    }

    #[test]
    fn address_is_locked_across_usernames() {
        let t = LoginThrottle::new(&cfg(100, 4));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for i in 0..4 {
            t.record_failure(&format!("user{i}"), Some(ip));
        }
        assert!(t.check("fresh-user", Some(ip)).is_err());
        assert!(t.check("fresh-user", Some("192.0.2.8".parse().unwrap())).is_ok());
    }

    #[test]
    fn lock_expires_after_the_refill_period() {
        let t = LoginThrottle::new(&ThrottleConfig {
            account_burst: 1,
            account_refill_secs: 1,
            ip_burst: 100,
            ip_refill_secs: 1,
        });
        t.record_failure("carol", None);
        assert!(t.check("carol", None).is_err());
        std::thread::sleep(Duration::from_millis(1100));
        assert!(t.check("carol", None).is_ok());
    }

    #[test]
    fn address_rate_limit_counts_every_attempt_per_address() {
        let limit = AddressRateLimit::new(3, 60);
        let (a, b): (IpAddr, IpAddr) = ("198.51.100.1".parse().unwrap(), "198.51.100.2".parse().unwrap());
        for _ in 0..3 {
            assert!(limit.check(Some(a)).is_ok());
        }
        let wait = limit.check(Some(a)).unwrap_err();
        assert!((1..=60).contains(&wait.as_secs()), "{wait:?}");
        assert!(limit.check(Some(b)).is_ok(), "another address has its own allowance");
        for _ in 0..3 {
            assert!(limit.check(None).is_ok());
        }
        assert!(limit.check(None).is_err(), "requests without an address share one allowance");
    }
}
