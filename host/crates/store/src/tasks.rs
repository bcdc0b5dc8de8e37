//! Scheduled tasks' rows: the lease that lets one host of many run a task, and the record
//! of each run. Not the schedule (when a task is due is the host's `tasks::schedule`) and
//! not the tasks themselves.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError};

/// One statement, so it is atomic on both backends (like `throttle::RESERVE`): PostgreSQL's
/// `ON CONFLICT DO UPDATE` locks the row and re-checks the condition against its latest
/// version, and a SQLite write statement holds the write lock from its start. The lease is
/// taken when there is none, when it has expired (`expires_at <= $4`, a crashed host's), or
/// when `$3` already holds it; otherwise no row changes.
const ACQUIRE: &str = "INSERT INTO task_leases (task, scope, holder, acquired_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (task, scope) DO UPDATE SET \
       holder = excluded.holder, acquired_at = excluded.acquired_at, \
       expires_at = excluded.expires_at \
     WHERE task_leases.expires_at <= $4 OR task_leases.holder = $3";

/// Who holds a task's lease, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLease {
    pub task: String,
    /// The IdP instance's id, or `""` for a host task.
    pub scope: String,
    pub holder: String,
    pub acquired_at: i64,
    pub expires_at: i64,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskOutcome {
    /// It ran and did its work.
    Ok,
    /// It ran and failed (`error` says why).
    Failed,
    /// It did not run this time for a reason that is not the task's fault (for example the
    /// IdP's circuit breaker was open).
    Skipped,
}

impl TaskOutcome {
    /// The spelling stored in `task_runs.outcome` and shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "ok" => Ok(Self::Ok),
            "failed" => Ok(Self::Failed),
            "skipped" => Ok(Self::Skipped),
            other => Err(StoreError::Corrupt(format!(
                "task_runs.outcome holds {other:?}, expected ok, failed or skipped"
            ))),
        }
    }
}

/// A run to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTaskRun {
    pub task: String,
    /// The IdP instance a plugin task ran for; `None` for a host task.
    pub idp_id: Option<String>,
    /// The host (its lease holder id) that ran it.
    pub holder: String,
    pub started_at: i64,
    pub finished_at: i64,
    pub outcome: TaskOutcome,
    pub duration_ms: i64,
    /// One line for people: what the run did.
    pub summary: String,
    pub error: Option<String>,
}

/// A recorded run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRun {
    pub id: i64,
    pub run: NewTaskRun,
}

fn task_run(row: &AnyRow) -> Result<TaskRun, StoreError> {
    let outcome: String = row.try_get("outcome")?;
    Ok(TaskRun {
        id: row.try_get("id")?,
        run: NewTaskRun {
            task: row.try_get("task")?,
            idp_id: row.try_get("idp_id")?,
            holder: row.try_get("holder")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            outcome: TaskOutcome::parse(&outcome)?,
            duration_ms: row.try_get("duration_ms")?,
            summary: row.try_get("summary")?,
            error: row.try_get("error")?,
        },
    })
}

impl Store {
    /// Takes the lease of (task, scope) for `holder` until `expires_at`, if nobody else
    /// holds a live one. Returns whether `holder` now holds it. Of several hosts calling
    /// this at once, at most one gets `true`.
    pub async fn acquire_task_lease(
        &self,
        task: &str,
        scope: &str,
        holder: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        if expires_at <= now {
            return Err(StoreError::Invalid(format!(
                "a lease of `{task}` must end after it is taken ({expires_at} <= {now})"
            )));
        }
        let done = sqlx::query(ACQUIRE)
            .bind(task)
            .bind(scope)
            .bind(holder)
            .bind(now)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Moves the end of `holder`'s lease of (task, scope) to `expires_at`. Returns `false`
    /// when `holder` no longer holds it (another host took it over after it expired).
    pub async fn renew_task_lease(
        &self,
        task: &str,
        scope: &str,
        holder: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE task_leases SET expires_at = $4 \
             WHERE task = $1 AND scope = $2 AND holder = $3",
        )
        .bind(task)
        .bind(scope)
        .bind(holder)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Gives up `holder`'s lease of (task, scope). Returns `false` when it held none (it
    /// had expired and been taken over); another holder's lease is never touched.
    pub async fn release_task_lease(
        &self,
        task: &str,
        scope: &str,
        holder: &str,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM task_leases WHERE task = $1 AND scope = $2 AND holder = $3")
                .bind(task)
                .bind(scope)
                .bind(holder)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The lease row of (task, scope), live or expired, if there is one.
    pub async fn task_lease(
        &self,
        task: &str,
        scope: &str,
    ) -> Result<Option<TaskLease>, StoreError> {
        let row = sqlx::query(
            "SELECT task, scope, holder, acquired_at, expires_at FROM task_leases \
             WHERE task = $1 AND scope = $2",
        )
        .bind(task)
        .bind(scope)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(TaskLease {
                task: row.try_get("task")?,
                scope: row.try_get("scope")?,
                holder: row.try_get("holder")?,
                acquired_at: row.try_get("acquired_at")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Records a run and returns its id.
    pub async fn record_task_run(&self, run: &NewTaskRun) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO task_runs (task, idp_id, holder, started_at, finished_at, outcome, \
             duration_ms, summary, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(&run.task)
        .bind(run.idp_id.as_deref())
        .bind(&run.holder)
        .bind(run.started_at)
        .bind(run.finished_at)
        .bind(run.outcome.as_str())
        .bind(run.duration_ms)
        .bind(&run.summary)
        .bind(run.error.as_deref())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// The runs of `task` for `idp_id` (`None`: the host task), latest start first, at
    /// most `limit` (zero or less: none).
    pub async fn task_runs(
        &self,
        task: &str,
        idp_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<TaskRun>, StoreError> {
        if limit <= 0 {
            return Ok(Vec::new());
        }
        // '' is never an IdP id (ids are non-empty), so it can stand for "no IdP".
        let rows = sqlx::query(
            "SELECT id, task, idp_id, holder, started_at, finished_at, outcome, duration_ms, \
             summary, error FROM task_runs WHERE task = $1 AND COALESCE(idp_id, '') = $2 \
             ORDER BY started_at DESC, id DESC LIMIT $3",
        )
        .bind(task)
        .bind(idp_id.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(task_run).collect()
    }

    /// The latest run of `task` for `idp_id`, if it ever ran.
    pub async fn last_task_run(
        &self,
        task: &str,
        idp_id: Option<&str>,
    ) -> Result<Option<TaskRun>, StoreError> {
        Ok(self.task_runs(task, idp_id, 1).await?.into_iter().next())
    }
}
