//! Delivery to each channel: a real signed webhook POST over a pooled keep-alive client, real e-mail
//! over SMTP for notifications outside simulation runs ([`crate::email`]), simulated providers for
//! simulation runs, SMS and push (they only wait and fail as told — no message leaves the machine),
//! and a no-op channel that measures the pipeline itself.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::error::NotifyError;
use crate::model::{Channel, Job};
use crate::routing::{refused_by_policy, AttemptObserver, AttemptReport, GuardedResolver, RouteError, WebhookRouting};
use crate::signature::{sign_with_all, SigningKey, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};

pub(crate) struct Deliverer {
    http: reqwest::Client,
    webhook_url: String,
    key: SigningKey,
    timeout: Duration,
    pool_max_idle: usize,
    /// Set once the endpoint owner plugs in (before workers start, usually); read per webhook job.
    routed: RwLock<Option<Arc<Routed>>>,
    /// Token buckets of rate-limited endpoints, by route, with the rate each was made for.
    endpoint_limits: std::sync::Mutex<std::collections::HashMap<String, (u32, governor::DefaultDirectRateLimiter)>>,
    observers: RwLock<Arc<[Arc<dyn AttemptObserver>]>>,
    /// The SMTP client, when `notify.email.host` is set.
    mailer: Option<crate::email::Mailer>,
    /// This server's VAPID identity, when `notify.push.vapid_private_key` is set.
    vapid: Option<crate::webpush::Vapid>,
    /// The SMS provider's API, when `notify.sms.url` is set.
    sms: Option<crate::config::SmsConfig>,
}

/// Routed deliveries get their own client: its resolver applies the address policy, and it ignores
/// proxy settings (a proxy would resolve the name itself, out of the policy's sight).
struct Routed {
    routing: WebhookRouting,
    http: reqwest::Client,
}

/// What one attempt came to.
pub(crate) struct Delivery {
    pub result: Result<(), String>,
    pub status: Option<u16>,
    /// Retrying cannot help: no request was made (the target is disabled or not allowed), or the
    /// receiver answered 410 Gone.
    pub give_up: bool,
    /// How long the receiver asked us to wait (`Retry-After` on 429, 502, 503, 504).
    pub retry_after: Option<Duration>,
    /// Not attempted: the endpoint's rate limit is reached; try again after this long.
    pub defer: Option<Duration>,
}

impl Delivery {
    fn of(result: Result<(), String>) -> Self {
        Self { result, status: None, give_up: false, retry_after: None, defer: None }
    }

    fn refused(e: impl Into<String>) -> Self {
        Self { result: Err(e.into()), status: None, give_up: true, retry_after: None, defer: None }
    }

    fn deferred(wait: Duration) -> Self {
        Self { result: Err("rate limited".into()), status: None, give_up: false, retry_after: None, defer: Some(wait) }
    }
}

/// The statuses after which a receiver's `Retry-After` is honoured (Standard Webhooks: it is busy or
/// its gateway is).
const SLOW_DOWN: [u16; 4] = [429, 502, 503, 504];

/// `Retry-After` as seconds or an HTTP date, as a wait from `now`.
fn retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

fn client(timeout: Duration, pool_max_idle: usize) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(pool_max_idle)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none()) // a redirect is a failure (Standard Webhooks)
}

impl Deliverer {
    pub fn new(c: &crate::config::PipelineConfig) -> Result<Self, NotifyError> {
        let (cfg, email, push) = (&c.webhook, &c.email, &c.push);
        let key =
            SigningKey::from_secret(&cfg.secret).map_err(|_| NotifyError::invalid("notify.webhook.secret", "must be whsec_ followed by base64"))?;
        let timeout = Duration::from_millis(cfg.timeout_ms.max(1));
        let http = client(timeout, cfg.pool_max_idle).build().map_err(|e| NotifyError::internal("cannot build HTTP client", e))?;
        Ok(Self {
            http,
            webhook_url: cfg.url.clone(),
            key,
            timeout,
            pool_max_idle: cfg.pool_max_idle,
            routed: RwLock::new(None),
            endpoint_limits: Default::default(),
            observers: RwLock::new(Arc::from(Vec::new())),
            mailer: if email.is_real() { Some(crate::email::Mailer::new(email)?) } else { None },
            vapid: push.vapid()?,
            sms: c.sms.is_set().then(|| c.sms.clone()),
        })
    }

