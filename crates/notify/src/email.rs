//! Real e-mail over SMTP (lettre's connection on rustls, in a pool of ours): pooled connections, STARTTLS or implicit TLS with the
//! certificate checked against the web PKI roots (and an operator's own CA, if given), a plain-text
//! and an HTML body from one template, a `Message-ID` that stays the same across retries and the
//! notification id in `X-Notification-Id`.
//!
//! Only notifications outside simulation runs (API, workflow and account mail) are sent here; runs keep
//! the simulated provider. With no `notify.email.host` every e-mail stays simulated (the library's
//! default; the server's dev mode and test stacks point it at the local capture server).
//!
//! Failures are classified as SMTP means them: a 4xx answer or a lost connection is retried on
//! `notify.email.retry` (greylisting wants minutes, not seconds), a 5xx answer is permanent and the
//! notification becomes a dead letter at once.

use std::time::Duration;

use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, Message};
use serde::{Deserialize, Serialize};

use crate::config::WebhookRetry;
use crate::error::NotifyError;
use crate::model::Job;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text: only for a server on loopback (production refuses it for any other host).
    None,
    /// STARTTLS, required (port 587 by default): a server that does not offer it is a failure.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465 by default).
    Tls,
}

/// `notify.email.*`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EmailConfig {
    /// The SMTP server; empty: e-mail is simulated everywhere.
    pub host: String,
    /// 0: the TLS mode's usual port (25 plain, 587 STARTTLS, 465 TLS).
    pub port: u16,
    pub tls: SmtpTls,
    /// A PEM file of one more CA to trust (a private relay); the web PKI roots are always trusted.
    pub ca_file: String,
    /// SMTP AUTH, when the server wants it. Never logged.
    pub username: String,
    pub password: String,
    /// The sender, `Name <address>` or an address.
    pub from: String,
    /// SMTP connections kept open and used at once.
    pub pool_size: u32,
    /// Longest wait for the server at each step.
    pub timeout_ms: u64,
    /// Retries after a 4xx answer or a lost connection: 1, 5 and 15 minutes, 1 and 4 hours.
    pub retry: WebhookRetry,
    /// Who users may send e-mail to: `*` (anyone), `@example.com` (a domain) or an address. `None`: the
    /// server decides (anyone in dev mode, nobody but the operator's list in production).
    pub allow_recipients: Option<Vec<String>>,
    /// What happens to a user's e-mail when `host` is empty: simulated (true) or refused at enqueue
    /// with a clear error (false). `None`: the server decides (refused in production); here, simulated.
    pub simulate_when_unset: Option<bool>,
}

impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .field("username", &self.username)
            .field("password", &if self.password.is_empty() { "" } else { "[redacted]" })
            .field("from", &self.from)
            .field("pool_size", &self.pool_size)
            .field("timeout_ms", &self.timeout_ms)
            .field("retry", &self.retry)
            .field("allow_recipients", &self.allow_recipients)
            .finish()
    }
}

/// The retry waits of real e-mail (ms).
pub const EMAIL_SCHEDULE_MS: [u64; 5] = [60_000, 300_000, 900_000, 3_600_000, 14_400_000];

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 0,
            tls: SmtpTls::Starttls,
            ca_file: String::new(),
            username: String::new(),
            password: String::new(),
            from: "Implementation-Eng <notifications@localhost>".into(),
            pool_size: 16,
            timeout_ms: 30_000,
            retry: WebhookRetry { schedule_ms: EMAIL_SCHEDULE_MS.to_vec(), max_pending_per_endpoint: 0, ..WebhookRetry::default() },
            allow_recipients: None,
            simulate_when_unset: None,
        }
    }
}

impl EmailConfig {
    /// Real SMTP is set up.
    pub fn is_real(&self) -> bool {
        !self.host.trim().is_empty()
    }

