//! Settings, layered: built-in defaults, then an optional TOML file (`APP_CONFIG_FILE`, default
//! `config/app.toml` if present), then `APP_`-prefixed environment variables with `__` between levels
//! (`APP_SESSION__IDLE_TIMEOUT_SECS=600`). Read once at start-up and passed down.

use auth::ThrottleConfig;
use secrecy::SecretString;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Local development: plain-HTTP cookies allowed, demo user created.
    Dev,
    Production,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub mode: Mode,
    /// `sqlite://path` (created and migrated on first start) or `postgres://user@host/db` (migrated on
    /// start): the same tables and queries on both.
    pub database_url: String,
    pub session: SessionSettings,
    /// Credentials beyond sessions (`APP_AUTH__…`).
    #[serde(default)]
    pub auth: AuthSettings,
    pub throttle: ThrottleConfig,
    /// Self-service sign-up at `/signup` (`APP_SIGNUP__…`).
    pub signup: SignupSettings,
    /// Whether proxy headers are believed at all (from the peers in `trusted_proxies`); `false`: every
    /// client is its connection's peer.
    pub trust_proxy_headers: bool,
    /// Peers whose `X-Real-IP` / `X-Forwarded-For` / `Forwarded` name the client (CIDRs or addresses,
    /// comma-separated; `APP_TRUSTED_PROXIES`). Default loopback: nginx runs on the same host in front
    /// of the app, and a header from anyone else is the client's own claim, so it is ignored.
    #[serde(deserialize_with = "networks")]
    pub trusted_proxies: Vec<hooks::ssrf::Network>,
    /// Extra origins allowed to post forms (besides the request's own host), e.g. `https://example.com`.
    pub allowed_origins: Vec<String>,
    /// Largest request body for form routes, in bytes.
    pub max_form_bytes: usize,
    pub demo_user: DemoUser,
    /// Usernames that may see the machine (storage per store: `/api/v1/ops/storage`, the dashboard's
    /// storage card) and hold the `ops:read` token scope; comma-separated (`APP_OPERATORS`). In dev
    /// mode the demo user is one too.
    #[serde(default)]
    pub operators: Vec<String>,
    /// `json` for one JSON object per log line, `pretty` for humans.
    pub log_format: String,
    /// Where `serve` listens (`host:port`); unset: `LEPTOS_SITE_ADDR`, else 127.0.0.1:3000.
    #[serde(default)]
    pub listen_addr: Option<String>,
    /// The built site (`target/site`); unset: `LEPTOS_SITE_ROOT`.
    #[serde(default)]
    pub site_root: Option<String>,
    /// A name for this instance, sent as `X-Instance` on every answer when set (which instance behind
    /// the load balancer answered). Empty: no header.
    #[serde(default)]
    pub instance_name: Option<String>,
    /// The notification pipeline (`APP_NOTIFY__...`); every key has a default (see the notify crate's
    /// `PipelineConfig`). An empty `queue_url` means `notify.db` beside the app database.
    #[serde(default)]
    pub notify: notify::PipelineConfig,
    /// Webhook endpoints and inbound sources (`APP_HOOKS__…`): `allow_networks` (CIDRs endpoint URLs may
    /// point at although not public), `inbound.sources.<name>.secrets` (`whsec_…`, comma-separated),
    /// `inbound.sources.<name>.workflow` (`<username>/<workflow>` to start on each webhook),
    /// `inbound.sources.<name>.owner` (the username whose runs alone may wait on it; default: the user
    /// in `workflow`), `inbound.sources.<name>.scopes` (what runs it starts may do; default
    /// `workflows:write`).
    #[serde(default)]
    pub hooks: hooks::HooksConfig,
    /// Workflows (`APP_FLOWS__…`): the engine's slots and per-user limits, and `http` steps' own address
    /// allowlist, separate from the webhooks'.
    #[serde(default)]
    pub flows: FlowsSettings,
    /// Abuse limits that are not the login throttle's (`APP_LIMITS__…`).
    #[serde(default)]
    pub limits: LimitsSettings,
    /// How long each store keeps its rows, and how the pruner goes about it (`APP_RETENTION__…`).
    #[serde(default)]
    pub retention: RetentionSettings,
}

const DAY_SECS: u64 = 86_400;

