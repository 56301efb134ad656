//! API tokens: a signed-in user creates them on the settings page (the secret is shown once), picks their
//! scopes and may revoke them; API clients send one as `Authorization: Bearer ie_…`.
//!
//! Only the SHA-256 of a token is stored. A fast hash is right here, unlike for passwords: the token is
//! 192 random bits, so there is nothing to guess from a leaked hash, and Argon2 would only make every API
//! request cost tens of milliseconds. Lookup is by that hash, so no comparison of secrets happens in our
//! code; an index lookup's timing could at most hint at a stored *hash*, and knowing part of a SHA-256
//! output does not help find a 192-bit input, so a constant-time compare would buy nothing.

use base64::Engine;
use rand::RngCore;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use sqlx::AnyPool;
use std::str::FromStr;

use crate::{now_unix, AuthError};

/// What every token starts with, so it is recognisable in logs, secret scanners and support tickets.
pub const TOKEN_PREFIX: &str = "ie_";
/// Random bytes after the prefix: 192 bits, 32 URL-safe base64 characters.
const SECRET_BYTES: usize = 24;
const TOKEN_LEN: usize = TOKEN_PREFIX.len() + SECRET_BYTES / 3 * 4;
/// How much of the token is kept in clear for display (`ie_` and 5 random characters, 30 of the 192
/// bits): enough to tell tokens apart on the settings page, far too little to help guess one.
pub const DISPLAY_PREFIX_CHARS: usize = 8;
pub const MAX_NAME_CHARS: usize = 100;
/// Tokens that are neither revoked nor expired, per user.
pub const MAX_ACTIVE_TOKENS_PER_USER: i64 = 50;
/// `last_used_at` is accurate to this many seconds: written at most once a minute per token, not on
/// every request.
pub const LAST_USED_RESOLUTION_SECS: i64 = 60;
/// The longest a token may live unless configured otherwise (`auth.token_max_lifetime_days`): a token
/// that leaks into a log or an old script stops working on its own.
pub const DEFAULT_MAX_LIFETIME_DAYS: u32 = 365;

/// What a token may do, and a token as its owner sees it: the types the settings page shows
/// (`contract::tokens`).
pub use contract::tokens::{Scope, TokenInfo};

fn normalise(scopes: &[Scope]) -> Vec<Scope> {
    Scope::normalise(scopes)
}

/// Who a valid token speaks for, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPrincipal {
    pub user_id: i64,
    pub token_id: i64,
    pub scopes: Vec<Scope>,
}

impl TokenPrincipal {
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// `Ok` if the token has `scope`, else [`AuthError::MissingScope`] (403).
    pub fn require(&self, scope: Scope) -> Result<(), AuthError> {
        if self.allows(scope) {
            Ok(())
        } else {
            Err(AuthError::MissingScope { scope: scope.as_str() })
        }
    }
}

#[derive(sqlx::FromRow)]
struct InfoRow {
    id: i64,
    name: String,
    prefix: String,
    scopes: String,
    created_at: i64,
    last_used_at: Option<i64>,
    expires_at: Option<i64>,
}

impl InfoRow {
    fn into_info(self) -> TokenInfo {
        TokenInfo {
            id: self.id,
            name: self.name,
            prefix: self.prefix,
            scopes: stored_scopes(&self.scopes, self.id),
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            expires_at: self.expires_at,
        }
    }
}

/// Scopes as stored. A name this build no longer knows (a scope removed in a later release) is dropped
/// with a warning rather than locking the token out entirely: the token simply loses that permission.
fn stored_scopes(s: &str, token_id: i64) -> Vec<Scope> {
    let known: Vec<Scope> = s
        .split(' ')
        .filter(|p| !p.is_empty())
        .filter_map(|p| match Scope::from_str(p) {
            Ok(scope) => Some(scope),
            Err(_) => {
                tracing::warn!(token_id, scope = p, "stored API token scope is unknown; ignored");
                None
            }
        })
        .collect();
    normalise(&known)
}

/// The stored form of a token: lowercase hex SHA-256 of the whole string, prefix included.
fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Could this be one of our tokens at all? Saves a database round trip for junk.
pub fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token.starts_with(TOKEN_PREFIX)
        && token[TOKEN_PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn new_token() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A token name as it will be stored (trimmed), or why it is refused.
pub fn validate_name(name: &str) -> Result<&str, AuthError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(AuthError::invalid_field("name", "Give the token a name, so you can tell it apart later."));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(AuthError::invalid_field("name", format!("Token names are at most {MAX_NAME_CHARS} characters.")));
    }
    if name.chars().any(char::is_control) {
        return Err(AuthError::invalid_field("name", "Token names cannot contain control characters."));
    }
    Ok(name)
}

