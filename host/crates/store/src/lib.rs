//! Gatehouse's database: one `Store` over SQLite (the embedded default) or PostgreSQL (several
//! hosts sharing one database), through a single code path on `sqlx::AnyPool`, with the schema
//! migrations embedded. It is not where policy lives: locks, throttling limits and session
//! lifetimes are decided by the host; the store only keeps and returns the rows.
//!
//! Conventions on both backends: timestamps are `i64` Unix seconds passed in by the caller
//! (`now`), booleans are stored as integers 0/1, bytes as BLOB/BYTEA, and every query is a
//! runtime `sqlx::query` with `$n` placeholders. Something "expires" when `expires_at <= now`.

mod accounts;
mod batch_writer;
mod bulk;
mod connect_collections;
mod connect_hierarchy;
mod connect_jobs;
mod connect_server;
mod connect_server_flows;
mod connect_server_shares;
mod connect_sync;
mod directory;
mod error;
mod host_keys;
mod kv;
mod logins;
mod sessions;
mod sign_in;
mod tasks;
mod throttle;
mod users;

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Row};

pub use accounts::{AccountSummary, PasswordReplacement};
pub use connect_collections::{
    AudienceRef, CollectionChange, CollectionKind, CollectionsCounts, CollectionsPlan,
    CollectionsState, LocalAudience, ServerCollection, SkippedCollection, collection_idnumber,
    plan_collections_sync,
};
pub use connect_hierarchy::{
    FrameworkValues, HierarchyChange, HierarchyConflict, HierarchyCounts, HierarchyPlan,
    HierarchyState, HierarchyTable, ItemValues, LocalFramework, LocalItem, RowRef, ServerFramework,
    ServerItem, plan_hierarchy_sync, remote_id_kinds,
};
pub use connect_jobs::{
    JOB_ID_KIND, JobChange, JobValues, JobsCounts, JobsOptions, JobsPlan, JobsState, LocalJob,
    ServerJob, ServerUserJobs, plan_jobs_sync,
};
pub use connect_server::{
    ConnectClient, ConnectClientOptions, ConnectSharedJob, ConnectSharedUser, ConnectSsoSession,
    ConnectUsersQuery, NewConnectClient,
};
pub use connect_server_flows::FrameworkKind;
pub use connect_server_shares::{
    ConnectCollections, ConnectHierarchy, ConnectSharedAudience, ConnectSharedCourse,
    ConnectSharedFramework, ConnectSharedItem,
};
pub use connect_sync::{
    AccountStanding, AmbiguousMatch, ContestedAccount, FoundAccount, LOCAL_AUTH_SOURCE,
    MappingProblem, MigrateMap, Migration, MigrationCandidate, MigrationPlan, NamedServerUser,
    RemoveUser, ServerUser, SyncCounts, SyncOptions, SyncSource, Takeover, adopt_signed_in_users,
    connect_username, count_users_sync, is_valid_email, local_value, mapping_value,
    matching_accounts, may_be_taken_over, plan_migration, plan_users_sync,
};
pub use directory::{
    Batch, BatchSummary, Change, ConnectLink, CoreField, DirectoryAudience, DirectoryCourse,
    DirectoryFramework, DirectoryItem, DirectoryJob, DirectorySnapshot, DirectoryUser,
    ImportAudience, ImportCourse, ImportDocument, ImportFramework, ImportItem, ImportJob,
    ImportUser, PlanError, WrittenBy, framework_kind_name, plan,
};
pub use error::StoreError;
pub use logins::{AuditEvent, IdpActivity};
pub use sessions::{PendingLogin, PendingStage, Session, SignInPurpose};
pub use sign_in::{AccountWrite, MatchedUser, SignInLookup, SignInWrite};
pub use tasks::{NewTaskRun, TaskLease, TaskOutcome, TaskRun};
pub use throttle::THROTTLE_RETENTION_SECS;
pub use users::{ADMIN_PROVENANCE, FieldChange, FieldProvenance, NewUser, User};

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database a `Store` talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names, from its scheme.
    pub fn from_url(url: &str) -> Result<Backend, StoreError> {
        let scheme = url
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(StoreError::UnsupportedUrl(scheme)),
        }
    }
}

