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
            use_incremental_vacuum(&options).await?;
            let pool = AnyPoolOptions::new()
                .max_connections(8)
                // A file on this machine has no connection to lose. sqlx's check before each use is
                // a round trip to the connection's worker thread per query, about a tenth of a
                // signed-in page that reads twice.
                .test_before_acquire(false)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        // Per connection: wait for the writer instead of failing, enforce foreign keys,
                        // and fsync only at checkpoints (safe with WAL).
                        // The WAL is cut back to 64 MB after a checkpoint (a big prune must not leave it large).
                        conn.execute(
                            "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = 67108864;",
                        )
                        .await?;
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

/// SQLite files use incremental auto-vacuum, so what retention deletes can be given back
/// ([`give_back_pages`]). A file made before is switched with one `VACUUM`, logged (it rewrites the
/// file), outside WAL mode (the setting cannot change under WAL); `connect` sets WAL again after.
async fn use_incremental_vacuum(options: &AnyConnectOptions) -> Result<(), DbError> {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::AnyConnection::connect_with(options).await?;
    let mode = |row: sqlx::any::AnyRow| row.try_get::<i64, _>(0).unwrap_or(0);
    if mode(sqlx::query("PRAGMA auto_vacuum").fetch_one(&mut conn).await?) != 2 {
        // A new file takes the setting at once; one that ever had a table needs the VACUUM.
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL").await?;
        if mode(sqlx::query("PRAGMA auto_vacuum").fetch_one(&mut conn).await?) != 2 {
            tracing::info!(url = %options.database_url, "switching the database file to incremental auto-vacuum (one VACUUM)");
            conn.execute("PRAGMA busy_timeout = 30000; PRAGMA journal_mode = DELETE").await?;
            conn.execute("VACUUM").await?;
        }
    }
    conn.close().await?;
    Ok(())
}

/// Hands up to `pages` free pages of a SQLite file back to the file system (a no-op on PostgreSQL,
/// whose autovacuum does this). Called after each prune batch.
pub async fn give_back_pages(pool: &AnyPool, pages: u32) -> Result<(), sqlx::Error> {
    if Engine::of_pool(pool) == Engine::Sqlite {
        // `execute` steps the pragma to its end (each step frees one page).
        sqlx::query(&format!("PRAGMA incremental_vacuum({pages})")).execute(pool).await?;
    }
    Ok(())
}

/// A table retention prunes (issue 17): rows whose age is past a cut-off, a batch at a time. Each domain
/// crate lists its own; the server's pruner decides how long each store keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prunable {
    pub table: &'static str,
    /// A unique column (or row value, `(a, b)`) a batch is picked by.
    pub key: &'static str,
    /// The rows that are old: a condition on `$1`, the cut-off in the table's own unit, that an index
    /// answers.
    pub older_than: &'static str,
    /// A row's age stamp (what `older_than` compares, or the nearest thing), for reporting the oldest.
    pub age: &'static str,
    /// The age column counts seconds since the epoch (else milliseconds).
    pub in_secs: bool,
}

impl Prunable {
    /// Deletes one batch of at most `limit` rows older than `before_ms`; returns how many went.
    pub async fn prune(&self, pool: &AnyPool, before_ms: i64, limit: u32) -> Result<u64, sqlx::Error> {
        let before = if self.in_secs { before_ms.div_euclid(1000) } else { before_ms };
        delete_batch(pool, self.table, self.key, self.older_than, before, limit).await
    }

    /// Rows in the table now, and the oldest row's age stamp (ms since the epoch).
    pub async fn size(&self, pool: &AnyPool) -> Result<(u64, Option<i64>), sqlx::Error> {
        use sqlx::Row;
        let row = sqlx::query(&format!("SELECT COUNT(*), MIN({}) FROM {}", self.age, self.table)).fetch_one(pool).await?;
        let rows: i64 = row.try_get(0)?;
        let oldest: Option<i64> = row.try_get(1)?;
        Ok((rows as u64, oldest.map(|t| if self.in_secs { t * 1000 } else { t })))
    }
}

/// Bytes on disk of `table` with its indexes: PostgreSQL's `pg_total_relation_size`, SQLite's
/// `dbstat` (each b-tree walked once, so a measure, not a per-request call).
pub async fn table_bytes(pool: &AnyPool, table: &str) -> Result<u64, sqlx::Error> {
    use sqlx::Row;
    match Engine::of_pool(pool) {
        Engine::Postgres => {
            let row = sqlx::query("SELECT COALESCE(pg_total_relation_size(to_regclass($1)), 0)::BIGINT").bind(table).fetch_one(pool).await?;
            Ok(row.try_get::<i64, _>(0)?.max(0) as u64)
        }
        Engine::Sqlite => {
            let objects: Vec<String> = sqlx::query("SELECT name FROM sqlite_schema WHERE tbl_name = $1 AND type IN ('table', 'index')")
                .bind(table)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            let mut total = 0u64;
            for name in objects {
                let row =
                    sqlx::query("SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name = $1 AND aggregate = 1").bind(name).fetch_one(pool).await?;
                total += row.try_get::<i64, _>(0)?.max(0) as u64;
            }
            Ok(total)
        }
    }
}

