//! The login throttle and the sign-up limit over a real database, on every engine: locks per account
//! and per address, refunds for attempts that were not wrong passwords, expiry, one allowance shared by
//! two instances over the same database, and no way past it with parallel requests; and the stored-bytes
//! allowance per user.

use auth::{AddressRateLimit, AuthError, LoginThrottle, StoredBytes, ThrottleConfig};
use contract::PublicError;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

fn cfg(account_burst: u32, ip_burst: u32) -> ThrottleConfig {
    ThrottleConfig { account_burst, account_refill_secs: 60, ip_burst, ip_refill_secs: 60 }
}

async fn pools() -> Vec<(sqlx::AnyPool, ::db::testing::TestDb)> {
    let mut out = vec![];
    for test_db in ::db::testing::engines().await {
        out.push((auth::db::connect(&test_db.url).await.unwrap(), test_db));
    }
    out
}

fn wrong_password() -> Result<(), AuthError> {
    Err(AuthError::InvalidCredentials)
}

#[tokio::test]
async fn an_account_is_locked_after_its_burst_of_wrong_passwords() {
    for (pool, db) in pools().await {
        let t = LoginThrottle::new(pool, &cfg(3, 100));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            let r = t.guard("alice", Some(ip), async { wrong_password() }).await;
            assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{}: {r:?}", db.engine.as_str());
        }
        let err = t.guard("ALICE", Some(ip), async { Ok(()) }).await.unwrap_err();
        assert_eq!(err.status(), http::StatusCode::TOO_MANY_REQUESTS.as_u16());
        let secs = err.retry_after_secs().unwrap();
        assert!((1..=60).contains(&secs), "{secs}");
        // Another account from another address is untouched.
        assert!(t.guard("bob", Some("10.0.0.2".parse().unwrap()), async { Ok(()) }).await.is_ok());
    }
}

#[tokio::test]
async fn an_address_is_locked_across_usernames() {
    for (pool, _db) in pools().await {
        let t = LoginThrottle::new(pool, &cfg(100, 4));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for i in 0..4 {
            let _ = t.guard(&format!("user{i}"), Some(ip), async { wrong_password() }).await;
        }
        assert!(matches!(t.guard("fresh-user", Some(ip), async { Ok(()) }).await, Err(AuthError::Throttled { .. })));
        assert!(t.guard("fresh-user", Some("192.0.2.8".parse().unwrap()), async { Ok(()) }).await.is_ok());
        // The refused attempt was not counted against fresh-user's own allowance either.
        for _ in 0..99 {
            assert!(t.guard("fresh-user", None, async { wrong_password() }).await.is_err());
        }
        assert!(matches!(t.guard("fresh-user", None, async { wrong_password() }).await, Err(AuthError::InvalidCredentials)));
    }
}

#[tokio::test]
async fn attempts_that_are_not_wrong_passwords_are_given_back() {
    for (pool, _db) in pools().await {
        let t = LoginThrottle::new(pool, &cfg(2, 100));
        for _ in 0..10 {
            assert!(t.guard("dana", None, async { Ok(()) }).await.is_ok(), "a success never counts");
            let r: Result<(), _> = t.guard("dana", None, async { Err(AuthError::InvalidInput("bad".into())) }).await;
            assert!(matches!(r, Err(AuthError::InvalidInput(_))), "nor does a refusal before the password");
        }
        let _ = t.guard("dana", None, async { wrong_password() }).await;
        let _ = t.guard("dana", None, async { wrong_password() }).await;
        assert!(matches!(t.guard("dana", None, async { Ok(()) }).await, Err(AuthError::Throttled { .. })));
    }
}

#[tokio::test]
async fn a_lock_ends_after_the_refill_period() {
    for (pool, _db) in pools().await {
        let t = LoginThrottle::new(pool, &ThrottleConfig { account_burst: 1, account_refill_secs: 1, ip_burst: 100, ip_refill_secs: 1 });
        let _ = t.guard("carol", None, async { wrong_password() }).await;
        assert!(matches!(t.guard("carol", None, async { Ok(()) }).await, Err(AuthError::Throttled { .. })));
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(t.guard("carol", None, async { Ok(()) }).await.is_ok());
    }
}

