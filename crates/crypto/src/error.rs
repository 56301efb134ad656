use contract::{Kind, PublicError};
use thiserror::Error;

/// Everything that can go wrong in here is caused by the input, so each message tells the
/// user what to fix. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CryptoError {
    #[error("the key must be {expected_len} bytes, got {got}")]
    InvalidKey { expected_len: usize, got: usize },
    #[error("the nonce must be {expected_len} bytes, got {got}")]
    InvalidNonce { expected_len: usize, got: usize },
    #[error("not valid hex: use an even number of 0-9 / a-f characters")]
    InvalidHex,
    #[error("not valid base64")]
    InvalidBase64,
    #[error("decryption failed: wrong key, wrong nonce, wrong associated data, or the ciphertext was tampered with")]
    DecryptionFailed,
    #[error("the signature does not verify: wrong public key, altered message, or a malformed signature")]
    InvalidSignature,
    #[error("not a valid Ed25519 public key")]
    InvalidPublicKey,
    #[error("not a valid Argon2 PHC string (expected $argon2id$v=19$m=…,t=…,p=…$salt$hash)")]
    InvalidPhc,
    #[error("invalid parameters: {0}")]
    InvalidParams(String),
}

impl PublicError for CryptoError {
    /// Stable machine-readable code for API responses; the message may be reworded, this may not.
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidKey { .. } => "invalid_key",
            Self::InvalidNonce { .. } => "invalid_nonce",
            Self::InvalidHex => "invalid_hex",
            Self::InvalidBase64 => "invalid_base64",
            Self::DecryptionFailed => "decryption_failed",
            Self::InvalidSignature => "invalid_signature",
            Self::InvalidPublicKey => "invalid_public_key",
            Self::InvalidPhc => "invalid_phc",
            Self::InvalidParams(_) => "invalid_params",
        }
    }

    /// Exhaustive on purpose: a future variant that is the server's fault must decide here.
    fn kind(&self) -> Kind {
        match self {
            Self::InvalidKey { .. }
            | Self::InvalidNonce { .. }
            | Self::InvalidHex
            | Self::InvalidBase64
            | Self::DecryptionFailed
            | Self::InvalidSignature
            | Self::InvalidPublicKey
            | Self::InvalidPhc
            | Self::InvalidParams(_) => Kind::Invalid,
        }
    }

    fn public_message(&self) -> String {
        self.to_string()
    }
}

/// Every client sees a [`contract::Problem`]; `?` in a server function or a handler converts.
impl From<CryptoError> for contract::Problem {
    fn from(e: CryptoError) -> Self {
        contract::Problem::from_error(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::CryptoError::{self, *};
    use contract::{Kind, PublicError};

    #[test]
    fn codes_are_unique_and_all_are_client_errors() {
        let all: [CryptoError; 9] = [
            InvalidKey { expected_len: 32, got: 0 },
            InvalidNonce { expected_len: 12, got: 0 },
            InvalidHex,
            InvalidBase64,
            DecryptionFailed,
            InvalidSignature,
            InvalidPublicKey,
            InvalidPhc,
            InvalidParams(String::new()),
        ];
        let mut codes: Vec<_> = all.iter().map(PublicError::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert!(all.iter().all(|e| e.kind() == Kind::Invalid));
        assert_eq!(InvalidKey { expected_len: 32, got: 16 }.to_string(), "the key must be 32 bytes, got 16");
    }
}
