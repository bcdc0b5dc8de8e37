//! Account administration as single transactions: a password replaced (with the user's
//! sessions ended and an audit row), an account suspended or reinstated, the "must change
//! the password" flag, and the summaries `gatehouse users list|show` print. Not the
//! password policy or hashing (the host's `accounts` and `passwords`), and not sign-in.

use sqlx::Row;

use crate::{
    Store, StoreError, get_bool,
    logins::{AuditEvent, insert_audit},
    sessions::{Session, insert_session},
    users::{NewUser, insert_user},
};

/// A password replaced: what [`Store::replace_password`] writes in one transaction.
#[derive(Debug, Clone, Copy)]
pub struct PasswordReplacement<'a> {
    pub user_id: i64,
    /// The new PHC string.
    pub hash: &'a str,
    /// Whether the account must change it again at its next sign-in.
    pub must_change: bool,
    /// A session to start in place of the ended ones (the browser that changed it keeps
    /// being signed in, under a new id); `None` ends them all.
    pub new_session: Option<&'a Session>,
    pub audit: &'a AuditEvent,
    pub now: i64,
}

/// One account as `gatehouse users list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub suspended: bool,
    pub is_admin: bool,
    /// `"local"` or `"idp:<idp id>"`.
    pub auth_source: String,
    pub has_password: bool,
    pub must_change_password: bool,
    /// The latest successful sign-in the audit log still holds (it keeps
    /// `audit_retention_days`), if any.
    pub last_sign_in: Option<i64>,
}

/// The latest successful password or SSO sign-in per user, from the audit log.
const LAST_SIGN_INS: &str = "SELECT user_id, MAX(at) AS last_at FROM audit_log \
     WHERE outcome = 'success' AND method IN ('password', 'sso') AND user_id IS NOT NULL \
     GROUP BY user_id";

impl Store {
    /// Creates a user (as [`Store::create_user`]) with the "must change the password" flag
    /// set as given, in one transaction: the bootstrap administrator with a generated
    /// password is never visible without its flag.
    pub async fn create_user_with_flag(
        &self,
        user: &NewUser,
        must_change_password: bool,
        now: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id = insert_user(&mut tx, user, &[], now).await?;
        if must_change_password {
            sqlx::query("UPDATE users SET must_change_password = 1 WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Sets or clears the "must change the password" flag. `NotFound` for an unknown user.
    pub async fn set_must_change_password(
        &self,
        user_id: i64,
        must_change: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE users SET must_change_password = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(i64::from(must_change))
        .bind(now)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {user_id}")));
        }
        Ok(())
    }

    /// Replaces a user's password hash and flag, ends every session of the user, starts
    /// `new_session` if given and writes the audit row, in one transaction. Returns how many
    /// sessions were ended. `NotFound` (nothing written) for an unknown user.
    pub async fn replace_password(
        &self,
        change: PasswordReplacement<'_>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE users SET password_hash = $1, must_change_password = $2, updated_at = $3 \
             WHERE id = $4",
        )
        .bind(change.hash)
        .bind(i64::from(change.must_change))
        .bind(change.now)
        .bind(change.user_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {}", change.user_id)));
        }
        let ended = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(change.user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if let Some(session) = change.new_session {
            insert_session(
                &mut *tx,
                &Session {
                    user_id: change.user_id,
                    ..session.clone()
                },
            )
            .await?;
        }
        insert_audit(&mut *tx, change.audit).await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// Suspends (ending every session of the user) or reinstates a user and writes the
    /// audit row, in one transaction. Returns how many sessions were ended. `NotFound`
    /// (nothing written) for an unknown user.
    pub async fn suspend_user(
        &self,
        user_id: i64,
        suspended: bool,
        audit: &AuditEvent,
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE users SET suspended = $1, updated_at = $2 WHERE id = $3")
            .bind(i64::from(suspended))
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {user_id}")));
        }
        let ended = if suspended {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        } else {
            0
        };
        insert_audit(&mut *tx, audit).await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// The id hashes of a user's sessions (live or not yet swept), so that their Connect
    /// SSO sessions can be read before the sessions are ended.
    pub async fn user_session_keys(&self, user_id: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT id_hash FROM sessions WHERE user_id = $1 ORDER BY id_hash")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| row.try_get("id_hash").map_err(Into::into))
            .collect()
    }

    /// How many live sessions (`expires_at > now`) a user has.
    pub async fn count_user_sessions(&self, user_id: i64, now: i64) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM sessions WHERE user_id = $1 AND expires_at > $2",
        )
        .bind(user_id)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Every account, by id, with its latest successful sign-in the audit log still holds
    /// (one pass over the log, however many users).
    pub async fn account_summaries(&self) -> Result<Vec<AccountSummary>, StoreError> {
        let sql = format!(
            "SELECT u.id, u.username, u.email, u.suspended, u.is_admin, u.auth_source, \
             CASE WHEN u.password_hash IS NULL THEN 0 ELSE 1 END AS has_password, \
             u.must_change_password, l.last_at \
             FROM users u LEFT JOIN ({LAST_SIGN_INS}) l ON l.user_id = u.id ORDER BY u.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AccountSummary {
                    id: row.try_get("id")?,
                    username: row.try_get("username")?,
                    email: row.try_get("email")?,
                    suspended: get_bool(row, "suspended")?,
                    is_admin: get_bool(row, "is_admin")?,
                    auth_source: row.try_get("auth_source")?,
                    has_password: get_bool(row, "has_password")?,
                    must_change_password: get_bool(row, "must_change_password")?,
                    last_sign_in: row.try_get("last_at")?,
                })
            })
            .collect()
    }

    /// A user's latest successful sign-in the audit log still holds, if any.
    pub async fn last_sign_in(&self, user_id: i64) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "SELECT MAX(at) AS last_at FROM audit_log WHERE user_id = $1 \
             AND outcome = 'success' AND method IN ('password', 'sso')",
        )
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("last_at")?)
    }
}
