//! Records about sign-ins: the audit log and each IdP instance's last successful sign-in.
//! Not throttling (see `throttle`) and not log output.

use sqlx::Row;

use crate::{Store, StoreError};

/// One entry of the sign-in audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: i64,
    /// The domain (host name) the request came to.
    pub domain: String,
    pub idp_id: Option<String>,
    pub user_id: Option<i64>,
    /// The username as given or as resolved (may name no user).
    pub username: String,
    /// `"password"`, `"sso"`, `"logout"` or `"test"`.
    pub method: String,
    /// `"success"`, `"failure"` or `"refused"`.
    pub outcome: String,
    pub reason: String,
    pub ip: String,
}

impl Store {
    /// Appends an audit entry.
    pub async fn audit(&self, e: &AuditEvent) -> Result<(), StoreError> {
        insert_audit(&self.pool, e).await
    }

    /// The latest `limit` audit entries, newest first (by time, then by insertion order).
    /// A `limit` of zero or less gives an empty list.
    pub async fn recent_audit(&self, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
        if limit <= 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT at, domain, idp_id, user_id, username, method, outcome, reason, ip \
             FROM audit_log ORDER BY at DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEvent {
                    at: row.try_get("at")?,
                    domain: row.try_get("domain")?,
                    idp_id: row.try_get("idp_id")?,
                    user_id: row.try_get("user_id")?,
                    username: row.try_get("username")?,
                    method: row.try_get("method")?,
                    outcome: row.try_get("outcome")?,
                    reason: row.try_get("reason")?,
                    ip: row.try_get("ip")?,
                })
            })
            .collect()
    }

    /// Notes a successful sign-in through an IdP instance. The stored time only moves forward.
    pub async fn record_idp_success(&self, idp_id: &str, at: i64) -> Result<(), StoreError> {
        insert_idp_success(&self.pool, idp_id, at).await
    }

    /// Every IdP instance with at least one recorded successful sign-in.
    pub async fn proven_idps(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT idp_id FROM idp_history ORDER BY idp_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| row.try_get("idp_id").map_err(StoreError::from))
            .collect()
    }

    /// When an IdP instance last had a successful sign-in, if ever.
    pub async fn idp_last_success(&self, idp_id: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT last_success_at FROM idp_history WHERE idp_id = $1")
            .bind(idp_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(row.try_get("last_success_at")?)),
            None => Ok(None),
        }
    }
}

/// What the status page shows of one IdP instance's sign-ins: its last recorded success
/// (`idp_history`) and its SSO refusals (audit rows of method `sso` whose outcome is not
/// `success`: refused or failed) since two instants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpActivity {
    pub idp_id: String,
    pub last_success_at: Option<i64>,
    /// Refusals at or after `recent_since`.
    pub refusals_recent: i64,
    /// Refusals at or after `since` (the recent ones included).
    pub refusals: i64,
}

impl Store {
    /// Every IdP instance with a recorded success or an SSO refusal at or after `since`, by
    /// id, with its refusals counted twice: since `since` and since `recent_since` (which
    /// should be later). One statement, reading the audit rows through the index on `at`.
    pub async fn idp_activity(
        &self,
        since: i64,
        recent_since: i64,
    ) -> Result<Vec<IdpActivity>, StoreError> {
        let rows = sqlx::query(
            "SELECT idp_id, MAX(last_success_at) AS last_success_at, \
             CAST(SUM(recent) AS BIGINT) AS recent, CAST(SUM(counted) AS BIGINT) AS counted \
             FROM (\
               SELECT idp_id, last_success_at, 0 AS recent, 0 AS counted FROM idp_history \
               UNION ALL \
               SELECT idp_id, NULL, CASE WHEN at >= $2 THEN 1 ELSE 0 END, 1 FROM audit_log \
               WHERE at >= $1 AND method = 'sso' AND outcome <> 'success' AND idp_id IS NOT NULL\
             ) AS activity GROUP BY idp_id ORDER BY idp_id",
        )
        .bind(since)
        .bind(recent_since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(IdpActivity {
                    idp_id: row.try_get("idp_id")?,
                    last_success_at: row.try_get("last_success_at")?,
                    refusals_recent: row.try_get("recent")?,
                    refusals: row.try_get("counted")?,
                })
            })
            .collect()
    }
}

/// Appends audit entry `e` through `executor` (the pool, or a caller's transaction).
pub(crate) async fn insert_audit<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    e: &AuditEvent,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (at, domain, idp_id, user_id, username, method, outcome, \
         reason, ip) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(e.at)
    .bind(&e.domain)
    .bind(e.idp_id.as_deref())
    .bind(e.user_id)
    .bind(&e.username)
    .bind(&e.method)
    .bind(&e.outcome)
    .bind(&e.reason)
    .bind(&e.ip)
    .execute(executor)
    .await?;
    Ok(())
}

/// Notes a successful sign-in through `idp_id` at `at` through `executor` (the stored time
/// only moves forward).
pub(crate) async fn insert_idp_success<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    idp_id: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO idp_history (idp_id, last_success_at) VALUES ($1, $2) \
         ON CONFLICT (idp_id) DO UPDATE SET last_success_at = CASE \
         WHEN excluded.last_success_at > idp_history.last_success_at \
         THEN excluded.last_success_at ELSE idp_history.last_success_at END",
    )
    .bind(idp_id)
    .bind(at)
    .execute(executor)
    .await?;
    Ok(())
}
