//! Issue 14, credentials: every API token expires, a password change revokes the user's tokens, the
//! password is asked again before minting one (and a wrong one counts as a failed sign-in), a database
//! from before the lifetime rule gets expiries at migration, and production disables an account that
//! still has the public demo password. On every database engine the test run has.

use crate::common;

use auth::tokens::{ApiTokenStore, Scope, DEFAULT_MAX_LIFETIME_DAYS};
use auth::{AuthError, ThrottleConfig};
use common::{attempt, setup};
use secrecy::{ExposeSecret, SecretString};

const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

fn secret(s: &str) -> SecretString {
    SecretString::from(s)
}

#[tokio::test]
async fn every_token_expires_and_a_longer_lifetime_is_refused() {
    for (auth, pool, _db) in setup(ThrottleConfig::default()).await {
        let user = auth.create_user("alice", secret("alice-password-1")).await.unwrap();
        let tokens = ApiTokenStore::new(pool.clone());
        assert_eq!(DEFAULT_MAX_LIFETIME_DAYS, 365);
        let (info, _) = tokens.create_at(user.id, "no expiry asked", &[Scope::WebhooksRead], None, NOW).await.unwrap();
        assert_eq!(info.expires_at, Some(NOW + 365 * DAY), "no expiry means the longest allowed, not never");
        let stored: (Option<i64>,) = sqlx::query_as("SELECT expires_at FROM api_tokens WHERE id = $1").bind(info.id).fetch_one(&pool).await.unwrap();
        assert_eq!(stored.0, Some(NOW + 365 * DAY));

        let short = ApiTokenStore::new(pool.clone()).with_max_lifetime_days(30);
        short.create_at(user.id, "thirty days", &[Scope::WebhooksRead], Some(NOW + 30 * DAY), NOW).await.unwrap();
        match short.create_at(user.id, "too long", &[Scope::WebhooksRead], Some(NOW + 30 * DAY + 1), NOW).await {
            Err(AuthError::InvalidField(f)) => assert!(f.field == "expires_at" && f.message.contains("30 days"), "{f:?}"),
            other => panic!("a longer lifetime is refused, not clamped: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_password_change_revokes_every_token_of_the_user() {
    for (auth, pool, _db) in setup(ThrottleConfig::default()).await {
        let alice = auth.create_user("alice", secret("alice-password-1")).await.unwrap();
        let bob = auth.create_user("bob", secret("bob-password-1")).await.unwrap();
        let tokens = ApiTokenStore::new(pool.clone());
        let (_, a1) = tokens.create(alice.id, "ci", &Scope::USER, None).await.unwrap();
        let (_, a2) = tokens.create(alice.id, "laptop", &[Scope::WebhooksRead], None).await.unwrap();
        let (_, b1) = tokens.create(bob.id, "bob's", &[Scope::WebhooksRead], None).await.unwrap();

        auth.change_password_ending_other_sessions(alice.id, "this-session", secret("alice-password-1"), secret("a brand new passphrase 1"))
            .await
            .unwrap();
        for t in [&a1, &a2] {
            assert!(matches!(tokens.authenticate(t.expose_secret()).await, Err(AuthError::InvalidToken)), "alice's tokens end");
        }
        assert!(tokens.list(alice.id).await.unwrap().is_empty(), "revoked tokens leave the list");
        tokens.authenticate(b1.expose_secret()).await.expect("bob's token is untouched");

        // The plain change (no session to keep) does the same.
        let (_, a3) = tokens.create(alice.id, "after", &[Scope::WebhooksRead], None).await.unwrap();
        auth.change_password(alice.id, secret("a brand new passphrase 1"), secret("and another passphrase 2")).await.unwrap();
        assert!(matches!(tokens.authenticate(a3.expose_secret()).await, Err(AuthError::InvalidToken)));
    }
}

#[tokio::test]
async fn confirming_the_password_counts_wrong_guesses_as_failed_sign_ins() {
    let throttle = ThrottleConfig { account_burst: 2, ..ThrottleConfig::default() };
    for (auth, _pool, _db) in setup(throttle.clone()).await {
        let user = auth.create_user("alice", secret("alice-password-1")).await.unwrap();
        auth.confirm_password(user.id, secret("alice-password-1")).await.unwrap();
        assert!(matches!(auth.confirm_password(user.id, secret("")).await, Err(AuthError::InvalidInput(_))));
        assert!(matches!(auth.confirm_password(user.id, secret("wrong-1")).await, Err(AuthError::InvalidCredentials)));
        assert!(matches!(auth.confirm_password(user.id, secret("wrong-2")).await, Err(AuthError::InvalidCredentials)));
        // The account's throttle is the login's: locked now, even with the right password, and for sign-in too.
        assert!(matches!(auth.confirm_password(user.id, secret("alice-password-1")).await, Err(AuthError::Throttled { .. })));
        assert!(matches!(auth.login(attempt("alice", "alice-password-1")).await, Err(AuthError::Throttled { .. })));
    }
}

#[tokio::test]
async fn tokens_without_an_expiry_get_one_at_migration() {
    use std::borrow::Cow;
    const LIFETIME_VERSION: i64 = 20261206000006;
    for test_db in ::db::testing::engines().await {
        // The schema as it was before the lifetime rule, with a token that never expires.
        let pool = ::db::connect(&test_db.url).await.unwrap();
        let full = auth::db::migrations();
        let before = |m: &sqlx::migrate::Migrator| sqlx::migrate::Migrator {
            migrations: Cow::Owned(m.migrations.iter().filter(|x| x.version < LIFETIME_VERSION).cloned().collect()),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        ::db::migrate(&pool, &::db::Migrations { sqlite: before(&full.sqlite), postgres: before(&full.postgres) }).await.unwrap();
        let users = auth::UserStore::new(pool.clone());
        let alice = users.insert("alice", "$argon2id$not-used").await.unwrap();
        for (name, revoked) in [("forever", None), ("revoked", Some(NOW))] {
            sqlx::query(
                "INSERT INTO api_tokens (user_id, name, prefix, token_hash, scopes, created_at, expires_at, revoked_at) \
                 VALUES ($1, $2, 'ie_xxxxx', $3, 'webhooks:read', $4, NULL, $5)",
            )
            .bind(alice.id)
            .bind(name)
            .bind(format!("hash-{name}"))
            .bind(NOW)
            .bind(revoked)
            .execute(&pool)
            .await
            .unwrap();
        }

        let started = auth::now_unix();
        auth::db::connect(&test_db.url).await.unwrap();
        let rows: Vec<(String, Option<i64>)> =
            sqlx::query_as("SELECT name, expires_at FROM api_tokens ORDER BY name").fetch_all(&pool).await.unwrap();
        let forever = rows.iter().find(|(n, _)| n == "forever").unwrap().1.expect("an expiry was set");
        assert!((started + 365 * DAY - 5..=auth::now_unix() + 365 * DAY + 5).contains(&forever), "a year from the upgrade: {forever}");
        assert_eq!(rows.iter().find(|(n, _)| n == "revoked").unwrap().1, None, "revoked rows are left alone");
    }
}

#[tokio::test]
async fn an_account_with_the_public_demo_password_is_disabled() {
    for (auth, pool, _db) in setup(ThrottleConfig::default()).await {
        let demo = auth.create_user("demo", secret("demo-password-2026")).await.unwrap();
        let own = auth.create_user("ops", secret("ops-own-password")).await.unwrap();
        let tokens = ApiTokenStore::new(pool.clone());
        let (_, t) = tokens.create(demo.id, "demo token", &[Scope::WebhooksRead], None).await.unwrap();

        assert!(!auth.disable_if_password_is("ops", secret("demo-password-2026")).await.unwrap(), "another password: kept");
        assert!(!auth.disable_if_password_is("nobody", secret("demo-password-2026")).await.unwrap());
        assert!(auth.disable_if_password_is("demo", secret("demo-password-2026")).await.unwrap());
        assert!(matches!(auth.login(attempt("demo", "demo-password-2026")).await, Err(AuthError::InvalidCredentials)));
        assert!(matches!(tokens.authenticate(t.expose_secret()).await, Err(AuthError::InvalidToken)));
        auth.login(attempt("ops", "ops-own-password")).await.unwrap();
        assert!(!auth.disable_if_password_is("demo", secret("demo-password-2026")).await.unwrap(), "once is enough");
        let _ = own;
    }
}
