//! Keys the host keeps for itself in the database (for example the key that signs browser
//! bindings), so that every host sharing one database uses the same one. Not key use: the
//! store only creates and returns the bytes.

use sqlx::Row;

use crate::{Store, StoreError};

impl Store {
    /// The host key `name`, created from `fresh` if there is none yet. When several hosts
    /// race to create it, all of them get the one that was stored first.
    pub async fn host_key(
        &self,
        name: &str,
        fresh: &[u8],
        now: i64,
    ) -> Result<Vec<u8>, StoreError> {
        sqlx::query(
            "INSERT INTO host_secrets (name, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(fresh)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT value FROM host_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("value")?)
    }
}