    pub fn set_routing(&self, routing: WebhookRouting) -> Result<(), NotifyError> {
        let http = client(self.timeout, self.pool_max_idle)
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { policy: routing.policy.clone() }))
            .build()
            .map_err(|e| NotifyError::internal("cannot build HTTP client", e))?;
        *self.routed.write().expect("routing lock") = Some(Arc::new(Routed { routing, http }));
        Ok(())
    }

    pub fn add_observer(&self, observer: Arc<dyn AttemptObserver>) {
        let mut o = self.observers.write().expect("observers lock");
        let mut all: Vec<_> = o.iter().cloned().collect();
        all.push(observer);
        *o = Arc::from(all);
    }

    pub fn has_observers(&self) -> bool {
        !self.observers.read().expect("observers lock").is_empty()
    }

    pub async fn observe(&self, report: &AttemptReport) {
        let observers = self.observers.read().expect("observers lock").clone();
        for o in observers.iter() {
            o.on_attempt(report).await;
        }
    }

    /// How long `route` (limited to `per_sec`) must wait for its next delivery; `None`: go now (and
    /// the delivery is counted).
    fn endpoint_wait(&self, route: &str, per_sec: u32) -> Option<Duration> {
        use governor::clock::Clock;
        let per_sec = std::num::NonZeroU32::new(per_sec)?;
        let mut limits = self.endpoint_limits.lock().expect("endpoint limits");
        if limits.len() > 100_000 {
            limits.clear(); // bounded: a forgotten bucket only forgets a burst
        }
        let (rate, bucket) =
            limits.entry(route.to_string()).or_insert_with(|| (per_sec.get(), governor::RateLimiter::direct(governor::Quota::per_second(per_sec))));
        if *rate != per_sec.get() {
            // The owner changed the limit: a new bucket.
            *rate = per_sec.get();
            *bucket = governor::RateLimiter::direct(governor::Quota::per_second(per_sec));
        }
        bucket.check().err().map(|not_until| not_until.wait_time_from(governor::clock::DefaultClock::default().now()))
    }

    /// One attempt. The error string is short and safe to store in the attempt history.
    pub async fn deliver(&self, job: &Job) -> Delivery {
        match job.channel {
            Channel::Noop => Delivery::of(Ok(())),
            Channel::Webhook => self.deliver_webhook(job).await,
            Channel::Email => match (&self.mailer, job.run) {
                (Some(mailer), None) => {
                    let sent = mailer.send(job).await;
                    // A 5xx answer (or an address that is none) is permanent: a dead letter now.
                    Delivery { result: sent.result, status: None, give_up: sent.permanent, retry_after: None, defer: None }
                }
                _ => Delivery::of(simulate_provider(job).await),
            },
            Channel::Push => match (&self.vapid, job.run) {
                (Some(vapid), None) => self.deliver_push(vapid, job).await,
                _ => Delivery::of(simulate_provider(job).await),
            },
            Channel::Sms => match (&self.sms, job.run) {
                (Some(sms), None) => self.deliver_sms(sms, job).await,
                _ => Delivery::of(simulate_provider(job).await),
            },
        }
    }

    pub fn vapid_public_key(&self) -> Option<String> {
        self.vapid.as_ref().map(|v| v.public_key())
    }

    /// The push subscriptions plugged in with the routing (none in a process without `hooks`).
    pub fn push_targets(&self) -> Option<Arc<dyn crate::routing::PushTargets>> {
        self.routed.read().expect("routing lock").as_ref().and_then(|r| r.routing.push.clone())
    }

    /// One Web Push message (RFC 8030): the payload encrypted for the subscription (RFC 8291), signed
    /// for by VAPID (RFC 8292), through the guarded client, as webhooks are.
    async fn deliver_push(&self, vapid: &crate::webpush::Vapid, job: &Job) -> Delivery {
        use crate::webpush;
        let routed = self.routed.read().expect("routing lock").clone();
        let Some((r, targets)) = routed.as_ref().and_then(|r| Some((r, r.routing.push.clone()?))) else {
            return Delivery::refused("no push subscriptions in this process");
        };
        let target = match targets.resolve(job).await {
            Ok(t) => t,
            Err(RouteError::Retry(e)) => return Delivery::of(Err(e)),
            Err(RouteError::GiveUp(e)) => return Delivery::refused(e),
        };
        if let Some(ip) = literal_ip(&target.endpoint) {
            if !r.routing.policy.permits(ip) {
                return Delivery::refused("address not allowed");
            }
        }
        let body = match webpush::encrypt(job.payload.as_bytes(), &webpush::Subscriber { p256dh: &target.p256dh, auth: &target.auth }) {
            Ok(b) => b,
            Err(e) => return Delivery::refused(e.to_string()),
        };
        let now = crate::model::now_ms();
        let authorization = match vapid.authorization(&target.endpoint, now / 1000) {
            Ok(a) => a,
            Err(e) => return Delivery::refused(e.to_string()),
        };
        let sent = r
            .http
            .post(&target.endpoint)
            .header("TTL", webpush::ttl_secs(job.expires_ms, now).to_string())
            .header("Urgency", webpush::urgency(job.priority))
            .header(http::header::CONTENT_ENCODING, "aes128gcm")
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .header(http::header::AUTHORIZATION, authorization)
            .body(body)
            .send()
            .await;
        let res = match sent {
            Ok(res) => res,
            Err(e) => return Delivery::of(Err(send_error(&e).to_string())),
        };
        let Answer { status, retry_after, result } = answer(res).await;
        if result.is_ok() {
            return Delivery { result, status: Some(status), give_up: false, retry_after: None, defer: None };
        }
        // 404/410: the subscription expired or the browser unsubscribed (RFC 8030 §7.3): forget it.
        // 400, 401, 403, 413: our request was refused as it is; sending it again cannot help.
        let gone = matches!(status, 404 | 410);
        if gone {
            targets.gone(job).await;
        }
        let permanent = gone || matches!(status, 400 | 401 | 403 | 413);
        Delivery { result, status: Some(status), give_up: permanent, retry_after, defer: None }
    }

    /// One SMS through the provider's API (Twilio's shape: Basic auth, a form with `To`, `From` and
    /// `Body`). The URL is the operator's, not a user's, so the plain client is used, as for the
    /// configured webhook receiver.
    async fn deliver_sms(&self, sms: &crate::config::SmsConfig, job: &Job) -> Delivery {
        let payload: serde_json::Value = serde_json::from_str(&job.payload).unwrap_or(serde_json::Value::Null);
        let body = match payload.get("text").and_then(|t| t.as_str()) {
            Some(t) => t.to_string(),
            None => job.payload.clone(),
        };
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("To", job.recipient.trim())
            .append_pair("From", &sms.from)
            .append_pair("Body", &body)
            .finish();
        let sent = self
            .http
            .post(sms.messages_url())
            .basic_auth(sms.account_sid.trim(), Some(&sms.auth_token))
            .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await;
        let res = match sent {
            Ok(res) => res,
            Err(e) => return Delivery::of(Err(send_error(&e).to_string())),
        };
        let Answer { status, retry_after, result } = answer(res).await;
        // A 4xx other than 429 is this message refused as it is (a bad number, bad credentials):
        // sending it again cannot help. 429 and 5xx are the provider's trouble: retried.
        let permanent = (400..500).contains(&status) && status != 429;
        Delivery { result, status: Some(status), give_up: permanent, retry_after, defer: None }
    }

    async fn deliver_webhook(&self, job: &Job) -> Delivery {
        let routed = self.routed.read().expect("routing lock").clone();
        let target = match &routed {
            Some(r) => match r.routing.targets.resolve(job).await {
                Ok(t) => t,
                Err(RouteError::Retry(e)) => return Delivery::of(Err(e)),
                Err(RouteError::GiveUp(e)) => return Delivery::refused(e),
            },
            None => None,
        };
        let ts = crate::model::now_ms() / 1000;
        let request = match (&routed, target) {
            (Some(r), Some(t)) => {
                if let (Some(per_sec), Some(route)) = (t.rate_limit_per_sec, job.route.as_deref()) {
                    if let Some(wait) = self.endpoint_wait(route, per_sec) {
                        return Delivery::deferred(wait);
                    }
                }
                if t.keys.is_empty() {
                    return Delivery::refused("no signing key");
                }
                // IP-literal hosts never reach the resolver, so the policy is applied here as well.
                if let Some(ip) = literal_ip(&t.url) {
                    if !r.routing.policy.permits(ip) {
                        return Delivery::refused("address not allowed");
                    }
                }
                let signature = sign_with_all(&t.keys, &t.message_id, ts, t.body.as_bytes());
                r.http.post(&t.url).header(HEADER_ID, &t.message_id).header(HEADER_SIGNATURE, signature).body(t.body)
            }
            _ => {
                let id = job.id.to_string();
                let body = webhook_body(job);
                let signature = self.key.sign(&id, ts, body.as_bytes());
                self.http.post(&self.webhook_url).header(HEADER_ID, id).header(HEADER_SIGNATURE, signature).body(body)
            }
        };
        let sent = request.header(HEADER_TIMESTAMP, ts.to_string()).header(http::header::CONTENT_TYPE, "application/json").send().await;
        let res = match sent {
            Ok(res) => res,
            Err(e) => return Delivery::of(Err(send_error(&e).to_string())),
        };
        let Answer { status, retry_after, result } = answer(res).await;
        // 410 Gone: the receiver says the endpoint is no more (Standard Webhooks); no retry.
        Delivery { result, status: Some(status), give_up: status == 410, retry_after, defer: None }
    }
}

