//! Argon2id password hashing at OWASP parameters, run off the async runtime, at most a fixed number
//! at once (a login flood must not take every core from the pages).

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::AuthError;

/// OWASP Password Storage Cheat Sheet: Argon2id, m = 19456 KiB, t = 2, p = 1.
pub const OWASP_MEMORY_KIB: u32 = 19_456;
pub const OWASP_ITERATIONS: u32 = 2;
pub const OWASP_PARALLELISM: u32 = 1;

/// Longest password accepted, in bytes. Argon2 takes any length; the cap only stops huge bodies from
/// being hashed.
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum Verification {
    Valid { needs_rehash: bool },
    Invalid,
}

/// How long a hash or verification waits for a free slot before the request is refused as busy.
pub const SLOT_WAIT: Duration = Duration::from_secs(2);

/// The default cap on concurrent hashes: one core fewer than the machine has (the pages keep one),
/// and at least one.
pub fn default_hash_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1)).max(1)
}

/// Hashes and verifies passwords with one fixed set of Argon2id parameters. Clones share one set of
/// slots: each hash or verification holds one while it runs.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    /// A real hash of a random password, verified when the user does not exist so that an unknown
    /// username costs as much time as a wrong password.
    dummy_hash: Arc<str>,
    slots: Arc<Semaphore>,
}

impl PasswordHasher {
    pub fn owasp() -> Self {
        Self::with_params(OWASP_MEMORY_KIB, OWASP_ITERATIONS, OWASP_PARALLELISM).expect("OWASP parameters are valid")
    }

    pub fn with_params(m_kib: u32, t: u32, p: u32) -> Result<Self, AuthError> {
        let params = Params::new(m_kib, t, p, None).map_err(|e| AuthError::InvalidInput(format!("bad Argon2 parameters: {e}")))?;
        let slots = Arc::new(Semaphore::new(default_hash_concurrency()));
        let mut hasher = Self { params, dummy_hash: Arc::from(""), slots };
        let random: String = {
            use rand::Rng;
            rand::thread_rng().sample_iter(&rand::distributions::Alphanumeric).take(32).map(char::from).collect()
        };
        hasher.dummy_hash = Arc::from(hasher.hash_blocking(&random)?);
        Ok(hasher)
    }

