//! Inbound Standard Webhooks verification (`hooks::check_request`: what `/api/v1/inbound/{source}`
//! runs before it records the id) and `whsec_` secret parsing.
//!
//! An input is text, one field a line, so that seeds are real requests:
//!
//! ```text
//! whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw      the receiver's secret (any text: parsed as a secret)
//! msg_p5jXN8AQM9LWM0D4loKWxJek                the webhook-id header
//! 1614265330                                  the webhook-timestamp header
//! SIGN                                        the webhook-signature header; SIGN = the sender's signature
//! {"test": 2432232314}                        the body: everything after the fourth line break
//! ```
//!
//! The receiver's clock is fixed at the spec example's timestamp + 60 s, tolerance 300 s.
//! Invariants: nothing panics; whatever verifies carries the exact signature of its id, timestamp and
//! body under the key; a signed message verifies exactly when its id, timestamp and body are
//! acceptable; and changing the body, the id, the timestamp or the key makes it fail, while
//! equivalent encodings (a timestamp written `+0…`, spaces around header values, which HTTP strips,
//! an HMAC-equivalent key) do not change the outcome.
#![no_main]

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hooks::HooksError;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use notify::signature::{SigningKey, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use sha2::{Digest, Sha256};

const NOW: i64 = 1_614_265_330 + 60;
const TOLERANCE: u64 = 300;
/// A second key the receiver may hold (a rotation in progress).
const OTHER: &str = "whsec_b3RoZXIga2V5IGZvciByb3RhdGlvbg==";

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(5, |b| *b == b'\n');
    let (Some(secret), Some(id), Some(ts), Some(sig)) = (parts.next(), parts.next(), parts.next(), parts.next()) else { return };
    let body = parts.next().unwrap_or_default();
    let (Ok(secret), Ok(id), Ok(ts), Ok(sig)) =
        (std::str::from_utf8(secret), std::str::from_utf8(id), std::str::from_utf8(ts), std::str::from_utf8(sig))
    else {
        return;
    };

    // Any secret text parses or is refused, never panics.
    let Ok(key) = SigningKey::from_secret(secret) else { return };
    let raw_key = key_bytes(secret);
    let keys = std::slice::from_ref(&key);

    // The headers as received. A value that is not a valid header value cannot arrive at all.
    let signed_ts = ts.trim().parse::<i64>().ok();
    let canonical = signed_ts.map(|t| key.sign(id.trim(), t, body));
    let sig = if sig == "SIGN" { canonical.clone().unwrap_or_default() } else { sig.to_string() };
    let Some(h) = headers(id, ts, &sig) else { return };
    let r = hooks::check_request(keys, &h, body, NOW, TOLERANCE);

    // Whatever verifies: acceptable headers, fresh, JSON, and the exact signature among the entries
    // (base64 decoding is canonical, so no other spelling of it can match).
    if let Ok(c) = &r {
        assert!(id_acceptable(id), "id {id:?} accepted");
        assert_eq!(c.webhook_id, id.trim());
        assert_eq!(Some(c.timestamp), signed_ts);
        assert!(NOW.abs_diff(c.timestamp) <= TOLERANCE);
        assert_eq!(c.payload, serde_json::from_slice::<serde_json::Value>(body).expect("accepted body is JSON"));
        let expected = canonical.as_deref().unwrap();
        assert!(sig.trim().split(' ').any(|e| e == expected), "{sig:?} verified, but does not contain {expected:?}");
    }

    // The rest is about a correctly signed message: the outcome is exactly what its fields deserve.
    let Some(t) = signed_ts.filter(|_| canonical.as_deref() == Some(sig.as_str())) else { return };
    let fresh = NOW.abs_diff(t) <= TOLERANCE;
    let json = serde_json::from_slice::<serde_json::Value>(body).is_ok();
    let ts_plain = plain(ts);
    match (&r, id_acceptable(id), ts_plain, fresh, json) {
        (Ok(_), true, true, true, true) => {}
        (Err(HooksError::BadRequest(_)), false, _, _, _) | (Err(HooksError::BadRequest(_)), _, false, _, _) => {}
        (Err(HooksError::StaleTimestamp), true, true, false, _) => {}
        (Err(HooksError::BadRequest(_)), true, true, true, false) => {}
        (r, id_ok, ts_ok, fresh, json) => panic!("signed message: {r:?} (id ok {id_ok}, timestamp plain {ts_ok}, fresh {fresh}, json {json})"),
    }
    let verifies = r.is_ok();
    let outcome = |h: &HeaderMap, body: &[u8], keys: &[SigningKey]| hooks::check_request(keys, h, body, NOW, TOLERANCE).is_ok();

    // Equivalent encodings: the same outcome.
    if let Some(padded) = headers(&format!(" {id} "), &format!("\t{ts} "), &format!("  {sig} ")) {
        assert_eq!(outcome(&padded, body, keys), verifies, "spaces around the headers changed the outcome");
    }
    // Only for a header that was plain text: "\u{a0}{t}" is refused as unreadable, "+000{t}" is not.
    if ts_plain {
        if let Some(h) = headers(id, &format!("+000{t}"), &sig) {
            assert_eq!(outcome(&h, body, keys), verifies, "+000{t} is the same timestamp");
        }
    }
    // Rotation: holding another key beside this one changes nothing.
    let other = SigningKey::from_secret(OTHER).unwrap();
    assert_eq!(outcome(&h, body, &[other.clone(), key.clone()]), verifies);
    if !verifies {
        return;
    }

    // Changes: each must fail.
    for changed in changed_bodies(body) {
        assert!(!outcome(&h, &changed, keys), "a changed body still verified: {changed:?}");
    }
    for other_id in [format!("{}x", id.trim()), format!("x{}", id.trim()), id.trim()[..id.trim().len() - 1].to_string()] {
        if let Some(h) = headers(&other_id, ts, &sig) {
            assert!(!outcome(&h, body, keys), "webhook-id {other_id:?} verified a message signed for {id:?}");
        }
    }
    for other_ts in [t + 1, t - 1] {
        let h = headers(id, &other_ts.to_string(), &sig).unwrap();
        assert!(!outcome(&h, body, keys), "webhook-timestamp {other_ts} verified a message signed at {t}");
    }
    if let Some(k) = &raw_key {
        let other_bytes = key_bytes(OTHER).unwrap();
        if hmac_key_block(&other_bytes) != hmac_key_block(k) {
            assert!(!outcome(&h, body, std::slice::from_ref(&other)), "verified with the wrong key");
        }
        for changed in changed_keys(k) {
            let changed_key = SigningKey::from_secret(&format!("whsec_{}", B64.encode(&changed))).unwrap();
            let v = outcome(&h, body, std::slice::from_ref(&changed_key));
            assert_eq!(v, hmac_key_block(&changed) == hmac_key_block(k), "key {changed:?} for {k:?}: verified {v}");
        }
    }
});

