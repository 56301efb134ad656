//! Everything a request handler may need, built once at start-up.

use auth::{Authenticator, LoginThrottle, PasswordHasher, SessionRegistry, UserStore};
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use sqlx::AnyPool;
use std::sync::Arc;

use crate::config::{SessionStoreKind, Settings};
use crate::session_store::AnyStore;
use crate::web_session::SessionManager;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub settings: Arc<Settings>,
    pub auth: Authenticator,
    pub sessions: SessionManager,
    pub session_store: AnyStore,
    /// The app database (SQLite or PostgreSQL).
    pub pool: AnyPool,
    /// The notification pipeline (its own SQLite file); `serve` starts its workers.
    pub notify: notify::NotifyService,
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
                    crate::error::AppError::Internal(
                        "session.store = \"redis\" needs session.redis_url or notify.redis_url".into(),
                    )
                })?;
                AnyStore::redis(&url).await?
            }
        };
        let auth = Authenticator {
            users: UserStore::new(pool.clone()),
            hasher,
            throttle: Arc::new(LoginThrottle::new(&settings.throttle)),
        };
        let sessions = SessionManager {
            registry: SessionRegistry::new(pool.clone()),
            store: Arc::new(session_store.clone()),
            policy: settings.session_policy(),
        };
        let notify = notify::NotifyService::new(settings.notify_config())
            .await
            .map_err(|e| crate::error::AppError::Internal(format!("notification pipeline: {e:?}")))?;
        Ok(Self { leptos_options, settings: Arc::new(settings), auth, sessions, session_store, pool, notify })
    }
}