/// The `api_tokens` table (same database as the users).
#[derive(Clone, Debug)]
pub struct ApiTokenStore {
    pool: AnyPool,
    max_lifetime_secs: i64,
    /// Usernames that may hold the operators' scopes (`ops:read`).
    operators: std::sync::Arc<[String]>,
}

impl ApiTokenStore {
    /// A store whose tokens live at most [`DEFAULT_MAX_LIFETIME_DAYS`].
    pub fn new(pool: AnyPool) -> Self {
        Self { pool, max_lifetime_secs: i64::from(DEFAULT_MAX_LIFETIME_DAYS) * 86_400, operators: std::sync::Arc::from([]) }
    }

    /// The users (by name) whose tokens may carry the operators' scopes; nobody else can get one.
    pub fn with_operators(mut self, operators: &[String]) -> Self {
        self.operators = operators.iter().cloned().collect();
        self
    }

    /// Tokens live at most `days` (at least one day).
    pub fn with_max_lifetime_days(mut self, days: u32) -> Self {
        self.max_lifetime_secs = i64::from(days.max(1)) * 86_400;
        self
    }

    pub fn max_lifetime_days(&self) -> i64 {
        self.max_lifetime_secs / 86_400
    }

    /// Creates a token for `user_id`. Returns what the page may keep showing, and the token itself,
    /// which is shown to the user once and then exists only on their side. Every token expires: no
    /// `expires_at` means the longest lifetime allowed, and a later one is refused (422) rather than
    /// quietly shortened, so the caller learns the real date.
    pub async fn create(&self, user_id: i64, name: &str, scopes: &[Scope], expires_at: Option<i64>) -> Result<(TokenInfo, SecretString), AuthError> {
        self.create_at(user_id, name, scopes, expires_at, now_unix()).await
    }