/// Retention (issue 17): how long each store keeps a row after the moment that ages it (delivered,
/// died, finished, expired…), in seconds. The product runs unattended for months: every table that
/// grows with use is here.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct RetentionSettings {
    /// How often each instance's pruner looks. The database's stores are pruned by one instance at a
    /// time (a lease); each instance prunes its own embedded queue file.
    pub interval_secs: u64,
    /// Rows deleted per statement: what a delivery may have to wait behind.
    pub batch_rows: u32,
    /// Delivered (and cancelled) notifications, since they settled.
    pub delivered_secs: u64,
    /// Dead letters, since they died: the window to replay them in.
    pub dead_letters_secs: u64,
    /// Failed delivery attempts of notifications, since they were made.
    pub attempts_secs: u64,
    /// Simulation runs, since they finished.
    pub runs_secs: u64,
    /// Outbound webhook messages with their deliveries, attempts and owner notices. At least the
    /// endpoints' auto-disable window + 7 days, so "recover failed messages since" reaches every
    /// message an endpoint missed.
    pub webhook_messages_secs: u64,
    /// Inbound webhook ids (a sender's retry is recognised by its id for this long).
    pub inbound_ids_secs: u64,
    /// Workflow inbox messages, taken by a run or not.
    pub workflow_inbox_secs: u64,
    /// Finished workflow runs with their attempt log (and the demo step's customers).
    pub workflow_runs_secs: u64,
    /// Stored answers for `Idempotency-Key` (a retry after this is a new request).
    pub idempotency_secs: u64,
    /// API tokens, after they were revoked or expired.
    pub tokens_secs: u64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            interval_secs: 300,
            batch_rows: 5_000,
            delivered_secs: DAY_SECS,
            dead_letters_secs: 14 * DAY_SECS,
            attempts_secs: 7 * DAY_SECS,
            runs_secs: 30 * DAY_SECS,
            webhook_messages_secs: 14 * DAY_SECS,
            inbound_ids_secs: 7 * DAY_SECS,
            workflow_inbox_secs: 7 * DAY_SECS,
            workflow_runs_secs: 30 * DAY_SECS,
            idempotency_secs: DAY_SECS,
            tokens_secs: 30 * DAY_SECS,
        }
    }
}

/// Workflow engine slots and per-user limits (issue 14): one user must not starve the others; and where
/// `http` steps may go: only public addresses unless `allow_networks` says otherwise, and never this app's own
/// listen address nor anything in `deny_addresses`, whatever the allowlist says (a step must not reach the app
/// behind nginx's back, or nginx itself with forged proxy headers).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct FlowsSettings {
    /// Runs one instance drives at once.
    pub max_concurrent_runs: usize,
    /// Of those, at most this many of one user's.
    pub max_runs_per_owner: usize,
    /// Runs one user may have running, waiting or compensating at once (429 beyond).
    pub max_active_runs_per_owner: u32,
    /// Workflow definitions one user may store (422 beyond).
    pub max_definitions_per_owner: u32,
    /// Networks (CIDRs) steps may reach although not public (`APP_FLOWS__ALLOW_NETWORKS`, comma-separated).
    /// `APP_HOOKS__ALLOW_NETWORKS` does not apply to workflows.
    pub allow_networks: Vec<String>,
    /// `ip:port` socket addresses refused besides the app's own listen address: nginx's (`127.0.0.1:443`),
    /// other instances'. `0.0.0.0:port` refuses that port on every address.
    pub deny_addresses: Vec<String>,
    /// Outbound `http` step requests one owner may start per second on one instance (the product must
    /// not become a reflector); beyond it the attempt fails as retryable (`rate_limited`). 0: no limit.
    pub http_requests_per_sec: u32,
}

impl Default for FlowsSettings {
    fn default() -> Self {
        let limits = flows::Limits::default();
        Self {
            max_concurrent_runs: 32,
            max_runs_per_owner: 8,
            max_active_runs_per_owner: limits.max_active_runs_per_owner,
            max_definitions_per_owner: limits.max_definitions_per_owner,
            allow_networks: vec![],
            deny_addresses: vec![],
            http_requests_per_sec: 10,
        }
    }
}

