//! The sign-in form as the server receives it: an `application/x-www-form-urlencoded` body, decoded
//! strictly. Here rather than in the web layer so that the exact decoding the server does can be tested
//! and fuzzed without a web framework (see fuzz/).

use serde::de::DeserializeOwned;
use serde::Deserialize;

/// The fields of `POST /login`. `next` is where to go afterwards; the web layer checks it is a local path.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LoginForm {
    pub username: String,
    pub password: String,
    pub next: Option<String>,
}

/// Decodes a urlencoded body into `T`, refusing invalid UTF-8 (in the body or in any percent-decoded
/// field) instead of replacing it: a lossy decoder would turn `%FF` into U+FFFD and let it reach the
/// login as a username. The error says why, in words fit to show ("it is not valid UTF-8.").
pub fn parse_urlencoded<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "it is not valid UTF-8.".to_string())?;
    for pair in text.split('&') {
        let plus_decoded = pair.replace('+', " ");
        if percent_encoding::percent_decode_str(&plus_decoded).decode_utf8().is_err() {
            return Err("a field is not valid UTF-8.".into());
        }
    }
    serde_urlencoded::from_str(text).map_err(|e| format!("{e}."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_form_decodes_strictly() {
        let f: LoginForm = parse_urlencoded(b"username=h%C3%A9llo+world&password=p%26w%3D&next=%2Fsuccess").unwrap();
        assert_eq!(f, LoginForm { username: "héllo world".into(), password: "p&w=".into(), next: Some("/success".into()) });
        assert_eq!(parse_urlencoded::<LoginForm>(b"username=a&password=b").unwrap().next, None);
        assert!(parse_urlencoded::<LoginForm>(b"username=%FF&password=b").is_err());
        assert!(parse_urlencoded::<LoginForm>(b"username=\xff&password=b").is_err());
        assert!(parse_urlencoded::<LoginForm>(b"username=a").unwrap_err().contains("missing field"));
    }
}
