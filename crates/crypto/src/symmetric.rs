//! Authenticated encryption (AEAD): two-way, the same secret key encrypts and decrypts, and
//! any change to ciphertext, nonce or associated data makes decryption fail. Not for
//! passwords (store an Argon2id hash instead) and never reuse a nonce with the same key.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use chacha20poly1305::ChaCha20Poly1305;
use rand_core::{OsRng, RngCore};

use crate::{Ciphertext, CryptoError, Encoded, Plaintext};

/// Both ciphers here take 256-bit keys, 96-bit nonces and append a 128-bit tag.
pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;

/// A fresh random 256-bit key.
pub fn generate_key() -> Encoded {
    random_bytes::<KEY_LEN>()
}

/// A fresh random 96-bit nonce. Random nonces are safe for up to about 2^32 messages per key.
pub fn generate_nonce() -> Encoded {
    random_bytes::<NONCE_LEN>()
}

fn random_bytes<const N: usize>() -> Encoded {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    Encoded::from_bytes(&bytes)
}

/// Checked here rather than left to the cipher so the user hears which input is wrong.
fn check_key_and_nonce(key: &[u8], nonce: &[u8]) -> Result<(), CryptoError> {
    if key.len() != KEY_LEN {
        return Err(CryptoError::InvalidKey { expected_len: KEY_LEN, got: key.len() });
    }
    if nonce.len() != NONCE_LEN {
        return Err(CryptoError::InvalidNonce { expected_len: NONCE_LEN, got: nonce.len() });
    }
    Ok(())
}

/// The cipher for `key`, after checking both lengths so the user hears which input is wrong.
fn cipher<C: KeyInit>(key: &[u8], nonce: &[u8]) -> Result<C, CryptoError> {
    check_key_and_nonce(key, nonce)?;
    C::new_from_slice(key).map_err(|_| CryptoError::InvalidKey { expected_len: KEY_LEN, got: key.len() })
}

fn seal<C: KeyInit + Aead>(key: &[u8], nonce: &[u8], plaintext: &[u8], aad: &[u8]) -> Result<Ciphertext, CryptoError> {
    seal_bytes::<C>(key, nonce, plaintext, aad).map(|ciphertext| Encoded::from_bytes(&ciphertext))
}

fn seal_bytes<C: KeyInit + Aead>(key: &[u8], nonce: &[u8], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let cipher = cipher::<C>(key, nonce)?;
    cipher
        .encrypt(nonce.into(), Payload { msg: plaintext, aad })
        // Only reachable for plaintexts beyond the cipher's limit (64 GiB for GCM).
        .map_err(|_| CryptoError::InvalidParams("plaintext is too long".into()))
}

fn open<C: KeyInit + Aead>(key: &[u8], nonce: &[u8], ciphertext: &[u8], aad: &[u8]) -> Result<Plaintext, CryptoError> {
    let cipher = cipher::<C>(key, nonce)?;
    // Too short to hold a tag is indistinguishable, for the user, from a damaged ciphertext.
    cipher
        .decrypt(nonce.into(), Payload { msg: ciphertext, aad })
        .map(|plaintext| Plaintext::from_bytes(&plaintext))
        .map_err(|_| CryptoError::DecryptionFailed)
}

/// AES-256-GCM as raw bytes (ciphertext || tag), for the browser benchmark.
pub fn aes256gcm_encrypt_bytes(key: &[u8], nonce: &[u8], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    seal_bytes::<Aes256Gcm>(key, nonce, plaintext, aad)
}

/// AES-256-GCM. Output is ciphertext || 16-byte tag.
pub fn aes256gcm_encrypt(key: &[u8], nonce: &[u8], plaintext: &[u8], aad: &[u8]) -> Result<Ciphertext, CryptoError> {
    seal::<Aes256Gcm>(key, nonce, plaintext, aad)
}

/// AES-256-GCM. `ciphertext` is ciphertext || 16-byte tag.
pub fn aes256gcm_decrypt(key: &[u8], nonce: &[u8], ciphertext: &[u8], aad: &[u8]) -> Result<Plaintext, CryptoError> {
    open::<Aes256Gcm>(key, nonce, ciphertext, aad)
}

/// ChaCha20-Poly1305 (RFC 8439). Output is ciphertext || 16-byte tag.
pub fn chacha20poly1305_encrypt(key: &[u8], nonce: &[u8], plaintext: &[u8], aad: &[u8]) -> Result<Ciphertext, CryptoError> {
    seal::<ChaCha20Poly1305>(key, nonce, plaintext, aad)
}

/// ChaCha20-Poly1305 (RFC 8439). `ciphertext` is ciphertext || 16-byte tag.
pub fn chacha20poly1305_decrypt(key: &[u8], nonce: &[u8], ciphertext: &[u8], aad: &[u8]) -> Result<Plaintext, CryptoError> {
    open::<ChaCha20Poly1305>(key, nonce, ciphertext, aad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_hex;
    use contract::PublicError;

    #[test]
    fn generated_key_and_nonce_have_the_right_length_and_differ() {
        assert_eq!(parse_hex(&generate_key().hex).unwrap().len(), KEY_LEN);
        assert_eq!(parse_hex(&generate_nonce().hex).unwrap().len(), NONCE_LEN);
        assert_ne!(generate_key(), generate_key());
    }

    #[test]
    fn wrong_key_or_nonce_length_names_the_input() {
        for encrypt in [aes256gcm_encrypt, chacha20poly1305_encrypt] {
            assert_eq!(encrypt(&[0; 16], &[0; 12], b"", b""), Err(CryptoError::InvalidKey { expected_len: 32, got: 16 }));
            assert_eq!(encrypt(&[0; 32], &[0; 24], b"", b""), Err(CryptoError::InvalidNonce { expected_len: 12, got: 24 }));
        }
        for decrypt in [aes256gcm_decrypt, chacha20poly1305_decrypt] {
            assert_eq!(decrypt(&[0; 31], &[0; 12], &[0; 16], b"").unwrap_err().code(), "invalid_key");
            assert_eq!(decrypt(&[0; 32], &[0; 11], &[0; 16], b"").unwrap_err().code(), "invalid_nonce");
        }
    }

    #[test]
    fn ciphertext_shorter_than_a_tag_fails_cleanly() {
        assert_eq!(aes256gcm_decrypt(&[0; 32], &[0; 12], &[0; 5], b""), Err(CryptoError::DecryptionFailed));
        assert_eq!(chacha20poly1305_decrypt(&[0; 32], &[0; 12], &[], b""), Err(CryptoError::DecryptionFailed));
    }

    #[test]
    fn random_key_round_trip_both_ciphers() {
        let key = parse_hex(&generate_key().hex).unwrap();
        let nonce = parse_hex(&generate_nonce().hex).unwrap();
        let sealed = chacha20poly1305_encrypt(&key, &nonce, "héllo".as_bytes(), b"id=7").unwrap();
        let opened = chacha20poly1305_decrypt(&key, &nonce, &parse_hex(&sealed.hex).unwrap(), b"id=7").unwrap();
        assert_eq!(opened.utf8.as_deref(), Some("héllo"));
        let sealed = aes256gcm_encrypt(&key, &nonce, b"", b"").unwrap();
        assert_eq!(parse_hex(&sealed.hex).unwrap().len(), TAG_LEN);
    }
}
