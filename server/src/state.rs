//! Everything a request handler may need, built once at start-up.

use auth::{AddressRateLimit, Authenticator, LoginThrottle, PasswordHasher, SessionRegistry, UserStore};
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use sqlx::AnyPool;
use std::sync::Arc;

use crate::config::{SessionCacheKind, SessionStoreKind, Settings};
use crate::session_cache::SessionCache;
use crate::session_store::AnyStore;
use crate::web_session::SessionManager;

/// Shared by every request: one reference count to clone (each extractor and middleware layer takes
/// its own copy; a struct of twenty `Arc`s cost a tenth of a signed-in page's time in clones and drops).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// What Leptos' handlers extract from the state.
impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

pub struct Services {
    pub leptos_options: LeptosOptions,
    pub settings: Arc<Settings>,
    pub auth: Authenticator,
    pub sessions: SessionManager,
    pub session_store: AnyStore,
    /// The app database (SQLite or PostgreSQL).
    pub pool: AnyPool,
    /// The notification pipeline (its own SQLite file); `serve` starts its workers.
    pub notify: notify::NotifyService,
    /// Webhook endpoints; their deliveries go through `notify`'s webhook channel.
    pub hooks: hooks::Hooks,
    pub inbound: Arc<hooks::InboundVerifier>,
    /// Workflows; `serve` spawns the engine.
    pub flows: flows::Engine,
    pub tokens: auth::tokens::ApiTokenStore,
    /// Sign-up attempts per client address (`signup.ip_burst`, `signup.ip_refill_secs`).
    pub signup_limit: Arc<AddressRateLimit>,
    /// The crypto lab's ceiling, per-address limit and permits (`limits.crypto_…`).
    pub lab: app::crypto_api::ssr::LabGate,
    /// Live event streams open per user (`limits.sse_streams_per_user`).
    pub streams: crate::limits::StreamSlots,
    /// Bytes each user may store per day (`limits.stored_bytes_per_day`).
    pub storage: crate::limits::Storage,
    /// Retention: `serve` runs its passes; `/metrics` shows what each store holds.
    pub retention: Arc<crate::retention::Pruner>,
}

/// The REST API's own tables (idempotency answers, the onboarding example's demo customers).
pub fn api_migrations() -> db::Migrations {
    db::Migrations { sqlite: sqlx::migrate!("./migrations/sqlite"), postgres: sqlx::migrate!("./migrations/postgres") }
}

/// Every table of the app database, each crate's migrations in turn.
pub async fn migrate_all(pool: &AnyPool) -> Result<(), crate::error::AppError> {
    let fail = |e: db::DbError| crate::error::AppError::Internal(format!("migrations: {e}"));
    for m in [&hooks::migrations(), &flows::MIGRATIONS, &api_migrations()] {
        db::migrate(pool, m).await.map_err(fail)?;
    }
    Ok(())
}

impl AppState {
    pub async fn new(settings: Settings, leptos_options: LeptosOptions) -> Result<Self, crate::error::AppError> {
        let pool = auth::db::connect(&settings.database_url).await?;
        Self::with_pool(settings, leptos_options, pool, PasswordHasher::owasp()).await
    }