/// The connection pool's use ([`Store::pool_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections open, in use or idle.
    pub open: u32,
    /// Open connections waiting for a query.
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}

/// The handle on the database. Cheap to clone (it shares one connection pool).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Deliberately no URL or pool options: they may carry a password.
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// True for the SQLite URLs that name an in-memory database.
fn sqlite_is_memory(url: &str) -> bool {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (db, params) = rest.split_once('?').unwrap_or((rest, ""));
    db == ":memory:" || params.split('&').any(|p| p == "mode=memory")
}

/// A file SQLite URL gets `mode=rwc` (create if missing) unless it chose a mode itself.
fn sqlite_url_with_create(url: &str) -> String {
    match url.split_once('?') {
        Some((_, params)) if params.split('&').any(|p| p.starts_with("mode=")) => url.to_owned(),
        Some(_) => format!("{url}&mode=rwc"),
        None => format!("{url}?mode=rwc"),
    }
}

impl Store {
    /// Connects to `url` and runs the embedded migrations of its backend.
    ///
    /// * `sqlite://path.db` (relative) or `sqlite:///abs/path.db`: the file is created if
    ///   missing, switched to WAL, and every connection gets `busy_timeout`, `foreign_keys=ON`
    ///   and `synchronous=NORMAL`.
    /// * `sqlite::memory:`: an in-memory database for tests; the pool then holds exactly one
    ///   connection (each SQLite in-memory connection would otherwise be its own database).
    /// * `postgres://user:password@host/db` (or `postgresql://`).
    ///
    /// Error messages never contain the password from the URL.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let connect_err = |e: sqlx::Error| StoreError::Connect(error::redact(&e.to_string(), url));

        // One direct attempt first: the pool would retry until its acquire timeout and then
        // report only "pool timed out", hiding the cause (refused, bad password, no such DB).
        {
            use sqlx::Connection as _;
            let probe_url = match backend {
                Backend::Sqlite if !sqlite_is_memory(url) => sqlite_url_with_create(url),
                _ => url.to_owned(),
            };
            let probe = sqlx::AnyConnection::connect(&probe_url)
                .await
                .map_err(connect_err)?;
            probe.close().await.map_err(connect_err)?;
        }