impl AuthSettings {
    pub fn hash_concurrency(&self) -> usize {
        self.hash_concurrency.filter(|n| *n > 0).unwrap_or_else(auth::password::default_hash_concurrency)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LimitsSettings {
    /// Live event streams (server-sent events) one user may have open at once, on this instance.
    pub sse_streams_per_user: usize,
    /// Crypto lab requests (`POST /api/crypto`, the lab page's server check) one client address may
    /// make at once…
    pub crypto_ip_burst: u32,
    /// …and one more every this many seconds.
    pub crypto_ip_refill_secs: u64,
    /// Crypto lab computations at once (each on a blocking thread); a request waits up to 2 s for one,
    /// then gets 503.
    pub crypto_concurrency: usize,
    /// Bytes one user may add to storage over a rolling 24 hours (0: no limit): notification payloads
    /// (recipient, payload, idempotency key), workflow run inputs and step outputs, and the inbound
    /// webhooks of the sources they own. 1 GiB: five million 200-byte notifications.
    pub stored_bytes_per_day: u64,
}

impl Default for LimitsSettings {
    fn default() -> Self {
        Self { sse_streams_per_user: 8, crypto_ip_burst: 120, crypto_ip_refill_secs: 1, crypto_concurrency: 2, stored_bytes_per_day: 1 << 30 }
    }
}

/// A list of networks from a list or a comma-separated string; a bad entry stops the start-up.
fn networks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<hooks::ssrf::Network>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items = match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(str::to_string).collect(),
        OneOrMany::Many(v) => v,
    };
    items
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.parse().map_err(|e: String| serde::de::Error::custom(format!("trusted_proxies: {e}"))))
        .collect()
}

#[derive(Debug, Clone, Deserialize)]
pub struct SessionSettings {
    pub idle_timeout_secs: u64,
    pub absolute_lifetime_secs: u64,
    /// `Secure` + `__Host-` cookie. `None` means: on in production mode, off in dev mode.
    pub cookie_secure: Option<bool>,
    /// Where session data lives: `database` (the app database) or `redis` (every instance sees every
    /// session; needed behind a load balancer with several instances).
    pub store: SessionStoreKind,
    /// Redis for `store = "redis"`; empty means the pipeline's `notify.redis_url` (one Redis for both).
    pub redis_url: Option<String>,
    /// Signed-in requests answered from memory while the user's sessions are unchanged
    /// (`server::session_cache`): `auto` (Redis-shared with the Redis store, in memory with the
    /// database store on SQLite, off on PostgreSQL without Redis), `memory` (one instance only) or `off`.
    pub cache: SessionCacheKind,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SessionCacheKind {
    Auto,
    Memory,
    Off,
}

/// `APP_AUTH__…`. Every field has a default, so the section may be absent.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// The longest an API token may live, in days; a request for longer is refused (422) and a token
    /// created without an expiry gets this one. `server token create` is held to it too.
    pub token_max_lifetime_days: u32,
    /// Password hashes and verifications (logins, sign-ups, password changes) at once; a request waits
    /// up to 2 s for a slot, then gets 503 with `Retry-After: 1`. Unset or 0: cores − 1, at least 1.
    pub hash_concurrency: Option<usize>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self { token_max_lifetime_days: auth::tokens::DEFAULT_MAX_LIFETIME_DAYS, hash_concurrency: None }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SessionStoreKind {
    Database,
    Redis,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SignupSettings {
    /// Whether people may create their own accounts. `None` means: on in dev mode, off in production
    /// (an operator who wants it says so: `APP_SIGNUP__ENABLED=true`).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Sign-up attempts one client address may make at once, successful or not…
    pub ip_burst: u32,
    /// …and one more every this many seconds.
    pub ip_refill_secs: u64,
}

#[derive(Clone, Deserialize)]
pub struct DemoUser {
    pub username: String,
    pub password: SecretString,
}

impl std::fmt::Debug for DemoUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoUser").field("username", &self.username).field("password", &"[redacted]").finish()
    }
}

