//! Known-answer tests from the standards, as plain functions so that any runner can call them:
//! `cargo test` natively here, and later a wasm-bindgen-test runner in the browser, proving both
//! targets compute the same bytes. Each returns `Err` describing the first mismatch.

use argon2::{Algorithm, Argon2, AssociatedData, ParamsBuilder, Version};

use crate::*;

pub type KatResult = Result<(), String>;
/// A named known-answer test.
pub type Kat = (&'static str, fn() -> KatResult);

/// Every known-answer test, by name.
pub const ALL: &[Kat] = &[
    ("sha256_fips180", sha256_fips180),
    ("sha512_fips180", sha512_fips180),
    ("sha3_256_fips202", sha3_256_fips202),
    ("hmac_sha256_rfc4231", hmac_sha256_rfc4231),
    ("hmac_sha256_verify_rejects_tampering", hmac_sha256_verify_rejects_tampering),
    ("aes256gcm_mcgrew_viega_13_14", aes256gcm_mcgrew_viega_13_14),
    ("aes256gcm_mcgrew_viega_16", aes256gcm_mcgrew_viega_16),
    ("aes256gcm_rejects_tampering", aes256gcm_rejects_tampering),
    ("chacha20poly1305_rfc8439", chacha20poly1305_rfc8439),
    ("chacha20poly1305_rejects_tampering", chacha20poly1305_rejects_tampering),
    ("argon2id_rfc9106", argon2id_rfc9106),
    ("argon2id_phc_round_trip_owasp", argon2id_phc_round_trip_owasp),
    ("argon2id_fixed_salt_is_deterministic", argon2id_fixed_salt_is_deterministic),
    ("ed25519_rfc8032_test1", ed25519_rfc8032_test1),
    ("ed25519_rfc8032_test2", ed25519_rfc8032_test2),
    ("ed25519_rejects_flipped_signature", ed25519_rejects_flipped_signature),
];

/// Runs all of them; the names of the failures with their messages.
pub fn run_all() -> Vec<(&'static str, String)> {
    ALL.iter().filter_map(|(name, test)| test().err().map(|e| (*name, e))).collect()
}

fn bytes(hex: &str) -> Vec<u8> {
    parse_hex(hex).expect("known-answer constants are valid hex")
}

fn expect_hex(what: &str, got: &str, want: &str) -> KatResult {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got}, want {want}"))
    }
}

fn expect_err<T: std::fmt::Debug>(what: &str, got: Result<T, CryptoError>, want: CryptoError) -> KatResult {
    match got {
        Err(e) if e == want => Ok(()),
        other => Err(format!("{what}: got {other:?}, want Err({want:?})")),
    }
}

fn flip_byte(mut data: Vec<u8>, index: usize) -> Vec<u8> {
    data[index] ^= 0x01;
    data
}

