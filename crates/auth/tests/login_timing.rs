//! The sign-in's response time must not tell an unknown username from a known one with a wrong password.
//! In its own test binary so the other tests' Argon2 work does not run beside the measurement.

use auth::{db, AuthError, Authenticator, LoginAttempt, LoginThrottle, PasswordHasher, ThrottleConfig, UserStore};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tries of each kind per round (a round takes about 5 s); alternating, so a change in machine load hits both kinds alike.
const TRIES: usize = 61;
const WARM_UP: usize = 3;
/// The largest relative difference of the medians that passes.
const TOLERANCE: f64 = 0.05;
/// A round that misses the tolerance is measured again, up to this many rounds in all, so one burst of
/// load from a neighbour on a shared 2-core machine does not fail the test. A real difference (skipping
/// Argon2 makes the unknown user ~50x faster) misses every round.
const ROUNDS: usize = 5;

fn attempt(username: &str) -> LoginAttempt {
    LoginAttempt { username: username.into(), password: SecretString::from("a wrong password"), client_ip: None }
}

async fn time_login(auth: &Authenticator, username: &str) -> Duration {
    let started = Instant::now();
    let result = auth.login(attempt(username)).await;
    let elapsed = started.elapsed();
    assert!(matches!(result, Err(AuthError::InvalidCredentials)), "{username}: {result:?}");
    elapsed
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test]
async fn login_timing_does_not_reveal_whether_the_user_exists() {
    // Never locks: the throttle refuses before Argon2, which would be a (legitimate) difference of its own.
    let no_throttle = ThrottleConfig { account_burst: 1_000_000, account_refill_secs: 1, ip_burst: 1_000_000, ip_refill_secs: 1 };
    for test_db in ::db::testing::engines().await {
        let engine = test_db.engine.as_str();
        let pool = db::connect(&test_db.url).await.unwrap();
        let auth = Authenticator {
            users: UserStore::new(pool.clone()),
            hasher: PasswordHasher::owasp(),
            throttle: Arc::new(LoginThrottle::new(pool.clone(), &no_throttle)),
        };
        auth.create_user("known-user", SecretString::from("the right password")).await.unwrap();

        let mut last = String::new();
        let mut passed = false;
        for round in 1..=ROUNDS {
            for _ in 0..WARM_UP {
                time_login(&auth, "known-user").await;
                time_login(&auth, "unknown-user").await;
            }
            let (mut known, mut unknown) = (Vec::with_capacity(TRIES), Vec::with_capacity(TRIES));
            for i in 0..TRIES {
                // Swap which goes first every time, so neither kind always follows the other.
                if i % 2 == 0 {
                    known.push(time_login(&auth, "known-user").await);
                    unknown.push(time_login(&auth, "unknown-user").await);
                } else {
                    unknown.push(time_login(&auth, "unknown-user").await);
                    known.push(time_login(&auth, "known-user").await);
                }
            }
            let (k, u) = (median(known), median(unknown));
            let diff = (k.as_secs_f64() - u.as_secs_f64()).abs() / k.max(u).as_secs_f64();
            last = format!(
                "{engine} round {round}: median known-user/wrong-password {:.2} ms, unknown user {:.2} ms, \
                 difference {:.2}%",
                k.as_secs_f64() * 1e3,
                u.as_secs_f64() * 1e3,
                diff * 100.0
            );
            eprintln!("{last}");
            if diff < TOLERANCE {
                passed = true;
                break;
            }
        }
        assert!(passed, "timing reveals whether the user exists: {last} (tolerance {}%)", TOLERANCE * 100.0);
    }
}
