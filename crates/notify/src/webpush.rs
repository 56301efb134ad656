//! Web Push's message encryption and sender identification, on RustCrypto's p256, hkdf and aes-gcm
//! (the `web-push` crate would pull OpenSSL and a bundled libcurl):
//! - RFC 8291: the payload encrypted for one subscription (its P-256 public key and 16-byte auth
//!   secret) in the `aes128gcm` content coding of RFC 8188, as a single record;
//! - RFC 8292 (VAPID): an ES256-signed JWT naming the push service's origin, an expiry and a contact,
//!   sent with the application server's public key in `Authorization: vapid t=…, k=…`;
//! - RFC 8030's `TTL` and `Urgency` from a notification's expiry and priority.
//!
//! The push channel (`channels.rs`) sends with these through the guarded client of webhooks.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use hkdf::Hkdf;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use rand_core::OsRng;
use sha2::Sha256;

use crate::model::Priority;

/// The record size written in every message's header; one record carries the whole payload.
pub const RECORD_SIZE: u32 = 4096;
/// salt (16) + record size (4) + key id length (1) + the sender's public key (65).
const HEADER_LEN: usize = 86;
/// The largest payload a push service must accept in one message (RFC 8291 §4: a 4096-byte body,
/// less the header, the AEAD tag and the record's delimiter).
pub const MAX_PAYLOAD: usize = 4096 - HEADER_LEN - 16 - 1;
/// How long a VAPID token is valid (RFC 8292 allows at most 24 hours).
pub const VAPID_LIFETIME_SECS: i64 = 12 * 3600;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PushCryptoError {
    #[error("the subscription's p256dh is not an uncompressed P-256 public key")]
    BadPublicKey,
    #[error("the subscription's auth secret must be 16 bytes")]
    BadAuthSecret,
    #[error("a push payload may hold at most {MAX_PAYLOAD} bytes")]
    TooLarge,
    #[error("the push endpoint is not an https:// or http:// URL")]
    BadEndpoint,
}

/// What a browser's `PushSubscription` gives the server: `keys.p256dh` and `keys.auth`, decoded.
pub struct Subscriber<'a> {
    pub p256dh: &'a [u8],
    pub auth: &'a [u8],
}

/// `payload` encrypted for `to`, as the body of a push message (`Content-Encoding: aes128gcm`), under a
/// fresh salt and a fresh sender key pair.
pub fn encrypt(payload: &[u8], to: &Subscriber<'_>) -> Result<Vec<u8>, PushCryptoError> {
    let mut salt = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut OsRng, &mut salt);
    let sender = SecretKey::random(&mut OsRng);
    encrypt_with(payload, to, &salt, &sender)
}

/// [`encrypt`] with the salt and sender key given (RFC 8291 §3.4); the known-answer test uses it.
fn encrypt_with(payload: &[u8], to: &Subscriber<'_>, salt: &[u8; 16], sender: &SecretKey) -> Result<Vec<u8>, PushCryptoError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(PushCryptoError::TooLarge);
    }
    let receiver = PublicKey::from_sec1_bytes(to.p256dh).map_err(|_| PushCryptoError::BadPublicKey)?;
    let receiver_bytes = receiver.to_encoded_point(false);
    if receiver_bytes.as_bytes() != to.p256dh {
        return Err(PushCryptoError::BadPublicKey);
    }
    if to.auth.len() != 16 {
        return Err(PushCryptoError::BadAuthSecret);
    }
    let sender_public = sender.public_key().to_encoded_point(false);
    let shared = p256::ecdh::diffie_hellman(sender.to_nonzero_scalar(), receiver.as_affine());
    let (cek, nonce) = content_keys(shared.raw_secret_bytes(), to.auth, to.p256dh, sender_public.as_bytes(), salt);

    // One record, the last: the payload and its delimiter 0x02 (no padding).
    let mut record = Vec::with_capacity(payload.len() + 1);
    record.extend_from_slice(payload);
    record.push(2);
    let sealed = Aes128Gcm::new(&cek.into()).encrypt(Nonce::from_slice(&nonce), record.as_slice()).expect("AES-GCM seals any length under 64 GB");

    let mut body = Vec::with_capacity(HEADER_LEN + sealed.len());
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(65);
    body.extend_from_slice(sender_public.as_bytes());
    body.extend_from_slice(&sealed);
    Ok(body)
}

/// The content-encryption key and nonce of a message (RFC 8291 §3.4, RFC 8188 §2.2–2.3), from the ECDH
/// secret, the subscription's auth secret, both public keys (uncompressed) and the message's salt.
fn content_keys(ecdh_secret: &[u8], auth: &[u8], receiver_public: &[u8], sender_public: &[u8], salt: &[u8]) -> ([u8; 16], [u8; 12]) {
    // IKM = HKDF(auth, ecdh, "WebPush: info" 0x00 ua_public as_public, 32)
    let mut key_info = Vec::with_capacity(14 + 65 + 65);
    key_info.extend_from_slice(b"WebPush: info\0");
    key_info.extend_from_slice(receiver_public);
    key_info.extend_from_slice(sender_public);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth), ecdh_secret).expand(&key_info, &mut ikm).expect("32 bytes is a valid HKDF-SHA-256 length");
    let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek).expect("16 bytes is a valid length");
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce).expect("12 bytes is a valid length");
    (cek, nonce)
}

