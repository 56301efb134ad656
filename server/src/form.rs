//! `StrictForm`: a urlencoded form extractor that refuses invalid UTF-8 instead of replacing it (axum's
//! `Form` decodes lossily, so `%FF` would silently become U+FFFD and reach the login as a username).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use contract::{Kind, Problem};
use serde::de::DeserializeOwned;

use crate::error::AppError;

pub struct StrictForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for StrictForm<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(AppError::refused(
                Kind::UnsupportedMediaType,
                "The form could not be read: expected Content-Type application/x-www-form-urlencoded.",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| AppError::Refused(Problem::of_status(r.status().as_u16(), format!("The form could not be read: {}", r.body_text()))))?;
        parse(&bytes).map(StrictForm)
    }
}

/// [`auth::form::parse_urlencoded`] (strict UTF-8), as a 400 that says why.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    auth::form::parse_urlencoded(bytes).map_err(|why| AppError::BadRequest(format!("The form could not be read: {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct F {
        a: String,
    }

    #[test]
    fn strict_utf8() {
        assert_eq!(parse::<F>(b"a=h%C3%A9llo+world").unwrap().a, "héllo world");
        assert!(parse::<F>(b"a=%FF").is_err());
        assert!(parse::<F>(b"a=\xff").is_err());
        assert!(parse::<F>(b"b=1").unwrap_err().to_string().contains("missing field"));
    }
}