/// The key bytes behind a secret, as `SigningKey::from_secret` decodes them.
fn key_bytes(secret: &str) -> Option<Vec<u8>> {
    B64.decode(secret.strip_prefix("whsec_").unwrap_or(secret).trim()).ok()
}

fn changed_bodies(body: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![[body, b" "].concat(), [b" ", body].concat()];
    if let Some((last, rest)) = body.split_last() {
        out.push(rest.to_vec());
        out.push([rest, &[last ^ 1]].concat());
        let mut first = body.to_vec();
        first[0] ^= 0x80;
        out.push(first);
    }
    out
}

/// One bit flipped, a byte dropped, a zero appended (HMAC-equivalent below 64 bytes).
fn changed_keys(key: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![[key, &[0]].concat()];
    let mut flipped = key.to_vec();
    flipped[0] ^= 1;
    out.push(flipped);
    if key.len() > 1 {
        out.push(key[..key.len() - 1].to_vec());
    }
    out
}

/// HMAC-SHA256 treats keys alike when they agree after hashing a long key and zero-padding to the
/// block size: `k` and `k || 0x00` sign identically. An equivalent key, not a forgery.
fn hmac_key_block(key: &[u8]) -> [u8; 64] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    block
}

fn headers(id: &str, ts: &str, sig: &str) -> Option<HeaderMap> {
    let mut h = HeaderMap::new();
    h.insert(HEADER_ID, HeaderValue::from_str(id).ok()?);
    h.insert(HEADER_TIMESTAMP, HeaderValue::from_str(ts).ok()?);
    h.insert(HEADER_SIGNATURE, HeaderValue::from_str(sig).ok()?);
    Some(h)
}

/// Visible ASCII and tabs: what `HeaderValue::to_str` lets through.
fn plain(raw: &str) -> bool {
    raw.bytes().all(|b| (32..127).contains(&b) || b == b'\t')
}

/// Would `check_request` accept this id header?
fn id_acceptable(raw: &str) -> bool {
    let id = raw.trim();
    plain(raw) && !id.is_empty() && id.len() <= hooks::inbound::MAX_WEBHOOK_ID_LEN && !id.chars().any(|c| c.is_whitespace() || c.is_control())
}