/// Is `bytes` a P-256 public key as a browser's `keys.p256dh` carries it (uncompressed, on the curve)?
pub fn is_public_key(bytes: &[u8]) -> bool {
    bytes.len() == 65 && PublicKey::from_sec1_bytes(bytes).is_ok()
}

/// The application server's VAPID identity: a P-256 signing key and a contact (`mailto:` or
/// `https:`) a push service's operator can reach.
pub struct Vapid {
    key: SigningKey,
    subject: String,
}

impl Vapid {
    /// From the private key's 32 bytes (base64url, as `web-push generate-vapid-keys` prints it).
    pub fn from_base64url(private_key: &str, subject: impl Into<String>) -> Option<Self> {
        let bytes = B64URL.decode(private_key.trim()).ok()?;
        let key = SigningKey::from_slice(&bytes).ok()?;
        Some(Self { key, subject: subject.into() })
    }

    /// A new identity (for a first start in dev mode; production configures one).
    pub fn generate(subject: impl Into<String>) -> Self {
        Self { key: SigningKey::random(&mut OsRng), subject: subject.into() }
    }

    /// The public key browsers subscribe with (`applicationServerKey`), base64url.
    pub fn public_key(&self) -> String {
        B64URL.encode(self.key.verifying_key().to_encoded_point(false).as_bytes())
    }

    /// `Authorization` for a message to `endpoint` at `now` (unix seconds): the JWT's audience is the
    /// endpoint's origin, so one token serves every subscription of a push service.
    pub fn authorization(&self, endpoint: &str, now: i64) -> Result<String, PushCryptoError> {
        let url = reqwest::Url::parse(endpoint).map_err(|_| PushCryptoError::BadEndpoint)?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(PushCryptoError::BadEndpoint);
        }
        let header = B64URL.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({
            "aud": url.origin().ascii_serialization(),
            "exp": now + VAPID_LIFETIME_SECS,
            "sub": self.subject,
        });
        let claims = B64URL.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let signature: Signature = self.key.sign(signing_input.as_bytes());
        Ok(format!("vapid t={signing_input}.{}, k={}", B64URL.encode(signature.to_bytes()), self.public_key()))
    }
}

/// RFC 8030 §5.3 `Urgency` for a notification's priority: a phone on battery wakes for `high` only.
pub fn urgency(priority: Priority) -> &'static str {
    match priority {
        Priority::High => "high",
        Priority::Normal => "normal",
        Priority::Bulk => "low",
    }
}

