//! Counters for password-attempt throttling: one row per key, each attempt reserved
//! atomically *before* the password is checked, so parallel guesses cannot all slip under
//! a limit read earlier. Not the policy: which keys, limits and windows is the host's.

use sqlx::Row;

use crate::{Store, StoreError};

/// How long `Store::cleanup` keeps a counter after its window began: one day. Throttling
/// windows longer than this would undercount.
pub const THROTTLE_RETENTION_SECS: i64 = 86_400;

/// One statement, so it is atomic on both backends: PostgreSQL's `ON CONFLICT DO UPDATE`
/// locks the row and re-evaluates the condition against its latest version, and a SQLite
/// write statement holds the write lock from its start. A window that began at or before
/// `$3` has passed and starts again at `$2`; otherwise the count goes up only while it is
/// below `$4`. No row back means the limit was reached.
const RESERVE: &str = "INSERT INTO throttle_counters (key, window_start, count) VALUES ($1, $2, 1) \
     ON CONFLICT (key) DO UPDATE SET \
       count = CASE WHEN throttle_counters.window_start <= $3 THEN 1 \
                    ELSE throttle_counters.count + 1 END, \
       window_start = CASE WHEN throttle_counters.window_start <= $3 THEN $2 \
                           ELSE throttle_counters.window_start END \
     WHERE throttle_counters.window_start <= $3 OR throttle_counters.count < $4 \
     RETURNING count";

impl Store {
    /// Reserves one attempt under `key` in a window of `window_seconds` that began at the
    /// key's first attempt, if fewer than `limit` are counted. Returns the count including
    /// this attempt, or `None` when the limit is reached (nothing is written then).
    pub async fn throttle_reserve(
        &self,
        key: &str,
        now: i64,
        window_seconds: i64,
        limit: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(RESERVE)
            .bind(key)
            .bind(now)
            .bind(now.saturating_sub(window_seconds))
            .bind(limit)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get("count"))
            .transpose()
            .map_err(Into::into)
    }

    /// Gives back one reserved attempt under `key` (the attempt succeeded, so it was not a
    /// failure). Other attempts in the window stay counted.
    pub async fn throttle_release(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE throttle_counters SET count = count - 1 WHERE key = $1 AND count > 0")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The attempts counted under `key` in a window of `window_seconds` (0 once it passed).
    pub async fn throttle_count(
        &self,
        key: &str,
        now: i64,
        window_seconds: i64,
    ) -> Result<i64, StoreError> {
        let row =
            sqlx::query("SELECT count FROM throttle_counters WHERE key = $1 AND window_start > $2")
                .bind(key)
                .bind(now.saturating_sub(window_seconds))
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.try_get("count")).transpose()?.unwrap_or(0))
    }
}
