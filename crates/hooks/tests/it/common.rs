//! Shared test helpers: a migrated hooks store on each engine, a real notification pipeline (embedded
//! SQLite queue, fast retries) with the hooks plugged in, and polling with a deadline.
#![allow(dead_code)]

use hooks::{Hooks, HooksConfig};
use notify::{NotifyService, PipelineConfig, RetrySchedule};

pub async fn pool(db: &db::testing::TestDb) -> sqlx::AnyPool {
    let pool = db.connect().await;
    db::migrate(&pool, &hooks::migrations()).await.expect("migrate");
    pool
}

/// A sealing key for endpoint secrets (32 bytes of `n`, base64), so every test stores them sealed.
pub fn key(n: u8) -> hooks::Secret {
    use base64::Engine;
    hooks::Secret::new(base64::engine::general_purpose::STANDARD.encode([n; 32]))
}

/// Loopback is allowed, as the test receivers listen there; secrets are sealed.
pub fn config() -> HooksConfig {
    HooksConfig { allow_networks: vec!["127.0.0.1/32".into()], secret_keys: vec![key(1)], ..HooksConfig::default() }
}

/// A store without a pipeline (endpoint operations only).
pub async fn store(db: &db::testing::TestDb) -> Hooks {
    Hooks::new(pool(db).await, config(), None).expect("hooks")
}

pub struct Pipeline {
    pub notify: NotifyService,
    pub hooks: Hooks,
    _dir: tempfile::TempDir,
}

/// A started pipeline with `max_attempts` attempts per notification and hooks attached.
pub async fn pipeline(db: &db::testing::TestDb, cfg: HooksConfig, max_attempts: u32) -> Pipeline {
    pipeline_on(db, cfg, notify::WebhookRetry::every(10, max_attempts), notify::Clock::system()).await
}

/// The same with webhook retries on `retry` and the pipeline's time from `clock`.
pub async fn pipeline_on(db: &db::testing::TestDb, cfg: HooksConfig, retry: notify::WebhookRetry, clock: notify::Clock) -> Pipeline {
    let dir = tempfile::tempdir().expect("temp dir");
    let max_attempts = retry.max_attempts();
    let ncfg = PipelineConfig {
        queue_url: format!("sqlite://{}", dir.path().join("notify.db").display()),
        retry: RetrySchedule { base_ms: 10, max_delay_ms: 50, max_attempts },
        webhook: notify::WebhookConfig { retry, ..Default::default() },
        concurrency: 8,
        clock,
        ..PipelineConfig::default()
    };
    let notify = NotifyService::new(ncfg).await.expect("notify");
    let hooks = Hooks::new(pool(db).await, cfg, Some(notify.clone())).expect("hooks");
    hooks.attach(&notify).expect("attach");
    notify.start().await.expect("start");
    Pipeline { notify, hooks, _dir: dir }
}

pub use testkit::wait_for;

pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}
