//! Opening the product's database. The URL picks the engine: `sqlite://path` (the embedded default,
//! created on first use, WAL) or `postgres://…` (deployments beyond one machine). Queries go through
//! sqlx's `Any` driver and are written once, with `$1`-style placeholders that both engines accept.
//!
//! Each domain crate owns its tables and ships one migration folder per engine with the same versions
//! (`migrations/sqlite`, `migrations/postgres`): the SQL differs only where the dialects do (identity
//! columns, case-insensitive uniqueness). Several crates share one `_sqlx_migrations` table, so each
//! migrator ignores versions that belong to the others.

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};
use std::str::FromStr;
use std::time::Duration;

pub use sqlx::AnyPool as Pool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn of_url(url: &str) -> Result<Engine, DbError> {
        let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Ok(Engine::Sqlite),
            "postgres" | "postgresql" => Ok(Engine::Postgres),
            _ => Err(DbError::BadUrl(format!(
                "database URL must start with sqlite:// or postgres:// (got {:?})",
                scheme.chars().take(20).collect::<String>()
            ))),
        }
    }

    pub fn of_pool(pool: &AnyPool) -> Engine {
        // The pool's options keep the URL it was opened with.
        Engine::of_url(pool.connect_options().database_url.as_ref()).unwrap_or(Engine::Sqlite)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

#[derive(Debug)]
pub enum DbError {
    BadUrl(String),
    Sqlx(sqlx::Error),
    Migrate(sqlx::migrate::MigrateError),
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::BadUrl(m) => f.write_str(m),
            DbError::Sqlx(e) => write!(f, "database: {e}"),
            DbError::Migrate(e) => write!(f, "migration: {e}"),
        }
    }
}

impl std::error::Error for DbError {}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        DbError::Sqlx(e)
    }
}

impl From<sqlx::migrate::MigrateError> for DbError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        DbError::Migrate(e)
    }
}

/// Opens a pool on `url` (a SQLite file is created if missing). Does not migrate: see [`migrate`].
pub async fn connect(url: &str) -> Result<AnyPool, DbError> {
    sqlx::any::install_default_drivers();
    let engine = Engine::of_url(url)?;
    let url = match engine {
        // `mode=rwc` creates the file; keep any options the caller gave.
        Engine::Sqlite if !url.contains("mode=") => {
            format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
        }
        _ => url.to_string(),
    };
    let options = AnyConnectOptions::from_str(&url).map_err(|e| DbError::BadUrl(format!("bad database URL: {e}")))?;
    let pool = match engine {
        Engine::Sqlite => {
            if let Some(dir) = sqlite_path(&url).and_then(|p| std::path::Path::new(&p).parent().map(|d| d.to_owned())) {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(&dir).map_err(|e| DbError::BadUrl(format!("cannot create {}: {e}", dir.display())))?;
                }
            }
            let pool = AnyPoolOptions::new()
                .max_connections(8)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        // Per connection: wait for the writer instead of failing, enforce foreign keys,
                        // and fsync only at checkpoints (safe with WAL).
                        conn.execute("PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;").await?;
                        Ok(())
                    })
                })
                .connect_with(options)
                .await?;
            // Persistent in the file: readers never block the writer.
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
            pool
        }
        Engine::Postgres => AnyPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(10)).connect_with(options).await?,
    };
    Ok(pool)
}

/// The file path of a SQLite URL (`sqlite://data/app.db?mode=rwc` → `data/app.db`).
pub fn sqlite_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| path.to_string())
}

/// The migrations of one crate, one folder per engine with the same versions.
pub struct Migrations {
    pub sqlite: Migrator,
    pub postgres: Migrator,
}

/// Applies the pending migrations of `m` for the pool's engine.
pub async fn migrate(pool: &AnyPool, m: &Migrations) -> Result<(), DbError> {
    let migrator = match Engine::of_pool(pool) {
        Engine::Sqlite => &m.sqlite,
        Engine::Postgres => &m.postgres,
    };
    // Other crates' versions live in the same table.
    let mut migrator = Migrator { migrations: migrator.migrations.clone(), ..Migrator::DEFAULT };
    migrator.set_ignore_missing(true);
    migrator.run(pool).await?;
    Ok(())
}

/// Is this error a unique-constraint violation (on either engine)?
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[cfg(feature = "testing")]
pub mod testing;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_from_url() {
        assert_eq!(Engine::of_url("sqlite://data/app.db").unwrap(), Engine::Sqlite);
        assert_eq!(Engine::of_url("postgres://u@h/db").unwrap(), Engine::Postgres);
        assert_eq!(Engine::of_url("postgresql://u@h/db").unwrap(), Engine::Postgres);
        assert!(Engine::of_url("mysql://x").is_err());
        assert!(Engine::of_url("").is_err());
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(sqlite_path("sqlite://data/app.db?mode=rwc").as_deref(), Some("data/app.db"));
        assert_eq!(sqlite_path("sqlite:///tmp/x.db").as_deref(), Some("/tmp/x.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x"), None);
    }
}