    pub fn port(&self) -> u16 {
        match (self.port, self.tls) {
            (0, SmtpTls::None) => 25,
            (0, SmtpTls::Starttls) => 587,
            (0, SmtpTls::Tls) => 465,
            (p, _) => p,
        }
    }

    /// May a user send e-mail to `address` (already a valid address)?
    pub fn allows(&self, address: &str) -> bool {
        let Some(list) = &self.allow_recipients else { return true };
        let address = address.to_ascii_lowercase();
        list.iter()
            .map(|e| e.trim().to_ascii_lowercase())
            .any(|e| e == "*" || (e.starts_with('@') && address.ends_with(&e)) || (!e.starts_with('@') && !e.is_empty() && e == address))
    }
}

/// A recipient as an e-mail address, or why it is not one.
pub fn parse_recipient(recipient: &str) -> Result<Address, &'static str> {
    recipient.trim().parse::<Address>().map_err(|_| "is not an e-mail address")
}

/// `X-Notification-Id`: which notification a message is, for the recipient's support and for tests.
#[derive(Clone)]
struct NotificationIdHeader(String);

impl Header for NotificationIdHeader {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Notification-Id")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// The product's own messages, named by a payload's `template` (the onboarding workflow's welcome and
/// cancellation): subject and text, with `{name}` from the payload's `name`.
const TEMPLATES: &[(&str, &str, &str)] = &[
    (
        "welcome",
        "Welcome to Implementation-Eng, {name}",
        "Hello {name},\n\nYour account is ready. You can sign in at any time and find your notifications, webhooks and workflows in one place.\n\nIf you did not sign up, reply to this e-mail and we will close the account.",
    ),
    (
        "onboarding_cancelled",
        "Your sign-up was cancelled",
        "Hello {name},\n\nWe could not finish setting up your account, so we cancelled the sign-up and kept nothing of it.\n\nYou are welcome to try again whenever you like.",
    ),
];

/// What the template takes from a notification's payload: a known `template` (see [`TEMPLATES`]), or
/// `subject` and `text` when they are strings, else a generic subject and the payload itself as
/// indented JSON. No HTML is taken from users: the HTML part is the same text, escaped, in the
/// product's own layout.
fn content(job: &Job) -> (String, String) {
    let payload: serde_json::Value = serde_json::from_str(&job.payload).unwrap_or(serde_json::Value::Null);
    let field = |k: &str| payload.get(k).and_then(|v| v.as_str()).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let named = field("template").and_then(|t| TEMPLATES.iter().find(|(name, ..)| *name == t));
    if let Some((_, subject, text)) = named {
        let name = one_line(&field("name").unwrap_or_else(|| "there".into()), 100);
        return (subject.replace("{name}", &name), text.replace("{name}", &name));
    }
    // A subject is one line: folded by lettre, but a newline in it would be a header injection attempt.
    let subject = one_line(&field("subject").unwrap_or_else(|| "A notification from Implementation-Eng".into()), 200);
    let text = field("text").unwrap_or_else(|| serde_json::to_string_pretty(&payload).unwrap_or_default());
    (subject, text)
}

/// `s` as one line of at most `max` characters: control characters (line breaks among them) become
/// spaces.
fn one_line(s: &str, max: usize) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).take(max).collect()
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The message for `job`, from `from` to `to`. The `Message-ID` is the notification's, so a retry
/// that the server did receive the first time is recognisably the same message.
pub fn compose(job: &Job, from: &Mailbox, to: Address) -> Result<Message, String> {
    let (subject, text) = content(job);
    let paragraphs: String = text.split("\n\n").map(|p| format!("<p>{}</p>", escape_html(p).replace('\n', "<br>"))).collect();
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif;line-height:1.5\">{paragraphs}\
         <hr><p style=\"color:#555;font-size:small\">Sent by Implementation-Eng. Notification {id}.</p></body></html>",
        id = escape_html(&job.id.to_string())
    );
    let text = format!("{text}\n\n-- \nSent by Implementation-Eng. Notification {}.\n", job.id);
    let domain = from.email.domain().to_owned();
    let local: String = job.id.to_string().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect();
    Message::builder()
        .from(from.clone())
        .to(Mailbox::new(None, to))
        .subject(subject)
        .message_id(Some(format!("<{local}@{domain}>")))
        .header(NotificationIdHeader(job.id.to_string()))
        .multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(text))
                .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(html)),
        )
        .map_err(|e| format!("cannot build the message: {e}"))
}