/// Deletes one batch: at most `limit` rows of `table` matching `filter` (which may use `$1`, bound to
/// `before`), picked by the unique column `key`. The same SQL on both engines; `filter` should be what
/// an index answers, so a batch costs its own rows, not a scan.
pub async fn delete_batch(pool: &AnyPool, table: &str, key: &str, filter: &str, before: i64, limit: u32) -> Result<u64, sqlx::Error> {
    // A row value `(a, b)` is compared whole but selected as its columns.
    let columns = key.trim_start_matches('(').trim_end_matches(')');
    let sql = format!("DELETE FROM {table} WHERE {key} IN (SELECT {columns} FROM {table} WHERE {filter} LIMIT $2)");
    Ok(sqlx::query(&sql).bind(before).bind(i64::from(limit)).execute(pool).await?.rows_affected())
}

/// Bytes on disk of the pool's SQLite file with its WAL; `None` on PostgreSQL.
pub fn file_bytes(pool: &AnyPool) -> Option<u64> {
    let path = sqlite_path(pool.connect_options().database_url.as_ref())?;
    Some([path.clone(), format!("{path}-wal")].iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum())
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

    #[tokio::test]
    async fn an_old_file_is_switched_to_incremental_vacuum_and_pruning_gives_pages_back() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("app.db").display());
        // A file as `connect` made it before retention: WAL, no auto-vacuum, a table with rows.
        {
            sqlx::any::install_default_drivers();
            let options = AnyConnectOptions::from_str(&format!("{url}?mode=rwc")).unwrap();
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect_with(&options).await.unwrap();
            conn.execute("PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, at BIGINT NOT NULL, body TEXT NOT NULL)").await.unwrap();
        }
        let pool = connect(&url).await.unwrap();
        let pragma = |p: &'static str| {
            let pool = pool.clone();
            async move { sqlx::query_scalar::<_, i64>(p).fetch_one(&pool).await.unwrap() }
        };
        assert_eq!(pragma("PRAGMA auto_vacuum").await, 2, "incremental");
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&pool).await.unwrap();
        assert_eq!(mode, "wal");
        for i in 0..2_000 {
            sqlx::query("INSERT INTO t (at, body) VALUES ($1, $2)").bind(i64::from(i)).bind("x".repeat(1000)).execute(&pool).await.unwrap();
        }
        let t = Prunable { table: "t", key: "id", older_than: "at < $1", age: "at", in_secs: false };
        assert_eq!(t.size(&pool).await.unwrap(), (2_000, Some(0)));
        let full = pragma("PRAGMA page_count").await;
        sqlx::query("CREATE INDEX t_at ON t (at)").execute(&pool).await.unwrap();
        let (held, index) = (table_bytes(&pool, "t").await.unwrap(), table_bytes(&pool, "t_at").await.unwrap());
        // 2,000 rows of 1 kB, and its index counted with it (an index is no table of its own).
        assert!((2_000_000..3_000_000).contains(&held), "{held}");
        assert_eq!(index, 0);
        assert_eq!(table_bytes(&pool, "no_such_table").await.unwrap(), 0);
        // Batches of 500, only rows older than the cut-off.
        assert_eq!(t.prune(&pool, 1_500, 500).await.unwrap(), 500);
        assert_eq!(t.prune(&pool, 1_500, 500).await.unwrap(), 500);
        assert_eq!(t.prune(&pool, 1_500, 500).await.unwrap(), 500);
        assert_eq!(t.prune(&pool, 1_500, 500).await.unwrap(), 0);
        assert_eq!(t.size(&pool).await.unwrap(), (500, Some(1_500)));
        let left = table_bytes(&pool, "t").await.unwrap();
        assert!(left < held / 2, "a quarter of the rows left: {held} → {left}");
        give_back_pages(&pool, 100_000).await.unwrap();
        let after = pragma("PRAGMA page_count").await;
        assert!(after < full / 2, "pages given back: {full} → {after}");
        assert!(file_bytes(&pool).unwrap() > 0);
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(sqlite_path("sqlite://data/app.db?mode=rwc").as_deref(), Some("data/app.db"));
        assert_eq!(sqlite_path("sqlite:///tmp/x.db").as_deref(), Some("/tmp/x.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x"), None);
    }
}
