//! The sign-in rules against real databases: a SQLite file, and PostgreSQL when the test command has
//! started one (`APP_TEST_POSTGRES_URL`, see crates/db's testing module).

use crate::common;
use contract::PublicError;

use common::{attempt, setup};

use auth::sessions::{NewSession, SessionRegistry};
use auth::{AuthError, PasswordHasher, ThrottleConfig};
use secrecy::SecretString;

#[tokio::test]
async fn login_succeeds_only_with_the_right_password() {
    for (auth, _pool, test_db) in setup(ThrottleConfig::default()).await {
        eprintln!("engine: {}", test_db.engine.as_str());
        auth.create_user("alice", SecretString::from("s3cret pass")).await.unwrap();
        let user = auth.login(attempt("alice", "s3cret pass")).await.unwrap();
        assert_eq!(user.username, "alice");
        // Usernames are case-insensitive.
        assert_eq!(auth.login(attempt("ALICE", "s3cret pass")).await.unwrap().id, user.id);

        let wrong = auth.login(attempt("alice", "nope")).await.unwrap_err();
        let unknown = auth.login(attempt("mallory", "nope")).await.unwrap_err();
        assert!(matches!(wrong, AuthError::InvalidCredentials));
        assert!(matches!(unknown, AuthError::InvalidCredentials));
        assert_eq!(wrong.to_string(), unknown.to_string());
        assert_eq!(wrong.status(), unknown.status());
    }
}

#[tokio::test]
async fn duplicate_username_is_refused() {
    for (auth, _pool, test_db) in setup(ThrottleConfig::default()).await {
        eprintln!("engine: {}", test_db.engine.as_str());
        auth.create_user("bob", SecretString::from("pw-one")).await.unwrap();
        let err = auth.create_user("BOB", SecretString::from("pw-two")).await.unwrap_err();
        assert!(matches!(err, AuthError::UsernameTaken));
    }
}

#[tokio::test]
async fn old_parameters_are_upgraded_on_next_login() {
    for (auth, _pool, test_db) in setup(ThrottleConfig::default()).await {
        eprintln!("engine: {}", test_db.engine.as_str());
        let weak = PasswordHasher::with_params(8 * 1024, 1, 1).unwrap();
        let phc = weak.hash_blocking("legacy pw").unwrap();
        auth.users.insert("legacy", &phc).await.unwrap();
        auth.login(attempt("legacy", "legacy pw")).await.unwrap();
        let stored = auth.users.find_by_username("legacy").await.unwrap().unwrap().password_hash;
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        // And the upgraded hash still verifies.
        auth.login(attempt("legacy", "legacy pw")).await.unwrap();
    }
}

#[tokio::test]
async fn throttled_attempt_is_refused_even_with_the_right_password() {
    let cfg = ThrottleConfig { account_burst: 2, account_refill_secs: 60, ip_burst: 100, ip_refill_secs: 60 };
    for (auth, _pool, test_db) in setup(cfg).await {
        eprintln!("engine: {}", test_db.engine.as_str());
        auth.create_user("carol", SecretString::from("right pw")).await.unwrap();
        for _ in 0..2 {
            assert!(matches!(auth.login(attempt("carol", "wrong")).await, Err(AuthError::InvalidCredentials)));
        }
        let err = auth.login(attempt("carol", "right pw")).await.unwrap_err();
        assert!(matches!(err, AuthError::Throttled { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn registry_lists_and_revokes_only_the_owners_sessions() {
    for (auth, pool, test_db) in setup(ThrottleConfig::default()).await {
        eprintln!("engine: {}", test_db.engine.as_str());
        let a = auth.create_user("dave", SecretString::from("pw")).await.unwrap();
        let b = auth.create_user("erin", SecretString::from("pw")).await.unwrap();
        let reg = SessionRegistry::new(pool);
        let register = |store_id: &'static str, user_id| {
            let reg = reg.clone();
            async move {
                let handle = auth::sessions::new_handle();
                reg.register(NewSession {
                    handle: &handle,
                    store_id,
                    user_id,
                    created_at: 1000,
                    expires_at: 5000,
                    user_agent: "test",
                    client_ip: "127.0.0.1",
                })
                .await
                .unwrap();
                handle
            }
        };
        let a1 = register("s-a1", a.id).await;
        let a2 = register("s-a2", a.id).await;
        let a3 = register("s-a3", a.id).await;
        let b1 = register("s-b1", b.id).await;
        assert_eq!(reg.list_for_user(a.id, 2000).await.unwrap().len(), 3);
        assert!(reg.list_for_user(a.id, 6000).await.unwrap().is_empty(), "expired rows are not listed");

        // Erin cannot revoke Dave's session by guessing its handle.
        assert!(matches!(reg.revoke(b.id, &a1).await, Err(AuthError::NotFound)));
        assert_eq!(reg.revoke(a.id, &a1).await.unwrap(), "s-a1");
        assert!(!reg.is_live(&a1, a.id).await.unwrap());

        let mut gone = reg.revoke_others(a.id, &a2).await.unwrap();
        gone.sort();
        assert_eq!(gone, vec!["s-a3".to_string()]);
        assert!(reg.is_live(&a2, a.id).await.unwrap());
        assert!(!reg.is_live(&a3, a.id).await.unwrap());
        assert!(reg.is_live(&b1, b.id).await.unwrap());
    }
}