    /// [`Self::create`] with the clock given (tests).
    pub async fn create_at(
        &self,
        user_id: i64,
        name: &str,
        scopes: &[Scope],
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<(TokenInfo, SecretString), AuthError> {
        let name = validate_name(name)?;
        let scopes = normalise(scopes);
        if scopes.is_empty() {
            return Err(AuthError::invalid_field("scopes", "Choose at least one scope."));
        }
        if let Some(scope) = scopes.iter().find(|s| s.is_operators()) {
            let username: Option<(String,)> =
                sqlx::query_as("SELECT username FROM users WHERE id = $1").bind(user_id).fetch_optional(&self.pool).await?;
            if !username.is_some_and(|(u,)| self.operators.contains(&u)) {
                return Err(AuthError::invalid_field("scopes", format!("Only operators (APP_OPERATORS) may have the {scope} scope.")));
            }
        }
        if expires_at.is_some_and(|t| t <= now) {
            return Err(AuthError::invalid_field("expires_at", "Choose an expiry time in the future."));
        }
        let latest = now + self.max_lifetime_secs;
        if expires_at.is_some_and(|t| t > latest) {
            return Err(AuthError::invalid_field(
                "expires_at",
                format!("Tokens expire within {} days at most: choose an earlier expiry.", self.max_lifetime_days()),
            ));
        }
        let expires_at = Some(expires_at.unwrap_or(latest));
        let token = new_token();
        let prefix: String = token.chars().take(DISPLAY_PREFIX_CHARS).collect();
        let stored_scopes = Scope::join(&scopes);
        // The limit and the insert in one statement, so a burst of requests cannot slip past it on SQLite
        // (one writer); on PostgreSQL concurrent creations could overshoot by a few, which is harmless.
        let row: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO api_tokens (user_id, name, prefix, token_hash, scopes, created_at, expires_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7 \
             WHERE (SELECT COUNT(*) FROM api_tokens WHERE user_id = $8 AND revoked_at IS NULL \
                    AND (expires_at IS NULL OR expires_at > $9)) < $10 \
             RETURNING id",
        )
        .bind(user_id)
        .bind(name)
        .bind(&prefix)
        .bind(token_hash(&token))
        .bind(&stored_scopes)
        .bind(now)
        .bind(expires_at)
        .bind(user_id)
        .bind(now)
        .bind(MAX_ACTIVE_TOKENS_PER_USER)
        .fetch_optional(&self.pool)
        .await?;
        let Some((id,)) = row else {
            return Err(AuthError::InvalidInput(format!(
                "You can have at most {MAX_ACTIVE_TOKENS_PER_USER} active API tokens. Revoke one you no longer use first."
            )));
        };
        tracing::info!(user_id, token_id = id, scopes = %stored_scopes, "API token created");
        let info = TokenInfo { id, name: name.to_string(), prefix, scopes, created_at: now, last_used_at: None, expires_at };
        Ok((info, SecretString::from(token)))
    }

    /// Who `token` speaks for. Malformed, unknown, revoked and expired tokens all get
    /// [`AuthError::InvalidToken`] (401), so the answer does not say which.
    pub async fn authenticate(&self, token: &str) -> Result<TokenPrincipal, AuthError> {
        self.authenticate_at(token, now_unix()).await
    }

    /// [`Self::authenticate`] with the clock given (tests).
    pub async fn authenticate_at(&self, token: &str, now: i64) -> Result<TokenPrincipal, AuthError> {
        if !well_formed(token) {
            return Err(AuthError::InvalidToken);
        }
        type Row = (i64, i64, String, Option<i64>, Option<i64>, Option<i64>);
        let row: Option<Row> =
            sqlx::query_as("SELECT id, user_id, scopes, last_used_at, expires_at, revoked_at FROM api_tokens WHERE token_hash = $1")
                .bind(token_hash(token))
                .fetch_optional(&self.pool)
                .await?;
        let Some((token_id, user_id, scopes, last_used_at, expires_at, revoked_at)) = row else {
            return Err(AuthError::InvalidToken);
        };
        if revoked_at.is_some() || expires_at.is_some_and(|t| t <= now) {
            return Err(AuthError::InvalidToken);
        }
        if last_used_at.is_none_or(|t| now - t >= LAST_USED_RESOLUTION_SECS) {
            // Conditional, so concurrent requests with the same token write once between them. A failure
            // only costs the page some accuracy; it must not fail the request.
            let written = sqlx::query(
                "UPDATE api_tokens SET last_used_at = $1 \
                 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at <= $3)",
            )
            .bind(now)
            .bind(token_id)
            .bind(now - LAST_USED_RESOLUTION_SECS)
            .execute(&self.pool)
            .await;
            if let Err(e) = written {
                tracing::warn!(token_id, error = %e, "could not record API token use");
            }
        }
        Ok(TokenPrincipal { user_id, token_id, scopes: stored_scopes(&scopes, token_id) })
    }

    /// The user's tokens that are not revoked, newest first; expired ones are included (their
    /// `expires_at` says so) so the page can show why a client stopped working.
    pub async fn list(&self, user_id: i64) -> Result<Vec<TokenInfo>, AuthError> {
        let rows = sqlx::query_as::<_, InfoRow>(
            "SELECT id, name, prefix, scopes, created_at, last_used_at, expires_at FROM api_tokens \
             WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC, id DESC",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(InfoRow::into_info).collect())
    }

    /// Revokes one of the user's tokens at once. Someone else's token, an unknown id and an already
    /// revoked token are all [`AuthError::NotFound`].
    pub async fn revoke(&self, user_id: i64, token_id: i64) -> Result<(), AuthError> {
        let r = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL")
            .bind(now_unix())
            .bind(token_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(AuthError::NotFound);
        }
        tracing::info!(user_id, token_id, "API token revoked");
        Ok(())
    }

    /// The scopes of token `token_id` while it is neither revoked nor expired; `None` otherwise. For work
    /// a token started that outlives its request (workflow runs check it before every step).
    pub async fn live_scopes(&self, token_id: i64) -> Result<Option<Vec<Scope>>, AuthError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT scopes FROM api_tokens WHERE id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)")
                .bind(token_id)
                .bind(now_unix())
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(scopes,)| stored_scopes(&scopes, token_id)))
    }
}

/// Revokes every live token of the user on a given connection (a password change does it in the same
/// transaction as storing the new hash); returns how many.
pub(crate) async fn revoke_all_on(conn: &mut sqlx::AnyConnection, user_id: i64, now: i64) -> Result<u64, AuthError> {
    let r = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_round_trip_through_strings_and_serde() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>().unwrap(), scope);
            let json = serde_json::to_string(&scope).unwrap();
            assert_eq!(json, format!("\"{}\"", scope.as_str()));
            assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), scope);
        }
        assert_eq!(Scope::parse_list("workflows:write, webhooks:read webhooks:read").unwrap(), vec![Scope::WebhooksRead, Scope::WorkflowsWrite]);
    }

    #[test]
    fn unknown_scope_is_invalid_input_naming_it() {
        match "admin:all".parse::<Scope>() {
            Err(f) => assert!(f.field == "scopes" && f.message.contains("\"admin:all\""), "{f:?}"),
            other => panic!("{other:?}"),
        }
        assert!(Scope::parse_list("webhooks:read, Webhooks:Write").is_err(), "names are case-sensitive");
    }

    #[test]
    fn tokens_are_random_url_safe_and_recognisable() {
        let a = new_token();
        assert_eq!(a.len(), TOKEN_LEN);
        assert_eq!(TOKEN_LEN, 35);
        assert!(well_formed(&a), "{a}");
        assert_ne!(a, new_token());
        assert!(!well_formed("ie_short"));
        assert!(!well_formed(&a.replacen("ie_", "xx_", 1)));
        assert!(!well_formed(&format!("{}!", &a[..TOKEN_LEN - 1])));
        assert_eq!(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
