//! What crosses a boundary: between the domain crates and the server, and between the server and every
//! client (the REST API, the pages' server functions and forms, the crypto lab's JSON route, the Python
//! scripts). WASM-safe, so the browser decodes the very types the server encodes.
//!
//! The error contract, in one place:
//! - a domain error implements [`PublicError`]: a stable [`code`](PublicError::code), a [`Kind`], a
//!   message safe to show, the fields it is about, and (for internal failures) the detail that is
//!   logged but never shown. Domain crates know nothing of HTTP and log nothing when an error is made;
//! - [`Kind::status`] is the one map from kinds to HTTP statuses;
//! - every client sees a [`Problem`] (RFC 9457 problem details, `application/problem+json`). An
//!   internal failure's problem carries an `error_id`; the server logs the detail once, under that id.

use serde::{Deserialize, Serialize};

pub mod ids;
pub mod notifications;
pub mod ops;
mod owner;
pub mod push;
pub mod sessions;
pub mod tokens;
pub mod webhooks;
pub mod workflows;

pub use owner::Owner;

/// One refused input, by its name in the request: a form input's `name`, or a path in a JSON body
/// (`steps[2].retry.max_attempts`). Pages put the message under the input of that name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// What sort of failure an error is; the server answers each kind with one status ([`Kind::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The request cannot be read at all (a malformed form, a bad cursor): 400.
    BadRequest,
    /// No credential, or one that is not valid: 401.
    Unauthorized,
    /// A valid credential that may not do this: 403.
    Forbidden,
    /// No such thing for this caller (also when it belongs to someone else): 404.
    NotFound,
    /// The state does not allow it (a name taken, a finished run): 409.
    Conflict,
    /// The body is over its limit: 413.
    TooLarge,
    /// The body is not of a type this route reads: 415.
    UnsupportedMediaType,
    /// The request reads but its values are refused, field by field: 422.
    Invalid,
    /// A limit is reached for now; `Retry-After` says when to come back: 429.
    TooManyRequests,
    /// Our fault; the detail is logged, never shown: 500.
    Internal,
    /// Busy, shutting down or not configured; try again later: 503.
    Unavailable,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::BadRequest,
        Kind::Unauthorized,
        Kind::Forbidden,
        Kind::NotFound,
        Kind::Conflict,
        Kind::TooLarge,
        Kind::UnsupportedMediaType,
        Kind::Invalid,
        Kind::TooManyRequests,
        Kind::Internal,
        Kind::Unavailable,
    ];

    /// The HTTP status every client gets for this kind (the only such map in the codebase).
    pub fn status(self) -> u16 {
        match self {
            Kind::BadRequest => 400,
            Kind::Unauthorized => 401,
            Kind::Forbidden => 403,
            Kind::NotFound => 404,
            Kind::Conflict => 409,
            Kind::TooLarge => 413,
            Kind::UnsupportedMediaType => 415,
            Kind::Invalid => 422,
            Kind::TooManyRequests => 429,
            Kind::Internal => 500,
            Kind::Unavailable => 503,
        }
    }

    /// The kind of an HTTP status (other 4xx are bad requests, other 5xx internal).
    pub fn of_status(status: u16) -> Kind {
        Kind::ALL.into_iter().find(|k| k.status() == status).unwrap_or(if status < 500 { Kind::BadRequest } else { Kind::Internal })
    }

    /// The code of a problem that has no more specific one.
    pub fn code(self) -> &'static str {
        match self {
            Kind::BadRequest => "bad_request",
            Kind::Unauthorized => "unauthorized",
            Kind::Forbidden => "forbidden",
            Kind::NotFound => "not_found",
            Kind::Conflict => "conflict",
            Kind::TooLarge => "payload_too_large",
            Kind::UnsupportedMediaType => "unsupported_media_type",
            Kind::Invalid => "validation_failed",
            Kind::TooManyRequests => "rate_limited",
            Kind::Internal => "internal",
            Kind::Unavailable => "unavailable",
        }
    }

    /// The problem's `title`: the status's reason phrase.
    pub fn title(self) -> &'static str {
        match self {
            Kind::BadRequest => "Bad Request",
            Kind::Unauthorized => "Unauthorized",
            Kind::Forbidden => "Forbidden",
            Kind::NotFound => "Not Found",
            Kind::Conflict => "Conflict",
            Kind::TooLarge => "Payload Too Large",
            Kind::UnsupportedMediaType => "Unsupported Media Type",
            Kind::Invalid => "Unprocessable Entity",
            Kind::TooManyRequests => "Too Many Requests",
            Kind::Internal => "Internal Server Error",
            Kind::Unavailable => "Service Unavailable",
        }
    }
}

