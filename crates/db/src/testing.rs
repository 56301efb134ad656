//! Throwaway databases for tests. Every database test runs against each engine in [`engines`]: a fresh
//! SQLite file always, and a fresh PostgreSQL database when `APP_TEST_POSTGRES_URL` points at a server
//! (the test command starts one; see `scripts/pg.sh`). With `APP_TEST_REQUIRE_POSTGRES=1` a missing
//! server fails the test instead of skipping PostgreSQL, so CI cannot pass without it.

use rand::Rng;
use sqlx::{AnyPool, Connection};

use crate::Engine;

/// A database that exists for one test. SQLite files go with the temp dir; PostgreSQL databases are
/// left for the throwaway cluster to take with it (dropping needs every connection closed first).
pub struct TestDb {
    pub engine: Engine,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn connect(&self) -> AnyPool {
        crate::connect(&self.url).await.unwrap_or_else(|e| panic!("connect {}: {e}", self.engine.as_str()))
    }
}

/// The engines available to this test run, each with a fresh empty database.
pub async fn engines() -> Vec<TestDb> {
    let mut dbs = vec![sqlite().await];
    if let Some(pg) = postgres().await {
        dbs.push(pg);
    }
    dbs
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    TestDb { engine: Engine::Sqlite, url, _dir: Some(dir) }
}

/// A fresh database on the server named by `APP_TEST_POSTGRES_URL`, or `None` when it is not set
/// (unless `APP_TEST_REQUIRE_POSTGRES=1`, which makes that a failure).
pub async fn postgres() -> Option<TestDb> {
    let server = match std::env::var("APP_TEST_POSTGRES_URL") {
        Ok(u) if !u.trim().is_empty() => u,
        _ => {
            if std::env::var("APP_TEST_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("APP_TEST_REQUIRE_POSTGRES=1 but APP_TEST_POSTGRES_URL is not set");
            }
            eprintln!("note: APP_TEST_POSTGRES_URL not set; PostgreSQL part of this test skipped");
            return None;
        }
    };
    sqlx::any::install_default_drivers();
    let name = format!("t_{:016x}", rand::thread_rng().gen::<u64>());
    let mut admin = sqlx::AnyConnection::connect(&server).await.unwrap_or_else(|e| panic!("cannot reach PostgreSQL at APP_TEST_POSTGRES_URL: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("create test database");
    let _ = admin.close().await;
    let base = server.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(server.clone());
    Some(TestDb { engine: Engine::Postgres, url: format!("{base}/{name}"), _dir: None })
}
