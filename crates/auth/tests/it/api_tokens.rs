//! API tokens on every database engine: shown once and stored hashed, scoped, revocable by their owner
//! only, expiring, with a last-used time written at most once a minute.

use auth::tokens::{ApiTokenStore, Scope, MAX_ACTIVE_TOKENS_PER_USER};
use auth::{db, AuthError, User, UserStore};
use contract::PublicError;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

struct Fixture {
    tokens: ApiTokenStore,
    pool: sqlx::AnyPool,
    alice: User,
    bob: User,
    _db: ::db::testing::TestDb,
}

async fn fixtures() -> Vec<Fixture> {
    let mut out = vec![];
    for test_db in ::db::testing::engines().await {
        eprintln!("engine: {}", test_db.engine.as_str());
        let pool = db::connect(&test_db.url).await.unwrap();
        let users = UserStore::new(pool.clone());
        // The tokens do not care how the password was hashed.
        let alice = users.insert("alice", "$argon2id$not-used").await.unwrap();
        let bob = users.insert("bob", "$argon2id$not-used").await.unwrap();
        out.push(Fixture { tokens: ApiTokenStore::new(pool.clone()), pool, alice, bob, _db: test_db });
    }
    out
}

const NOW: i64 = 1_800_000_000;

#[tokio::test]
async fn the_secret_is_returned_once_and_only_its_hash_is_stored() {
    for f in fixtures().await {
        let (info, secret) = f.tokens.create(f.alice.id, "CI deploys", &[Scope::WorkflowsWrite], None).await.unwrap();
        let secret = secret.expose_secret().to_string();
        assert!(secret.starts_with("ie_") && secret.len() >= 3 + 22, "{secret}");
        assert_eq!(info.prefix, &secret[..8]);
        let debug = format!("{:?}", f.tokens.create(f.alice.id, "x", &[Scope::WebhooksRead], None).await.unwrap().1);
        assert!(debug.contains("REDACTED"), "the secret cannot be logged by accident: {debug}");

        let rows: Vec<(String, String, String, String)> =
            sqlx::query_as("SELECT name, prefix, token_hash, scopes FROM api_tokens WHERE id = $1").bind(info.id).fetch_all(&f.pool).await.unwrap();
        let (name, prefix, hash, scopes) = rows[0].clone();
        for column in [&name, &prefix, &hash, &scopes] {
            assert!(!column.contains(&secret[3..]), "a column holds the secret: {column}");
        }
        let expected: String = Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hash, expected);
        // What the settings page gets has no secret either.
        let listed = serde_json::to_string(&f.tokens.list(f.alice.id).await.unwrap()).unwrap();
        assert!(!listed.contains(&secret[3..]) && !listed.contains(&hash), "{listed}");
    }
}

#[tokio::test]
async fn a_token_authenticates_as_its_owner_with_its_scopes() {
    for f in fixtures().await {
        let (info, secret) = f.tokens.create(f.alice.id, "dashboard", &[Scope::NotificationsRead, Scope::WebhooksRead], None).await.unwrap();
        let who = f.tokens.authenticate(secret.expose_secret()).await.unwrap();
        assert_eq!((who.user_id, who.token_id), (f.alice.id, info.id));
        assert_eq!(who.scopes, vec![Scope::NotificationsRead, Scope::WebhooksRead]);
        who.require(Scope::WebhooksRead).unwrap();
        let err = who.require(Scope::WebhooksWrite).unwrap_err();
        assert_eq!(err.status(), http::StatusCode::FORBIDDEN.as_u16());
        assert!(err.to_string().contains("webhooks:write"), "{err}");

        // Junk, a well-formed unknown token, and the secret with one character changed.
        let s = secret.expose_secret();
        let mut altered = s.to_string();
        altered.replace_range(s.len() - 1.., if s.ends_with('A') { "B" } else { "A" });
        for bad in ["", "Bearer x", "ie_", "ie_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", altered.as_str()] {
            let err = f.tokens.authenticate(bad).await.unwrap_err();
            assert!(matches!(err, AuthError::InvalidToken), "{bad:?}: {err:?}");
            assert_eq!(err.status(), http::StatusCode::UNAUTHORIZED.as_u16());
        }
    }
}

