//! Hashes and MACs: one-way fingerprints of data; HMAC adds a secret key so only key holders
//! can make or check the tag. Not for passwords (too fast to brute-force: use Argon2id) and
//! not for secrecy (nothing can be decrypted).

use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256, Sha512};
use sha3::Sha3_256;

use crate::{parse_hex, CryptoError, Digest, Encoded};

pub fn sha256(data: &[u8]) -> Digest {
    Encoded::from_bytes(&sha256_bytes(data))
}

/// The raw digest, for callers that do not want the text encodings (the browser benchmark).
pub fn sha256_bytes(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

pub fn sha512(data: &[u8]) -> Digest {
    Encoded::from_bytes(&Sha512::digest(data))
}

pub fn sha3_256(data: &[u8]) -> Digest {
    Encoded::from_bytes(&Sha3_256::digest(data))
}

fn hmac_sha256_mac(key: &[u8], message: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length (long ones are hashed first), so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(message);
    mac
}

pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Digest {
    Encoded::from_bytes(&hmac_sha256_mac(key, message).finalize().into_bytes())
}

/// `Ok(false)` when the tag does not match; `Err` only when `tag_hex` is not hex.
/// The comparison is constant-time, so timing does not reveal how many leading bytes matched.
/// A truncated tag is a mismatch, not a shorter check.
pub fn hmac_sha256_verify(key: &[u8], message: &[u8], tag_hex: &str) -> Result<bool, CryptoError> {
    let tag = parse_hex(tag_hex)?;
    Ok(hmac_sha256_mac(key, message).verify_slice(&tag).is_ok())
}
