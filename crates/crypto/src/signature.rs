//! Ed25519 digital signatures: the secret key signs, anyone with the public key can check that
//! the message is unchanged and came from the key holder. Not encryption (the message stays
//! readable) and not a password hash; never share the secret key.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey, PUBLIC_KEY_LENGTH, SECRET_KEY_LENGTH, SIGNATURE_LENGTH};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};

use crate::{CryptoError, Encoded};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ed25519Keypair {
    /// The 32-byte seed (RFC 8032 "secret key"); keep it private.
    pub secret: Encoded,
    /// The 32-byte public key to hand out.
    pub public: Encoded,
}

pub fn ed25519_generate() -> Ed25519Keypair {
    let signing_key = SigningKey::generate(&mut OsRng);
    Ed25519Keypair { secret: Encoded::from_bytes(signing_key.as_bytes()), public: Encoded::from_bytes(signing_key.verifying_key().as_bytes()) }
}

fn signing_key(secret: &[u8]) -> Result<SigningKey, CryptoError> {
    let seed: [u8; SECRET_KEY_LENGTH] =
        secret.try_into().map_err(|_| CryptoError::InvalidKey { expected_len: SECRET_KEY_LENGTH, got: secret.len() })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The public key belonging to a 32-byte secret key.
pub fn ed25519_public_key(secret: &[u8]) -> Result<Encoded, CryptoError> {
    Ok(Encoded::from_bytes(signing_key(secret)?.verifying_key().as_bytes()))
}

/// Sign with a 32-byte secret key (pass hex through [`crate::parse_hex`] first).
/// Ed25519 is deterministic: same key and message, same 64-byte signature.
pub fn ed25519_sign(secret: &[u8], message: &[u8]) -> Result<Encoded, CryptoError> {
    Ok(Encoded::from_bytes(&signing_key(secret)?.sign(message).to_bytes()))
}

/// `Ok(())` only if `signature` is valid for `message` under `public`.
/// Uses strict verification, which also rejects weak public keys and malleable signatures.
pub fn ed25519_verify(public: &[u8], message: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
    let public: [u8; PUBLIC_KEY_LENGTH] =
        public.try_into().map_err(|_| CryptoError::InvalidKey { expected_len: PUBLIC_KEY_LENGTH, got: public.len() })?;
    let verifying_key = VerifyingKey::from_bytes(&public).map_err(|_| CryptoError::InvalidPublicKey)?;
    let signature: [u8; SIGNATURE_LENGTH] = signature.try_into().map_err(|_| CryptoError::InvalidSignature)?;
    verifying_key.verify_strict(message, &Signature::from_bytes(&signature)).map_err(|_| CryptoError::InvalidSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_hex;
    use contract::PublicError;

    #[test]
    fn generated_keypair_signs_and_verifies() {
        let keypair = ed25519_generate();
        let secret = parse_hex(&keypair.secret.hex).unwrap();
        let public = parse_hex(&keypair.public.hex).unwrap();
        assert_eq!(ed25519_public_key(&secret).unwrap(), keypair.public);
        let signature = parse_hex(&ed25519_sign(&secret, b"msg").unwrap().hex).unwrap();
        assert_eq!(ed25519_verify(&public, b"msg", &signature), Ok(()));
        assert_eq!(ed25519_verify(&public, b"msh", &signature), Err(CryptoError::InvalidSignature));
    }

    #[test]
    fn wrong_lengths_are_reported() {
        assert_eq!(ed25519_sign(&[0; 31], b""), Err(CryptoError::InvalidKey { expected_len: 32, got: 31 }));
        assert_eq!(ed25519_verify(&[0; 33], b"", &[0; 64]).unwrap_err().code(), "invalid_key");
        let public = parse_hex(&ed25519_generate().public.hex).unwrap();
        assert_eq!(ed25519_verify(&public, b"", &[0; 63]), Err(CryptoError::InvalidSignature));
    }
}
