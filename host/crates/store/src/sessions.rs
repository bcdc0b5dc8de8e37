//! Browser sessions and pending SSO sign-ins, both keyed by a hash the host computes (the store
//! never sees cookie values or tokens). Not cookie handling, CSRF checks or lifetimes: the host
//! does those.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, get_bool};

/// A signed-in browser session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 (hex or base64, as the host chooses) of the cookie value.
    pub id_hash: String,
    pub user_id: i64,
    /// The domain the session was made on; it is valid on that domain's hosts only.
    pub domain: String,
    /// The IdP instance the user signed in through; `None` for a local password.
    pub idp_id: Option<String>,
    /// The subject that IdP identified (its stable id for the user); `None` for a local
    /// password.
    pub subject: Option<String>,
    /// Opaque plugin data needed to sign out at the IdP.
    pub logout_state: Vec<u8>,
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// An SSO sign-in that left for the IdP and has not come back yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogin {
    /// Hash of the state/relay token sent through the IdP.
    pub token_hash: String,
    pub idp_id: String,
    /// Opaque plugin data (nonce, PKCE verifier, request id, ...).
    pub plugin_state: Vec<u8>,
    /// Hash of the value of the browser-binding cookie set when the sign-in started.
    pub browser_binding_hash: String,
    pub return_to: String,
    /// What the sign-in is for; the callback ends it accordingly and never as the other.
    pub purpose: SignInPurpose,
    /// Begun (waiting for the IdP) or answered (waiting for the browser's finish step).
    pub stage: PendingStage,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Where a pending sign-in is: each stage is taken only by its own step, so a token of
/// one stage is never accepted by the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingStage {
    /// The browser left for the IdP; `plugin_state` is the plugin's.
    Begun,
    /// The IdP's cross-site POST was validated; `plugin_state` is the identity it gave,
    /// kept until the browser's same-site finish step.
    Answered,
}

impl PendingStage {
    fn to_column(self) -> &'static str {
        match self {
            Self::Begun => "begun",
            Self::Answered => "answered",
        }
    }
    fn from_column(stage: &str) -> Result<Self, StoreError> {
        match stage {
            "begun" => Ok(Self::Begun),
            "answered" => Ok(Self::Answered),
            other => Err(StoreError::Invalid(format!(
                "unknown pending sign-in stage {other:?}"
            ))),
        }
    }
}

/// What a pending sign-in was begun for.
///
/// Stored in the `test_mode` column (0 or 1): the mapping lives here, at the store's
/// boundary, so no caller sees the flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInPurpose {
    /// A real sign-in: provisions and starts a session.
    SignIn,
    /// An administrator's test sign-in of an IdP: shows the plan and saves nothing.
    TestSignIn,
}

impl SignInPurpose {
    fn to_column(self) -> i64 {
        match self {
            Self::SignIn => 0,
            Self::TestSignIn => 1,
        }
    }
    fn from_column(test_mode: bool) -> Self {
        if test_mode {
            Self::TestSignIn
        } else {
            Self::SignIn
        }
    }
}

fn session_from_row(row: &AnyRow) -> Result<Session, StoreError> {
    session_from_columns(row, "")
}

/// A session from `row`, whose columns are named `{prefix}id_hash`, … (a join names them
/// apart from the user's).
pub(crate) fn session_from_columns(row: &AnyRow, prefix: &str) -> Result<Session, StoreError> {
    let column = |name: &str| format!("{prefix}{name}");
    Ok(Session {
        id_hash: row.try_get(column("id_hash").as_str())?,
        user_id: row.try_get(column("user_id").as_str())?,
        domain: row.try_get(column("domain").as_str())?,
        idp_id: row.try_get(column("idp_id").as_str())?,
        subject: row.try_get(column("subject").as_str())?,
        logout_state: row.try_get(column("logout_state").as_str())?,
        csrf_token: row.try_get(column("csrf_token").as_str())?,
        created_at: row.try_get(column("created_at").as_str())?,
        expires_at: row.try_get(column("expires_at").as_str())?,
    })
}