/// The pooled SMTP client. The pool is ours, over lettre's connection (which does the protocol, TLS
/// and AUTH): lettre's own pool connects without `TCP_NODELAY`, so the message's last small write (the
/// final `.`) waited for the server's delayed ACK, about 40 ms a message on every connection (measured:
/// 341 e-mails/s with 8 connections, p50 47 ms; see docs/benchmarks.md). Ours sets it.
pub(crate) struct Mailer {
    from: Mailbox,
    host: String,
    port: u16,
    tls: Option<(SmtpTls, TlsParameters)>,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
    /// Connections in use at once, at most `pool_size`.
    slots: tokio::sync::Semaphore,
    /// Open connections not in use, with when each was last used (the newest last).
    idle: std::sync::Mutex<Vec<(AsyncSmtpConnection, std::time::Instant)>>,
}

/// An idle connection older than this is closed rather than reused (servers drop idle clients).
const IDLE_FOR: Duration = Duration::from_secs(60);

/// One attempt's result: delivered, or the error for the attempt log and whether retrying can help.
pub(crate) struct Sent {
    pub result: Result<(), String>,
    pub permanent: bool,
}

impl Mailer {
    pub fn new(cfg: &EmailConfig) -> Result<Self, NotifyError> {
        let invalid = |field: &str, msg: String| NotifyError::invalid(&format!("notify.email.{field}"), msg);
        let from: Mailbox = cfg.from.parse().map_err(|_| invalid("from", "must be an address or `Name <address>`".into()))?;
        let host = cfg.host.trim().to_owned();
        let tls = match cfg.tls {
            SmtpTls::None => None,
            mode => {
                let mut params = TlsParameters::builder(host.clone());
                if !cfg.ca_file.trim().is_empty() {
                    let pem = std::fs::read(cfg.ca_file.trim()).map_err(|e| invalid("ca_file", format!("cannot be read: {e}")))?;
                    let cert = Certificate::from_pem(&pem).map_err(|e| invalid("ca_file", format!("is not a PEM certificate: {e}")))?;
                    params = params.add_root_certificate(cert);
                }
                Some((mode, params.build_rustls().map_err(|e| invalid("tls", format!("cannot set up TLS: {e}")))?))
            }
        };
        let credentials = (!cfg.username.is_empty()).then(|| Credentials::new(cfg.username.clone(), cfg.password.clone()));
        let pool = cfg.pool_size.max(1) as usize;
        Ok(Self {
            from,
            port: cfg.port(),
            host,
            tls,
            credentials,
            hello: ClientId::default(),
            timeout: Duration::from_millis(cfg.timeout_ms.max(1)),
            slots: tokio::sync::Semaphore::new(pool),
            idle: std::sync::Mutex::new(Vec::with_capacity(pool)),
        })
    }

