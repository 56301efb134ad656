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
    /// `inbound.sources.<name>.workflow` (`<username>/<workflow>` to start on each webhook).
    #[serde(default)]
    pub hooks: hooks::HooksConfig,
    /// Password hashing (`APP_AUTH__…`).
    #[serde(default)]
    pub auth: AuthSettings,
    /// Abuse limits that are not the login throttle's (`APP_LIMITS__…`).
    #[serde(default)]
    pub limits: LimitsSettings,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthSettings {
    /// Password hashes and verifications (logins, sign-ups, password changes) at once; a request waits
    /// up to 2 s for a slot, then gets 503 with `Retry-After: 1`. Unset or 0: cores − 1, at least 1.
    #[serde(default)]
    pub hash_concurrency: Option<usize>,
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
}

impl Default for LimitsSettings {
    fn default() -> Self {
        Self { sse_streams_per_user: 8, crypto_ip_burst: 120, crypto_ip_refill_secs: 1, crypto_concurrency: 2 }
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

/// Dev mode's key for sealing webhook endpoint secrets when none is configured (documented, so never
/// for production, which refuses to start without its own: see [`Settings::check_production`]).
pub const DEV_SECRET_KEY: &str = "ZGV2LW9ubHkgc2VhbGluZyBrZXk6IG5vdCBzZWNyZXQ=";

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
    /// endpoint secrets at rest.
    pub fn check_production(&self) -> Result<(), String> {
        if self.mode == Mode::Production && self.hooks.secret_keys.is_empty() {
            return Err("hooks.secret_keys (APP_HOOKS__SECRET_KEYS) is required in production: it seals webhook \
                        endpoint secrets at rest. Generate one with `openssl rand -base64 32`."
                .into());
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
        c
    }

    /// The Redis URL sessions use when `session.store = "redis"`.
    pub fn session_redis_url(&self) -> Option<String> {
        let own = self.session.redis_url.clone().filter(|u| !u.trim().is_empty());
        own.or_else(|| self.notify.redis_url.clone().filter(|u| !u.trim().is_empty()))
    }

    pub fn cookie_secure(&self) -> bool {
        self.session.cookie_secure.unwrap_or(self.mode == Mode::Production)
    }

    pub fn signup_enabled(&self) -> bool {
        self.signup.enabled.unwrap_or(self.mode == Mode::Dev)
    }

    /// The peers whose proxy headers are believed: none when `trust_proxy_headers` is off.
    pub fn trusted_proxies(&self) -> &[hooks::ssrf::Network] {
        if self.trust_proxy_headers { &self.trusted_proxies } else { &[] }
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
        let dev = Settings { mode: Mode::Dev, ..Settings::defaults() }.with_dev_defaults();
        assert_eq!(dev.hooks.secret_keys.len(), 1, "dev mode seals with the documented dev key");
        assert!(dev.check_production().is_ok());
        hooks::Sealer::new(&dev.hooks.secret_keys).expect("the dev key is a valid key");
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
        let zero = AuthSettings { hash_concurrency: Some(0) };
        assert_eq!(zero.hash_concurrency(), auth::password::default_hash_concurrency());
        assert_eq!(AuthSettings { hash_concurrency: Some(3) }.hash_concurrency(), 3);
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
}
