//! A ready executor for `http` steps, for hosts to call from `StepHost::execute`. The host supplies the
//! policy ([`HttpPolicy`]: the server plugs its SSRF guard in, both as a check before the request and
//! as the resolver the connection goes through, so a name re-pointed in between — DNS rebinding — is
//! still refused). Redirects are not followed, so a permitted URL cannot bounce the request somewhere
//! that is not, and proxy settings from the environment are ignored (a proxy would connect for us).

use async_trait::async_trait;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

use crate::definition::{forbidden_header, status_expected};
use crate::host::{HttpRequest, StepError};

/// Says whether a URL may be called; `Err` carries the reason (shown in the run's timeline).
pub type UrlCheck = Arc<dyn Fn(&url::Url) -> Result<(), String> + Send + Sync>;

/// Where `http` steps may go, asked for every request.
#[async_trait]
pub trait HttpPolicy: Send + Sync {
    /// Before anything is sent (may resolve the name); `Err` carries the reason for the timeline.
    async fn check(&self, url: &url::Url) -> Result<(), String>;

    /// The resolver this request's connection goes through (it is asked per request, so it may depend
    /// on the URL's port); `None`: the system's. It is not asked for IP-literal URLs: `check` judges those.
    fn resolver(&self, _url: &url::Url) -> Option<Arc<dyn reqwest::dns::Resolve>> {
        None
    }

    /// Was this failed request refused by that resolver? Then the step fails for good (`url_rejected`).
    fn refused(&self, _e: &reqwest::Error) -> bool {
        false
    }
}

/// A synchronous URL check as a policy (no resolver of its own).
struct CheckOnly(UrlCheck);

#[async_trait]
impl HttpPolicy for CheckOnly {
    async fn check(&self, url: &url::Url) -> Result<(), String> {
        (self.0)(url)
    }
}

/// reqwest wants a sized resolver type.
struct SharedResolver(Arc<dyn reqwest::dns::Resolve>);

impl reqwest::dns::Resolve for SharedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        self.0.resolve(name)
    }
}

pub struct HttpCaller {
    client: reqwest::Client,
    policy: Arc<dyn HttpPolicy>,
    max_response_bytes: usize,
}

fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().connect_timeout(Duration::from_secs(10)).user_agent("flows/0.1")
}

impl HttpCaller {
    pub fn new(check: UrlCheck) -> HttpCaller {
        Self::with_policy(Arc::new(CheckOnly(check)))
    }

    pub fn with_policy(policy: Arc<dyn HttpPolicy>) -> HttpCaller {
        let client = client_builder().build().expect("HTTP client with rustls");
        HttpCaller { client, policy, max_response_bytes: 64 * 1024 }
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
        // Also refused when the definition is saved; checked again for definitions stored before that.
        for (k, v) in &req.headers {
            if forbidden_header(k) {
                return Err(StepError::permanent("header_refused", format!("a workflow step may not set the {k} header")));
            }
            if http::HeaderName::from_bytes(k.as_bytes()).is_err() || http::HeaderValue::from_str(v).is_err() {
                return Err(StepError::permanent("header_refused", format!("the {k} header is not a valid header")));
            }
        }
        self.policy.check(&url).await.map_err(|why| StepError::permanent("url_rejected", why))?;
        let method = reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|_| StepError::permanent("invalid_method", req.method.clone()))?;
        // A client of its own when the policy resolves for this request: the resolver knows its port.
        let client = match self.policy.resolver(&url) {
            Some(r) => client_builder()
                .dns_resolver(Arc::new(SharedResolver(r)))
                .build()
                .map_err(|_| StepError::retryable("http_client", "could not set up the HTTP client"))?,
            None => self.client.clone(),
        };
        let mut rb = client.request(method, url).timeout(timeout);
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
            if self.policy.refused(&e) {
                StepError::permanent("url_rejected", "resolves to an address that is not allowed")
            } else if e.is_timeout() {
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
