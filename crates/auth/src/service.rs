//! Signing in and creating accounts: the rules in one place, used by the web handlers and the CLI.

use secrecy::{ExposeSecret, SecretString};
use std::net::IpAddr;
use std::sync::Arc;

use crate::password::Verification;
use crate::policy::check_new_password;
use crate::users::{validate_password, validate_username};
use crate::{now_unix, AuthError, LoginThrottle, PasswordHasher, User, UserStore};

/// The shape checks a sign-in makes before anything else (no database, no hashing): a username and a
/// password that could exist. Failing them is [`AuthError::InvalidInput`], never a panic.
pub fn check_login_input(username: &str, password: &str) -> Result<(), AuthError> {
    validate_username(username)?;
    validate_password(password)
}

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
    /// [`AuthError::InvalidCredentials`], and an unknown user costs what a known one does: one user query
    /// and one Argon2 verification against a dummy hash made with the current parameters (see
    /// tests/login_timing.rs). The one exception is a known user whose stored hash still has older,
    /// cheaper parameters: wrong guesses against it are faster until their next successful sign-in
    /// upgrades it.
    pub async fn login(&self, attempt: LoginAttempt) -> Result<User, AuthError> {
        check_login_input(&attempt.username, attempt.password.expose_secret())?;
        self.throttle
            .guard(&attempt.username, attempt.client_ip, async {
                let user = self.users.find_by_username(&attempt.username).await?;
                let stored = user.as_ref().map(|u| u.password_hash.clone());
                let verification = self.hasher.verify(stored, attempt.password.clone()).await?;
                match (user, verification) {
                    (Some(user), Verification::Valid { needs_rehash }) => {
                        if needs_rehash {
                            self.upgrade_hash(&user, attempt.password.clone()).await;
                        }
                        Ok(user)
                    }
                    _ => Err(AuthError::InvalidCredentials),
                }
            })
            .await
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

    /// Creates an account for an operator (CLI, demo user): only the shape checks, not the new-password
    /// policy, because the operator chooses deliberately. People signing themselves up go through
    /// [`Self::sign_up`].
    pub async fn create_user(&self, username: &str, password: SecretString) -> Result<User, AuthError> {
        validate_username(username)?;
        validate_password(password.expose_secret())?;
        let phc = self.hasher.hash(password).await?;
        self.users.insert(username, &phc).await
    }

    /// Creates an account for someone signing themselves up: the username's shape, then the new-password
    /// policy ([`crate::policy`]), then one Argon2id hash, then the insert. Whether sign-up is offered at
    /// all is the server's configuration.
    ///
    /// Enumeration trade-off: a taken name answers [`AuthError::UsernameTaken`], which tells anyone that
    /// the account exists. With self-chosen usernames that cannot be avoided (the person must learn to
    /// pick another), so the server should rate-limit sign-ups per client address. What this method does
    /// keep quiet: the policy runs before the database is asked, so a weak password for a taken name only
    /// says "weak", and free and taken names both cost one hash before the insert decides.
    pub async fn sign_up(&self, username: &str, password: SecretString) -> Result<User, AuthError> {
        validate_username(username)?;
        check_new_password(password.expose_secret(), username)?;
        let phc = self.hasher.hash(password).await?;
        self.users.insert(username, &phc).await
    }

    /// Changes a signed-in user's password. `current` must verify (a wrong one is
    /// [`AuthError::InvalidCredentials`] and counts as a failed sign-in for the account's throttle, so a
    /// stolen session cannot be used to guess the password); `new` must pass the policy and differ from
    /// `current`. Every API token of the user is revoked in the same transaction: whoever made the
    /// change necessary may have minted one. Use [`Self::change_password_ending_other_sessions`] from the password-change page.
    pub async fn change_password(&self, user_id: i64, current: SecretString, new: SecretString) -> Result<(), AuthError> {
        let (user, phc) = self.verify_and_hash_new_password(user_id, current, new).await?;
        let now = now_unix();
        let mut tx = self.users.pool().begin().await?;
        crate::users::set_new_password_on(&mut tx, user.id, &phc, now).await?;
        let tokens_revoked = crate::tokens::revoke_all_on(&mut tx, user.id, now).await?;
        tx.commit().await?;
        tracing::info!(user_id, tokens_revoked, "password changed");
        Ok(())
    }

    /// [`Self::change_password`] (tokens revoked too), and in the same transaction removes every registry
    /// row of the user's sessions except `keep_handle` (the session making the change). Returns the store
    /// ids removed: the caller deletes their session data, and should cycle the kept session's id as
    /// after a login.
    pub async fn change_password_ending_other_sessions(
        &self,
        user_id: i64,
        keep_handle: &str,
        current: SecretString,
        new: SecretString,
    ) -> Result<Vec<String>, AuthError> {
        let (user, phc) = self.verify_and_hash_new_password(user_id, current, new).await?;
        let now = now_unix();
        let mut tx = self.users.pool().begin().await?;
        crate::users::set_new_password_on(&mut tx, user.id, &phc, now).await?;
        let removed = crate::sessions::revoke_others_on(&mut tx, user.id, keep_handle).await?;
        let tokens_revoked = crate::tokens::revoke_all_on(&mut tx, user.id, now).await?;
        tx.commit().await?;
        tracing::info!(user_id, sessions_ended = removed.len(), tokens_revoked, "password changed");
        Ok(removed)
    }

    /// Asks a signed-in user for their password again before something a stolen session must not do
    /// alone (minting an API token, rotating a webhook secret). A wrong password is
    /// [`AuthError::InvalidCredentials`] and counts as a failed sign-in for the account's throttle, as
    /// on the password page, so the session cannot be used to guess it.
    pub async fn confirm_password(&self, user_id: i64, password: SecretString) -> Result<(), AuthError> {
        if password.expose_secret().is_empty() {
            return Err(AuthError::InvalidInput("Enter your current password to confirm.".into()));
        }
        validate_password(password.expose_secret())?;
        let user = self.users.find_by_id(user_id).await?.ok_or(AuthError::NotFound)?;
        self.throttle
            .guard(&user.username, None, async {
                match self.hasher.verify(Some(user.password_hash.clone()), password).await? {
                    Verification::Valid { .. } => Ok(()),
                    Verification::Invalid => Err(AuthError::InvalidCredentials),
                }
            })
            .await
    }

    /// Production start-up: an account `username` whose password is still the public `password` (the
    /// dev-mode demo account, in a database that was once run in dev mode) is disabled: its password
    /// becomes a random one nobody knows, and its sessions and API tokens end. Returns whether it was.
    pub async fn disable_if_password_is(&self, username: &str, password: SecretString) -> Result<bool, AuthError> {
        let Some(user) = self.users.find_by_username(username).await? else { return Ok(false) };
        match self.hasher.verify(Some(user.password_hash.clone()), password).await? {
            Verification::Valid { .. } => {}
            Verification::Invalid => return Ok(false),
        }
        let mut random = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut random);
        let unknown = base64::Engine::encode(&base64::engine::general_purpose::STANDARD_NO_PAD, random);
        let phc = self.hasher.hash(SecretString::from(unknown)).await?;
        let now = now_unix();
        let mut tx = self.users.pool().begin().await?;
        crate::users::set_new_password_on(&mut tx, user.id, &phc, now).await?;
        crate::sessions::revoke_others_on(&mut tx, user.id, "").await?;
        crate::tokens::revoke_all_on(&mut tx, user.id, now).await?;
        tx.commit().await?;
        tracing::warn!(username, "account with the public demo password disabled (production mode)");
        Ok(true)
    }

    /// The checks of a password change, cheapest first: throttle, policy, new ≠ current, then Argon2 on
    /// `current`, then the new hash.
    async fn verify_and_hash_new_password(&self, user_id: i64, current: SecretString, new: SecretString) -> Result<(User, String), AuthError> {
        let user = self.users.find_by_id(user_id).await?.ok_or(AuthError::NotFound)?;
        self.throttle
            .guard(&user.username, None, async {
                validate_password(current.expose_secret())?;
                check_new_password(new.expose_secret(), &user.username)?;
                if new.expose_secret() == current.expose_secret() {
                    return Err(AuthError::InvalidInput("Choose a password different from your current one.".into()));
                }
                match self.hasher.verify(Some(user.password_hash.clone()), current).await? {
                    Verification::Valid { .. } => Ok(()),
                    Verification::Invalid => Err(AuthError::InvalidCredentials),
                }
            })
            .await?;
        let phc = self.hasher.hash(new).await?;
        Ok((user, phc))
    }
}
