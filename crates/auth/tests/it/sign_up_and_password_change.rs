//! Sign-up with the new-password policy, and changing the password (which ends the other sessions), on
//! every database engine the test run has.

use crate::common;
use contract::PublicError;

use common::{attempt, setup};

use auth::sessions::{new_handle, NewSession, SessionRegistry};
use auth::{AuthError, ThrottleConfig};
use secrecy::SecretString;

fn secret(s: &str) -> SecretString {
    SecretString::from(s)
}

fn assert_invalid_input<T: std::fmt::Debug>(r: Result<T, AuthError>, needle: &str) {
    match r {
        Err(AuthError::InvalidInput(m)) => assert!(m.contains(needle), "{m:?} should mention {needle:?}"),
        other => panic!("expected InvalidInput({needle:?}), got {other:?}"),
    }
}

#[tokio::test]
async fn sign_up_creates_an_account_that_can_sign_in() {
    for (auth, _pool, test_db) in setup(ThrottleConfig::default()).await {
        eprintln!("engine: {}", test_db.engine.as_str());
        let user = auth.sign_up("alice", secret("correct horse battery staple")).await.unwrap();
        assert_eq!(user.username, "alice");
        assert_eq!(user.password_changed_at, None);
        assert!(user.password_hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(auth.login(attempt("alice", "correct horse battery staple")).await.unwrap().id, user.id);
        // A long pasted passphrase with emoji and spaces works end to end.
        let long = "🦀 pasted from my password manager: Jx$8vQ#2mL!9zR@4kT&7wN*1pB^6cF%3hD and then some more 🐙";
        assert!(long.chars().count() > 64);
        auth.sign_up("bob", secret(long)).await.unwrap();
        auth.login(attempt("bob", long)).await.unwrap();
    }
}

#[tokio::test]
async fn sign_up_refuses_a_taken_name_whatever_its_case() {
    for (auth, _pool, test_db) in setup(ThrottleConfig::default()).await {
        eprintln!("engine: {}", test_db.engine.as_str());
        auth.sign_up("carol", secret("first long password")).await.unwrap();
        let err = auth.sign_up("CAROL", secret("second long password")).await.unwrap_err();
        assert!(matches!(err, AuthError::UsernameTaken), "{err:?}");
        assert_eq!(err.status(), http::StatusCode::CONFLICT.as_u16());
    }
}

#[tokio::test]
async fn sign_up_refuses_weak_passwords_and_creates_nothing() {
    for (auth, _pool, test_db) in setup(ThrottleConfig::default()).await {
        eprintln!("engine: {}", test_db.engine.as_str());
        assert_invalid_input(auth.sign_up("dave", secret("7 chars")).await, "at least 8");
        assert_invalid_input(auth.sign_up("dave", secret("BaseBall")).await, "most commonly used");
        assert_invalid_input(auth.sign_up("dave", secret("iloveyou")).await, "most commonly used");
        assert_invalid_input(auth.sign_up("davidson", secret("Davidson!1")).await, "username");
        assert_invalid_input(auth.sign_up("dave", secret(&"x".repeat(1025))).await, "at most");
        assert!(auth.users.find_by_username("dave").await.unwrap().is_none());
        assert!(auth.users.find_by_username("davidson").await.unwrap().is_none());

        // The policy runs before the database: a weak password for a taken name says "weak", not "taken".
        auth.sign_up("erin", secret("a fine long password")).await.unwrap();
        assert_invalid_input(auth.sign_up("erin", secret("password")).await, "most commonly used");
    }
}

#[tokio::test]
async fn change_password_replaces_the_old_one() {
    for (auth, _pool, test_db) in setup(ThrottleConfig::default()).await {
        eprintln!("engine: {}", test_db.engine.as_str());
        let user = auth.sign_up("frank", secret("old but long password")).await.unwrap();
        let before = auth::now_unix();
        auth.change_password(user.id, secret("old but long password"), secret("brand new long password")).await.unwrap();
        assert!(matches!(auth.login(attempt("frank", "old but long password")).await, Err(AuthError::InvalidCredentials)));
        auth.login(attempt("frank", "brand new long password")).await.unwrap();
        let stored = auth.users.find_by_id(user.id).await.unwrap().unwrap();
        assert!(stored.password_changed_at.unwrap() >= before);
        assert!(stored.password_hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    }
}

#[tokio::test]
async fn change_password_enforces_the_policy_on_the_new_one() {
    for (auth, _pool, test_db) in setup(ThrottleConfig::default()).await {
        eprintln!("engine: {}", test_db.engine.as_str());
        let user = auth.sign_up("grace", secret("current long password")).await.unwrap();
        let change = |new: &'static str| auth.change_password(user.id, secret("current long password"), secret(new));
        assert_invalid_input(change("short").await, "at least 8");
        assert_invalid_input(change("PASSWORD1").await, "most commonly used");
        assert_invalid_input(change("grace123").await, "username");
        assert_invalid_input(change("current long password").await, "different");
        // Nothing changed.
        auth.login(attempt("grace", "current long password")).await.unwrap();
        assert_eq!(auth.users.find_by_id(user.id).await.unwrap().unwrap().password_changed_at, None);
    }
}

#[tokio::test]
async fn wrong_current_password_is_refused_and_throttled() {
    let cfg = ThrottleConfig { account_burst: 2, account_refill_secs: 60, ip_burst: 100, ip_refill_secs: 60 };
    for (auth, _pool, test_db) in setup(cfg.clone()).await {
        eprintln!("engine: {}", test_db.engine.as_str());
        let user = auth.sign_up("heidi", secret("the real password")).await.unwrap();
        for _ in 0..2 {
            let err = auth.change_password(user.id, secret("a guessed password"), secret("attacker's new password")).await.unwrap_err();
            assert!(matches!(err, AuthError::InvalidCredentials), "{err:?}");
        }
        // Locked now: even the right current password is refused, and so is signing in.
        let err = auth.change_password(user.id, secret("the real password"), secret("attacker's new password")).await.unwrap_err();
        assert!(matches!(err, AuthError::Throttled { .. }), "{err:?}");
        assert!(matches!(auth.login(attempt("heidi", "the real password")).await, Err(AuthError::Throttled { .. })));
        let stored = auth.users.find_by_id(user.id).await.unwrap().unwrap();
        assert_eq!(stored.password_hash, user.password_hash, "password unchanged");
    }
}

#[tokio::test]
async fn password_change_ends_the_other_sessions_but_keeps_this_one() {
    for (auth, pool, test_db) in setup(ThrottleConfig::default()).await {
        eprintln!("engine: {}", test_db.engine.as_str());
        let ivan = auth.sign_up("ivan", secret("ivan's long password")).await.unwrap();
        let judy = auth.sign_up("judy", secret("judy's long password")).await.unwrap();
        let reg = SessionRegistry::new(pool.clone());
        let mut handles = vec![];
        for (store_id, user_id) in [("s-i1", ivan.id), ("s-i2", ivan.id), ("s-i3", ivan.id), ("s-j1", judy.id)] {
            let handle = new_handle();
            reg.register(NewSession {
                handle: &handle,
                store_id,
                user_id,
                created_at: 1000,
                expires_at: i64::MAX / 2,
                user_agent: "test",
                client_ip: "127.0.0.1",
            })
            .await
            .unwrap();
            handles.push(handle);
        }
        let keep = &handles[1];

        // A failed change ends nothing.
        assert!(auth.change_password_ending_other_sessions(ivan.id, keep, secret("wrong one"), secret("ivan's next password")).await.is_err());
        assert_eq!(reg.list_for_user(ivan.id, 2000).await.unwrap().len(), 3);

        let mut gone =
            auth.change_password_ending_other_sessions(ivan.id, keep, secret("ivan's long password"), secret("ivan's next password")).await.unwrap();
        gone.sort();
        assert_eq!(gone, vec!["s-i1".to_string(), "s-i3".to_string()]);
        assert!(reg.is_live(keep, ivan.id).await.unwrap(), "the session making the change stays");
        assert!(!reg.is_live(&handles[0], ivan.id).await.unwrap());
        assert!(!reg.is_live(&handles[2], ivan.id).await.unwrap());
        assert!(reg.is_live(&handles[3], judy.id).await.unwrap(), "other users are untouched");
        auth.login(attempt("ivan", "ivan's next password")).await.unwrap();
        assert!(auth.login(attempt("ivan", "ivan's long password")).await.is_err());
    }
}
