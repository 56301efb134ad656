//! Everything a request handler may need, built once at start-up.

use auth::{Authenticator, LoginThrottle, PasswordHasher, SessionRegistry, UserStore};
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use sqlx::SqlitePool;
use std::sync::Arc;
use tower_sessions_sqlx_store::SqliteStore;

use crate::config::Settings;
use crate::web_session::SessionManager;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub settings: Arc<Settings>,
    pub auth: Authenticator,
    pub sessions: SessionManager,
    pub session_store: SqliteStore,
    pub pool: SqlitePool,
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
        pool: SqlitePool,
        hasher: PasswordHasher,
    ) -> Result<Self, crate::error::AppError> {
        let session_store = SqliteStore::new(pool.clone());
        session_store.migrate().await.map_err(|e| crate::error::AppError::Internal(e.to_string()))?;
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