fn pending_from_row(row: &AnyRow) -> Result<PendingLogin, StoreError> {
    Ok(PendingLogin {
        token_hash: row.try_get("token_hash")?,
        idp_id: row.try_get("idp_id")?,
        plugin_state: row.try_get("plugin_state")?,
        browser_binding_hash: row.try_get("browser_binding_hash")?,
        return_to: row.try_get("return_to")?,
        purpose: SignInPurpose::from_column(get_bool(row, "test_mode")?),
        stage: PendingStage::from_column(&row.try_get::<String, _>("stage")?)?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

/// The `AND …` clauses selecting an IdP's sessions by subject and logout state, with
/// placeholders numbered from `first`; the parameters are bound in that order. Only
/// placeholders go into the SQL, never values.
fn idp_session_filter(subject: Option<&str>, logout_state: Option<&[u8]>, first: usize) -> String {
    let mut filter = String::new();
    let mut next = first;
    if subject.is_some() {
        filter.push_str(&format!(" AND subject = ${next}"));
        next += 1;
    }
    if logout_state.is_some() {
        filter.push_str(&format!(" AND logout_state = ${next}"));
    }
    filter
}

impl Store {
    /// Stores a new session. `Conflict` if the id hash exists; a foreign-key error (database
    /// error) if the user does not.
    pub async fn create_session(&self, s: &Session) -> Result<(), StoreError> {
        insert_session(&self.pool, s).await
    }

    /// The session with this id hash, or `None` if there is none or it has expired
    /// (`expires_at <= now`).
    pub async fn session(&self, id_hash: &str, now: i64) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(
            "SELECT id_hash, user_id, domain, idp_id, subject, logout_state, csrf_token, \
             created_at, expires_at FROM sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// Deletes a session (no error if it does not exist).
    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// How many live sessions of IdP instance `idp_id` match `subject` and `logout_state`
    /// (`None` matches any). At least one must be given: nothing asks about "all".
    pub async fn count_idp_sessions(
        &self,
        idp_id: &str,
        subject: Option<&str>,
        logout_state: Option<&[u8]>,
        now: i64,
    ) -> Result<u64, StoreError> {
        if subject.is_none() && logout_state.is_none() {
            return Err(StoreError::Invalid(
                "a session selector needs a subject or a logout state".into(),
            ));
        }
        let filter = idp_session_filter(subject, logout_state, 3);
        let sql =
            format!("SELECT COUNT(*) FROM sessions WHERE idp_id = $1 AND expires_at > $2{filter}");
        let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(idp_id)
            .bind(now);
        if let Some(subject) = subject {
            query = query.bind(subject);
        }
        if let Some(state) = logout_state {
            query = query.bind(state);
        }
        let count: i64 = query.fetch_one(&self.pool).await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Deletes the sessions of IdP instance `idp_id` that match `subject` and
    /// `logout_state` (`None` matches any; at least one must be given), returning how many.
    pub async fn delete_idp_sessions(
        &self,
        idp_id: &str,
        subject: Option<&str>,
        logout_state: Option<&[u8]>,
    ) -> Result<u64, StoreError> {
        if subject.is_none() && logout_state.is_none() {
            return Err(StoreError::Invalid(
                "a session selector needs a subject or a logout state".into(),
            ));
        }
        let filter = idp_session_filter(subject, logout_state, 2);
        let sql = format!("DELETE FROM sessions WHERE idp_id = $1{filter}");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(idp_id);
        if let Some(subject) = subject {
            query = query.bind(subject);
        }
        if let Some(state) = logout_state {
            query = query.bind(state);
        }
        let done = query.execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    /// Stores a pending sign-in. `Conflict` if the token hash exists.
    pub async fn insert_pending(&self, p: &PendingLogin) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pending_logins (token_hash, idp_id, plugin_state, browser_binding_hash, \
             return_to, test_mode, stage, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&p.token_hash)
        .bind(&p.idp_id)
        .bind(p.plugin_state.as_slice())
        .bind(&p.browser_binding_hash)
        .bind(&p.return_to)
        .bind(p.purpose.to_column())
        .bind(p.stage.to_column())
        .bind(p.created_at)
        .bind(p.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes and returns a pending sign-in of `stage`, atomically (one `DELETE ...
    /// RETURNING`): of any number of concurrent callers, on any number of hosts, exactly one
    /// gets `Some`. A row of the other stage is neither returned nor deleted. An expired row
    /// is returned too (the caller checks `expires_at` to report "expired"); it is deleted
    /// either way.
    pub async fn take_pending(
        &self,
        token_hash: &str,
        stage: PendingStage,
    ) -> Result<Option<PendingLogin>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM pending_logins WHERE token_hash = $1 AND stage = $2 RETURNING \
             token_hash, idp_id, plugin_state, browser_binding_hash, return_to, test_mode, \
             stage, created_at, expires_at",
        )
        .bind(token_hash)
        .bind(stage.to_column())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(pending_from_row).transpose()
    }
}

/// Inserts session `s` through `executor` (the pool, or a caller's transaction).
pub(crate) async fn insert_session<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    s: &Session,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sessions (id_hash, user_id, domain, idp_id, subject, logout_state, \
         csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&s.id_hash)
    .bind(s.user_id)
    .bind(&s.domain)
    .bind(s.idp_id.as_deref())
    .bind(s.subject.as_deref())
    .bind(s.logout_state.as_slice())
    .bind(&s.csrf_token)
    .bind(s.created_at)
    .bind(s.expires_at)
    .execute(executor)
    .await?;
    Ok(())
}
