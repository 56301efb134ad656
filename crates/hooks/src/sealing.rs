//! Endpoint secrets at rest. We must sign with them, so they cannot be hashed like API tokens; instead
//! each is sealed with AES-256-GCM under a key from the configuration (`hooks.secret_keys`), with the
//! endpoint id as associated data, so a database dump alone gives no secret and a sealed value copied
//! onto another endpoint does not open.
//!
//! Stored form: `sealed:v1:<key id>:<base64 of nonce ‖ ciphertext ‖ tag>`; the key id is the first
//! 8 hex digits of the key's SHA-256, so several keys can be configured while rotating: the first
//! seals, all open, and [`crate::Hooks::reseal_secrets`] rewrites rows under older keys (or from before
//! sealing, stored as they are) with the first. With no key configured secrets are stored as they are.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::config::Secret;
use crate::{FieldError, HooksError};

const PREFIX: &str = "sealed:v1:";

struct Key {
    id: String,
    cipher: Aes256Gcm,
}

/// Seals and opens endpoint secrets with the configured keys (the first seals).
pub struct Sealer {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("key_ids", &self.keys.iter().map(|k| &k.id).collect::<Vec<_>>()).finish()
    }
}

impl Sealer {
    /// Each key is 32 bytes, base64. A bad one is refused by position (`hooks.secret_keys[1]`).
    pub fn new(keys: &[Secret]) -> Result<Self, HooksError> {
        let mut out = vec![];
        let mut errors = vec![];
        for (i, k) in keys.iter().enumerate() {
            match B64.decode(k.expose().trim()) {
                Ok(bytes) if bytes.len() == 32 => {
                    out.push(Key { id: hex4(&Sha256::digest(&bytes)), cipher: Aes256Gcm::new_from_slice(&bytes).expect("32-byte key") })
                }
                _ => errors.push(FieldError::new(format!("hooks.secret_keys[{i}]"), "must be 32 random bytes in base64 (openssl rand -base64 32)")),
            }
        }
        if !errors.is_empty() {
            return Err(HooksError::Invalid(errors));
        }
        Ok(Self { keys: out })
    }

    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The stored form of `secret` for endpoint `endpoint_id` (as it is when no key is configured).
    pub fn seal(&self, endpoint_id: &str, secret: &str) -> String {
        let Some(key) = self.keys.first() else { return secret.to_string() };
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = key
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: secret.as_bytes(), aad: endpoint_id.as_bytes() })
            .expect("AES-GCM encryption of a short secret cannot fail");
        let mut blob = nonce.to_vec();
        blob.extend(sealed);
        format!("{PREFIX}{}:{}", key.id, B64.encode(blob))
    }

    /// The secret from its stored form. A value from before sealing is returned as it is.
    pub fn open(&self, endpoint_id: &str, stored: &str) -> Result<String, HooksError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else { return Ok(stored.to_string()) };
        let (key_id, b64) = rest.split_once(':').ok_or_else(|| HooksError::Internal("malformed sealed secret".into()))?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == key_id)
            .ok_or_else(|| HooksError::Internal(format!("endpoint secret sealed with key {key_id}, which is not in hooks.secret_keys")))?;
        let blob = B64.decode(b64).map_err(|_| HooksError::Internal("malformed sealed secret".into()))?;
        if blob.len() < 12 + 16 {
            return Err(HooksError::Internal("malformed sealed secret".into()));
        }
        let (nonce, sealed) = blob.split_at(12);
        let plain = key
            .cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: endpoint_id.as_bytes() })
            .map_err(|_| HooksError::Internal(format!("endpoint secret does not open with key {key_id} (tampered, or another endpoint's)")))?;
        String::from_utf8(plain).map_err(|_| HooksError::Internal("sealed secret is not text".into()))
    }

    /// Whether `stored` is already in the form [`seal`](Self::seal) writes now (nothing to reseal).
    pub fn is_current(&self, stored: &str) -> bool {
        match self.keys.first() {
            None => !stored.starts_with(PREFIX),
            Some(k) => stored.strip_prefix(PREFIX).and_then(|r| r.split_once(':')).is_some_and(|(id, _)| id == k.id),
        }
    }
}

fn hex4(digest: &[u8]) -> String {
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::PublicError;

    fn key(byte: u8) -> Secret {
        Secret::new(B64.encode([byte; 32]))
    }

    #[test]
    fn a_sealed_secret_opens_for_its_endpoint_only() {
        let s = Sealer::new(&[key(1)]).unwrap();
        let stored = s.seal("ep_a", "whsec_abc");
        assert!(stored.starts_with("sealed:v1:") && !stored.contains("whsec_abc"), "{stored}");
        assert_ne!(s.seal("ep_a", "whsec_abc"), stored, "a fresh nonce every time");
        assert_eq!(s.open("ep_a", &stored).unwrap(), "whsec_abc");
        assert!(s.open("ep_b", &stored).is_err(), "moved onto another endpoint, it does not open");
        let mut tampered = stored.clone();
        tampered.pop();
        tampered.push(if stored.ends_with('A') { 'B' } else { 'A' });
        assert!(s.open("ep_a", &tampered).is_err());
    }

    #[test]
    fn keys_rotate_the_first_seals_and_all_open() {
        let old = Sealer::new(&[key(1)]).unwrap();
        let stored = old.seal("ep", "whsec_x");
        let rotated = Sealer::new(&[key(2), key(1)]).unwrap();
        assert_eq!(rotated.open("ep", &stored).unwrap(), "whsec_x");
        assert!(!rotated.is_current(&stored) && old.is_current(&stored));
        assert!(rotated.is_current(&rotated.seal("ep", "whsec_x")));
        let dropped = Sealer::new(&[key(2)]).unwrap();
        let e = dropped.open("ep", &stored).unwrap_err();
        assert_eq!(e.status(), http::StatusCode::INTERNAL_SERVER_ERROR.as_u16());
    }

    #[test]
    fn values_from_before_sealing_are_read_as_they_are_and_need_resealing() {
        let s = Sealer::new(&[key(1)]).unwrap();
        assert_eq!(s.open("ep", "whsec_plain").unwrap(), "whsec_plain");
        assert!(!s.is_current("whsec_plain"));
        let none = Sealer::new(&[]).unwrap();
        assert_eq!(none.seal("ep", "whsec_plain"), "whsec_plain");
        assert!(none.is_current("whsec_plain"));
    }

    #[test]
    fn a_bad_key_is_refused_by_position() {
        let e = Sealer::new(&[key(1), Secret::new("too-short")]).unwrap_err();
        assert_eq!(e.field_errors()[0].field, "hooks.secret_keys[1]");
        assert!(!format!("{:?}", Sealer::new(&[key(1)]).unwrap()).contains(&B64.encode([1u8; 32])), "Debug shows key ids only");
    }
}