    /// A new connection: greeted, TLS as configured (STARTTLS required when asked for), signed in.
    async fn connect(&self) -> Result<AsyncSmtpConnection, Sent> {
        let mut conn = match &self.tls {
            // TLS from the first byte goes through lettre's own connect (no TCP_NODELAY there: the
            // TLS layer's records make the same small writes, so this mode keeps the delay).
            Some((SmtpTls::Tls, params)) => {
                AsyncSmtpConnection::connect_tokio1((self.host.as_str(), self.port), Some(self.timeout), &self.hello, Some(params.clone()), None)
                    .await
                    .map_err(classify)?
            }
            _ => {
                let tcp = match tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect((self.host.as_str(), self.port))).await {
                    Ok(Ok(tcp)) => tcp,
                    Ok(Err(e)) => return Err(Sent { result: Err(format!("SMTP connection failed: {e}")), permanent: false }),
                    Err(_) => return Err(Sent { result: Err("SMTP server timed out: no connection".into()), permanent: false }),
                };
                let _ = tcp.set_nodelay(true);
                let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await.map_err(classify)?;
                if let Some((_, params)) = &self.tls {
                    conn.starttls(params.clone(), &self.hello).await.map_err(classify)?;
                }
                conn
            }
        };
        if let Some(c) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], c).await.map_err(classify)?;
        }
        Ok(conn)
    }

    /// An idle connection young enough to reuse, else a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, Sent> {
        loop {
            let next = self.idle.lock().expect("smtp pool").pop();
            match next {
                Some((conn, at)) if at.elapsed() < IDLE_FOR && !conn.has_broken() => return Ok(conn),
                Some((mut stale, _)) => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), stale.quit()).await;
                }
                None => return self.connect().await,
            }
        }
    }

    pub async fn send(&self, job: &Job) -> Sent {
        let to = match parse_recipient(&job.recipient) {
            Ok(a) => a,
            Err(e) => return Sent { result: Err(format!("recipient {e}")), permanent: true },
        };
        let message = match compose(job, &self.from, to) {
            Ok(m) => m,
            Err(e) => return Sent { result: Err(e), permanent: true },
        };
        let Ok(_slot) = self.slots.acquire().await else {
            return Sent { result: Err("SMTP client closed".into()), permanent: false };
        };
        let attempt = async {
            let mut conn = self.checkout().await?;
            let sent = conn.send(message.envelope(), &message.formatted()).await;
            // lettre closes a connection on any error; a good one goes back for the next message.
            if !conn.has_broken() {
                self.idle.lock().expect("smtp pool").push((conn, std::time::Instant::now()));
            }
            sent.map_err(classify)
        };
        match tokio::time::timeout(self.timeout * 2, attempt).await {
            Ok(Ok(_)) => Sent { result: Ok(()), permanent: false },
            Ok(Err(failed)) => failed,
            Err(_) => Sent { result: Err("SMTP server timed out".into()), permanent: false },
        }
    }
}