/// RFC 8030 §5.2 `TTL`: seconds the push service may hold the message for an offline device. Until
/// the notification expires, else four weeks (what browsers' push services keep at most).
pub fn ttl_secs(expires_ms: Option<i64>, now_ms: i64) -> u64 {
    const DEFAULT: u64 = 28 * 24 * 3600;
    match expires_ms {
        Some(e) => (e.saturating_sub(now_ms).max(0) / 1000) as u64,
        None => DEFAULT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::VerifyingKey;

    fn b64(s: &str) -> Vec<u8> {
        B64URL.decode(s).unwrap()
    }

    /// A receiver's side of RFC 8291, for the round trips. It shares the key schedule with
    /// [`encrypt_with`]; the RFC's example checks that schedule independently.
    fn decrypt(body: &[u8], receiver: &SecretKey, auth: &[u8]) -> Option<Vec<u8>> {
        let (salt, rest) = body.split_at(16);
        let (keyid_len, rest) = (rest[4] as usize, &rest[5..]);
        let (sender, sealed) = rest.split_at(keyid_len);
        let sender = PublicKey::from_sec1_bytes(sender).ok()?;
        let shared = p256::ecdh::diffie_hellman(receiver.to_nonzero_scalar(), sender.as_affine());
        let receiver_public = receiver.public_key().to_encoded_point(false);
        let sender_public = sender.to_encoded_point(false);
        let (cek, nonce) = content_keys(shared.raw_secret_bytes(), auth, receiver_public.as_bytes(), sender_public.as_bytes(), salt);
        let mut record = Aes128Gcm::new(&cek.into()).decrypt(Nonce::from_slice(&nonce), sealed).ok()?;
        // Strip the padding and the last record's delimiter.
        while record.last() == Some(&0) {
            record.pop();
        }
        (record.pop() == Some(2)).then_some(record)
    }

    /// RFC 8291 Appendix A, byte for byte.
    #[test]
    fn encryption_matches_the_rfc_8291_example() {
        let receiver_public = b64("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4");
        let auth = b64("BTBZMqHH6r4Tts7J_aSIgg");
        let salt: [u8; 16] = b64("DGv6ra1nlYgDCS1FRnbzlw").try_into().unwrap();
        let sender = SecretKey::from_slice(&b64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw")).unwrap();
        let body = encrypt_with(b"When I grow up, I want to be a watermelon", &Subscriber { p256dh: &receiver_public, auth: &auth }, &salt, &sender)
            .unwrap();
        assert_eq!(
            B64URL.encode(&body),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        );
        let receiver = SecretKey::from_slice(&b64("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94")).unwrap();
        assert_eq!(decrypt(&body, &receiver, &auth).unwrap(), b"When I grow up, I want to be a watermelon");
    }

    #[test]
    fn every_message_has_its_own_salt_and_key_and_only_its_subscriber_reads_it() {
        let receiver = SecretKey::random(&mut OsRng);
        let public = receiver.public_key().to_encoded_point(false);
        let auth = [7u8; 16];
        let to = Subscriber { p256dh: public.as_bytes(), auth: &auth };
        let payload = vec![b'x'; MAX_PAYLOAD];
        let (a, b) = (encrypt(&payload, &to).unwrap(), encrypt(&payload, &to).unwrap());
        assert_ne!(a[..HEADER_LEN], b[..HEADER_LEN], "fresh salt and sender key");
        assert_eq!(a.len(), 4096, "the largest payload fills the 4096 bytes a push service must take");
        assert_eq!(decrypt(&a, &receiver, &auth).unwrap(), payload);
        assert_eq!(decrypt(&a, &receiver, &[8u8; 16]), None, "another auth secret");
        let stranger = SecretKey::random(&mut OsRng);
        assert_eq!(decrypt(&a, &stranger, &auth), None, "another key");
        let mut tampered = a.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(decrypt(&tampered, &receiver, &auth), None, "a changed byte");
    }

    #[test]
    fn bad_subscriptions_and_payloads_are_refused() {
        let receiver = SecretKey::random(&mut OsRng);
        let public = receiver.public_key().to_encoded_point(false);
        let compressed = receiver.public_key().to_encoded_point(true);
        let ok = Subscriber { p256dh: public.as_bytes(), auth: &[1; 16] };
        assert_eq!(encrypt(&vec![0; MAX_PAYLOAD + 1], &ok).unwrap_err(), PushCryptoError::TooLarge);
        let short_auth = Subscriber { p256dh: public.as_bytes(), auth: &[1; 15] };
        assert_eq!(encrypt(b"hi", &short_auth).unwrap_err(), PushCryptoError::BadAuthSecret);
        for key in [&[4u8; 65][..], compressed.as_bytes(), &[]] {
            assert_eq!(encrypt(b"hi", &Subscriber { p256dh: key, auth: &[1; 16] }).unwrap_err(), PushCryptoError::BadPublicKey);
        }
    }

    #[test]
    fn a_vapid_token_names_the_push_services_origin_and_verifies_under_the_public_key() {
        let vapid = Vapid::generate("mailto:ops@example.com");
        let auth = vapid.authorization("https://push.example.net:8443/wpush/v2/abc?x=1", 1_700_000_000).unwrap();
        let rest = auth.strip_prefix("vapid t=").unwrap();
        let (token, k) = rest.split_once(", k=").unwrap();
        assert_eq!(k, vapid.public_key());
        let (input, signature) = token.rsplit_once('.').unwrap();
        let (header, claims) = input.split_once('.').unwrap();
        let header: serde_json::Value = serde_json::from_slice(&b64(header)).unwrap();
        assert_eq!(header["alg"], "ES256");
        let claims: serde_json::Value = serde_json::from_slice(&b64(claims)).unwrap();
        assert_eq!(claims["aud"], "https://push.example.net:8443");
        assert_eq!(claims["exp"], 1_700_000_000 + VAPID_LIFETIME_SECS);
        assert_eq!(claims["sub"], "mailto:ops@example.com");
        let key = VerifyingKey::from_sec1_bytes(&b64(k)).unwrap();
        let signature = Signature::from_slice(&b64(signature)).unwrap();
        assert!(key.verify(input.as_bytes(), &signature).is_ok());
        let other = Vapid::generate("mailto:ops@example.com");
        let foreign = VerifyingKey::from_sec1_bytes(&b64(&other.public_key())).unwrap();
        assert!(foreign.verify(input.as_bytes(), &signature).is_err(), "another server's key does not verify it");
        // The private key round-trips through its base64url form.
        let bytes = B64URL.encode(vapid.key.to_bytes());
        assert_eq!(Vapid::from_base64url(&bytes, "mailto:x@example.com").unwrap().public_key(), vapid.public_key());
        assert!(Vapid::from_base64url("not a key", "mailto:x@example.com").is_none());
        for endpoint in ["ftp://push.example/x", "not a url", "mailto:push@example.com"] {
            assert_eq!(vapid.authorization(endpoint, 0).unwrap_err(), PushCryptoError::BadEndpoint, "{endpoint}");
        }
    }

    #[test]
    fn urgency_and_ttl_follow_priority_and_expiry() {
        assert_eq!([Priority::High, Priority::Normal, Priority::Bulk].map(urgency), ["high", "normal", "low"]);
        assert_eq!(ttl_secs(Some(61_000), 1_000), 60);
        assert_eq!(ttl_secs(Some(0), 5_000), 0, "already expired: deliver now or never");
        assert_eq!(ttl_secs(None, 0), 28 * 24 * 3600);
    }
}
