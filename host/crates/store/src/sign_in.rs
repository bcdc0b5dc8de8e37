//! The database side of one SSO sign-in in as few round trips as it can take: the accounts
//! an identity could match, with everything the provisioning plan reads, in one statement
//! ([`Store::sign_in_lookup`]); the account's writes, the session and the audit row in one
//! transaction ([`Store::finish_sign_in`]); and the signed-in user of a session in one
//! statement ([`Store::session_with_user`]). Not the rules: the host plans, this writes
//! what it is told.
//!
//! Why it matters: every statement is a round trip to the database (for SQLite, a hop to
//! its connection's worker thread and back), and a sign-in used to make seventeen of them.

use std::collections::BTreeMap;

use sqlx::{Row, any::AnyRow};

use crate::{
    Backend, Store, StoreError, json_rows_sql,
    logins::{AuditEvent, insert_audit, insert_idp_success},
    sessions::{Session, insert_session, session_from_columns},
    users::{
        self, FieldChange, FieldProvenance, NewUser, USER_COLUMNS, User, match_condition,
        user_from_row,
    },
};

/// A user an identity could sign into, with the IdP instances an administrator linked it to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedUser {
    pub user: User,
    pub linked_idps: Vec<String>,
}

/// The accounts a sign-in's match value finds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignInLookup {
    /// Users of the branch whose match field equals the value, lowest id first, at most two
    /// (as [`Store::users_matching`]).
    pub in_branch: Vec<MatchedUser>,
    /// Users outside the branch that hold the value ([`Store::count_matching_elsewhere`]),
    /// plus, when the match field is not `username`, those whose username it is (a new
    /// account would take the value as its username, which is unique everywhere).
    pub outside_branch: i64,
}

/// What a completed sign-in does to the account it ends in.
#[derive(Debug, Clone, Copy)]
pub enum AccountWrite<'a> {
    /// Signs into an existing account and changes nothing.
    Existing { user_id: i64 },
    /// Signs into an existing account after applying `changes` (as
    /// [`Store::update_user_fields`]).
    Update {
        user_id: i64,
        changes: &'a [FieldChange],
    },
    /// Creates the account (as [`Store::create_user`]).
    Create {
        user: &'a NewUser,
        provenance: &'a [FieldProvenance],
    },
}

/// Everything a completed sign-in writes. The `user_id` of `session` and of `audit` are
/// replaced by the account's (a created account has no id before the write).
#[derive(Debug, Clone, Copy)]
pub struct SignInWrite<'a> {
    pub account: AccountWrite<'a>,
    pub session: &'a Session,
    pub audit: &'a AuditEvent,
    /// The IdP's successful sign-in to record (`idp_history`), when the caller wants it
    /// recorded this time.
    pub idp_success: Option<(&'a str, i64)>,
    pub now: i64,
}

/// A user row with its additional fields (as a JSON list of `[name, value]`) and links.
fn matched_from_row(row: &AnyRow) -> Result<MatchedUser, StoreError> {
    let mut user = user_from_row(row)?;
    user.additional = json_pairs(row.try_get("fields")?)?;
    let links: Vec<(String,)> = json_list(row.try_get("links")?)?;
    Ok(MatchedUser {
        user,
        linked_idps: links.into_iter().map(|(idp,)| idp).collect(),
    })
}

/// A JSON list of `[name, value]` as a map. `None` is an empty list (PostgreSQL aggregates
/// no rows to NULL).
fn json_pairs(list: Option<String>) -> Result<BTreeMap<String, String>, StoreError> {
    Ok(json_list::<(String, String)>(list)?.into_iter().collect())
}

fn json_list<T: serde::de::DeserializeOwned>(list: Option<String>) -> Result<Vec<T>, StoreError> {
    match list {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text).map_err(|error| {
            StoreError::Invalid(format!("an aggregated list could not be read: {error}"))
        }),
    }
}

/// The correlated subqueries that list user `u`'s additional fields and IdP links.
fn fields_and_links(backend: Backend, user: &str) -> String {
    format!(
        "(SELECT {fields} FROM user_fields f WHERE f.user_id = {user}.id) AS fields, \
         (SELECT {links} FROM idp_links l WHERE l.user_id = {user}.id) AS links",
        fields = json_rows_sql(backend, "f.name, f.value", "f.name"),
        links = json_rows_sql(backend, "l.idp_id", "l.idp_id"),
    )
}

