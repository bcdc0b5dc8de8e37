//! What the store's integration test files share: a fresh database for one test — a SQLite
//! file in a temporary directory always, a PostgreSQL schema of its own when
//! `GATEHOUSE_TEST_DATABASE_URL` is set — and [`on_both_backends!`], which runs each listed
//! test function on both. Each test file includes it with `mod support;`. Not a test.

// Each test file is a crate of its own that uses only part of this.
#![allow(dead_code)]

use gatehouse_store::Store;

/// Names the PostgreSQL server the `postgres::*` tests use (an admin URL; each test makes a
/// schema of its own there).
pub const PG_ENV: &str = "GATEHOUSE_TEST_DATABASE_URL";

/// A database for one test, kept alive (its temporary directory) as long as this is.
pub struct TestDb {
    pub store: Store,
    /// The URL the store was opened with (a test may open a second store on it).
    pub url: String,
    _keep: Option<tempfile::TempDir>,
}

/// A fresh database on `backend` (`sqlite` or `postgres`) for test `test`; `None` for
/// PostgreSQL when [`PG_ENV`] is not set (the test then returns early and says so).
pub async fn open(backend: &str, test: &str) -> Option<TestDb> {
    if backend == "sqlite" {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("gh.db").display());
        let store = Store::connect(&url).await.expect("SQLite");
        return Some(TestDb {
            store,
            url,
            _keep: Some(dir),
        });
    }
    use sqlx::Connection as _;
    let Ok(admin_url) = std::env::var(PG_ENV) else {
        eprintln!("postgres::{test}: NOT RUN ({PG_ENV} is not set)");
        return None;
    };
    // Unique per test file, test and process; PostgreSQL names stop at 63 bytes.
    let mut schema = format!(
        "gh_{}_{}_{}",
        env!("CARGO_CRATE_NAME"),
        test,
        std::process::id()
    );
    if schema.len() > 63 {
        let pid = std::process::id().to_string();
        schema.truncate(62 - pid.len());
        schema = format!("{schema}_{pid}");
    }
    sqlx::any::install_default_drivers();
    let mut admin = sqlx::AnyConnection::connect(&admin_url)
        .await
        .expect("Postgres");
    for sql in [
        format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        format!("CREATE SCHEMA {schema}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .expect("schema");
    }
    let sep = if admin_url.contains('?') { '&' } else { '?' };
    let url = format!("{admin_url}{sep}options=-csearch_path%3D{schema}");
    let store = Store::connect(&url).await.expect("Postgres");
    Some(TestDb {
        store,
        url,
        _keep: None,
    })
}

/// Runs each listed `async fn name(db: &TestDb)` of the including file on SQLite
/// (`sqlite::name`) and on PostgreSQL (`postgres::name`, returning early without
/// [`PG_ENV`]).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let db = super::support::open("sqlite", stringify!($name)).await.expect("SQLite");
                super::$name(&db).await;
            }
        )* }
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let Some(db) = super::support::open("postgres", stringify!($name)).await else { return };
                super::$name(&db).await;
            }
        )* }
    };
}