#[tokio::test]
async fn scopes_round_trip_sorted_and_deduplicated() {
    for f in fixtures().await {
        let asked = [Scope::WorkflowsWrite, Scope::NotificationsRead, Scope::WorkflowsWrite, Scope::WebhooksWrite];
        let (info, secret) = f.tokens.create(f.alice.id, "all sorts", &asked, None).await.unwrap();
        let expected = vec![Scope::NotificationsRead, Scope::WebhooksWrite, Scope::WorkflowsWrite];
        assert_eq!(info.scopes, expected);
        assert_eq!(f.tokens.list(f.alice.id).await.unwrap()[0].scopes, expected);
        assert_eq!(f.tokens.authenticate(secret.expose_secret()).await.unwrap().scopes, expected);
        let (stored,): (String,) = sqlx::query_as("SELECT scopes FROM api_tokens WHERE id = $1").bind(info.id).fetch_one(&f.pool).await.unwrap();
        assert_eq!(stored, "notifications:read webhooks:write workflows:write");
        assert_eq!(Scope::parse_list(&stored).unwrap(), expected);
        for all in Scope::USER {
            let (i, _) = f.tokens.create(f.bob.id, all.as_str(), &[all], None).await.unwrap();
            assert_eq!(i.scopes, vec![all]);
        }
    }
}

#[tokio::test]
async fn only_operators_tokens_may_carry_the_operators_scope() {
    for f in fixtures().await {
        let tokens = f.tokens.clone().with_operators(&["alice".to_string()]);
        let (info, secret) = tokens.create(f.alice.id, "ops", &[Scope::OpsRead, Scope::NotificationsRead], None).await.unwrap();
        assert_eq!(info.scopes, vec![Scope::NotificationsRead, Scope::OpsRead]);
        tokens.authenticate(secret.expose_secret()).await.unwrap().require(Scope::OpsRead).unwrap();
        for store in [&tokens, &f.tokens] {
            let err = store.create(f.bob.id, "ops", &[Scope::OpsRead], None).await.unwrap_err();
            assert_eq!(err.status(), 422);
            assert!(matches!(&err, AuthError::InvalidField(e) if e.field == "scopes" && e.message.contains("ops:read")), "{err:?}");
        }
        // Nobody is an operator unless named.
        assert!(f.tokens.create(f.alice.id, "ops", &[Scope::OpsRead], None).await.is_err());
        assert!(f.tokens.list(f.bob.id).await.unwrap().is_empty(), "nothing was stored for a refusal");
    }
}

#[tokio::test]
async fn revoked_tokens_stop_working_and_only_the_owner_can_revoke() {
    for f in fixtures().await {
        let (info, secret) = f.tokens.create(f.alice.id, "laptop", &[Scope::WebhooksRead], None).await.unwrap();
        // Bob cannot revoke Alice's token by guessing its id, and trying changes nothing.
        assert!(matches!(f.tokens.revoke(f.bob.id, info.id).await, Err(AuthError::NotFound)));
        assert!(matches!(f.tokens.revoke(f.alice.id, info.id + 1000).await, Err(AuthError::NotFound)));
        f.tokens.authenticate(secret.expose_secret()).await.unwrap();
        assert!(f.tokens.list(f.bob.id).await.unwrap().is_empty());

        f.tokens.revoke(f.alice.id, info.id).await.unwrap();
        assert!(matches!(f.tokens.authenticate(secret.expose_secret()).await, Err(AuthError::InvalidToken)));
        assert!(f.tokens.list(f.alice.id).await.unwrap().is_empty());
        assert!(matches!(f.tokens.revoke(f.alice.id, info.id).await, Err(AuthError::NotFound)), "already revoked");
    }
}

