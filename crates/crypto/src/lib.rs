//! The crypto lab methods, as plain synchronous functions.
//!
//! No web framework and no async runtime in here, so the server (natively) and the
//! browser (WASM) run exactly the same code and give exactly the same answers.
//! Byte outputs come back as [`Encoded`] (hex + base64) so they can cross the wire as JSON.

mod encoding;
mod error;
pub mod hash;
pub mod lab;
pub mod methods;
pub mod password;
pub mod signature;
pub mod symmetric;

#[cfg(any(test, feature = "kat"))]
pub mod kat;

pub use encoding::{parse_base64, parse_hex, Ciphertext, Digest, Encoded, Plaintext};
pub use error::CryptoError;
pub use hash::{hmac_sha256, hmac_sha256_verify, sha256, sha256_bytes, sha3_256, sha512};
pub use methods::{methods, MethodInfo, MethodKind};
pub use password::{argon2_phc_params, argon2_verify, argon2id_hash, Argon2Params};
pub use signature::{ed25519_generate, ed25519_public_key, ed25519_sign, ed25519_verify, Ed25519Keypair};
pub use symmetric::{
    aes256gcm_decrypt, aes256gcm_encrypt, aes256gcm_encrypt_bytes, chacha20poly1305_decrypt, chacha20poly1305_encrypt, generate_key, generate_nonce,
    KEY_LEN, NONCE_LEN, TAG_LEN,
};
