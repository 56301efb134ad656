//! A small local webhook receiver for tests and demos: verifies Standard Webhooks signatures, counts
//! deliveries per `webhook-id` (so exactly-once-after-dedup can be checked), can be told to fail a share
//! of requests or to stall some past the sender's timeout, and reports its counts at `GET /stats`.
//!
//! It is also the simulated SMS provider, shaped like Twilio's Messages API so a real one can be
//! swapped in by changing `notify.sms.*`: `POST /sms/2010-04-01/Accounts/{AccountSid}/Messages.json`
//! with HTTP Basic auth and a form (`To`, `From`, `Body`), answered `201` with the message's `sid`, or
//! `400` with a Twilio error code (Twilio's own test numbers: `+15005550001` is not a valid number,
//! `+15005550009` cannot receive SMS). Nothing leaves the machine; `GET /sms/messages` lists what came.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::is_e164;
use crate::signature::{SigningKey, DEFAULT_TOLERANCE_SECS, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};

#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub secret: String,
    /// Share of valid requests failed on purpose, with `fail_status`.
    pub fail_rate: f64,
    /// The status of a failure on purpose: 503 unless set (410 to play an endpoint that is gone).
    pub fail_status: u16,
    /// Added to every request.
    pub delay_ms: u64,
    /// Share of valid requests held for `stall_ms` (past the sender's timeout) and then failed.
    pub stall_rate: f64,
    pub stall_ms: u64,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self { secret: crate::config::DEV_WEBHOOK_SECRET.into(), fail_rate: 0.0, fail_status: 503, delay_ms: 0, stall_rate: 0.0, stall_ms: 10_000 }
    }
}

/// The simulated SMS provider's auth token (public: it guards nothing real).
pub const DEV_SMS_AUTH_TOKEN: &str = "dev-sms-auth-token";
/// SMS messages kept for `GET /sms/messages` (the newest).
const SMS_KEPT: usize = 1_000;

/// One SMS as the simulated provider took it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SmsMessage {
    pub sid: String,
    pub account_sid: String,
    pub to: String,
    pub from: String,
    pub body: String,
}

/// A verified request as received (see [`Sink::capture`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CapturedRequest {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: Bytes,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SinkStats {
    pub received: u64,
    /// Answered 2xx: a delivery.
    pub accepted: u64,
    pub bad_signature: u64,
    pub failed_on_purpose: u64,
    pub stalled: u64,
    /// Distinct ids accepted at least once.
    pub unique_ids: u64,
    /// Accepted deliveries beyond the first per id.
    pub duplicates: u64,
    /// SMS taken by the simulated provider, and refused by it (bad credentials, number or body).
    #[serde(default)]
    pub sms_accepted: u64,
    #[serde(default)]
    pub sms_refused: u64,
}

struct State {
    key: SigningKey,
    cfg: SinkConfig,
    received: AtomicU64,
    bad_signature: AtomicU64,
    failed_on_purpose: AtomicU64,
    stalled: AtomicU64,
    accepted: Mutex<HashMap<String, u32>>,
    /// How many more verified requests to keep for [`Sink::captured`].
    capture_left: AtomicU64,
    captured: Mutex<Vec<CapturedRequest>>,
    sms: Mutex<std::collections::VecDeque<SmsMessage>>,
    sms_accepted: AtomicU64,
    sms_refused: AtomicU64,
}