        let pool = match backend {
            Backend::Sqlite => {
                let memory = sqlite_is_memory(url);
                let url = if memory {
                    url.to_owned()
                } else {
                    sqlite_url_with_create(url)
                };
                let options = AnyPoolOptions::new()
                    .acquire_timeout(Duration::from_secs(30))
                    // A local file does not drop connections: no ping at every checkout (a
                    // round trip to the connection's worker thread each time).
                    .test_before_acquire(false)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            // Wait up to 5 s for another connection's write lock.
                            sqlx::query("PRAGMA busy_timeout = 5000")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query("PRAGMA foreign_keys = ON")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query("PRAGMA synchronous = NORMAL")
                                .execute(&mut *conn)
                                .await?;
                            Ok(())
                        })
                    });
                let options = if memory {
                    options
                        .max_connections(1)
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None)
                } else {
                    options.max_connections(8)
                };
                let pool = options.connect(&url).await.map_err(connect_err)?;
                if !memory {
                    // WAL is a property of the database file: set once, it stays. Switching
                    // needs an exclusive lock, so it is done here, once, and not per connection.
                    let row = sqlx::query("PRAGMA journal_mode = WAL")
                        .fetch_one(&pool)
                        .await
                        .map_err(connect_err)?;
                    let mode: String = row.try_get(0).map_err(connect_err)?;
                    if !mode.eq_ignore_ascii_case("wal") {
                        tracing::warn!(
                            journal_mode = %mode,
                            "SQLite did not switch to WAL; concurrent sign-ins will wait on each other"
                        );
                    }
                }
                pool
            }
            Backend::Postgres => AnyPoolOptions::new()
                .max_connections(10)
                .acquire_timeout(Duration::from_secs(30))
                // No ping at every checkout (a round trip per statement's checkout): a
                // connection the server dropped fails its one request and is discarded, and
                // idle connections are recycled after 10 minutes anyway.
                .test_before_acquire(false)
                .connect(url)
                .await
                .map_err(connect_err)?,
        };

        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        };
        migrator
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate(error::redact(&e.to_string(), url)))?;

        Ok(Store { pool, backend })
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A trivial round trip, for `/healthz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The connection pool's use now, for the metrics (read at each scrape; no round trip).
    pub fn pool_status(&self) -> PoolStatus {
        PoolStatus {
            open: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        }
    }

    /// SQLite's `PRAGMA journal_mode` as seen by a pooled connection (`"wal"` for files), or
    /// `None` on PostgreSQL. For diagnostics and tests.
    pub async fn sqlite_journal_mode(&self) -> Result<Option<String>, StoreError> {
        if self.backend != Backend::Sqlite {
            return Ok(None);
        }
        let row = sqlx::query("PRAGMA journal_mode")
            .fetch_one(&self.pool)
            .await?;
        Ok(Some(row.try_get::<String, _>(0)?))
    }

    /// Closes the pool: waits for connections in use to come back, then closes them all.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Reads a 0/1 integer column as a bool.
/// `columns` of each of a user's rows (fields, links, jobs), as one JSON list of lists ordered by `order`,
/// in the backend's dialect. Aggregated in the database because a row costs far more to
/// hand over than its bytes: 100,000 users' 500,000 field values arrive as 100,000 rows.
pub(crate) fn json_rows_sql(backend: Backend, columns: &str, order: &str) -> String {
    match backend {
        Backend::Sqlite => format!("json_group_array(json_array({columns}) ORDER BY {order})"),
        Backend::Postgres => {
            format!("json_agg(json_build_array({columns}) ORDER BY {order})::text")
        }
    }
}

pub(crate) fn get_bool(row: &AnyRow, column: &str) -> Result<bool, StoreError> {
    match row.try_get::<i64, _>(column)? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(StoreError::Corrupt(format!(
            "column {column} holds {other}, expected 0 or 1"
        ))),
    }
}

/// How many rows one [`Store::cleanup`] deleted, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupCounts {
    pub sessions: u64,
    pub pending_logins: u64,
    pub kv: u64,
    pub throttle: u64,
    pub audit: u64,
    pub task_runs: u64,
}

impl CleanupCounts {
    /// Every row deleted.
    pub fn total(&self) -> u64 {
        self.sessions + self.pending_logins + self.kv + self.throttle + self.audit + self.task_runs
    }
}

impl Store {
    /// Deletes what has expired by `now`: sessions and pending sign-ins with
    /// `expires_at <= now`, key-value rows likewise, and throttle counters whose window began
    /// more than [`THROTTLE_RETENTION_SECS`] ago; and the history older than `history_before`:
    /// audit rows, and task runs except the latest of each task (so that a task's last
    /// outcome, and when it is next due, are never forgotten). Users, links and keys are never
    /// touched. Each table is one statement, so a sweep never holds a long lock.
    pub async fn cleanup(
        &self,
        now: i64,
        history_before: i64,
    ) -> Result<CleanupCounts, StoreError> {
        let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let pending_logins = sqlx::query("DELETE FROM pending_logins WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let kv = sqlx::query("DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let throttle = sqlx::query("DELETE FROM throttle_counters WHERE window_start < $1")
            .bind(now.saturating_sub(THROTTLE_RETENTION_SECS))
            .execute(&self.pool)
            .await?
            .rows_affected();
        let audit = sqlx::query("DELETE FROM audit_log WHERE at < $1")
            .bind(history_before)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let task_runs = sqlx::query(
            "DELETE FROM task_runs WHERE started_at < $1 AND id NOT IN \
             (SELECT MAX(id) FROM task_runs GROUP BY task, idp_id)",
        )
        .bind(history_before)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(CleanupCounts {
            sessions,
            pending_logins,
            kv,
            throttle,
            audit,
            task_runs,
        })
    }
}
