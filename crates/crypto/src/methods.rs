//! What each lab method is for, as data a web page can render next to the tool.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MethodKind {
    /// Nothing can turn the output back into the input.
    OneWay,
    /// The right key turns the output back into the input.
    TwoWay,
    /// A secret key signs, a public key verifies.
    Signature,
}

impl MethodKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OneWay => "one-way",
            Self::TwoWay => "two-way",
            Self::Signature => "signature",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MethodInfo {
    /// Stable id, usable in URLs and API paths.
    pub id: &'static str,
    pub name: &'static str,
    pub kind: MethodKind,
    pub what_for: &'static str,
    pub not_for: &'static str,
}

const METHODS: &[MethodInfo] = &[
    MethodInfo {
        id: "sha256",
        name: "SHA-256",
        kind: MethodKind::OneWay,
        what_for: "A fixed 32-byte fingerprint of any data: checking downloads, content addressing, detecting changes.",
        not_for: "Passwords (far too fast to brute-force: use Argon2id) or proving who made the data (anyone can recompute it: use HMAC or a signature).",
    },
    MethodInfo {
        id: "sha512",
        name: "SHA-512",
        kind: MethodKind::OneWay,
        what_for: "A 64-byte fingerprint from the same family as SHA-256; often faster on 64-bit CPUs.",
        not_for: "Passwords or authenticity, for the same reasons as SHA-256.",
    },
    MethodInfo {
        id: "sha3-256",
        name: "SHA3-256",
        kind: MethodKind::OneWay,
        what_for: "A 32-byte fingerprint from a different design (Keccak) than SHA-2, as a backup if SHA-2 were ever weakened.",
        not_for: "Passwords or authenticity; and it gives different output than SHA-256, so the two are not interchangeable.",
    },
    MethodInfo {
        id: "hmac-sha256",
        name: "HMAC-SHA256",
        kind: MethodKind::OneWay,
        what_for: "A tag that proves a message was made by someone holding the shared secret key and was not changed (webhooks, API request signing, cookies).",
        not_for: "Passwords, hiding the message (it stays readable), or proof to a third party (anyone who can verify can also forge: use a signature).",
    },
    MethodInfo {
        id: "argon2id",
        name: "Argon2id",
        kind: MethodKind::OneWay,
        what_for: "Storing passwords: deliberately slow and memory-hard, salted, with its parameters kept in the PHC string.",
        not_for: "Hashing files or high-entropy keys (needlessly slow: use SHA-256 / HMAC), or anything you need to read back.",
    },
    MethodInfo {
        id: "aes-256-gcm",
        name: "AES-256-GCM",
        kind: MethodKind::TwoWay,
        what_for: "Encrypting data that you later decrypt with the same key; tampering with ciphertext or associated data is detected. Fastest where the CPU has AES instructions.",
        not_for: "Passwords (store an Argon2id hash), or ever reusing a nonce with the same key, which leaks plaintext and lets tags be forged.",
    },
    MethodInfo {
        id: "chacha20-poly1305",
        name: "ChaCha20-Poly1305",
        kind: MethodKind::TwoWay,
        what_for: "The same job as AES-256-GCM (RFC 8439, used by TLS and WireGuard); fast and constant-time in software, e.g. in the browser or on phones.",
        not_for: "Passwords, or reusing a nonce with the same key (same failure as GCM).",
    },
    MethodInfo {
        id: "ed25519",
        name: "Ed25519",
        kind: MethodKind::Signature,
        what_for: "Signing messages so anyone with the public key can check who signed and that nothing changed (software releases, tokens, commits).",
        not_for: "Keeping the message secret (signing does not encrypt), or sharing the secret key with the verifier.",
    },
];

/// All lab methods in the order a page should show them.
pub fn methods() -> &'static [MethodInfo] {
    METHODS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_kind_serializes_as_documented() {
        let mut ids: Vec<_> = methods().iter().map(|m| m.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), methods().len());
        for kind in [MethodKind::OneWay, MethodKind::TwoWay, MethodKind::Signature] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }
}
