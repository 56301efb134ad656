//! Where session data lives: the app database (SQLite or PostgreSQL, whichever the database URL names)
//! or Redis, so that every instance behind nginx sees every session. One enum over tower-sessions' own
//! stores, because `SessionManagerLayer` wants one concrete store type.

use async_trait::async_trait;
use std::time::Duration;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config as RedisConfig, Pool as RedisPool};
use tower_sessions_redis_store::RedisStore;
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use crate::error::AppError;

#[derive(Clone, Debug)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
    Redis(RedisStore<RedisPool>, RedisPool),
}

impl AnyStore {
    /// The store in the app database named by `database_url` (its own typed pool; tower-sessions' SQL
    /// stores do not take sqlx's `Any` pool). Creates the store's table if needed.
    pub async fn database(database_url: &str) -> Result<Self, AppError> {
        let internal = |e: &dyn std::fmt::Display| AppError::Internal(format!("session store: {e}"));
        match db::Engine::of_url(database_url).map_err(|e| AppError::Internal(e.to_string()))? {
            db::Engine::Sqlite => {
                use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
                use std::str::FromStr;
                let options = SqliteConnectOptions::from_str(database_url)
                    .map_err(|e| AppError::Internal(format!("bad database URL: {e}")))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(5));
                let pool =
                    SqlitePoolOptions::new().max_connections(4).test_before_acquire(false).connect_with(options).await.map_err(|e| internal(&e))?;
                let store = SqliteStore::new(pool);
                store.migrate().await.map_err(|e| internal(&e))?;
                Ok(AnyStore::Sqlite(store))
            }
            db::Engine::Postgres => {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(database_url)
                    .await
                    .map_err(|e| internal(&e))?;
                let store = PostgresStore::new(pool);
                store.migrate().await.map_err(|e| internal(&e))?;
                Ok(AnyStore::Postgres(store))
            }
        }
    }

    /// Sessions in Redis (keys expire with the session; nothing to purge).
    pub async fn redis(url: &str) -> Result<Self, AppError> {
        let config = RedisConfig::from_url(url).map_err(|e| AppError::Internal(format!("bad session Redis URL: {e}")))?;
        let pool = RedisPool::new(config, None, None, None, 4).map_err(|e| AppError::Internal(format!("session store: {e}")))?;
        pool.init().await.map_err(|e| AppError::Internal(format!("session store: cannot reach Redis: {e}")))?;
        Ok(AnyStore::Redis(RedisStore::new(pool.clone()), pool))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            AnyStore::Sqlite(_) => "sqlite",
            AnyStore::Postgres(_) => "postgres",
            AnyStore::Redis(..) => "redis",
        }
    }

    /// Reclaims expired rows (SQL stores); Redis expires keys itself.
    pub async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            AnyStore::Sqlite(s) => s.delete_expired().await,
            AnyStore::Postgres(s) => s.delete_expired().await,
            AnyStore::Redis(..) => Ok(()),
        }
    }

    /// Readiness of a Redis store (`None` for the SQL stores, which the database check covers).
    pub async fn redis_ready(&self) -> Option<bool> {
        match self {
            AnyStore::Redis(_, pool) => {
                let ping = pool.ping::<String>(None);
                Some(matches!(tokio::time::timeout(Duration::from_secs(1), ping).await, Ok(Ok(_))))
            }
            _ => None,
        }
    }
}

#[async_trait]
impl SessionStore for AnyStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            AnyStore::Sqlite(s) => s.create(record).await,
            AnyStore::Postgres(s) => s.create(record).await,
            AnyStore::Redis(s, _) => s.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            AnyStore::Sqlite(s) => s.save(record).await,
            AnyStore::Postgres(s) => s.save(record).await,
            AnyStore::Redis(s, _) => s.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            AnyStore::Sqlite(s) => s.load(id).await,
            AnyStore::Postgres(s) => s.load(id).await,
            AnyStore::Redis(s, _) => s.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            AnyStore::Sqlite(s) => s.delete(id).await,
            AnyStore::Postgres(s) => s.delete(id).await,
            AnyStore::Redis(s, _) => s.delete(id).await,
        }
    }
}