/// The message every internal failure shows.
pub const INTERNAL_MESSAGE: &str = "Something went wrong on our side.";

/// An error a client may be told about. Implemented by each domain crate's error type.
pub trait PublicError: std::fmt::Debug {
    /// Stable and machine-readable (`validation_failed`, `quota_exceeded`): clients branch on it, so it
    /// never changes once published. Messages may be reworded.
    fn code(&self) -> &'static str;
    fn kind(&self) -> Kind;
    /// The HTTP status of this error's kind.
    fn status(&self) -> u16 {
        self.kind().status()
    }
    /// Safe to show: no storage, network or key details. For [`Kind::Internal`], [`INTERNAL_MESSAGE`].
    fn public_message(&self) -> String;
    /// The inputs this error is about.
    fn fields(&self) -> &[FieldError] {
        &[]
    }
    /// Seconds for a `Retry-After` header.
    fn retry_after_secs(&self) -> Option<u64> {
        None
    }
    /// What went wrong inside, for the operator's log only (internal failures).
    fn internal_detail(&self) -> Option<String> {
        None
    }
}

/// RFC 9457 problem details: the one error body every client gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// `/api/v1/problems/<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code, e.g. `validation_failed`, `not_found`, `quota_exceeded`.
    pub code: String,
    /// The refused inputs, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The `Retry-After` seconds, for clients that cannot read headers (a page's fetch can).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// For an internal failure: quote it to the operator, whose log has the detail under this id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_id: Option<String>,
    /// The detail of an internal failure, on its way to the server's log. Never serialized.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub internal: Option<String>,
}

impl Problem {
    /// A problem of `kind` with a stable `code` and a public `detail`.
    pub fn new(kind: Kind, code: &str, detail: impl Into<String>) -> Self {
        Problem {
            type_uri: format!("/api/v1/problems/{code}"),
            title: kind.title().into(),
            status: kind.status(),
            detail: detail.into(),
            code: code.into(),
            errors: vec![],
            retry_after: None,
            error_id: None,
            internal: None,
        }
    }