impl Store {
    /// The accounts of `branch` that `value` of `field` matches, and how many outside it
    /// hold the value, in one statement (compared as in [`Store::users_matching`]: an
    /// email or idnumber counts only when an IdP or an administrator set it).
    pub async fn sign_in_lookup(
        &self,
        field: &str,
        value: &str,
        case_insensitive: bool,
        branch: &str,
    ) -> Result<SignInLookup, StoreError> {
        let (condition, binds_field) = match_condition(field, case_insensitive);
        let mut outside =
            format!("(SELECT COUNT(*) FROM users WHERE {condition} AND branch <> $2)");
        if field != "username" {
            outside
                .push_str(" + (SELECT COUNT(*) FROM users WHERE username = $1 AND branch <> $2)");
        }
        // One row when nothing matches in the branch (its user columns NULL), else one per
        // match: the count rides along on each.
        let sql = format!(
            "SELECT o.outside, u.*, {lists} \
             FROM (SELECT {outside} AS outside) AS o \
             LEFT JOIN (SELECT {USER_COLUMNS} FROM users WHERE {condition} AND branch = $2 \
             ORDER BY id LIMIT 2) AS u ON 1 = 1",
            lists = fields_and_links(self.backend, "u"),
        );
        // The condition comes from `match_condition`'s fixed list; values are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .bind(branch);
        if binds_field {
            query = query.bind(field);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut lookup = SignInLookup::default();
        for row in &rows {
            lookup.outside_branch = row.try_get("outside")?;
            if row.try_get::<Option<i64>, _>("id")?.is_some() {
                lookup.in_branch.push(matched_from_row(row)?);
            }
        }
        lookup.in_branch.sort_by_key(|matched| matched.user.id);
        Ok(lookup)
    }

    /// Writes a completed sign-in in one transaction: the account's creation or changes,
    /// the session, the audit row and (if asked) the IdP's success. Returns the account's
    /// id. On any error nothing is written: a taken username is `Conflict` (a concurrent
    /// first sign-in won; plan again), an unknown user `NotFound`.
    pub async fn finish_sign_in(&self, write: SignInWrite<'_>) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Every statement here writes, the first included, so SQLite takes the write lock
        // at once (see `users::insert_user`).
        let user_id = match write.account {
            AccountWrite::Existing { user_id } => user_id,
            AccountWrite::Update { user_id, changes } => {
                users::apply_changes(&mut tx, user_id, changes, write.now).await?;
                user_id
            }
            AccountWrite::Create { user, provenance } => {
                users::insert_user(&mut tx, user, provenance, write.now).await?
            }
        };
        let session = Session {
            user_id,
            ..write.session.clone()
        };
        insert_session(&mut *tx, &session).await?;
        let audit = AuditEvent {
            user_id: Some(user_id),
            ..write.audit.clone()
        };
        insert_audit(&mut *tx, &audit).await?;
        if let Some((idp_id, at)) = write.idp_success {
            insert_idp_success(&mut *tx, idp_id, at).await?;
        }
        tx.commit().await?;
        Ok(user_id)
    }

    /// The live session with this id hash (`expires_at > now`) and its user, with the
    /// user's additional fields, in one statement; `None` if either is missing.
    pub async fn session_with_user(
        &self,
        id_hash: &str,
        now: i64,
    ) -> Result<Option<(Session, User)>, StoreError> {
        let sql = format!(
            "SELECT s.id_hash AS s_id_hash, s.user_id AS s_user_id, s.domain AS s_domain, \
             s.idp_id AS s_idp_id, s.subject AS s_subject, s.logout_state AS s_logout_state, \
             s.csrf_token AS s_csrf_token, s.created_at AS s_created_at, \
             s.expires_at AS s_expires_at, {user_columns}, \
             (SELECT {fields} FROM user_fields f WHERE f.user_id = users.id) AS fields \
             FROM sessions s JOIN users ON users.id = s.user_id \
             WHERE s.id_hash = $1 AND s.expires_at > $2",
            user_columns = USER_COLUMNS
                .split(", ")
                .map(|column| format!("users.{column}"))
                .collect::<Vec<_>>()
                .join(", "),
            fields = json_rows_sql(self.backend, "f.name, f.value", "f.name"),
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let session = session_from_columns(&row, "s_")?;
        let mut user = user_from_row(&row)?;
        user.additional = json_pairs(row.try_get("fields")?)?;
        Ok(Some((session, user)))
    }
}
