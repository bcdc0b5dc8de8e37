//! The plugins' key-value store: byte values under (scope, key), each with an optional expiry,
//! used for replay caches and similar state that every host must see. Not a cache in memory,
//! and not where scopes are assigned (the host gives each plugin instance its scope).

use sqlx::Row;

use crate::{Store, StoreError};

impl Store {
    /// The value under (scope, key), or `None` if absent or expired (`expires_at <= now`).
    pub async fn kv_get(
        &self,
        scope: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query(
            "SELECT value FROM kv WHERE scope = $1 AND key = $2 \
             AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(scope)
        .bind(key)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Some(row.try_get("value")?)),
            None => Ok(None),
        }
    }

    /// Writes `value` under (scope, key), expiring at `expires_at` (`None` = never).
    ///
    /// With `only_if_absent`, writes only when there is no live value (an expired one counts as
    /// absent) and returns whether it wrote. This is one atomic statement: of several
    /// concurrent callers with the same key, on any number of hosts, exactly one gets `true`.
    /// Without `only_if_absent` it always writes and returns `true`.
    pub async fn kv_put(
        &self,
        scope: &str,
        key: &str,
        value: &[u8],
        expires_at: Option<i64>,
        only_if_absent: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = if only_if_absent {
            sqlx::query(
                "INSERT INTO kv (scope, key, value, expires_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (scope, key) DO UPDATE \
                 SET value = excluded.value, expires_at = excluded.expires_at \
                 WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= $5",
            )
            .bind(scope)
            .bind(key)
            .bind(value)
            .bind(expires_at)
            .bind(now)
            .execute(&self.pool)
            .await?
        } else {
            sqlx::query(
                "INSERT INTO kv (scope, key, value, expires_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (scope, key) DO UPDATE \
                 SET value = excluded.value, expires_at = excluded.expires_at",
            )
            .bind(scope)
            .bind(key)
            .bind(value)
            .bind(expires_at)
            .execute(&self.pool)
            .await?
        };
        Ok(done.rows_affected() > 0)
    }

    /// Deletes (scope, key) (no error if absent).
    pub async fn kv_delete(&self, scope: &str, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM kv WHERE scope = $1 AND key = $2")
            .bind(scope)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