    /// 422 `validation_failed` about one input; the detail names it as the domain errors do
    /// (`field: message`).
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Problem::new(Kind::Invalid, "validation_failed", format!("{field}: {message}")).with_field(field, message)
    }

    /// 500 `internal`; `detail` goes to the log only.
    pub fn internal(detail: impl Into<String>) -> Self {
        Problem { internal: Some(detail.into()), ..Problem::new(Kind::Internal, "internal", INTERNAL_MESSAGE) }
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem::new(Kind::Unauthorized, "unauthorized", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(Kind::NotFound, "not_found", detail)
    }

    pub fn with_field(mut self, field: &str, message: impl Into<String>) -> Self {
        self.errors.push(FieldError::new(field, message));
        self
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn kind(&self) -> Kind {
        Kind::of_status(self.status)
    }

    /// The message about input `name`, if any.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.errors.iter().find(|f| f.field == name).map(|f| f.message.as_str())
    }

    /// A problem for an HTTP status some layer or extractor refused with (a body over its limit, a
    /// wrong content type): the status's kind, and that kind's code.
    pub fn of_status(status: u16, detail: impl Into<String>) -> Self {
        let kind = Kind::of_status(status);
        Problem::new(kind, kind.code(), detail)
    }

    /// The same problem with each of `errors` renamed by `input`: a form whose inputs are named
    /// unlike the domain's fields (`failure_rate` typed as `failure_percent`) says so once, here.
    pub fn renaming_fields(mut self, input: impl Fn(&str) -> String) -> Self {
        for f in &mut self.errors {
            f.field = input(&f.field);
        }
        self
    }

    /// The problem for any public error. An internal error keeps its detail (for the log) and shows
    /// [`INTERNAL_MESSAGE`] whatever its message says.
    pub fn from_error(e: &(impl PublicError + ?Sized)) -> Self {
        let kind = e.kind();
        let detail = if kind == Kind::Internal { INTERNAL_MESSAGE.to_string() } else { e.public_message() };
        let mut p = Problem::new(kind, e.code(), detail);
        p.errors = e.fields().to_vec();
        p.retry_after = e.retry_after_secs();
        if kind == Kind::Internal {
            p.internal = Some(e.internal_detail().unwrap_or_else(|| format!("{e:?}")));
        }
        p
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for Problem {}

/// A new id for an internal failure: the client quotes it, the operator's log has the detail under it.
#[cfg(feature = "axum")]
pub fn new_error_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_string()
}

/// An internal failure's detail on its way from a response to the server's log (a response
/// extension; the server's `problems` middleware writes it once, with the request's method and
/// path, and nothing else ever logs it).
#[cfg(feature = "axum")]
#[derive(Debug, Clone)]
pub struct InternalFailure {
    pub error_id: String,
    pub detail: String,
}

#[cfg(feature = "axum")]
mod axum_response {
    use super::{new_error_id, InternalFailure, Problem};
    use axum_core::body::Body;
    use axum_core::response::{IntoResponse, Response};
    use http::{header, HeaderValue, StatusCode};

    /// `application/problem+json` with the problem's status, `Retry-After` when it has one and
    /// `WWW-Authenticate` on a 401. An internal failure gets an `error_id`; its detail rides in the
    /// response's extensions to the logging middleware and is never in the body.
    impl IntoResponse for Problem {
        fn into_response(mut self) -> Response {
            let internal = self.internal.take();
            if internal.is_some() && self.error_id.is_none() {
                self.error_id = Some(new_error_id());
            }
            let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
            let mut res = Response::new(Body::from(body));
            *res.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let h = res.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
            if let Some(secs) = self.retry_after {
                h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            if self.status == 401 {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"api\""));
            }
            if let (Some(detail), Some(error_id)) = (internal, self.error_id) {
                res.extensions_mut().insert(InternalFailure { error_id, detail });
            }
            res
        }
    }
}

/// Internal failures of server functions, between their encoding (which cannot reach the response)
/// and the server's middleware, which finds their ids in the answer and logs them. Bounded: if no
/// middleware collects them (a test calling a server function directly), the oldest are dropped.
#[cfg(all(feature = "axum", feature = "server-fn"))]
pub mod pending {
    use super::InternalFailure;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    const CAP: usize = 1024;
    static PENDING: Mutex<VecDeque<InternalFailure>> = Mutex::new(VecDeque::new());

    pub(crate) fn put(f: InternalFailure) {
        let mut q = PENDING.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= CAP {
            q.pop_front();
        }
        q.push_back(f);
    }

    /// The failures whose ids appear in `text` (an answer's body or its redirect URL), removed.
    pub fn take_mentioned_in(text: &str) -> Vec<InternalFailure> {
        let mut q = PENDING.lock().unwrap_or_else(|p| p.into_inner());
        let (found, kept): (Vec<_>, Vec<_>) = q.drain(..).partition(|f| text.contains(&f.error_id));
        q.extend(kept);
        found
    }
}

#[cfg(feature = "server-fn")]
mod server_fn_error {
    use super::{Kind, Problem};
    use server_fn::codec::JsonEncoding;
    use server_fn::error::{FromServerFnError, ServerFnErrorErr};

