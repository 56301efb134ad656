//! Standard Webhooks signatures (<https://www.standardwebhooks.com>, `spec/standard-webhooks.md`):
//! `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, where the key is the
//! base64-decoded part of a `whsec_` secret. Used by the webhook channel to sign and by the sink to verify.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// How far a timestamp may be from now, either way, before it is refused (replay protection).
pub const DEFAULT_TOLERANCE_SECS: u64 = 5 * 60;
const SECRET_PREFIX: &str = "whsec_";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the secret is not whsec_ followed by base64")]
    BadSecret,
    #[error("the webhook-timestamp header is not a unix timestamp")]
    BadTimestamp,
    #[error("the webhook-timestamp is outside the allowed tolerance")]
    TimestampOutOfTolerance,
    #[error("no signature matches")]
    NoMatch,
}

/// A decoded signing key. Its Debug output never shows the key.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

impl SigningKey {
    /// Parses `whsec_<base64>` (the prefix is optional, as in the reference libraries).
    pub fn from_secret(secret: &str) -> Result<Self, SignatureError> {
        let b64 = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
        let key = B64.decode(b64.trim()).map_err(|_| SignatureError::BadSecret)?;
        if key.is_empty() {
            return Err(SignatureError::BadSecret);
        }
        Ok(Self(key))
    }

    /// A fresh random key, rendered as a `whsec_` secret (24 bytes, the spec's minimum).
    pub fn generate_secret() -> String {
        let key: [u8; 24] = rand::random();
        format!("{SECRET_PREFIX}{}", B64.encode(key))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// The `webhook-signature` header value for one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", B64.encode(self.mac(id, timestamp, body)))
    }

    /// Checks a `webhook-signature` header (space-separated `v1,<sig>` entries; any match is enough, which
    /// allows key rotation) and the timestamp's distance from `now`.
    pub fn verify(
        &self,
        id: &str,
        timestamp_header: &str,
        signature_header: &str,
        body: &[u8],
        now: i64,
        tolerance_secs: u64,
    ) -> Result<(), SignatureError> {
        verify_with_any(std::slice::from_ref(self), id, timestamp_header, signature_header, body, now, tolerance_secs)
    }

    /// Does any `v1,` entry of the header carry this key's signature? (Constant time per entry.)
    fn matches(&self, id: &str, timestamp: i64, signature_header: &str, body: &[u8]) -> bool {
        let expected = self.mac(id, timestamp, body);
        let mut matched = subtle::Choice::from(0u8);
        for entry in signature_header.split(' ').filter(|s| !s.is_empty()) {
            let Some(("v1", sig)) = entry.split_once(',') else { continue };
            let Ok(sig) = B64.decode(sig) else { continue };
            if sig.len() == expected.len() {
                matched |= sig.as_slice().ct_eq(&expected);
            }
        }
        bool::from(matched)
    }
}

/// The `webhook-signature` header signed by every key, one `v1,` entry each, space-separated: what a
/// sender sends while a secret is being rotated, so receivers holding either secret accept it.
pub fn sign_with_all(keys: &[SigningKey], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter().map(|k| k.sign(id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

/// [`SigningKey::verify`] against several keys (a receiver that accepts an old and a new secret while
/// they rotate): the timestamp must be within tolerance and any entry must match any key.
pub fn verify_with_any(
    keys: &[SigningKey],
    id: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    let timestamp: i64 = timestamp_header.trim().parse().map_err(|_| SignatureError::BadTimestamp)?;
    if now.abs_diff(timestamp) > tolerance_secs {
        return Err(SignatureError::TimestampOutOfTolerance);
    }
    // Every key is tried, so the time taken does not say which one matched.
    let matched = keys.iter().fold(false, |acc, k| k.matches(id, timestamp, signature_header, body) | acc);
    if matched {
        Ok(())
    } else {
        Err(SignatureError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector of the Standard Webhooks / Svix reference libraries (their `sign` tests).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_the_published_example_exactly() {
        assert_eq!(SigningKey::from_secret(SECRET).unwrap().sign(ID, TS, BODY), SIG);
    }

    #[test]
    fn verifies_the_published_example_and_any_of_several_signatures() {
        let key = SigningKey::from_secret(SECRET).unwrap();
        key.verify(ID, "1614265330", SIG, BODY, TS, 300).unwrap();
        let several = format!("v1,bm9wZQ== v1a,abc {SIG}");
        key.verify(ID, "1614265330", &several, BODY, TS + 299, 300).unwrap();
    }

    #[test]
    fn refuses_tampering_stale_timestamps_and_bad_secrets() {
        let key = SigningKey::from_secret(SECRET).unwrap();
        assert_eq!(key.verify(ID, "1614265330", SIG, br#"{"test": 2432232315}"#, TS, 300), Err(SignatureError::NoMatch));
        assert_eq!(key.verify("msg_other", "1614265330", SIG, BODY, TS, 300), Err(SignatureError::NoMatch));
        assert_eq!(key.verify(ID, "1614265330", SIG, BODY, TS + 301, 300), Err(SignatureError::TimestampOutOfTolerance));
        assert_eq!(key.verify(ID, "1614265330", SIG, BODY, TS - 301, 300), Err(SignatureError::TimestampOutOfTolerance));
        assert_eq!(key.verify(ID, "yesterday", SIG, BODY, TS, 300), Err(SignatureError::BadTimestamp));
        assert_eq!(key.verify(ID, "1614265330", "v2,g0hM9SsE", BODY, TS, 300), Err(SignatureError::NoMatch));
        assert_eq!(key.verify(ID, "1614265330", "", BODY, TS, 300), Err(SignatureError::NoMatch));
        assert_eq!(SigningKey::from_secret("whsec_***").unwrap_err(), SignatureError::BadSecret);
        assert_eq!(SigningKey::from_secret("whsec_").unwrap_err(), SignatureError::BadSecret);
    }

    #[test]
    fn several_keys_sign_one_entry_each_and_either_verifies() {
        let old = SigningKey::from_secret(SECRET).unwrap();
        let new = SigningKey::from_secret(&SigningKey::generate_secret()).unwrap();
        let header = sign_with_all(&[new.clone(), old.clone()], ID, TS, BODY);
        let entries: Vec<&str> = header.split(' ').collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1], SIG);
        old.verify(ID, "1614265330", &header, BODY, TS, 300).unwrap();
        new.verify(ID, "1614265330", &header, BODY, TS, 300).unwrap();
        verify_with_any(&[new.clone(), old], ID, "1614265330", SIG, BODY, TS, 300).unwrap();
        assert_eq!(verify_with_any(&[new], ID, "1614265330", SIG, BODY, TS, 300), Err(SignatureError::NoMatch));
        assert_eq!(verify_with_any(&[], ID, "1614265330", SIG, BODY, TS, 300), Err(SignatureError::NoMatch));
    }

    #[test]
    fn generated_secrets_round_trip_and_never_print() {
        let secret = SigningKey::generate_secret();
        let key = SigningKey::from_secret(&secret).unwrap();
        let sig = key.sign("msg_1", 10, b"{}");
        key.verify("msg_1", "10", &sig, b"{}", 10, 300).unwrap();
        assert!(!format!("{key:?}").contains(&secret[6..]));
    }
}