/// An SMTP failure as the attempt log says it, and whether it is permanent (a 5xx answer).
fn classify(e: lettre::transport::smtp::Error) -> Sent {
    let what = match e.status().map(u16::from) {
        Some(c) => format!("SMTP {c}"),
        None if e.is_timeout() => "SMTP server timed out".into(),
        None if e.is_tls() => "TLS with the SMTP server failed".into(),
        None => "SMTP connection failed".into(),
    };
    // The server's own words help the owner (a 550 says which rule refused); the error's Display is
    // the reply's text, cut to one short line.
    Sent { result: Err(format!("{what}: {}", one_line(&e.to_string(), 160))), permanent: e.is_permanent() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Channel, NotificationId, SimKnobs};

    fn job(payload: serde_json::Value) -> Job {
        Job {
            id: NotificationId::embedded(42),
            run: None,
            channel: Channel::Email,
            recipient: "ada@example.com".into(),
            payload: payload.to_string(),
            attempts: 0,
            created_ms: 0,
            sim: SimKnobs::default(),
            owner: Some("ada".into()),
            route: None,
            priority: crate::Priority::Normal,
            expires_ms: None,
            receipt: String::new(),
        }
    }

    fn formatted(job: &Job) -> String {
        let from: Mailbox = "Implementation-Eng <notifications@mail.example.org>".parse().unwrap();
        String::from_utf8(compose(job, &from, parse_recipient(&job.recipient).unwrap()).unwrap().formatted()).unwrap()
    }

    #[test]
    fn a_message_has_both_bodies_its_ids_and_no_html_from_the_payload() {
        let m = formatted(&job(serde_json::json!({"subject": "Your invoice", "text": "Total: <b>42</b> & more\n\nThanks"})));
        assert!(m.contains("Subject: Your invoice\r\n"), "{m}");
        assert!(m.contains("Message-ID: <emb_42@mail.example.org>\r\n"), "{m}");
        assert!(m.contains("X-Notification-Id: emb_42\r\n"), "{m}");
        assert!(m.contains("To: ada@example.com\r\n"), "{m}");
        assert!(m.contains("multipart/alternative"), "{m}");
        assert!(m.contains("Content-Type: text/plain; charset=utf-8"), "{m}");
        assert!(m.contains("Content-Type: text/html; charset=utf-8"), "{m}");
        assert!(m.contains("&lt;b&gt;42&lt;/b&gt; &amp; more"), "the payload's markup is escaped in the HTML part: {m}");
        assert!(!m.contains("<b>42</b> &amp;"), "{m}");
    }

    #[test]
    fn without_subject_and_text_the_payload_is_shown_and_a_newline_cannot_add_a_header() {
        let m = formatted(&job(serde_json::json!({"order": 7})));
        assert!(m.contains("Subject: A notification from Implementation-Eng\r\n"), "{m}");
        assert!(m.contains("\"order\": 7"), "{m}");
        let m = formatted(&job(serde_json::json!({"subject": "hi\r\nBcc: victim@example.net"})));
        assert!(!m.contains("\r\nBcc:"), "{m}");
    }

    #[test]
    fn the_products_own_templates_have_their_subject_and_text() {
        let m = formatted(&job(serde_json::json!({"template": "welcome", "name": "Ada\r\nBcc: x@y.z"})));
        assert!(m.contains("Subject: Welcome to Implementation-Eng, Ada  Bcc: x@y.z\r\n"), "one line, whatever the name: {m}");
        assert!(m.contains("Your account is ready."), "{m}");
        assert!(!m.contains("\"template\""), "not the raw payload: {m}");
        let m = formatted(&job(serde_json::json!({"template": "onboarding_cancelled"})));
        assert!(m.contains("Subject: Your sign-up was cancelled\r\n") && m.contains("Hello there,"), "{m}");
        let m = formatted(&job(serde_json::json!({"template": "no_such_one", "x": 1})));
        assert!(
            m.contains("Subject: A notification from Implementation-Eng") && m.contains("no_such_one"),
            "an unknown template is shown as data: {m}"
        );
    }

    #[test]
    fn recipients_are_checked_against_the_operators_list() {
        let mut c = EmailConfig::default();
        assert!(c.allows("anyone@example.net"), "no list: the server decides, so anyone here");
        c.allow_recipients = Some(vec![]);
        assert!(!c.allows("anyone@example.net"), "an empty list allows nobody");
        c.allow_recipients = Some(vec!["@Example.com".into(), "ops@example.org".into()]);
        assert!(c.allows("ada@example.com") && c.allows("ADA@EXAMPLE.COM") && c.allows("ops@example.org"));
        assert!(!c.allows("ada@example.com.evil.net") && !c.allows("ada@notexample.com") && !c.allows("dev@example.org"));
        c.allow_recipients = Some(vec!["*".into()]);
        assert!(c.allows("x@y.z"));
        assert!(parse_recipient("not an address").is_err() && parse_recipient("a@b").is_ok());
    }

    #[test]
    fn ports_follow_the_tls_mode_and_the_password_never_prints() {
        let mut c = EmailConfig { password: "hunter2".into(), ..EmailConfig::default() };
        assert_eq!(c.port(), 587);
        c.tls = SmtpTls::Tls;
        assert_eq!(c.port(), 465);
        c.tls = SmtpTls::None;
        c.port = 2525;
        assert_eq!(c.port(), 2525);
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