#[tokio::test]
async fn tokens_expire() {
    for f in fixtures().await {
        let (info, secret) = f.tokens.create_at(f.alice.id, "one day", &[Scope::WorkflowsRead], Some(NOW + 86_400), NOW).await.unwrap();
        assert_eq!(info.expires_at, Some(NOW + 86_400));
        f.tokens.authenticate_at(secret.expose_secret(), NOW + 86_399).await.unwrap();
        assert!(matches!(f.tokens.authenticate_at(secret.expose_secret(), NOW + 86_400).await, Err(AuthError::InvalidToken)));
        // Listed, so the page can show it as expired.
        assert_eq!(f.tokens.list(f.alice.id).await.unwrap()[0].expires_at, Some(NOW + 86_400));
        let past = f.tokens.create_at(f.alice.id, "already over", &[Scope::WorkflowsRead], Some(NOW), NOW).await;
        assert!(matches!(&past, Err(AuthError::InvalidField(f)) if f.field == "expires_at"), "{past:?}");
    }
}

#[tokio::test]
async fn last_used_is_written_at_most_once_a_minute() {
    for f in fixtures().await {
        let (info, secret) = f.tokens.create_at(f.alice.id, "poller", &[Scope::NotificationsRead], None, NOW).await.unwrap();
        assert_eq!(info.last_used_at, None);
        let last_used = || async { f.tokens.list(f.alice.id).await.unwrap()[0].last_used_at };
        assert_eq!(last_used().await, None);
        let s = secret.expose_secret();
        f.tokens.authenticate_at(s, NOW + 10).await.unwrap();
        assert_eq!(last_used().await, Some(NOW + 10));
        // A write at any of these would have stored that time instead.
        for t in [NOW + 11, NOW + 40, NOW + 69] {
            f.tokens.authenticate_at(s, t).await.unwrap();
            assert_eq!(last_used().await, Some(NOW + 10), "no write at {t}");
        }
        f.tokens.authenticate_at(s, NOW + 70).await.unwrap();
        assert_eq!(last_used().await, Some(NOW + 70));
    }
}

#[tokio::test]
async fn names_scopes_and_the_number_of_active_tokens_are_limited() {
    for f in fixtures().await {
        let s = &[Scope::WebhooksRead];
        // Each refusal names the input it is about, so a form puts it under that input.
        let field = |r: Result<_, AuthError>| match r {
            Err(AuthError::InvalidField(f)) => f.field,
            other => panic!("expected a field error, got {other:?}"),
        };
        assert_eq!(field(f.tokens.create(f.alice.id, &"n".repeat(101), s, None).await), "name");
        assert_eq!(field(f.tokens.create(f.alice.id, "   ", s, None).await), "name");
        assert_eq!(field(f.tokens.create(f.alice.id, "no scopes", &[], None).await), "scopes");
        let (first, _) = f.tokens.create_at(f.alice.id, &"é".repeat(100), s, None, NOW).await.unwrap();
        // One that has expired does not count towards the limit.
        f.tokens.create_at(f.alice.id, "soon gone", s, Some(NOW + 5), NOW).await.unwrap();
        for i in 1..MAX_ACTIVE_TOKENS_PER_USER {
            f.tokens.create_at(f.alice.id, &format!("token {i}"), s, None, NOW + 10).await.unwrap();
        }
        let err = f.tokens.create_at(f.alice.id, "one too many", s, None, NOW + 10).await.unwrap_err();
        match &err {
            AuthError::InvalidInput(m) => assert!(m.contains("at most 50"), "{m}"),
            other => panic!("{other:?}"),
        }
        // Bob has his own allowance; revoking one of Alice's frees a place.
        f.tokens.create_at(f.bob.id, "bob's", s, None, NOW + 10).await.unwrap();
        f.tokens.revoke(f.alice.id, first.id).await.unwrap();
        f.tokens.create_at(f.alice.id, "replacement", s, None, NOW + 10).await.unwrap();
    }
}

#[tokio::test]
async fn deleting_the_user_deletes_their_tokens() {
    for f in fixtures().await {
        let (_, secret) = f.tokens.create(f.bob.id, "bob's", &[Scope::WebhooksRead], None).await.unwrap();
        sqlx::query("DELETE FROM users WHERE id = $1").bind(f.bob.id).execute(&f.pool).await.unwrap();
        assert!(matches!(f.tokens.authenticate(secret.expose_secret()).await, Err(AuthError::InvalidToken)));
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM api_tokens").fetch_one(&f.pool).await.unwrap();
        assert_eq!(n, 0);
        let _ = &f.alice;
    }
}