/// Two instances over one database (two throttles, two pools): failures on one lock the account on
/// the other.
#[tokio::test]
async fn instances_sharing_a_database_share_the_allowance() {
    for (pool, db) in pools().await {
        let a = LoginThrottle::new(pool, &cfg(4, 100));
        let b = LoginThrottle::new(auth::db::connect(&db.url).await.unwrap(), &cfg(4, 100));
        for throttle in [&a, &b, &a, &b] {
            let _ = throttle.guard("erin", None, async { wrong_password() }).await;
        }
        for throttle in [&a, &b] {
            let r = throttle.guard("erin", None, async { Ok(()) }).await;
            assert!(matches!(r, Err(AuthError::Throttled { .. })), "{}: {r:?}", db.engine.as_str());
        }
    }
}

/// Forty guesses at once against a burst of five: exactly five reach the password check, however the
/// requests interleave.
#[tokio::test]
async fn parallel_guesses_cannot_pass_the_burst() {
    for (pool, db) in pools().await {
        let t = Arc::new(LoginThrottle::new(pool, &cfg(5, 1000)));
        let checked = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let mut tasks = vec![];
        for _ in 0..40 {
            let (t, checked) = (t.clone(), checked.clone());
            tasks.push(tokio::spawn(async move {
                t.guard("frank", None, async {
                    checked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await; // Argon2's time
                    wrong_password()
                })
                .await
            }));
        }
        let mut throttled = 0;
        for task in tasks {
            if matches!(task.await.unwrap(), Err(AuthError::Throttled { .. })) {
                throttled += 1;
            }
        }
        assert_eq!(checked.load(std::sync::atomic::Ordering::SeqCst), 5, "{}", db.engine.as_str());
        assert_eq!(throttled, 35);
    }
}

#[tokio::test]
async fn the_address_limit_counts_every_attempt_per_address() {
    for (pool, _db) in pools().await {
        let limit = AddressRateLimit::new(pool.clone(), "signup-address", 3, 60);
        let (a, b): (IpAddr, IpAddr) = ("198.51.100.1".parse().unwrap(), "198.51.100.2".parse().unwrap());
        for _ in 0..3 {
            assert!(limit.check(Some(a)).await.unwrap().is_ok());
        }
        let wait = limit.check(Some(a)).await.unwrap().unwrap_err();
        assert!((1..=60).contains(&wait.as_secs()), "{wait:?}");
        assert!(limit.check(Some(b)).await.unwrap().is_ok(), "another address has its own allowance");
        for _ in 0..3 {
            assert!(limit.check(None).await.unwrap().is_ok());
        }
        assert!(limit.check(None).await.unwrap().is_err(), "requests without an address share one allowance");
        // Another limit's namespace over the same table starts full.
        let other = AddressRateLimit::new(pool, "other-limit", 1, 60);
        assert!(other.check(Some(a)).await.unwrap().is_ok());
    }
}

#[tokio::test]
async fn stored_bytes_are_a_rolling_daily_allowance_per_user_shared_by_instances() {
    for (pool, db) in pools().await {
        let e = db.engine.as_str();
        let (a, b) = (StoredBytes::new(pool.clone(), 10_000), StoredBytes::new(pool.clone(), 10_000));
        a.charge("alice", 6_000).await.unwrap().unwrap();
        // The other instance sees the same allowance: 4,000 bytes are left, not 10,000.
        let wait = b.charge("alice", 5_000).await.unwrap().unwrap_err();
        // 1,000 bytes come back in 86,400 s × 1,000 / 10,000 = 8,640 s.
        assert!((8_000..=8_700).contains(&wait.as_secs()), "{e}: {wait:?}");
        assert!(b.refusal(5_000, wait).contains("10000 bytes"), "{e}");
        b.charge("alice", 4_000).await.unwrap().unwrap();
        assert!(a.charge("alice", 1).await.unwrap().is_err(), "{e}: the allowance is spent");
        // Another user's allowance is their own.
        a.charge("bob", 10_000).await.unwrap().unwrap();
        // More than a day's allowance never fits, and says so.
        let wait = a.charge("carol", 10_001).await.unwrap().unwrap_err();
        assert!(a.refusal(10_001, wait).contains("more than the 10000"), "{e}");
        // A refund makes room again.
        a.refund("alice", 2_000).await.unwrap();
        a.charge("alice", 2_000).await.unwrap().unwrap();
        assert!(a.charge("alice", 100).await.unwrap().is_err(), "{e}");
        // 0: no limit.
        StoredBytes::new(pool.clone(), 0).charge("alice", u64::MAX).await.unwrap().unwrap();
    }
}
