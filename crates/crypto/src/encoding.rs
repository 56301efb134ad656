use base64::alphabet;
use base64::engine::{DecodePaddingMode, Engine, GeneralPurpose, GeneralPurposeConfig};
use serde::{Deserialize, Serialize};

use crate::CryptoError;

/// Bytes shown both ways a person might want to copy them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encoded {
    pub hex: String,
    pub base64: String,
}

impl Encoded {
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self { hex: hex::encode(bytes), base64: base64::engine::general_purpose::STANDARD.encode(bytes) }
    }
}

/// A hash or MAC output.
pub type Digest = Encoded;
/// AEAD output: ciphertext with the 16-byte tag appended.
pub type Ciphertext = Encoded;

/// Decrypted bytes, plus the text when they are valid UTF-8 (the common case in the lab).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plaintext {
    pub hex: String,
    pub base64: String,
    pub utf8: Option<String>,
}

impl Plaintext {
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let Encoded { hex, base64 } = Encoded::from_bytes(bytes);
        Self { hex, base64, utf8: std::str::from_utf8(bytes).ok().map(str::to_owned) }
    }
}

/// Hex as people paste it: case-insensitive, optional `0x`, whitespace ignored (test vectors
/// are often printed in groups).
pub fn parse_hex(input: &str) -> Result<Vec<u8>, CryptoError> {
    let trimmed = input.trim();
    let digits = trimmed.strip_prefix("0x").or_else(|| trimmed.strip_prefix("0X")).unwrap_or(trimmed);
    let compact: String = digits.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(compact).map_err(|_| CryptoError::InvalidHex)
}

// Padding is optional in practice (JWTs, URLs drop it), so accept it either way.
const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Base64 in the standard or URL-safe alphabet, padded or not, whitespace ignored.
pub fn parse_base64(input: &str) -> Result<Vec<u8>, CryptoError> {
    let compact: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD_LENIENT.decode(&compact).or_else(|_| URL_SAFE_LENIENT.decode(&compact)).map_err(|_| CryptoError::InvalidBase64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::PublicError;

    #[test]
    fn hex_accepts_what_people_paste() {
        assert_eq!(parse_hex("DEADbeef").unwrap(), [0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(parse_hex(" 0xde ad\nbe ef ").unwrap(), [0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(parse_hex("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn hex_rejects_odd_length_and_non_hex() {
        for bad in ["abc", "zz", "0xg0", "12-34"] {
            assert_eq!(parse_hex(bad), Err(CryptoError::InvalidHex), "{bad:?}");
        }
        assert_eq!(CryptoError::InvalidHex.code(), "invalid_hex");
    }

    #[test]
    fn base64_accepts_padded_unpadded_and_url_safe() {
        assert_eq!(parse_base64("aGk=").unwrap(), b"hi");
        assert_eq!(parse_base64("aGk").unwrap(), b"hi");
        assert_eq!(parse_base64("-_8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(parse_base64("+/8=").unwrap(), [0xfb, 0xff]);
    }

    #[test]
    fn base64_rejects_garbage() {
        for bad in ["a", "@@@@", "aGk=="] {
            assert_eq!(parse_base64(bad), Err(CryptoError::InvalidBase64), "{bad:?}");
        }
    }

    #[test]
    fn encoded_round_trips_through_both_parsers() {
        let bytes = [0u8, 1, 2, 250, 255];
        let encoded = Encoded::from_bytes(&bytes);
        assert_eq!(parse_hex(&encoded.hex).unwrap(), bytes);
        assert_eq!(parse_base64(&encoded.base64).unwrap(), bytes);
    }

    #[test]
    fn plaintext_shows_text_only_when_utf8() {
        assert_eq!(Plaintext::from_bytes(b"hi").utf8.as_deref(), Some("hi"));
        assert_eq!(Plaintext::from_bytes(&[0xff]).utf8, None);
    }
}