/// What a receiver, push service or provider answered: its status, the wait it asked for (with 429,
/// 502, 503 or 504) and, unless 2xx, the error for the attempt log with the start of its body.
struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    result: Result<(), String>,
}

async fn answer(res: reqwest::Response) -> Answer {
    let status = res.status().as_u16();
    let wait = SLOW_DOWN
        .contains(&status)
        .then(|| {
            res.headers().get(http::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| retry_after(v, std::time::SystemTime::now()))
        })
        .flatten();
    let body = read_capped(res, MAX_RESPONSE_BYTES).await;
    let result = if (200..300).contains(&status) {
        Ok(())
    } else {
        match snippet(&body) {
            Some(s) => Err(format!("HTTP {status}: {s}")),
            None => Err(format!("HTTP {status}")),
        }
    };
    Answer { status, retry_after: wait, result }
}

/// A failed request, as the attempt log says it (the policy's refusal told apart from the network's).
fn send_error(e: &reqwest::Error) -> &'static str {
    if refused_by_policy(e) {
        "address not allowed"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    }
}

/// Most of a receiver's answer that is read (as the workflow client does): a huge or endless body
/// costs at most this much memory, then the connection is dropped.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Most of the answer kept in the attempt log (bytes, before cleaning).
pub const SNIPPET_BYTES: usize = 200;

