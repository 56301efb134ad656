//! Shared by the auth integration tests: one fresh, migrated database per engine with an authenticator.
#![allow(dead_code)]

use auth::{db, Authenticator, LoginAttempt, LoginThrottle, PasswordHasher, ThrottleConfig, UserStore};
use secrecy::SecretString;
use std::sync::Arc;

/// One fresh, migrated database per engine, each with its own authenticator.
pub async fn setup(throttle: ThrottleConfig) -> Vec<(Authenticator, sqlx::AnyPool, ::db::testing::TestDb)> {
    let mut out = vec![];
    for test_db in ::db::testing::engines().await {
        let pool = db::connect(&test_db.url).await.unwrap();
        let auth = Authenticator {
            users: UserStore::new(pool.clone()),
            hasher: PasswordHasher::owasp(),
            throttle: Arc::new(LoginThrottle::new(pool.clone(), &throttle)),
        };
        out.push((auth, pool, test_db));
    }
    out
}

pub fn attempt(u: &str, p: &str) -> LoginAttempt {
    LoginAttempt { username: u.into(), password: SecretString::from(p), client_ip: Some("127.0.0.9".parse().unwrap()) }
}