    /// At most `n` (at least 1) hashes and verifications at once, for this hasher and its clones.
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.slots = Arc::new(Semaphore::new(n.max(1)));
        self
    }

    /// Waits up to [`SLOT_WAIT`] for a hashing slot; [`AuthError::Busy`] (retry in a second) when none
    /// frees up. [`Self::hash`] and [`Self::verify`] take one each; public so a caller (a test) can hold
    /// one.
    pub async fn slot(&self) -> Result<OwnedSemaphorePermit, AuthError> {
        match tokio::time::timeout(SLOT_WAIT, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(AuthError::Internal("password hashing slots closed".into())),
            Err(_elapsed) => {
                tracing::warn!("password hashing busy: no slot within {} s", SLOT_WAIT.as_secs());
                Err(AuthError::Busy { retry_after: Duration::from_secs(1) })
            }
        }
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes to a PHC string (`$argon2id$v=19$m=...`). Blocking: call through [`Self::hash`].
    pub fn hash_blocking(&self, password: &str) -> Result<String, AuthError> {
        use argon2::PasswordHasher as _;
        let salt = SaltString::generate(&mut OsRng);
        self.argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AuthError::Internal(format!("hashing failed: {e}")))
    }

    /// Verifies against `stored`, or against the dummy hash when there is no user. Blocking.
    pub fn verify_blocking(&self, stored: Option<&str>, password: &str) -> Verification {
        let (phc, real) = match stored {
            Some(s) => (s, true),
            None => (&*self.dummy_hash, false),
        };
        let Ok(parsed) = PasswordHash::new(phc) else {
            tracing::error!("stored password hash is not a valid PHC string");
            return Verification::Invalid;
        };
        // Verify with the parameters the hash was made with; compare them to ours afterwards.
        let ok = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        if !(ok && real) {
            return Verification::Invalid;
        }
        Verification::Valid { needs_rehash: !self.is_current(&parsed) }
    }

    fn is_current(&self, parsed: &PasswordHash<'_>) -> bool {
        if parsed.algorithm != Algorithm::Argon2id.ident() || parsed.version != Some(Version::V0x13.into()) {
            return false;
        }
        match Params::try_from(parsed) {
            Ok(p) => p.m_cost() >= self.params.m_cost() && p.t_cost() >= self.params.t_cost() && p.p_cost() >= self.params.p_cost(),
            Err(_) => false,
        }
    }

    // The slot moves into the blocking task: it stays taken until Argon2 is done, even when the
    // request that asked is cancelled (the client went away) half-way.
    pub async fn hash(&self, password: SecretString) -> Result<String, AuthError> {
        let slot = self.slot().await?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            this.hash_blocking(password.expose_secret())
        })
        .await
        .map_err(|e| AuthError::Internal(format!("hashing task failed: {e}")))?
    }

    pub async fn verify(&self, stored: Option<String>, password: SecretString) -> Result<Verification, AuthError> {
        let slot = self.slot().await?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            this.verify_blocking(stored.as_deref(), password.expose_secret())
        })
        .await
        .map_err(|e| AuthError::Internal(format!("verification task failed: {e}")))
    }
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").field("params", &self.params).field("free_slots", &self.slots.available_permits()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::PublicError;

    #[test]
    fn hashes_are_argon2id_with_owasp_parameters() {
        let h = PasswordHasher::owasp();
        let phc = h.hash_blocking("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert_eq!(h.verify_blocking(Some(&phc), "correct horse"), Verification::Valid { needs_rehash: false });
        assert_eq!(h.verify_blocking(Some(&phc), "wrong horse"), Verification::Invalid);
    }

    #[test]
    fn same_password_gets_a_new_salt_each_time() {
        let h = PasswordHasher::owasp();
        assert_ne!(h.hash_blocking("pw").unwrap(), h.hash_blocking("pw").unwrap());
    }

    #[test]
    fn unknown_user_never_verifies_even_with_the_dummy_password() {
        let h = PasswordHasher::owasp();
        assert_eq!(h.verify_blocking(None, ""), Verification::Invalid);
        assert_eq!(h.verify_blocking(None, "anything"), Verification::Invalid);
    }

    #[test]
    fn dummy_hash_is_made_with_the_current_parameters() {
        // An unknown user must cost exactly what a known one does, so the dummy is never a cheaper hash.
        let h = PasswordHasher::with_params(12 * 1024, 3, 1).unwrap();
        assert!(h.dummy_hash.starts_with("$argon2id$v=19$m=12288,t=3,p=1$"), "{}", h.dummy_hash);
        assert!(h.is_current(&PasswordHash::new(&h.dummy_hash).unwrap()));
        let owasp = PasswordHasher::owasp();
        assert!(owasp.dummy_hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", owasp.dummy_hash);
    }

    #[test]
    fn weaker_stored_hash_is_flagged_for_upgrade() {
        let weak = PasswordHasher::with_params(8 * 1024, 1, 1).unwrap();
        let phc = weak.hash_blocking("pw").unwrap();
        let current = PasswordHasher::owasp();
        assert_eq!(current.verify_blocking(Some(&phc), "pw"), Verification::Valid { needs_rehash: true });
    }

    #[tokio::test]
    async fn a_busy_hasher_refuses_after_the_wait_instead_of_queueing_forever() {
        let h = PasswordHasher::with_params(1024, 1, 1).unwrap().with_concurrency(1);
        let held = h.clone().slot().await.unwrap();
        let started = std::time::Instant::now();
        let err = h.verify(None, SecretString::from("pw")).await.unwrap_err();
        assert!(matches!(err, AuthError::Busy { .. }), "{err:?}");
        assert_eq!((err.status(), err.retry_after_secs()), (503, Some(1)));
        assert!(started.elapsed() >= SLOT_WAIT, "waited {:?}", started.elapsed());
        drop(held);
        assert_eq!(h.verify(None, SecretString::from("pw")).await.unwrap(), Verification::Invalid);
        assert!(h.hash(SecretString::from("pw")).await.is_ok(), "the slot came back after each use");
        assert!(default_hash_concurrency() >= 1);
    }

    #[test]
    fn garbage_hash_is_invalid_not_a_panic() {
        let h = PasswordHasher::owasp();
        assert_eq!(h.verify_blocking(Some("not a phc string"), "pw"), Verification::Invalid);
    }
}