/// `localhost` or a loopback address: traffic that never leaves the machine.
fn is_loopback_host(host: &str) -> bool {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Dev mode's key for sealing webhook endpoint secrets when none is configured (documented, so never
/// for production, which refuses to start without its own: see [`Settings::check_production`]).
pub const DEV_SECRET_KEY: &str = "ZGV2LW9ubHkgc2VhbGluZyBrZXk6IG5vdCBzZWNyZXQ=";

/// Dev mode's VAPID private key for Web Push when none is configured (public, so never for production:
/// browsers subscribed with it would accept pushes signed by anyone who read this file).
pub const DEV_VAPID_KEY: &str = "gegrcyU7LjEl-fMoAUyMQJyFeSLs-cadTrftfj18aEc";

pub const DEMO_USERNAME: &str = "demo";
pub const DEMO_PASSWORD: &str = "demo-password-2026";

impl Settings {
    pub fn load() -> Result<Self, config::ConfigError> {
        let file = std::env::var("APP_CONFIG_FILE").unwrap_or_else(|_| "config/app.toml".into());
        Self::builder()?
            .add_source(config::File::with_name(&file).required(std::env::var("APP_CONFIG_FILE").is_ok()))
            .add_source(
                config::Environment::with_prefix("APP")
                    .prefix_separator("_")
                    .separator("__")
                    .list_separator(",")
                    .with_list_parse_key("allowed_origins")
                    .with_list_parse_key("operators")
                    .with_list_parse_key("notify.webhook.retry.schedule_ms")
                    .with_list_parse_key("notify.email.retry.schedule_ms")
                    .with_list_parse_key("notify.email.allow_recipients")
                    .with_list_parse_key("flows.allow_networks")
                    .with_list_parse_key("flows.deny_addresses")
                    .with_list_parse_key("trusted_proxies")
                    .try_parsing(true),
            )
            .build()?
            .try_deserialize()
            .map(Self::with_dev_defaults)
    }

    fn with_dev_defaults(mut self) -> Self {
        if self.mode == Mode::Dev && self.hooks.secret_keys.is_empty() {
            self.hooks.secret_keys = vec![hooks::Secret::new(DEV_SECRET_KEY)];
        }
        self
    }

    /// What production needs beyond the defaults before it may serve: the key that seals webhook
    /// endpoint secrets at rest, and a webhook signing secret of its own (the default is the public
    /// example from the Standard Webhooks spec, which anyone could sign with).
    pub fn check_production(&self) -> Result<(), String> {
        if self.mode != Mode::Production {
            return Ok(());
        }
        if self.hooks.secret_keys.is_empty() {
            return Err("hooks.secret_keys (APP_HOOKS__SECRET_KEYS) is required in production: it seals webhook \
                        endpoint secrets at rest. Generate one with `openssl rand -base64 32`."
                .into());
        }
        if self.notify.webhook.secret.trim() == notify::config::DEV_WEBHOOK_SECRET {
            return Err("notify.webhook.secret (APP_NOTIFY__WEBHOOK__SECRET) is the public example secret: set your \
                        receiver's own in production. Generate one with `echo whsec_$(openssl rand -base64 32)`."
                .into());
        }
        let email = &self.notify.email;
        if email.is_real() && email.tls == notify::SmtpTls::None && !is_loopback_host(&email.host) {
            return Err(format!(
                "notify.email.tls (APP_NOTIFY__EMAIL__TLS) is none for {}: production sends e-mail (and SMTP credentials) only \
                 over TLS (starttls or tls), unless the SMTP server is on this machine's loopback.",
                email.host
            ));
        }
        Ok(())
    }

    fn builder() -> Result<config::ConfigBuilder<config::builder::DefaultState>, config::ConfigError> {
        let t = ThrottleConfig::default();
        config::Config::builder()
            .set_default("mode", "production")?
            .set_default("database_url", "sqlite://data/app.db")?
            .set_default("session.idle_timeout_secs", 30 * 60)?
            .set_default("session.absolute_lifetime_secs", 8 * 3600)?
            .set_default("session.store", "database")?
            .set_default("session.cache", "auto")?
            .set_default("throttle.account_burst", t.account_burst)?
            .set_default("throttle.account_refill_secs", t.account_refill_secs)?
            .set_default("throttle.ip_burst", t.ip_burst)?
            .set_default("throttle.ip_refill_secs", t.ip_refill_secs)?
            .set_default("signup.ip_burst", 10)?
            .set_default("signup.ip_refill_secs", 360)?
            .set_default("trust_proxy_headers", true)?
            .set_default("trusted_proxies", vec!["127.0.0.1/32", "::1/128"])?
            .set_default("allowed_origins", Vec::<String>::new())?
            .set_default("max_form_bytes", 16 * 1024)?
            .set_default("demo_user.username", DEMO_USERNAME)?
            .set_default("demo_user.password", DEMO_PASSWORD)?
            .set_default("log_format", "pretty")?
            .set_default("notify.queue_url", "")
    }

    /// Defaults only, for tests.
    pub fn defaults() -> Self {
        Self::builder().and_then(|b| b.build()).and_then(|c| c.try_deserialize()).expect("defaults are valid")
    }

    /// The pipeline settings with the queue file resolved (beside the app database unless set).
    pub fn notify_config(&self) -> notify::PipelineConfig {
        let mut c = self.notify.clone();
        if c.queue_url.trim().is_empty() {
            // Beside a SQLite app database; under data/ when the app database is PostgreSQL.
            let file = match db::sqlite_path(&self.database_url) {
                Some(db) => {
                    let dir = std::path::Path::new(&db).parent().filter(|d| !d.as_os_str().is_empty()).map(|d| d.to_owned());
                    dir.map(|d| d.join("notify.db")).unwrap_or_else(|| "notify.db".into())
                }
                None => std::path::PathBuf::from("data/notify.db"),
            };
            c.queue_url = format!("sqlite://{}", file.display());
        }
        c.redis_url = c.redis_url.filter(|u| !u.trim().is_empty());
        // Who users may e-mail: anyone in dev mode (the SMTP server is the local capture); in production
        // only the operator's list (empty: nobody) until accounts have verified addresses of their own.
        if c.email.allow_recipients.is_none() && self.mode == Mode::Production {
            c.email.allow_recipients = Some(vec![]);
        }
        // Production never pretends to send e-mail: with no SMTP server a user's e-mail is refused.
        c.email.simulate_when_unset = Some(c.email.simulate_when_unset.unwrap_or(self.mode != Mode::Production));
        // Web Push: dev mode signs with a documented key of its own; production only with the operator's,
        // and refuses push without one rather than pretend.
        if self.mode == Mode::Dev && !c.push.is_real() {
            c.push.vapid_private_key = DEV_VAPID_KEY.into();
        }
        c.push.simulate_when_unset = Some(c.push.simulate_when_unset.unwrap_or(self.mode != Mode::Production));
        c
    }

    /// The Redis URL sessions use when `session.store = "redis"`.
    pub fn session_redis_url(&self) -> Option<String> {
        let own = self.session.redis_url.clone().filter(|u| !u.trim().is_empty());
        own.or_else(|| self.notify.redis_url.clone().filter(|u| !u.trim().is_empty()))
    }

    /// The guard for workflow `http` steps: `flows.allow_networks`, and `listen` (the app's own address)
    /// plus `flows.deny_addresses` refused whatever it allows.
    pub fn flows_guard(&self, listen: std::net::SocketAddr) -> Result<hooks::UrlGuard, String> {
        let clean = |v: &[String]| v.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect::<Vec<_>>();
        let mut denied = vec![listen];
        for a in clean(&self.flows.deny_addresses) {
            denied.push(a.parse().map_err(|_| format!("flows.deny_addresses: {a:?} is not an ip:port socket address"))?);
        }
        let guard = hooks::UrlGuard::for_setting("flows.allow_networks", &clean(&self.flows.allow_networks)).map_err(|e| e.to_string())?;
        Ok(guard.deny_sockets(denied))
    }

    /// The inbound sources as workflows see them: each belongs to one user (`owner`, else the user in
    /// `workflow`), and runs it starts get its `scopes` (default `workflows:write` only). A source with
    /// neither belongs to nobody: its webhooks are verified and recorded, and resume no run.
    pub fn inbound_sources(&self) -> Result<std::collections::HashMap<String, flows::InboundSource>, String> {
        let mut out = std::collections::HashMap::new();
        for (name, s) in &self.hooks.inbound.sources {
            let setting = |key: &str| format!("hooks.inbound.sources.{name}.{key}");
            let (workflow_user, workflow) = match s.workflow.as_deref().map(str::trim).filter(|w| !w.is_empty()) {
                None => (None, None),
                Some(w) => match w.split_once('/') {
                    Some((u, n)) if !u.is_empty() && !n.is_empty() => (Some(u.to_string()), Some(n.to_string())),
                    _ => return Err(format!("{}: must be <username>/<workflow name>", setting("workflow"))),
                },
            };
            let owner = s.owner.as_deref().map(str::trim).filter(|o| !o.is_empty()).map(String::from);
            if let (Some(o), Some(u)) = (&owner, &workflow_user) {
                if o != u {
                    return Err(format!("{}: the source belongs to {o:?} but starts a workflow of {u:?}'s", setting("owner")));
                }
            }
            let Some(owner) = owner.or(workflow_user) else {
                tracing::warn!(source = %name, "inbound source has no owner ({}): its webhooks resume no workflow run", setting("owner"));
                continue;
            };
            let scopes = if s.scopes.is_empty() {
                vec![auth::tokens::Scope::WorkflowsWrite]
            } else {
                auth::tokens::Scope::parse_list(&s.scopes.join(" ")).map_err(|e| format!("{}: {e}", setting("scopes")))?
            };
            let scopes = scopes.into_iter().map(|s| s.as_str().to_string()).collect();
            out.insert(name.clone(), flows::InboundSource { owner: owner.into(), scopes, workflow });
        }
        Ok(out)
    }

    pub fn flows_limits(&self) -> flows::Limits {
        flows::Limits {
            max_active_runs_per_owner: self.flows.max_active_runs_per_owner.max(1),
            max_definitions_per_owner: self.flows.max_definitions_per_owner.max(1),
        }
    }

    /// The operators: `operators`, and the demo user in dev mode.
    pub fn operators(&self) -> Vec<String> {
        let mut out: Vec<String> = self.operators.iter().map(|o| o.trim().to_string()).filter(|o| !o.is_empty()).collect();
        if self.mode == Mode::Dev && !out.contains(&self.demo_user.username) {
            out.push(self.demo_user.username.clone());
        }
        out
    }

    /// Whether `username` is one of [`Self::operators`] (asked per request: no list is built).
    pub fn is_operator(&self, username: &str) -> bool {
        (self.mode == Mode::Dev && self.demo_user.username == username) || self.operators.iter().any(|o| o.trim() == username && !username.is_empty())
    }

    pub fn cookie_secure(&self) -> bool {
        self.session.cookie_secure.unwrap_or(self.mode == Mode::Production)
    }

    pub fn signup_enabled(&self) -> bool {
        self.signup.enabled.unwrap_or(self.mode == Mode::Dev)
    }

    /// The peers whose proxy headers are believed: none when `trust_proxy_headers` is off.
    pub fn trusted_proxies(&self) -> &[hooks::ssrf::Network] {
        if self.trust_proxy_headers {
            &self.trusted_proxies
        } else {
            &[]
        }
    }

    pub fn session_policy(&self) -> auth::SessionPolicy {
        auth::SessionPolicy {
            idle_timeout: Duration::from_secs(self.session.idle_timeout_secs.max(1)),
            absolute_lifetime: Duration::from_secs(self.session.absolute_lifetime_secs.max(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_production_safe() {
        let s = Settings::defaults();
        assert_eq!(s.mode, Mode::Production);
        assert!(s.cookie_secure());
        assert_eq!(s.session.idle_timeout_secs, 1800);
        assert_eq!(s.session.absolute_lifetime_secs, 28800);
        assert!(!format!("{:?}", s.demo_user).contains(DEMO_PASSWORD), "secrets never print");
        assert!(!s.signup_enabled(), "sign-up is off in production unless turned on");
        assert_eq!((s.signup.ip_burst, s.signup.ip_refill_secs), (10, 360));
        let e = s.check_production().unwrap_err();
        assert!(e.contains("APP_HOOKS__SECRET_KEYS"), "production needs its own sealing key: {e}");
        assert_eq!(s.auth.token_max_lifetime_days, 365);
        let sealed = Settings { hooks: Settings { mode: Mode::Dev, ..Settings::defaults() }.with_dev_defaults().hooks, ..Settings::defaults() };
        let e = sealed.check_production().unwrap_err();
        assert!(e.contains("APP_NOTIFY__WEBHOOK__SECRET"), "production refuses the public example signing secret: {e}");
        let mut own = sealed.clone();
        own.notify.webhook.secret = "whsec_dGhpcyBvbmUgaXMgb3VyIG93biBzZWNyZXQgMTIzNA==".into();
        assert!(own.check_production().is_ok());
        let dev = Settings { mode: Mode::Dev, ..Settings::defaults() }.with_dev_defaults();
        assert_eq!(dev.hooks.secret_keys.len(), 1, "dev mode seals with the documented dev key");
        assert!(dev.check_production().is_ok());
        hooks::Sealer::new(&dev.hooks.secret_keys).expect("the dev key is a valid key");
    }

    #[test]
    fn production_e_mail_goes_over_tls_to_allowed_recipients_only_and_is_never_pretended() {
        let mut own = Settings { hooks: Settings { mode: Mode::Dev, ..Settings::defaults() }.with_dev_defaults().hooks, ..Settings::defaults() };
        own.notify.webhook.secret = "whsec_dGhpcyBvbmUgaXMgb3VyIG93biBzZWNyZXQgMTIzNA==".into();
        let c = own.notify_config();
        assert_eq!(c.email.allow_recipients, Some(vec![]), "production: nobody until the operator lists addresses");
        assert_eq!(c.email.simulate_when_unset, Some(false), "production refuses e-mail without an SMTP server rather than simulate it");
        own.notify.email.host = "smtp.example.com".into();
        own.notify.email.tls = notify::SmtpTls::None;
        let e = own.check_production().unwrap_err();
        assert!(e.contains("APP_NOTIFY__EMAIL__TLS"), "{e}");
        own.notify.email.host = "127.0.0.1".into();
        assert!(own.check_production().is_ok(), "a relay on loopback may be plain");
        own.notify.email.host = "smtp.example.com".into();
        own.notify.email.tls = notify::SmtpTls::Starttls;
        own.notify.email.allow_recipients = Some(vec!["@example.com".into()]);
        assert!(own.check_production().is_ok());
        assert_eq!(own.notify_config().email.allow_recipients, Some(vec!["@example.com".into()]));
        assert!(!own.notify_config().push.is_real(), "production: no VAPID key unless the operator sets one");
        assert_eq!(own.notify_config().push.simulate_when_unset, Some(false), "and then push is refused, not pretended");
        let dev = Settings { mode: Mode::Dev, ..Settings::defaults() }.notify_config();
        assert_eq!(dev.email.allow_recipients, None, "dev mode: anyone (the SMTP server is the local capture)");
        assert_eq!(dev.email.simulate_when_unset, Some(true));
        assert_eq!(dev.push.vapid_private_key, DEV_VAPID_KEY, "dev mode pushes for real with its documented key");
        assert!(dev.push.vapid().unwrap().is_some());
    }

    #[test]
    fn proxies_are_trusted_on_loopback_only_unless_configured() {
        let mut s = Settings::defaults();
        let trusted = |s: &Settings, ip: &str| s.trusted_proxies().iter().any(|n| n.contains(ip.parse().unwrap()));
        assert!(trusted(&s, "127.0.0.1") && trusted(&s, "::1"));
        assert!(!trusted(&s, "127.0.0.2") && !trusted(&s, "10.0.0.1"));
        s.trust_proxy_headers = false;
        assert!(!trusted(&s, "127.0.0.1"), "off trusts nobody");
        let with = |v: &str| Settings::builder().unwrap().set_override("trusted_proxies", v).unwrap().build().unwrap().try_deserialize::<Settings>();
        let parsed = with("10.0.0.0/8, 192.0.2.7").expect("a comma-separated list parses");
        assert!(trusted(&parsed, "10.1.2.3") && trusted(&parsed, "192.0.2.7") && !trusted(&parsed, "127.0.0.1"));
        assert!(with("not-a-network").unwrap_err().to_string().contains("trusted_proxies"), "a bad entry stops the start-up");
    }

    #[test]
    fn limits_have_defaults_and_hash_concurrency_is_at_least_one() {
        let s = Settings::defaults();
        assert_eq!(s.limits.sse_streams_per_user, 8);
        assert_eq!((s.limits.crypto_ip_burst, s.limits.crypto_ip_refill_secs, s.limits.crypto_concurrency), (120, 1, 2));
        assert!(s.auth.hash_concurrency() >= 1);
        let zero = AuthSettings { hash_concurrency: Some(0), ..Default::default() };
        assert_eq!(zero.hash_concurrency(), auth::password::default_hash_concurrency());
        assert_eq!(AuthSettings { hash_concurrency: Some(3), ..Default::default() }.hash_concurrency(), 3);
    }

    #[test]
    fn the_notification_queue_sits_beside_the_app_database() {
        let mut s = Settings::defaults();
        assert_eq!(s.notify_config().queue_url, "sqlite://data/notify.db");
        assert_eq!(s.notify_config().high_water, notify::PipelineConfig::default().high_water);
        s.database_url = "sqlite:///tmp/x/app.db?mode=rwc".into();
        assert_eq!(s.notify_config().queue_url, "sqlite:///tmp/x/notify.db");
        s.database_url = "postgres://app@db.internal/app".into();
        assert_eq!(s.notify_config().queue_url, "sqlite://data/notify.db");
        s.notify.queue_url = "sqlite://q.db".into();
        assert_eq!(s.notify_config().queue_url, "sqlite://q.db");
    }

    #[test]
    fn workflows_have_their_own_allowlist_and_never_reach_the_app_itself() {
        let mut s = Settings::defaults();
        assert!(s.flows.allow_networks.is_empty(), "public addresses only by default");
        assert_eq!(s.flows.http_requests_per_sec, 10);
        let listen: std::net::SocketAddr = "127.0.0.1:3000".parse().unwrap();
        s.hooks.allow_networks = vec!["127.0.0.0/8".into()];
        let g = s.flows_guard(listen).unwrap();
        assert!(g.check_syntax("http://127.0.0.1:3100/").is_err(), "the webhooks' allowlist does not open loopback to workflows");
        s.flows.allow_networks = vec!["127.0.0.0/8".into()];
        s.flows.deny_addresses = vec!["127.0.0.1:443".into(), " ".into()];
        let g = s.flows_guard(listen).unwrap();
        g.check_syntax("http://127.0.0.1:3100/").unwrap();
        assert!(g.check_syntax("http://127.0.0.1:3000/metrics").is_err(), "the app's own listener");
        assert!(g.check_syntax("https://127.0.0.1/").is_err(), "a denied address (nginx)");
        s.flows.deny_addresses = vec!["nginx".into()];
        assert!(s.flows_guard(listen).unwrap_err().contains("flows.deny_addresses"));
        s.flows.deny_addresses = vec![];
        s.flows.allow_networks = vec!["10.0.0.0/99".into()];
        assert!(s.flows_guard(listen).unwrap_err().contains("flows.allow_networks"));
    }

    #[test]
    fn inbound_sources_belong_to_one_user_and_start_runs_with_their_scopes() {
        let mut s = Settings::defaults();
        assert_eq!(s.flows, FlowsSettings::default());
        assert_eq!((s.flows.max_concurrent_runs, s.flows.max_runs_per_owner), (32, 8));
        let source = |owner: Option<&str>, workflow: Option<&str>, scopes: &[&str]| hooks::InboundSource {
            secrets: vec![hooks::Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")],
            workflow: workflow.map(String::from),
            owner: owner.map(String::from),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        };
        let sources = &mut s.hooks.inbound.sources;
        sources.insert("crm".into(), source(Some("ann"), None, &[]));
        sources.insert("shop".into(), source(None, Some("bob/orders"), &["workflows:write", "notifications:write"]));
        sources.insert("orphan".into(), source(None, None, &[]));
        let got = s.inbound_sources().unwrap();
        assert_eq!(got["crm"], flows::InboundSource { owner: "ann".into(), scopes: vec!["workflows:write".into()], workflow: None });
        assert_eq!(got["shop"].owner, "bob");
        assert_eq!(got["shop"].workflow.as_deref(), Some("orders"));
        assert_eq!(got["shop"].scopes, ["notifications:write", "workflows:write"]);
        assert!(!got.contains_key("orphan"), "nobody's source");
        s.hooks.inbound.sources.insert("x".into(), source(Some("ann"), Some("bob/orders"), &[]));
        assert!(s.inbound_sources().unwrap_err().contains("hooks.inbound.sources.x.owner"));
        s.hooks.inbound.sources.insert("x".into(), source(Some("ann"), None, &["admin:all"]));
        assert!(s.inbound_sources().unwrap_err().contains("hooks.inbound.sources.x.scopes"));
    }

    #[test]
    fn dev_mode_allows_plain_http_cookies_unless_overridden() {
        let mut s = Settings::defaults();
        s.mode = Mode::Dev;
        assert!(!s.cookie_secure());
        s.session.cookie_secure = Some(true);
        assert!(s.cookie_secure());
        assert!(s.signup_enabled(), "sign-up is on in dev mode unless turned off");
        s.signup.enabled = Some(false);
        assert!(!s.signup_enabled());
    }

    #[test]
    fn operators_are_named_and_the_demo_user_is_one_in_dev_mode_only() {
        let mut s = Settings::defaults();
        assert!(s.operators().is_empty() && !s.is_operator(DEMO_USERNAME), "production: nobody unless named");
        s.operators = vec![" ops ".into(), "".into()];
        assert_eq!(s.operators(), ["ops"]);
        s.mode = Mode::Dev;
        assert!(s.is_operator("ops") && s.is_operator(DEMO_USERNAME) && !s.is_operator("alice"));
    }
}
