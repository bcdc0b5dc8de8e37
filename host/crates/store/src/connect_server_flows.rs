//! What the Connect server role's browser and session flows ask of the store beyond the
//! client rows (`connect_server`): directory records named by an "Add client" option looked
//! up by their key, audience membership (a restricted client's check), and sessions as the
//! keep-alive and logout propagation see them (the keys an IdP selector matches, a session
//! read even when it has expired, and its expiry pushed back). Not the client rows or the
//! SSO sessions themselves.

use sqlx::Row;

use crate::{Session, Store, StoreError};

/// The two kinds of hierarchy framework, as the `hierarchy_frameworks.kind` column names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameworkKind {
    Position,
    Organisation,
}

impl FrameworkKind {
    pub(crate) fn column(self) -> &'static str {
        match self {
            FrameworkKind::Position => "position",
            FrameworkKind::Organisation => "organisation",
        }
    }
}

impl Store {
    /// The id of the audience with this idnumber.
    pub async fn audience_id_by_idnumber(&self, idnumber: &str) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM audiences WHERE idnumber = $1")
                .bind(idnumber)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The id of the course with this shortname.
    pub async fn course_id_by_shortname(&self, shortname: &str) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM courses WHERE shortname = $1")
                .bind(shortname)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The id of the framework of `kind` with this idnumber.
    pub async fn framework_id_by_idnumber(
        &self,
        kind: FrameworkKind,
        idnumber: &str,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM hierarchy_frameworks WHERE kind = $1 AND idnumber = $2",
        )
        .bind(kind.column())
        .bind(idnumber)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Whether user `user_id` is a member of audience `audience_id`.
    pub async fn is_audience_member(
        &self,
        audience_id: i64,
        user_id: i64,
    ) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM audience_members WHERE audience_id = $1 AND user_id = $2",
        )
        .bind(audience_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    /// The id hashes of the sessions of IdP instance `idp_id` that match `subject` and
    /// `logout_state` (`None` matches any; at least one must be given), live or not: what
    /// `delete_idp_sessions` with the same selector would delete.
    pub async fn idp_session_keys(
        &self,
        idp_id: &str,
        subject: Option<&str>,
        logout_state: Option<&[u8]>,
    ) -> Result<Vec<String>, StoreError> {
        if subject.is_none() && logout_state.is_none() {
            return Err(StoreError::Invalid(
                "a session selector needs a subject or a logout state".into(),
            ));
        }
        let mut sql = "SELECT id_hash FROM sessions WHERE idp_id = $1".to_owned();
        let mut next = 2;
        if subject.is_some() {
            sql.push_str(&format!(" AND subject = ${next}"));
            next += 1;
        }
        if logout_state.is_some() {
            sql.push_str(&format!(" AND logout_state = ${next}"));
        }
        let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(idp_id);
        if let Some(subject) = subject {
            query = query.bind(subject);
        }
        if let Some(state) = logout_state {
            query = query.bind(state);
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    /// The session with this id hash whether or not it has expired (the keep-alive looks at
    /// a session that would otherwise end).
    pub async fn session_even_if_expired(
        &self,
        id_hash: &str,
    ) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(
            "SELECT id_hash, user_id, domain, idp_id, subject, logout_state, csrf_token, \
             created_at, expires_at FROM sessions WHERE id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Session {
                id_hash: row.try_get("id_hash")?,
                user_id: row.try_get("user_id")?,
                domain: row.try_get("domain")?,
                idp_id: row.try_get("idp_id")?,
                subject: row.try_get("subject")?,
                logout_state: row.try_get("logout_state")?,
                csrf_token: row.try_get("csrf_token")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Moves a session's expiry to `expires_at`, only ever later; returns whether the row
    /// exists and was moved.
    pub async fn extend_session(&self, id_hash: &str, expires_at: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET expires_at = $2 WHERE id_hash = $1 AND expires_at < $2",
        )
        .bind(id_hash)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The id hashes of the sessions that have expired by `now` and still have Connect SSO
    /// sessions (the ones the keep-alive must ask about before the sweep deletes them), at
    /// most `limit`, the longest expired first.
    pub async fn expired_sessions_with_connect_sso(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT s.id_hash FROM sessions s WHERE s.expires_at <= $1 AND EXISTS \
             (SELECT 1 FROM connect_sso_sessions c WHERE c.session_id_hash = s.id_hash) \
             ORDER BY s.expires_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}
