//! Session lifetime rules and the registry of each user's signed-in sessions.
//!
//! The session *data* lives in the tower-sessions store (owned by the server); this registry indexes the
//! signed-in ones by user so they can be listed and revoked. Each row has a random public `handle`; the
//! store id (the cookie value) never leaves the server.

use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use std::time::Duration;

use crate::AuthError;

/// Idle timeout and absolute lifetime, both enforced on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    pub idle_timeout: Duration,
    pub absolute_lifetime: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self { idle_timeout: Duration::from_secs(30 * 60), absolute_lifetime: Duration::from_secs(8 * 3600) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Active,
    IdleExpired,
    AbsoluteExpired,
}

impl SessionPolicy {
    pub fn liveness(&self, created_at: i64, last_seen_at: i64, now: i64) -> Liveness {
        if now >= created_at + self.absolute_lifetime.as_secs() as i64 {
            Liveness::AbsoluteExpired
        } else if now >= last_seen_at + self.idle_timeout.as_secs() as i64 {
            Liveness::IdleExpired
        } else {
            Liveness::Active
        }
    }

    /// When the session ends if nothing else happens: the earlier of the two limits.
    pub fn expires_at(&self, created_at: i64, last_seen_at: i64) -> i64 {
        (last_seen_at + self.idle_timeout.as_secs() as i64).min(self.absolute_expiry(created_at))
    }

    pub fn absolute_expiry(&self, created_at: i64) -> i64 {
        created_at + self.absolute_lifetime.as_secs() as i64
    }

    /// How stale `last_seen_at` may get before a request writes it again. Writing on every request would
    /// turn every page view into a database write; a quarter of the idle timeout (at most a minute) keeps
    /// the idle limit accurate to within that.
    pub fn touch_interval(&self) -> i64 {
        (self.idle_timeout.as_secs() as i64 / 4).clamp(0, 60)
    }
}

/// What a signed-in session records about itself, kept in the session data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignedIn {
    pub user_id: i64,
    pub username: String,
    pub handle: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

/// A row of the registry as the UI may see it (no store id): the type the success page shows.
pub use contract::sessions::SessionInfo;

pub struct NewSession<'a> {
    pub handle: &'a str,
    pub store_id: &'a str,
    pub user_id: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub user_agent: &'a str,
    pub client_ip: &'a str,
}

pub fn new_handle() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Clone, Debug)]
pub struct SessionRegistry {
    pool: AnyPool,
}

impl SessionRegistry {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    /// Records a new signed-in session under `s.handle` (see [`new_handle`]).
    pub async fn register(&self, s: NewSession<'_>) -> Result<(), AuthError> {
        // Bound what a client can make us store about itself.
        let ua: String = s.user_agent.chars().take(256).collect();
        sqlx::query(
            "INSERT INTO user_sessions (handle, store_id, user_id, created_at, last_seen_at, expires_at, user_agent, client_ip) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(s.handle)
        .bind(s.store_id)
        .bind(s.user_id)
        .bind(s.created_at)
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(ua)
        .bind(s.client_ip)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Is this handle still registered to this user? A revoked session fails this check.
    pub async fn is_live(&self, handle: &str, user_id: i64) -> Result<bool, AuthError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT handle FROM user_sessions WHERE handle = $1 AND user_id = $2")
            .bind(handle)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Is this session still standing at `now`: registered to this user (not logged out, revoked or ended
    /// by a password change, on any instance) and not past its idle or absolute limit as last recorded?
    /// The one "session ended" signal for whatever outlives a request (a server-sent event stream, a
    /// per-request cache): re-ask it every few seconds.
    pub async fn is_active(&self, handle: &str, user_id: i64, now: i64) -> Result<bool, AuthError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT handle FROM user_sessions WHERE handle = $1 AND user_id = $2 AND expires_at > $3")
            .bind(handle)
            .bind(user_id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    pub async fn touch(&self, handle: &str, last_seen_at: i64, expires_at: i64) -> Result<(), AuthError> {
        sqlx::query("UPDATE user_sessions SET last_seen_at = $1, expires_at = $2 WHERE handle = $3")
            .bind(last_seen_at)
            .bind(expires_at)
            .bind(handle)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The user's sessions that have not expired, newest first.
    pub async fn list_for_user(&self, user_id: i64, now: i64) -> Result<Vec<SessionInfo>, AuthError> {
        Ok(sqlx::query_as::<_, SessionInfo>(
            "SELECT handle, created_at, last_seen_at, expires_at, user_agent, client_ip FROM user_sessions \
             WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at DESC, handle",
        )
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Removes one of the user's sessions; returns its store id so the caller can delete the data too.
    /// A handle that belongs to someone else is treated as not found.
    pub async fn revoke(&self, user_id: i64, handle: &str) -> Result<String, AuthError> {
        let row: Option<(String,)> = sqlx::query_as("DELETE FROM user_sessions WHERE handle = $1 AND user_id = $2 RETURNING store_id")
            .bind(handle)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|(id,)| id).ok_or(AuthError::NotFound)
    }

    /// Removes every session of the user except `keep`; returns the store ids removed.
    pub async fn revoke_others(&self, user_id: i64, keep: &str) -> Result<Vec<String>, AuthError> {
        let mut conn = self.pool.acquire().await?;
        revoke_others_on(&mut conn, user_id, keep).await
    }

    /// Forgets a session (logout).
    pub async fn remove(&self, handle: &str) -> Result<(), AuthError> {
        sqlx::query("DELETE FROM user_sessions WHERE handle = $1").bind(handle).execute(&self.pool).await?;
        Ok(())
    }
}

/// [`SessionRegistry::revoke_others`] on a given connection, so a password change can do it in the same
/// transaction as storing the new hash.
pub(crate) async fn revoke_others_on(conn: &mut sqlx::AnyConnection, user_id: i64, keep: &str) -> Result<Vec<String>, AuthError> {
    let rows: Vec<(String,)> = sqlx::query_as("DELETE FROM user_sessions WHERE user_id = $1 AND handle <> $2 RETURNING store_id")
        .bind(user_id)
        .bind(keep)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_and_absolute_limits_both_apply() {
        let p = SessionPolicy { idle_timeout: Duration::from_secs(30), absolute_lifetime: Duration::from_secs(100) };
        assert_eq!(p.liveness(0, 0, 29), Liveness::Active);
        assert_eq!(p.liveness(0, 0, 30), Liveness::IdleExpired);
        assert_eq!(p.liveness(0, 90, 99), Liveness::Active);
        assert_eq!(p.liveness(0, 99, 100), Liveness::AbsoluteExpired);
        assert_eq!(p.expires_at(0, 90), 100);
        assert_eq!(p.expires_at(0, 10), 40);
    }

    #[test]
    fn touch_interval_is_bounded() {
        assert_eq!(SessionPolicy::default().touch_interval(), 60);
        let short = SessionPolicy { idle_timeout: Duration::from_secs(8), absolute_lifetime: Duration::from_secs(60) };
        assert_eq!(short.touch_interval(), 2);
    }

    #[test]
    fn handles_are_random_and_url_safe() {
        let a = new_handle();
        assert_eq!(a.len(), 22);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(a, new_handle());
    }
}