/// Reads the body chunk by chunk up to `cap` bytes. A body that fits is read to its end (so the
/// connection goes back to the pool); a longer one is cut and its connection closed.
async fn read_capped(mut res: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = res.chunk().await {
        let room = cap - out.len();
        if chunk.len() >= room {
            out.extend_from_slice(&chunk[..room]);
            if chunk.len() > room {
                break;
            }
        } else {
            out.extend_from_slice(&chunk);
        }
        if out.len() >= cap {
            break;
        }
    }
    out
}

/// The start of a failed answer, for the attempt log: valid UTF-8, control characters as spaces,
/// whitespace collapsed; `None` when there is nothing to show.
fn snippet(body: &[u8]) -> Option<String> {
    let head = &body[..body.len().min(SNIPPET_BYTES)];
    let text = String::from_utf8_lossy(head);
    let cleaned: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    if words.is_empty() {
        return None;
    }
    let mut s = words.join(" ");
    if body.len() > SNIPPET_BYTES {
        s.push('…');
    }
    Some(s)
}

/// The host of `url` when it is an IP address (as the URL parser normalises it: `http://2130706433/`
/// is 127.0.0.1).
fn literal_ip(url: &str) -> Option<std::net::IpAddr> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let host = parsed.host_str()?;
    host.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// The webhook body: the payload as `data`, with the id, channel and recipient alongside.
