//! Password hashing with Argon2id: one-way, deliberately slow and memory-hard, salted, and
//! stored as a self-describing PHC string. Not for hashing files or deriving keys from
//! high-entropy secrets (use SHA-256 / HMAC), and never decryptable.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};

use crate::CryptoError;

/// Upper bounds so one request cannot make the server (or a browser tab) allocate gigabytes or
/// spin for minutes. They apply to verification too, because the PHC string carries its own
/// parameters and may come from the user.
pub const MAX_MEMORY_KIB: u32 = 256 * 1024;
pub const MAX_ITERATIONS: u32 = 10;
pub const MAX_PARALLELISM: u32 = 4;
pub const MIN_SALT_LEN: usize = 8;
/// A PHC salt field holds at most 64 base64 characters.
pub const MAX_SALT_LEN: usize = 48;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Argon2Params {
    /// Memory cost in KiB.
    pub m_kib: u32,
    /// Iterations (passes over memory).
    pub t: u32,
    /// Parallelism (lanes).
    pub p: u32,
}

impl Default for Argon2Params {
    /// OWASP Password Storage Cheat Sheet minimum for Argon2id: 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        Self { m_kib: 19_456, t: 2, p: 1 }
    }
}

impl Argon2Params {
    fn validate(self) -> Result<Params, CryptoError> {
        let invalid = |why: String| Err(CryptoError::InvalidParams(why));
        if !(1..=MAX_PARALLELISM).contains(&self.p) {
            return invalid(format!("parallelism p must be 1..={MAX_PARALLELISM}, got {}", self.p));
        }
        if !(1..=MAX_ITERATIONS).contains(&self.t) {
            return invalid(format!("iterations t must be 1..={MAX_ITERATIONS}, got {}", self.t));
        }
        // Argon2 needs at least 8 KiB per lane.
        let min_memory = 8 * self.p;
        if !(min_memory..=MAX_MEMORY_KIB).contains(&self.m_kib) {
            return invalid(format!("memory m must be {min_memory}..={MAX_MEMORY_KIB} KiB, got {}", self.m_kib));
        }
        Params::new(self.m_kib, self.t, self.p, None).map_err(|e| CryptoError::InvalidParams(e.to_string()))
    }
}

/// Hash `password` into a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
/// `salt: None` draws 16 random bytes, which is what real use wants; a fixed salt exists so
/// the lab can show that the same inputs give the same hash.
pub fn argon2id_hash(password: &[u8], params: Argon2Params, salt: Option<&[u8]>) -> Result<String, CryptoError> {
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.validate()?);
    let salt = match salt {
        None => SaltString::generate(&mut OsRng),
        Some(bytes) if !(MIN_SALT_LEN..=MAX_SALT_LEN).contains(&bytes.len()) => {
            return Err(CryptoError::InvalidParams(format!("salt must be {MIN_SALT_LEN}..={MAX_SALT_LEN} bytes, got {}", bytes.len())))
        }
        Some(bytes) => SaltString::encode_b64(bytes).map_err(|e| CryptoError::InvalidParams(e.to_string()))?,
    };
    argon2.hash_password(password, &salt).map(|hash| hash.to_string()).map_err(|e| CryptoError::InvalidParams(e.to_string()))
}

fn parse_phc(phc: &str) -> Result<PasswordHash<'_>, CryptoError> {
    let hash = PasswordHash::new(phc.trim()).map_err(|_| CryptoError::InvalidPhc)?;
    if Algorithm::try_from(hash.algorithm).is_err() {
        return Err(CryptoError::InvalidPhc);
    }
    Ok(hash)
}

/// The cost a PHC string asks for, read without hashing anything: a verifier that takes PHC strings
/// from strangers checks it against its own ceiling first. `Err(InvalidPhc)` when `phc` is not an
/// Argon2 PHC string.
pub fn argon2_phc_params(phc: &str) -> Result<Argon2Params, CryptoError> {
    let params = Params::try_from(&parse_phc(phc)?).map_err(|_| CryptoError::InvalidPhc)?;
    Ok(Argon2Params { m_kib: params.m_cost(), t: params.t_cost(), p: params.p_cost() })
}

/// `Ok(false)` for a wrong password; `Err(InvalidPhc)` when `phc` is not an Argon2 PHC string,
/// `Err(InvalidParams)` when its parameters exceed the limits above.
pub fn argon2_verify(phc: &str, password: &[u8]) -> Result<bool, CryptoError> {
    let hash = parse_phc(phc)?;
    argon2_phc_params(phc)?.validate()?;
    match Argon2::default().verify_password(password, &hash) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(_) => Err(CryptoError::InvalidPhc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::PublicError;

    // Small parameters keep these tests fast; the OWASP-size ones live in `kat`.
    const FAST: Argon2Params = Argon2Params { m_kib: 64, t: 1, p: 1 };

    #[test]
    fn rejects_absurd_params() {
        for params in [
            Argon2Params { m_kib: MAX_MEMORY_KIB + 1, t: 2, p: 1 },
            Argon2Params { m_kib: 19_456, t: 11, p: 1 },
            Argon2Params { m_kib: 19_456, t: 0, p: 1 },
            Argon2Params { m_kib: 19_456, t: 2, p: 5 },
            Argon2Params { m_kib: 19_456, t: 2, p: 0 },
            Argon2Params { m_kib: 7, t: 1, p: 1 },
        ] {
            let err = argon2id_hash(b"pw", params, None).unwrap_err();
            assert_eq!(err.code(), "invalid_params", "{params:?}");
        }
    }

    #[test]
    fn rejects_short_and_overlong_salts() {
        for len in [0, 7, 49] {
            let err = argon2id_hash(b"pw", FAST, Some(&vec![1; len])).unwrap_err();
            assert_eq!(err.code(), "invalid_params", "salt of {len} bytes");
        }
        assert!(argon2id_hash(b"pw", FAST, Some(&[1; 8])).is_ok());
        assert!(argon2id_hash(b"pw", FAST, Some(&[1; 48])).is_ok());
    }

    #[test]
    fn random_salts_differ_but_both_verify() {
        let first = argon2id_hash(b"pw", FAST, None).unwrap();
        let second = argon2id_hash(b"pw", FAST, None).unwrap();
        assert_ne!(first, second);
        assert!(argon2_verify(&first, b"pw").unwrap());
        assert!(argon2_verify(&second, b"pw").unwrap());
    }

    #[test]
    fn malformed_phc_is_invalid_phc() {
        for bad in ["", "not a hash", "$argon2id$v=19$m=64,t=1,p=1$", "$2b$12$abcdefghijklmnopqrstuu"] {
            assert_eq!(argon2_verify(bad, b"pw"), Err(CryptoError::InvalidPhc), "{bad:?}");
        }
    }

    #[test]
    fn phc_parameters_are_read_without_hashing() {
        let phc = "$argon2id$v=19$m=262144,t=10,p=1$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A";
        assert_eq!(argon2_phc_params(phc), Ok(Argon2Params { m_kib: 262_144, t: 10, p: 1 }));
        assert_eq!(argon2_phc_params("$2b$12$abcdefghijklmnopqrstuu"), Err(CryptoError::InvalidPhc));
    }

    #[test]
    fn phc_with_absurd_memory_is_refused_before_hashing() {
        let phc = "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A";
        assert_eq!(argon2_verify(phc, b"pw").unwrap_err().code(), "invalid_params");
    }
}