    pub async fn with_pool(
        settings: Settings,
        leptos_options: LeptosOptions,
        pool: AnyPool,
        hasher: PasswordHasher,
    ) -> Result<Self, crate::error::AppError> {
        let session_store = match settings.session.store {
            SessionStoreKind::Database => AnyStore::database(&settings.database_url).await?,
            SessionStoreKind::Redis => {
                let url = settings.session_redis_url().ok_or_else(|| {
                    crate::error::AppError::Internal("session.store = \"redis\" needs session.redis_url or notify.redis_url".into())
                })?;
                AnyStore::redis(&url).await?
            }
        };
        let auth = Authenticator {
            users: UserStore::new(pool.clone()),
            hasher: hasher.with_concurrency(settings.auth.hash_concurrency()),
            throttle: Arc::new(LoginThrottle::new(pool.clone(), &settings.throttle)),
        };
        let policy = settings.session_policy();
        let cache = match (settings.session.cache, &session_store) {
            (SessionCacheKind::Off, _) => SessionCache::off(),
            (_, AnyStore::Redis(_, redis)) => SessionCache::redis(redis.clone(), &policy),
            (SessionCacheKind::Memory, _) | (SessionCacheKind::Auto, AnyStore::Sqlite(_)) => SessionCache::local(),
            // Several instances usually share a PostgreSQL database; without Redis they have no
            // generations in common.
            (SessionCacheKind::Auto, AnyStore::Postgres(_)) => SessionCache::off(),
        };
        tracing::info!(cache = cache.kind(), store = session_store.kind(), "sessions");
        let sessions = SessionManager { registry: SessionRegistry::new(pool.clone()), store: Arc::new(session_store.clone()), policy, cache };
        let notify = notify::NotifyService::new(settings.notify_config())
            .await
            .map_err(|e| crate::error::AppError::Internal(format!("notification pipeline: {e:?}")))?;
        migrate_all(&pool).await?;
        let internal = |what: &str, e: &dyn std::fmt::Display| crate::error::AppError::Internal(format!("{what}: {e}"));
        let hooks = hooks::Hooks::new(pool.clone(), settings.hooks.clone(), Some(notify.clone())).map_err(|e| internal("webhooks", &e))?;
        hooks.attach(&notify).map_err(|e| internal("webhooks", &e))?;
        // Secrets stored before sealing, or under a key no longer first in hooks.secret_keys.
        match hooks.reseal_secrets().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(endpoints = n, "webhook endpoint secrets resealed under the current key"),
            Err(e) => tracing::warn!(error = %e, "could not reseal webhook endpoint secrets"),
        }
        // Notifications sent through the API or a workflow step carry their owner: their final outcome
        // becomes that owner's `notification.delivered` / `notification.dead_lettered` event.
        notify.add_attempt_observer(hooks.notification_events(|job| job.owner.clone()));
        let inbound = Arc::new(hooks::InboundVerifier::new(pool.clone(), &settings.hooks.inbound).map_err(|e| internal("inbound webhooks", &e))?);
        let flows_guard = settings.flows_guard(leptos_options.site_addr).map_err(|e| internal("workflows", &e))?;
        let storage = crate::limits::Storage::new(pool.clone(), settings.limits.stored_bytes_per_day);
        let host = crate::api::host::ServerHost::new(notify.clone(), hooks.clone(), pool.clone(), flows_guard)
            .with_http_rate(settings.flows.http_requests_per_sec)
            .with_storage(storage.clone());
        let engine_config = flows::EngineConfig {
            instance_id: settings.instance_name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| format!("server-{}", std::process::id())),
            max_concurrent_runs: settings.flows.max_concurrent_runs.max(1),
            max_runs_per_owner: settings.flows.max_runs_per_owner.max(1),
            ..Default::default()
        };
        let sources = settings.inbound_sources().map_err(|e| internal("inbound webhooks", &e))?;
        let store = flows::Store::new(pool.clone()).with_inbound_sources(sources).with_limits(settings.flows_limits());
        let flows = flows::Engine::new(store, Arc::new(host), engine_config);
        let tokens = auth::tokens::ApiTokenStore::new(pool.clone())
            .with_max_lifetime_days(settings.auth.token_max_lifetime_days)
            .with_operators(&settings.operators());
        let signup_limit = Arc::new(AddressRateLimit::new(pool.clone(), "signup-address", settings.signup.ip_burst, settings.signup.ip_refill_secs));
        let lab = app::crypto_api::ssr::LabGate::new(
            AddressRateLimit::new(pool.clone(), "crypto-address", settings.limits.crypto_ip_burst, settings.limits.crypto_ip_refill_secs),
            settings.limits.crypto_concurrency,
        );
        let streams = crate::limits::StreamSlots::new(settings.limits.sse_streams_per_user);
        let retention = Arc::new(crate::retention::Pruner::new(pool.clone(), notify.clone(), &settings.retention));
        Ok(Self(Arc::new(Services {
            leptos_options,
            settings: Arc::new(settings),
            auth,
            sessions,
            session_store,
            pool,
            notify,
            hooks,
            inbound,
            flows,
            tokens,
            signup_limit,
            lab,
            streams,
            storage,
            retention,
        })))
    }
}

/// Dev mode only: the documented demo user (README), created on first start. Production starts with
/// no account at all (ASVS 6.3.2); operators add them with `server user create`. A production database
/// that was once run in dev mode may still hold the demo account with its public password: production
/// disables it (random password, sessions and tokens ended) before serving.
pub async fn ensure_demo_user(state: &AppState) {
    let demo = &state.settings.demo_user;
    if state.settings.mode != crate::config::Mode::Dev {
        // The documented password, whatever the settings say: that is the one the world knows.
        let public = secrecy::SecretString::from(crate::config::DEMO_PASSWORD);
        match state.auth.disable_if_password_is(&demo.username, public).await {
            Ok(true) => {
                tracing::warn!(username = %demo.username, "demo account with the public password disabled (production mode)");
                // Its sessions ended: other instances must not answer them from their caches.
                if let Ok(Some(user)) = state.auth.users.find_by_username(&demo.username).await {
                    state.sessions.cache.changed(user.id).await;
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not check for the demo account"),
        }
        return;
    }
    match state.auth.users.find_by_username(&demo.username).await {
        Ok(Some(_)) => tracing::info!(username = %demo.username, "demo user present (dev mode)"),
        Ok(None) => match state.auth.create_user(&demo.username, demo.password.clone()).await {
            Ok(_) => tracing::info!(username = %demo.username, "demo user created (dev mode; see README)"),
            Err(e) => tracing::warn!(error = %e, "could not create demo user"),
        },
        Err(e) => tracing::warn!(error = %e, "could not look up demo user"),
    }
}
