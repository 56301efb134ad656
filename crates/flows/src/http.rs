//! A ready executor for `http` steps, for hosts to call from `StepHost::execute`. The host supplies the
//! URL policy (the server plugs its SSRF guard in); redirects are not followed, so a permitted URL
//! cannot bounce the request somewhere that is not.

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

use crate::definition::status_expected;
use crate::host::{HttpRequest, StepError};

/// Says whether a URL may be called; `Err` carries the reason (shown in the run's timeline).
pub type UrlCheck = Arc<dyn Fn(&url::Url) -> Result<(), String> + Send + Sync>;

pub struct HttpCaller {
    client: reqwest::Client,
    check: UrlCheck,
    max_response_bytes: usize,
}

impl HttpCaller {
    pub fn new(check: UrlCheck) -> HttpCaller {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .user_agent("flows/0.1")
            .build()
            .expect("HTTP client with rustls");
        HttpCaller { client, check, max_response_bytes: 64 * 1024 }
    }

    /// Every http(s) URL (tests, trusted deployments).
    pub fn allow_all() -> UrlCheck {
        Arc::new(|_| Ok(()))
    }

    /// Sends the request; the output is `{"status": 201, "body": <JSON or text>}`. Statuses outside
    /// `expect_status` fail with code `http_<status>`, retryable for 408, 429 and 5xx.
    pub async fn call(&self, req: &HttpRequest, timeout: Duration) -> Result<Value, StepError> {
        let url = url::Url::parse(&req.url).map_err(|e| StepError::permanent("invalid_url", format!("{}: {e}", req.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(StepError::permanent("invalid_url", "only http and https URLs"));
        }
        (self.check)(&url).map_err(|why| StepError::permanent("url_rejected", why))?;
        let method = reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|_| StepError::permanent("invalid_method", req.method.clone()))?;
        let mut rb = self.client.request(method, url).timeout(timeout);
        let mut has_content_type = false;
        for (k, v) in &req.headers {
            has_content_type |= k.eq_ignore_ascii_case("content-type");
            rb = rb.header(k, v);
        }
        match &req.body {
            None => {}
            Some(Value::String(s)) => rb = rb.body(s.clone()),
            Some(v) => {
                if !has_content_type {
                    rb = rb.header("content-type", "application/json");
                }
                rb = rb.body(v.to_string());
            }
        }
        let mut resp = rb.send().await.map_err(|e| {
            if e.is_timeout() {
                StepError::retryable("timeout", format!("no answer within {} ms", timeout.as_millis()))
            } else if e.is_connect() {
                StepError::retryable("connect", "could not connect")
            } else {
                StepError::retryable("http_request", "the request failed")
            }
        })?;
        let status = resp.status().as_u16();
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|_| StepError::retryable("http_body", "the response body broke off"))? {
            if bytes.len() + chunk.len() > self.max_response_bytes {
                return Err(StepError::permanent("response_too_large", format!("more than {} bytes", self.max_response_bytes)));
            }
            bytes.extend_from_slice(&chunk);
        }
        let body = serde_json::from_slice::<Value>(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if status_expected(&req.expect_status, status) {
            return Ok(json!({"status": status, "body": body}));
        }
        let snippet: String = match &body {
            Value::String(s) => s.chars().take(200).collect(),
            v => v.to_string().chars().take(200).collect(),
        };
        let message = format!("unexpected status {status}: {snippet}");
        Err(StepError { code: format!("http_{status}"), message, retryable: status >= 500 || status == 429 || status == 408 })
    }
}