pub struct Sink {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Sink {
    /// Binds `addr` (port 0 for any free port) and serves until dropped or stopped.
    pub async fn start(addr: SocketAddr, cfg: SinkConfig) -> Result<Sink, String> {
        let key = SigningKey::from_secret(&cfg.secret).map_err(|e| format!("secret: {e}"))?;
        if !(0.0..=1.0).contains(&cfg.fail_rate) || !(0.0..=1.0).contains(&cfg.stall_rate) {
            return Err("fail and stall rates must be between 0 and 1".into());
        }
        let listener = TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let state = Arc::new(State {
            key,
            cfg,
            received: AtomicU64::new(0),
            bad_signature: AtomicU64::new(0),
            failed_on_purpose: AtomicU64::new(0),
            stalled: AtomicU64::new(0),
            accepted: Mutex::new(HashMap::new()),
            capture_left: AtomicU64::new(0),
            captured: Mutex::new(Vec::new()),
            sms: Mutex::new(Default::default()),
            sms_accepted: AtomicU64::new(0),
            sms_refused: AtomicU64::new(0),
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let _ = tcp.set_nodelay(true);
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(tcp), svc).await;
                });
            }
        });
        Ok(Sink { addr, state, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to point the webhook channel at.
    pub fn url(&self) -> String {
        format!("http://{}/webhook", self.addr)
    }

    pub fn stats(&self) -> SinkStats {
        stats(&self.state)
    }

    /// Accepted deliveries per `webhook-id`.
    pub fn counts(&self) -> HashMap<String, u32> {
        self.state.accepted.lock().expect("sink lock").clone()
    }

    /// Keeps the headers and body of the next `n` verified requests, for tests to inspect.
    pub fn capture(&self, n: u64) {
        self.state.capture_left.store(n, Ordering::SeqCst);
    }

    /// The verified requests kept so far, oldest first (see [`capture`](Self::capture)).
    pub fn captured(&self) -> Vec<CapturedRequest> {
        self.state.captured.lock().expect("sink lock").clone()
    }

    /// Where `notify.sms.url` points to use this sink as the SMS provider.
    pub fn sms_url(&self) -> String {
        format!("http://{}/sms", self.addr)
    }

    /// The SMS taken so far, oldest first (the newest 1,000).
    pub fn sms(&self) -> Vec<SmsMessage> {
        self.state.sms.lock().expect("sink lock").iter().cloned().collect()
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn stats(s: &State) -> SinkStats {
    let accepted = s.accepted.lock().expect("sink lock");
    let total: u64 = accepted.values().map(|n| *n as u64).sum();
    SinkStats {
        received: s.received.load(Ordering::Relaxed),
        accepted: total,
        bad_signature: s.bad_signature.load(Ordering::Relaxed),
        failed_on_purpose: s.failed_on_purpose.load(Ordering::Relaxed),
        stalled: s.stalled.load(Ordering::Relaxed),
        unique_ids: accepted.len() as u64,
        duplicates: total - accepted.len() as u64,
        sms_accepted: s.sms_accepted.load(Ordering::Relaxed),
        sms_refused: s.sms_refused.load(Ordering::Relaxed),
    }
}

/// A Twilio-shaped error answer.
fn twilio_error(status: StatusCode, code: u32, message: String) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "code": code, "message": message, "status": status.as_u16() });
    text(status, body.to_string(), "application/json")
}

/// Twilio's `Messages.json`: Basic auth as the account in the path, a form with `To`, `From`, `Body`.
async fn sms(s: Arc<State>, account: String, req: Request<Incoming>) -> Response<Full<Bytes>> {
    use base64::Engine;
    let auth = req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic "));
    let decoded = auth.and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok()).and_then(|b| String::from_utf8(b).ok());
    if decoded.as_deref() != Some(&format!("{account}:{DEV_SMS_AUTH_TOKEN}")) {
        s.sms_refused.fetch_add(1, Ordering::Relaxed);
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate".into());
    }
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return twilio_error(StatusCode::PAYLOAD_TOO_LARGE, 21617, "The message body is too long.".into()),
    };
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| form.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let (to, from, text_body) = (field("To"), field("From"), field("Body"));
    let refusal = if !is_e164(&to) || to == "+15005550001" {
        Some((21211, format!("The 'To' number {to} is not a valid phone number.")))
    } else if to == "+15005550009" {
        Some((21614, format!("'To' number {to} is not a mobile number that can receive SMS.")))
    } else if !is_e164(&from) {
        Some((21212, format!("The 'From' number {from} is not a valid phone number.")))
    } else if text_body.is_empty() {
        Some((21602, "Message body is required.".into()))
    } else if text_body.chars().count() > 1600 {
        Some((21617, "The concatenated message body exceeds the 1600 character limit.".into()))
    } else {
        None
    };
    if let Some((code, message)) = refusal {
        s.sms_refused.fetch_add(1, Ordering::Relaxed);
        return twilio_error(StatusCode::BAD_REQUEST, code, message);
    }
    let sid = format!("SM{:032x}", rand::random::<u128>());
    let m = SmsMessage { sid: sid.clone(), account_sid: account.clone(), to: to.clone(), from: from.clone(), body: text_body.clone() };
    {
        let mut kept = s.sms.lock().expect("sink lock");
        if kept.len() >= SMS_KEPT {
            kept.pop_front();
        }
        kept.push_back(m);
    }
    s.sms_accepted.fetch_add(1, Ordering::Relaxed);
    let answer = serde_json::json!({ "sid": sid, "account_sid": account, "to": to, "from": from, "body": text_body, "status": "queued" });
    text(StatusCode::CREATED, answer.to_string(), "application/json")
}

