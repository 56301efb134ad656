//! Signing in and creating accounts: the rules in one place, used by the web handlers and the CLI.

use secrecy::{ExposeSecret, SecretString};
use std::net::IpAddr;
use std::sync::Arc;

use crate::password::Verification;
use crate::users::{validate_password, validate_username};
use crate::{AuthError, LoginThrottle, PasswordHasher, User, UserStore};

pub struct LoginAttempt {
    pub username: String,
    pub password: SecretString,
    pub client_ip: Option<IpAddr>,
}

#[derive(Clone)]
pub struct Authenticator {
    pub users: UserStore,
    pub hasher: PasswordHasher,
    pub throttle: Arc<LoginThrottle>,
}

impl Authenticator {
    /// Checks a username and password. Every failure that could reveal whether the account exists is
    /// [`AuthError::InvalidCredentials`], and an unknown user costs one Argon2 verification like a known one.
    pub async fn login(&self, attempt: LoginAttempt) -> Result<User, AuthError> {
        validate_username(&attempt.username)?;
        validate_password(attempt.password.expose_secret())?;
        self.throttle.check(&attempt.username, attempt.client_ip)?;

        let user = self.users.find_by_username(&attempt.username).await?;
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let verification = self.hasher.verify(stored, attempt.password.clone()).await?;
        match (user, verification) {
            (Some(user), Verification::Valid { needs_rehash }) => {
                if needs_rehash {
                    self.upgrade_hash(&user, attempt.password).await;
                }
                Ok(user)
            }
            _ => {
                self.throttle.record_failure(&attempt.username, attempt.client_ip);
                Err(AuthError::InvalidCredentials)
            }
        }
    }

    /// Re-hashes with the current parameters after a successful login. A failure here must not fail the
    /// login, so it is logged and left for the next one.
    async fn upgrade_hash(&self, user: &User, password: SecretString) {
        match self.hasher.hash(password).await {
            Ok(phc) => match self.users.set_password_hash(user.id, &phc).await {
                Ok(()) => tracing::info!(user_id = user.id, "password hash upgraded to current parameters"),
                Err(e) => tracing::warn!(user_id = user.id, error = %e, "could not store upgraded hash"),
            },
            Err(e) => tracing::warn!(user_id = user.id, error = %e, "could not upgrade hash"),
        }
    }

    pub async fn create_user(&self, username: &str, password: SecretString) -> Result<User, AuthError> {
        validate_username(username)?;
        validate_password(password.expose_secret())?;
        let phc = self.hasher.hash(password).await?;
        self.users.insert(username, &phc).await
    }
}