    /// A server function fails with a [`Problem`], encoded as JSON; the server's `server_fn_status`
    /// middleware answers it with the problem's status and `application/problem+json`.
    impl FromServerFnError for Problem {
        type Encoder = JsonEncoding;

        /// On the server, an internal failure gets its `error_id` here and its detail goes to
        /// [`pending`](crate::pending) for the middleware to log; the detail is never encoded.
        #[cfg(feature = "axum")]
        fn ser(&self) -> server_fn::Bytes {
            use server_fn::Encodes;
            let mut p = self.clone();
            if let Some(detail) = p.internal.take() {
                let error_id = p.error_id.get_or_insert_with(crate::new_error_id).clone();
                crate::pending::put(crate::InternalFailure { error_id, detail });
            }
            JsonEncoding::encode(&p).unwrap_or_default()
        }

        fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
            match value {
                // The arguments did not decode: the function never ran, and it is the caller's doing.
                ServerFnErrorErr::Args(_) | ServerFnErrorErr::MissingArg(_) | ServerFnErrorErr::Deserialization(_) => {
                    Problem::new(Kind::BadRequest, "bad_request", "The request could not be read. Reload the page and try again.")
                }
                ServerFnErrorErr::Request(_) | ServerFnErrorErr::Response(_) => {
                    Problem::new(Kind::Unavailable, "unreachable", "The server could not be reached. Check your connection and try again.")
                }
                ServerFnErrorErr::UnsupportedRequestMethod(m) => Problem::new(Kind::BadRequest, "bad_request", m),
                other => Problem::internal(other.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Leaky;

    impl PublicError for Leaky {
        fn code(&self) -> &'static str {
            "internal"
        }
        fn kind(&self) -> Kind {
            Kind::Internal
        }
        fn public_message(&self) -> String {
            "disk full at /var/secret".into()
        }
        fn internal_detail(&self) -> Option<String> {
            Some("disk full at /var/secret".into())
        }
    }

    #[test]
    fn an_internal_error_never_shows_its_detail_but_keeps_it_for_the_log() {
        let p = Problem::from_error(&Leaky);
        assert_eq!((p.status, p.detail.as_str()), (500, INTERNAL_MESSAGE));
        assert_eq!(p.internal.as_deref(), Some("disk full at /var/secret"));
        let json = serde_json::to_string(&p).unwrap();
        assert!(!json.contains("secret"), "{json}");
    }

    #[test]
    fn problems_have_the_documented_shape_and_round_trip() {
        let p = Problem::invalid("steps[0].name", "must not be empty").with_retry_after(3);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["type"], "/api/v1/problems/validation_failed");
        assert_eq!((v["status"].as_u64(), v["title"].as_str()), (Some(422), Some("Unprocessable Entity")));
        assert_eq!(v["errors"][0]["field"], "steps[0].name");
        assert_eq!(v["retry_after"], 3);
        assert_eq!(serde_json::from_value::<Problem>(v).unwrap(), p);
        let v = serde_json::to_value(Problem::unauthorized("no")).unwrap();
        assert!(v.get("errors").is_none() && v.get("retry_after").is_none() && v.get("error_id").is_none(), "{v}");
    }

    #[test]
    fn every_kind_has_its_own_status_and_reads_back() {
        let mut statuses: Vec<u16> = Kind::ALL.iter().map(|k| k.status()).collect();
        statuses.sort_unstable();
        statuses.dedup();
        assert_eq!(statuses.len(), Kind::ALL.len());
        for k in Kind::ALL {
            assert_eq!(Kind::of_status(k.status()), k);
        }
        assert_eq!((Kind::of_status(418), Kind::of_status(502)), (Kind::BadRequest, Kind::Internal));
    }

    #[test]
    fn a_single_field_refusal_names_its_field() {
        assert_eq!(Problem::invalid("password", "too short").detail, "password: too short");
        assert_eq!(Problem::not_found("Not found.").detail, "Not found.");
        assert_eq!(Problem::invalid("a", "x").field("a"), Some("x"));
    }
}