fn text(status: StatusCode, body: impl Into<Bytes>, content_type: &str) -> Response<Full<Bytes>> {
    Response::builder().status(status).header(http::header::CONTENT_TYPE, content_type).body(Full::new(body.into())).expect("valid response")
}

async fn handle(s: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    if req.method() == Method::GET && req.uri().path() == "/stats" {
        let body = serde_json::to_vec(&stats(&s)).unwrap_or_default();
        return Ok(text(StatusCode::OK, body, "application/json"));
    }
    if req.method() == Method::GET && req.uri().path() == "/sms/messages" {
        let all: Vec<SmsMessage> = s.sms.lock().expect("sink lock").iter().cloned().collect();
        return Ok(text(StatusCode::OK, serde_json::to_vec(&all).unwrap_or_default(), "application/json"));
    }
    if let Some(account) = req.uri().path().strip_prefix("/sms/2010-04-01/Accounts/").and_then(|r| r.strip_suffix("/Messages.json")) {
        if req.method() == Method::POST && !account.is_empty() && !account.contains('/') {
            let account = account.to_string();
            return Ok(sms(s, account, req).await);
        }
        return Ok(text(StatusCode::NOT_FOUND, "not found\n", "text/plain"));
    }
    if req.method() != Method::POST {
        return Ok(text(StatusCode::NOT_FOUND, "not found\n", "text/plain"));
    }
    s.received.fetch_add(1, Ordering::Relaxed);
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (id, ts, sig) = (header(HEADER_ID), header(HEADER_TIMESTAMP), header(HEADER_SIGNATURE));
    let body = match Limited::new(req.into_body(), 1024 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(text(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n", "text/plain")),
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let verified = match (&id, &ts, &sig) {
        (Some(id), Some(ts), Some(sig)) => s.key.verify(id, ts, sig, &body, now, DEFAULT_TOLERANCE_SECS).is_ok(),
        _ => false,
    };
    let Some(id) = id.filter(|_| verified) else {
        s.bad_signature.fetch_add(1, Ordering::Relaxed);
        return Ok(text(StatusCode::UNAUTHORIZED, "bad signature\n", "text/plain"));
    };
    if s.capture_left.load(Ordering::Relaxed) > 0 && s.capture_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
        let (timestamp, signature) = (ts.unwrap_or_default(), sig.unwrap_or_default());
        s.captured.lock().expect("sink lock").push(CapturedRequest { id: id.clone(), timestamp, signature, body: body.clone() });
    }
    if s.cfg.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(s.cfg.delay_ms)).await;
    }
    if s.cfg.stall_rate > 0.0 && rand::random::<f64>() < s.cfg.stall_rate {
        s.stalled.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(s.cfg.stall_ms)).await;
        return Ok(text(StatusCode::SERVICE_UNAVAILABLE, "stalled on purpose\n", "text/plain"));
    }
    if s.cfg.fail_rate > 0.0 && rand::random::<f64>() < s.cfg.fail_rate {
        s.failed_on_purpose.fetch_add(1, Ordering::Relaxed);
        let status = StatusCode::from_u16(s.cfg.fail_status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return Ok(text(status, "failed on purpose\n", "text/plain"));
    }
    *s.accepted.lock().expect("sink lock").entry(id).or_default() += 1;
    Ok(text(StatusCode::NO_CONTENT, Bytes::new(), "text/plain"))
}
