//! The user table: create, look up, and store an upgraded hash.

use sqlx::AnyPool;

use crate::{now_unix, AuthError};

pub const MAX_USERNAME_CHARS: usize = 64;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub created_at: i64,
    /// When the user last chose a new password; `None` if never since the account was made.
    pub password_changed_at: Option<i64>,
}

/// Checks a username's shape; the message is safe to show and says nothing about existing accounts.
pub fn validate_username(username: &str) -> Result<(), AuthError> {
    if username.is_empty() {
        return Err(AuthError::InvalidInput("Enter your username.".into()));
    }
    if username.chars().count() > MAX_USERNAME_CHARS {
        return Err(AuthError::InvalidInput(format!("Usernames are at most {MAX_USERNAME_CHARS} characters.")));
    }
    if username.chars().any(|c| c.is_control()) {
        return Err(AuthError::InvalidInput("Usernames cannot contain control characters.".into()));
    }
    if username.trim() != username {
        return Err(AuthError::InvalidInput("Usernames cannot start or end with spaces.".into()));
    }
    Ok(())
}

pub fn validate_password(password: &str) -> Result<(), AuthError> {
    if password.is_empty() {
        return Err(AuthError::InvalidInput("Enter your password.".into()));
    }
    if password.len() > crate::password::MAX_PASSWORD_BYTES {
        return Err(AuthError::InvalidInput(format!("Passwords are at most {} bytes.", crate::password::MAX_PASSWORD_BYTES)));
    }
    if password.contains('\0') {
        return Err(AuthError::InvalidInput("Passwords cannot contain NUL characters.".into()));
    }
    Ok(())
}

#[derive(Clone, Debug)]
pub struct UserStore {
    pool: AnyPool,
}

impl UserStore {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    pub async fn find_by_username(&self, username: &str) -> Result<Option<User>, AuthError> {
        Ok(sqlx::query_as::<_, User>(
            "SELECT id, username, password_hash, created_at, password_changed_at FROM users WHERE lower(username) = lower($1)",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn find_by_id(&self, id: i64) -> Result<Option<User>, AuthError> {
        Ok(sqlx::query_as::<_, User>("SELECT id, username, password_hash, created_at, password_changed_at FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Inserts a user with an already computed hash.
    pub async fn insert(&self, username: &str, password_hash: &str) -> Result<User, AuthError> {
        validate_username(username)?;
        let result = sqlx::query_as::<_, User>(
            "INSERT INTO users (username, password_hash, created_at) VALUES ($1, $2, $3) \
             RETURNING id, username, password_hash, created_at, password_changed_at",
        )
        .bind(username)
        .bind(password_hash)
        .bind(now_unix())
        .fetch_one(&self.pool)
        .await;
        match result {
            Ok(user) => Ok(user),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(AuthError::UsernameTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores a hash of a password the user has just chosen, and when.
    pub async fn set_new_password(&self, user_id: i64, password_hash: &str, now: i64) -> Result<(), AuthError> {
        let mut conn = self.pool.acquire().await?;
        set_new_password_on(&mut conn, user_id, password_hash, now).await
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Re-stores the same password's hash with current parameters (not a password change).
    pub async fn set_password_hash(&self, user_id: i64, password_hash: &str) -> Result<(), AuthError> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2").bind(password_hash).bind(user_id).execute(&self.pool).await?;
        Ok(())
    }
}

/// [`UserStore::set_new_password`] on a given connection (a transaction, for the password change that
/// also ends the other sessions).
pub(crate) async fn set_new_password_on(conn: &mut sqlx::AnyConnection, user_id: i64, password_hash: &str, now: i64) -> Result<(), AuthError> {
    let r = sqlx::query("UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3")
        .bind(password_hash)
        .bind(now)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    if r.rows_affected() == 0 {
        return Err(AuthError::NotFound);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_rules() {
        assert!(validate_username("alice").is_ok());
        assert!(validate_username("ünïcödé").is_ok());
        assert!(validate_username("").is_err());
        assert!(validate_username(&"a".repeat(65)).is_err());
        assert!(validate_username(&"é".repeat(64)).is_ok());
        assert!(validate_username("a\0b").is_err());
        assert!(validate_username(" alice").is_err());
    }

    #[test]
    fn password_rules() {
        assert!(validate_password("x").is_ok());
        assert!(validate_password("").is_err());
        assert!(validate_password("a\0").is_err());
        assert!(validate_password(&"p".repeat(1025)).is_err());
    }
}