// FIPS 180-4 examples (as published in the NIST CSRC example files).
pub fn sha256_fips180() -> KatResult {
    expect_hex("SHA-256(\"abc\")", &sha256(b"abc").hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")?;
    expect_hex("SHA-256(\"\")", &sha256(b"").hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")?;
    expect_hex("SHA-256(\"abc\") base64", &sha256(b"abc").base64, "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=")
}

pub fn sha512_fips180() -> KatResult {
    expect_hex(
        "SHA-512(\"abc\")",
        &sha512(b"abc").hex,
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
    )?;
    expect_hex(
        "SHA-512(\"\")",
        &sha512(b"").hex,
        "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
    )
}

// FIPS 202 examples.
pub fn sha3_256_fips202() -> KatResult {
    expect_hex("SHA3-256(\"abc\")", &sha3_256(b"abc").hex, "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532")?;
    expect_hex("SHA3-256(\"\")", &sha3_256(b"").hex, "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a")
}

// RFC 4231 section 4: test cases 1, 2, 3, 4 and 6 (6 has a key longer than the block size).
const RFC4231_TAG_1: &str = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7";

pub fn hmac_sha256_rfc4231() -> KatResult {
    let cases: [(&str, Vec<u8>, Vec<u8>, &str); 5] = [
        ("case 1", vec![0x0b; 20], b"Hi There".to_vec(), RFC4231_TAG_1),
        ("case 2", b"Jefe".to_vec(), b"what do ya want for nothing?".to_vec(), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        ("case 3", vec![0xaa; 20], vec![0xdd; 50], "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        ("case 4", (0x01..=0x19).collect(), vec![0xcd; 50], "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        (
            "case 6",
            vec![0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
    ];
    for (name, key, message, tag) in cases {
        expect_hex(&format!("HMAC-SHA256 RFC 4231 {name}"), &hmac_sha256(&key, &message).hex, tag)?;
        if hmac_sha256_verify(&key, &message, tag) != Ok(true) {
            return Err(format!("HMAC-SHA256 RFC 4231 {name}: verify rejected the correct tag"));
        }
    }
    Ok(())
}

pub fn hmac_sha256_verify_rejects_tampering() -> KatResult {
    let key = [0x0b; 20];
    let flipped = hex::encode(flip_byte(bytes(RFC4231_TAG_1), 31));
    let truncated = &RFC4231_TAG_1[..32];
    for (what, message, tag) in [
        ("flipped tag", &b"Hi There"[..], flipped.as_str()),
        ("truncated tag", b"Hi There", truncated),
        ("altered message", b"Hi there", RFC4231_TAG_1),
    ] {
        if hmac_sha256_verify(&key, message, tag) != Ok(false) {
            return Err(format!("HMAC-SHA256 verify accepted a {what}"));
        }
    }
    expect_err("HMAC-SHA256 verify with non-hex tag", hmac_sha256_verify(&key, b"Hi There", "xyz"), CryptoError::InvalidHex)
}

// McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13, 14 and 16 (256-bit keys).
const GCM16_KEY: &str = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
const GCM16_IV: &str = "cafebabefacedbaddecaf888";
const GCM16_AAD: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
const GCM16_PLAINTEXT: &str =
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
const GCM16_SEALED: &str = concat!(
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
    "76fc6ece0f4e1768cddf8853bb2d551b", // tag
);

pub fn aes256gcm_mcgrew_viega_13_14() -> KatResult {
    let (key, nonce) = ([0u8; 32], [0u8; 12]);
    let case13 = aes256gcm_encrypt(&key, &nonce, b"", b"").map_err(|e| e.to_string())?;
    expect_hex("AES-256-GCM test case 13 (tag only)", &case13.hex, "530f8afbc74536b9a963b4f1c4cb738b")?;
    let case14 = aes256gcm_encrypt(&key, &nonce, &[0u8; 16], b"").map_err(|e| e.to_string())?;
    expect_hex("AES-256-GCM test case 14", &case14.hex, "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919")?;
    let opened = aes256gcm_decrypt(&key, &nonce, &bytes(&case14.hex), b"").map_err(|e| e.to_string())?;
    expect_hex("AES-256-GCM test case 14 decrypt", &opened.hex, &"00".repeat(16))
}

pub fn aes256gcm_mcgrew_viega_16() -> KatResult {
    let (key, nonce, aad) = (bytes(GCM16_KEY), bytes(GCM16_IV), bytes(GCM16_AAD));
    let sealed = aes256gcm_encrypt(&key, &nonce, &bytes(GCM16_PLAINTEXT), &aad).map_err(|e| e.to_string())?;
    expect_hex("AES-256-GCM test case 16", &sealed.hex, GCM16_SEALED)?;
    let opened = aes256gcm_decrypt(&key, &nonce, &bytes(GCM16_SEALED), &aad).map_err(|e| e.to_string())?;
    expect_hex("AES-256-GCM test case 16 decrypt", &opened.hex, GCM16_PLAINTEXT)
}

pub fn aes256gcm_rejects_tampering() -> KatResult {
    let (key, nonce, aad, sealed) = (bytes(GCM16_KEY), bytes(GCM16_IV), bytes(GCM16_AAD), bytes(GCM16_SEALED));
    let last = sealed.len() - 1;
    let cases = [
        ("wrong key", flip_byte(key.clone(), 0), nonce.clone(), sealed.clone(), aad.clone()),
        ("wrong nonce", key.clone(), flip_byte(nonce.clone(), 11), sealed.clone(), aad.clone()),
        ("flipped ciphertext byte", key.clone(), nonce.clone(), flip_byte(sealed.clone(), 0), aad.clone()),
        ("flipped tag byte", key.clone(), nonce.clone(), flip_byte(sealed.clone(), last), aad.clone()),
        ("wrong AAD", key.clone(), nonce.clone(), sealed.clone(), flip_byte(aad.clone(), 0)),
        ("missing AAD", key, nonce, sealed, Vec::new()),
    ];
    for (what, key, nonce, sealed, aad) in cases {
        expect_err(&format!("AES-256-GCM {what}"), aes256gcm_decrypt(&key, &nonce, &sealed, &aad), CryptoError::DecryptionFailed)?;
    }
    Ok(())
}

// RFC 8439 section 2.8.2.
const RFC8439_PLAINTEXT: &str = "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
const RFC8439_KEY: &str = "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f";
const RFC8439_NONCE: &str = "070000004041424344454647";
const RFC8439_AAD: &str = "50515253c0c1c2c3c4c5c6c7";
const RFC8439_SEALED: &str = concat!(
    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b",
    "1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc",
    "3ff4def08e4b7a9de576d26586cec64b6116",
    "1ae10b594f09e26a7e902ecbd0600691", // tag
);

pub fn chacha20poly1305_rfc8439() -> KatResult {
    let (key, nonce, aad) = (bytes(RFC8439_KEY), bytes(RFC8439_NONCE), bytes(RFC8439_AAD));
    let sealed = chacha20poly1305_encrypt(&key, &nonce, RFC8439_PLAINTEXT.as_bytes(), &aad).map_err(|e| e.to_string())?;
    expect_hex("ChaCha20-Poly1305 RFC 8439 2.8.2", &sealed.hex, RFC8439_SEALED)?;
    let opened = chacha20poly1305_decrypt(&key, &nonce, &bytes(RFC8439_SEALED), &aad).map_err(|e| e.to_string())?;
    match opened.utf8.as_deref() {
        Some(RFC8439_PLAINTEXT) => Ok(()),
        other => Err(format!("ChaCha20-Poly1305 RFC 8439 decrypt: got {other:?}")),
    }
}

pub fn chacha20poly1305_rejects_tampering() -> KatResult {
    let (key, nonce, aad, sealed) = (bytes(RFC8439_KEY), bytes(RFC8439_NONCE), bytes(RFC8439_AAD), bytes(RFC8439_SEALED));
    let last = sealed.len() - 1;
    let cases = [
        ("wrong key", flip_byte(key.clone(), 31), nonce.clone(), sealed.clone(), aad.clone()),
        ("wrong nonce", key.clone(), flip_byte(nonce.clone(), 0), sealed.clone(), aad.clone()),
        ("flipped ciphertext byte", key.clone(), nonce.clone(), flip_byte(sealed.clone(), 10), aad.clone()),
        ("flipped tag byte", key.clone(), nonce.clone(), flip_byte(sealed.clone(), last), aad.clone()),
        ("wrong AAD", key, nonce, sealed, flip_byte(aad, 11)),
    ];
    for (what, key, nonce, sealed, aad) in cases {
        expect_err(&format!("ChaCha20-Poly1305 {what}"), chacha20poly1305_decrypt(&key, &nonce, &sealed, &aad), CryptoError::DecryptionFailed)?;
    }
    Ok(())
}

// RFC 9106 section 5.3. It uses a secret and associated data, which the lab API does not
// expose, so this drives the argon2 crate directly; it checks the implementation we link.
pub fn argon2id_rfc9106() -> KatResult {
    let params = ParamsBuilder::new()
        .m_cost(32)
        .t_cost(3)
        .p_cost(4)
        .output_len(32)
        .data(AssociatedData::new(&[0x04; 12]).map_err(|e| e.to_string())?)
        .build()
        .map_err(|e| e.to_string())?;
    let argon2 = Argon2::new_with_secret(&[0x03; 8], Algorithm::Argon2id, Version::V0x13, params).map_err(|e| e.to_string())?;
    let mut tag = [0u8; 32];
    argon2.hash_password_into(&[0x01; 32], &[0x02; 16], &mut tag).map_err(|e| e.to_string())?;
    expect_hex("Argon2id RFC 9106 5.3", &hex::encode(tag), "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659")
}

pub fn argon2id_phc_round_trip_owasp() -> KatResult {
    let phc = argon2id_hash(b"correct horse battery staple", Argon2Params::default(), None).map_err(|e| e.to_string())?;
    if !phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$") {
        return Err(format!("Argon2id PHC does not carry the OWASP parameters: {phc}"));
    }
    match (argon2_verify(&phc, b"correct horse battery staple"), argon2_verify(&phc, b"correct horse battery stapler")) {
        (Ok(true), Ok(false)) => Ok(()),
        other => Err(format!("Argon2id verify (right, wrong password): got {other:?}, want (Ok(true), Ok(false))")),
    }
}

pub fn argon2id_fixed_salt_is_deterministic() -> KatResult {
    let params = Argon2Params { m_kib: 64, t: 1, p: 1 };
    let hash = |salt: &[u8]| argon2id_hash(b"password", params, Some(salt)).map_err(|e| e.to_string());
    let (first, second, other_salt) = (hash(b"saltsalt")?, hash(b"saltsalt")?, hash(b"saltsalu")?);
    // "saltsalt" is c2FsdHNhbHQ in unpadded base64, as PHC strings write it.
    if !first.starts_with("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$") {
        return Err(format!("Argon2id fixed-salt PHC has unexpected layout: {first}"));
    }
    if first != second || first == other_salt {
        return Err(format!("Argon2id fixed salt: {first} / {second} / {other_salt}"));
    }
    Ok(())
}

// RFC 8032 section 7.1.
const RFC8032_TEST1_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const RFC8032_TEST1_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const RFC8032_TEST1_SIGNATURE: &str =
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

fn ed25519_known_answer(name: &str, secret: &str, public: &str, message: &[u8], signature: &str) -> KatResult {
    let secret = bytes(secret);
    expect_hex(&format!("Ed25519 {name} public key"), &ed25519_public_key(&secret).map_err(|e| e.to_string())?.hex, public)?;
    expect_hex(&format!("Ed25519 {name} signature"), &ed25519_sign(&secret, message).map_err(|e| e.to_string())?.hex, signature)?;
    ed25519_verify(&bytes(public), message, &bytes(signature)).map_err(|e| format!("Ed25519 {name} verify: {e}"))
}

pub fn ed25519_rfc8032_test1() -> KatResult {
    ed25519_known_answer("RFC 8032 TEST 1", RFC8032_TEST1_SECRET, RFC8032_TEST1_PUBLIC, b"", RFC8032_TEST1_SIGNATURE)
}

pub fn ed25519_rfc8032_test2() -> KatResult {
    ed25519_known_answer(
        "RFC 8032 TEST 2",
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        &[0x72],
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    )
}

pub fn ed25519_rejects_flipped_signature() -> KatResult {
    let (public, signature) = (bytes(RFC8032_TEST1_PUBLIC), bytes(RFC8032_TEST1_SIGNATURE));
    // Byte 0 lies in R (a curve point), byte 40 in S (a scalar): both halves must be covered.
    for index in [0, 40, 63] {
        expect_err(
            &format!("Ed25519 signature with byte {index} flipped"),
            ed25519_verify(&public, b"", &flip_byte(signature.clone(), index)),
            CryptoError::InvalidSignature,
        )?;
    }
    expect_err("Ed25519 altered message", ed25519_verify(&public, b"x", &signature), CryptoError::InvalidSignature)
}

#[cfg(test)]
mod tests {
    // One #[test] per known-answer function, so a failure names the vector.
    macro_rules! kat_tests {
        ($($name:ident),* $(,)?) => {
            $(#[test]
            fn $name() {
                if let Err(message) = super::$name() {
                    panic!("{message}");
                }
            })*

            #[test]
            fn every_kat_is_listed_in_all() {
                let tested = [$(stringify!($name)),*];
                let listed: Vec<&str> = super::ALL.iter().map(|(name, _)| *name).collect();
                assert_eq!(listed, tested);
            }
        };
    }

    kat_tests!(
        sha256_fips180,
        sha512_fips180,
        sha3_256_fips202,
        hmac_sha256_rfc4231,
        hmac_sha256_verify_rejects_tampering,
        aes256gcm_mcgrew_viega_13_14,
        aes256gcm_mcgrew_viega_16,
        aes256gcm_rejects_tampering,
        chacha20poly1305_rfc8439,
        chacha20poly1305_rejects_tampering,
        argon2id_rfc9106,
        argon2id_phc_round_trip_owasp,
        argon2id_fixed_salt_is_deterministic,
        ed25519_rfc8032_test1,
        ed25519_rfc8032_test2,
        ed25519_rejects_flipped_signature,
    );
}
