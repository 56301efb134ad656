//! Opening the auth database (SQLite by default, PostgreSQL when the URL says so) and migrating it.

use sqlx::AnyPool;

use crate::AuthError;

/// The auth tables' migrations, one folder per engine with the same versions.
pub fn migrations() -> db::Migrations {
    db::Migrations { sqlite: sqlx::migrate!("./migrations/sqlite"), postgres: sqlx::migrate!("./migrations/postgres") }
}

/// Opens (creating a SQLite file if needed) the database at `url` and applies pending migrations.
pub async fn connect(url: &str) -> Result<AnyPool, AuthError> {
    let pool = db::connect(url).await?;
    db::migrate(&pool, &migrations()).await?;
    Ok(pool)
}