pub(crate) fn webhook_body(job: &Job) -> String {
    let recipient = serde_json::to_string(&job.recipient).unwrap_or_else(|_| "\"\"".into());
    format!(r#"{{"type":"notification.{}","id":"{}","recipient":{},"data":{}}}"#, job.channel, job.id, recipient, job.payload)
}

/// A stand-in for a third-party provider: waits `latency_ms`, fails with probability `failure_rate`.
async fn simulate_provider(job: &Job) -> Result<(), String> {
    if job.sim.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(job.sim.latency_ms as u64)).await;
    }
    if job.sim.failure_rate > 0.0 && rand::random::<f32>() < job.sim.failure_rate {
        return Err(format!("simulated {} provider failure", job.channel));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NotificationId, SimKnobs};

    fn job(channel: Channel, sim: SimKnobs) -> Job {
        Job {
            id: NotificationId::embedded(7),
            run: None,
            channel,
            recipient: "a\"b@example.test".into(),
            payload: r#"{"x":1}"#.into(),
            attempts: 0,
            created_ms: 0,
            sim,
            owner: None,
            route: None,
            priority: crate::Priority::Normal,
            expires_ms: None,
            receipt: String::new(),
        }
    }

    #[test]
    fn the_webhook_body_is_valid_json_with_the_id() {
        let body = webhook_body(&job(Channel::Webhook, SimKnobs::default()));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["id"], "emb_7");
        assert_eq!(v["recipient"], "a\"b@example.test");
        assert_eq!(v["data"]["x"], 1);
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(retry_after(&date, now), Some(Duration::from_secs(90)));
        assert_eq!(retry_after(&httpdate::fmt_http_date(now - Duration::from_secs(5)), now), Some(Duration::ZERO), "a past date: now");
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-1", now), None);
    }

    #[test]
    fn snippets_are_short_clean_text() {
        assert_eq!(snippet(b""), None);
        assert_eq!(snippet(b" \r\n "), None);
        assert_eq!(snippet(b"no\r\nsuch\x00 thing").as_deref(), Some("no such thing"));
        let long = snippet(&[b'x'; 10_000]).unwrap();
        assert_eq!(long, format!("{}…", "x".repeat(SNIPPET_BYTES)));
        // A multi-byte character cut at the limit does not break the text.
        let mut cut = vec![b'a'; SNIPPET_BYTES - 1];
        cut.extend("é".as_bytes());
        assert!(snippet(&cut).unwrap().is_char_boundary(0));
    }

    #[tokio::test]
    async fn simulated_providers_fail_as_often_as_told() {
        let always = job(Channel::Sms, SimKnobs { failure_rate: 1.0, latency_ms: 0 });
        assert_eq!(simulate_provider(&always).await.unwrap_err(), "simulated sms provider failure");
        let never = job(Channel::Email, SimKnobs { failure_rate: 0.0, latency_ms: 1 });
        assert!(simulate_provider(&never).await.is_ok());
        let mut fails = 0;
        for _ in 0..2000 {
            if simulate_provider(&job(Channel::Push, SimKnobs { failure_rate: 0.3, latency_ms: 0 })).await.is_err() {
                fails += 1;
            }
        }
        assert!((450..750).contains(&fails), "{fails}");
    }
}
