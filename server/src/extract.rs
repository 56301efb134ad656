//! Extractors for what handlers used to dig out of the request by hand. Each refuses with a problem,
//! so a handler's signature says what it needs and nothing else checks it again.
//! (The API caller with its scopes is [`crate::api::Caller`]; the client's address is the
//! `ClientAddr` extension that `middleware::client_address` derives once per request.)

use auth::sessions::SignedIn;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use contract::Problem;
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// The signed-in user of a browser session (`middleware::load_signed_in` put it there); anyone
/// else gets a 401 problem.
pub struct Me(pub SignedIn);

impl<S: Send + Sync> FromRequestParts<S> for Me {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<SignedIn>().cloned().map(Me).ok_or_else(AppError::sign_in_first)
    }
}

/// A JSON body; one that is missing, malformed or of the wrong shape is a 422 problem naming `body`
/// (see [`crate::api::parse_json`]). Routes that honour `Idempotency-Key` take the raw bytes instead,
/// because the key is bound to exactly those bytes.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = read(req, state).await?;
        crate::api::parse_json(&body).map(ApiJson)
    }
}

/// Like [`ApiJson`], but an empty body means `T::default()` (options that may all be left out).
pub struct ApiJsonOrDefault<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for ApiJsonOrDefault<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = read(req, state).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(ApiJsonOrDefault(T::default()));
        }
        crate::api::parse_json(&body).map(ApiJsonOrDefault)
    }
}

async fn read<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Problem> {
    Bytes::from_request(req, state)
        .await
        .map_err(|r| Problem::of_status(r.status().as_u16(), format!("The request body could not be read: {}", r.body_text())))
}

/// The one path parameter of a route, parsed as the id it must be (`contract::ids`): anything else is
/// the id's own 404 problem, before the handler runs.
pub struct IdPath<T>(pub T);

impl<T, S> FromRequestParts<S> for IdPath<T>
where
    T: std::str::FromStr<Err = Problem> + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state).await.map_err(|_| Problem::not_found("Not found."))?;
        raw.parse().map(IdPath)
    }
}
