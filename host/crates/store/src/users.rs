//! Users, their additional profile fields and the provenance of each field (which IdP instance
//! set it). Not the provisioning or locking rules themselves: the host decides what may change;
//! this module writes what it is told, each call in one transaction.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::{Store, StoreError, bulk, get_bool};

/// A user as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub firstname: String,
    pub lastname: String,
    pub idnumber: String,
    pub branch: String,
    /// `"local"` or `"idp:<idp id>"`.
    pub auth_source: String,
    pub password_hash: Option<String>,
    pub suspended: bool,
    /// May reload the configuration, run test sign-ins and edit other users' profiles.
    pub is_admin: bool,
    /// Must choose a new password before anything else (migration 0009).
    pub must_change_password: bool,
    /// Custom profile fields, by short name.
    pub additional: BTreeMap<String, String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A user to create. New users are never suspended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub firstname: String,
    pub lastname: String,
    pub idnumber: String,
    pub branch: String,
    /// `"local"` or `"idp:<idp id>"`.
    pub auth_source: String,
    pub password_hash: Option<String>,
    pub is_admin: bool,
    pub additional: BTreeMap<String, String>,
}

/// Which IdP instance last set a field of a user, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProvenance {
    pub field: String,
    pub idp_id: String,
    pub set_at: i64,
}

/// The provenance recorded for a value an administrator set: not an IdP instance (IdP ids
/// cannot contain `@`), so it locks nothing, but it is a value the account's own user did
/// not type, so IdPs may match by it.
pub const ADMIN_PROVENANCE: &str = "@admin";

/// One field to change on a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    /// A core field (`username`, `email`, `firstname`, `lastname`, `idnumber`) or the short
    /// name of an additional field.
    pub field: String,
    pub value: String,
    /// The IdP instance the value came from, or [`ADMIN_PROVENANCE`]; `None` when the
    /// account's own user typed it (the field's provenance is then removed).
    pub provenance: Option<String>,
}

/// Fields stored as columns of `users` that `update_user_fields` may change.
pub(crate) const CORE_FIELDS: [&str; 5] =
    ["username", "email", "firstname", "lastname", "idnumber"];

/// Other `users` columns: not valid as additional-field names (they would be ambiguous) and not
/// changeable through `update_user_fields`.
pub(crate) const RESERVED_FIELDS: [&str; 9] = [
    "id",
    "branch",
    "auth_source",
    "password_hash",
    "suspended",
    "is_admin",
    "must_change_password",
    "created_at",
    "updated_at",
];

macro_rules! user_columns {
    () => {
        "id, username, email, firstname, lastname, idnumber, branch, auth_source, \
         password_hash, suspended, is_admin, must_change_password, created_at, updated_at"
    };
}

/// The columns [`user_from_row`] reads, in order.
pub(crate) const USER_COLUMNS: &str = user_columns!();

const UPSERT_PROVENANCE: &str = "INSERT INTO field_provenance (user_id, field, idp_id, set_at) \
     VALUES ($1, $2, $3, $4) \
     ON CONFLICT (user_id, field) DO UPDATE SET idp_id = excluded.idp_id, set_at = excluded.set_at";

const UPSERT_FIELD: &str = "INSERT INTO user_fields (user_id, name, value) VALUES ($1, $2, $3) \
     ON CONFLICT (user_id, name) DO UPDATE SET value = excluded.value";

fn check_additional_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty() {
        return Err(StoreError::Invalid("empty field name".into()));
    }
    if RESERVED_FIELDS.contains(&name) || CORE_FIELDS.contains(&name) {
        return Err(StoreError::Invalid(format!(
            "{name:?} cannot be used as an additional field name"
        )));
    }
    Ok(())
}

/// The SQL condition that matches `field` against `$1`, and whether it binds the field's
/// name as `$3` (an additional field). Only values an IdP or an administrator set count
/// (they have a provenance row): a value a user typed on their own profile never matches.
/// Column names come from this fixed list, never from the caller; values are bound.
pub(crate) fn match_condition(field: &str, case_insensitive: bool) -> (String, bool) {
    let compare = |column: &str| {
        if case_insensitive {
            format!("lower({column}) = lower($1)")
        } else {
            format!("{column} = $1")
        }
    };
    match field {
        "username" => (compare("username"), false),
        "email" | "idnumber" | "firstname" | "lastname" => {
            let column = match field {
                "email" => "email",
                "idnumber" => "idnumber",
                "firstname" => "firstname",
                _ => "lastname",
            };
            let sql = format!(
                "{} AND EXISTS (SELECT 1 FROM field_provenance p WHERE p.user_id = users.id \
                 AND p.field = '{column}')",
                compare(column)
            );
            (sql, false)
        }
        _ => {
            let sql = format!(
                "EXISTS (SELECT 1 FROM user_fields f WHERE f.user_id = users.id AND f.name = $3 \
                 AND {}) AND EXISTS (SELECT 1 FROM field_provenance p \
                 WHERE p.user_id = users.id AND p.field = $3)",
                compare("f.value")
            );
            (sql, true)
        }
    }
}

pub(crate) fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        firstname: row.try_get("firstname")?,
        lastname: row.try_get("lastname")?,
        idnumber: row.try_get("idnumber")?,
        branch: row.try_get("branch")?,
        auth_source: row.try_get("auth_source")?,
        password_hash: row.try_get("password_hash")?,
        suspended: get_bool(row, "suspended")?,
        is_admin: get_bool(row, "is_admin")?,
        must_change_password: get_bool(row, "must_change_password")?,
        additional: BTreeMap::new(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn conflict_or(error: StoreError, message: impl FnOnce() -> String) -> StoreError {
    match error {
        StoreError::Conflict(_) => StoreError::Conflict(message()),
        other => other,
    }
}

impl Store {
    /// Creates a user with its additional fields and field provenance, in one transaction.
    /// Returns the new id. A taken username gives `StoreError::Conflict` and writes nothing.
    pub async fn create_user(
        &self,
        user: &NewUser,
        provenance: &[FieldProvenance],
        now: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id = insert_user(&mut tx, user, provenance, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Applies `changes` to one user in one transaction: core fields update the `users` row,
    /// other names upsert additional fields; each change's provenance row is replaced (or
    /// deleted when `provenance` is `None`). `updated_at` becomes `now`.
    ///
    /// Errors: `NotFound` for an unknown user, `Conflict` when a new username is taken,
    /// `Invalid` for an empty name or a non-profile column (`branch`, `suspended`, ...).
    /// On any error nothing is written.
    pub async fn update_user_fields(
        &self,
        user_id: i64,
        changes: &[FieldChange],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx: Transaction<'_, Any> = self.pool.begin().await?;
        apply_changes(&mut tx, user_id, changes, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn with_additional(&self, mut user: User) -> Result<User, StoreError> {
        let rows = sqlx::query("SELECT name, value FROM user_fields WHERE user_id = $1")
            .bind(user.id)
            .fetch_all(&self.pool)
            .await?;
        for row in rows {
            user.additional
                .insert(row.try_get("name")?, row.try_get("value")?);
        }
        Ok(user)
    }

    /// The user with this id, with its additional fields.
    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Some(self.with_additional(user_from_row(&row)?).await?)),
            None => Ok(None),
        }
    }

    /// The user with exactly this username (case-sensitive), with its additional fields.
    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Some(self.with_additional(user_from_row(&row)?).await?)),
            None => Ok(None),
        }
    }

    /// Users of `branch` whose `field` (`username`, `email` or `idnumber`) equals `value`,
    /// lowest id first, at most two (callers only need to tell none / one / several apart).
    /// An email or idnumber counts only when an IdP or an administrator set it.
    ///
    /// `case_insensitive` compares `lower()` of both sides. On SQLite `lower()` folds ASCII
    /// letters only; PostgreSQL folds by the database's collation.
    pub async fn users_matching(
        &self,
        field: &str,
        value: &str,
        case_insensitive: bool,
        branch: &str,
    ) -> Result<Vec<User>, StoreError> {
        let (condition, binds_field) = match_condition(field, case_insensitive);
        let sql = format!(
            "SELECT {} FROM users WHERE {condition} AND branch = $2 ORDER BY id LIMIT 2",
            user_columns!(),
        );
        // The condition comes from `match_condition`'s fixed list; values are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .bind(branch);
        if binds_field {
            query = query.bind(field);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut users = Vec::with_capacity(rows.len());
        for row in rows {
            users.push(self.with_additional(user_from_row(&row)?).await?);
        }
        Ok(users)
    }

    /// How many users outside `branch` have `field` equal to `value` (compared as in
    /// [`Store::users_matching`]). They are never matched, but stop a creation that would
    /// take their identity.
    pub async fn count_matching_elsewhere(
        &self,
        field: &str,
        value: &str,
        case_insensitive: bool,
        branch: &str,
    ) -> Result<i64, StoreError> {
        let (condition, binds_field) = match_condition(field, case_insensitive);
        let sql = format!("SELECT COUNT(*) AS n FROM users WHERE {condition} AND branch <> $2");
        // The condition comes from `match_condition`'s fixed list; values are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .bind(branch);
        if binds_field {
            query = query.bind(field);
        }
        let row = query.fetch_one(&self.pool).await?;
        Ok(row.try_get("n")?)
    }

    /// How many users exist (suspended ones included).
    pub async fn count_users(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Sets the password hash (PHC string) of a user. `NotFound` for an unknown user.
    pub async fn set_password_hash(
        &self,
        user_id: i64,
        hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let done =
            sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
                .bind(hash)
                .bind(now)
                .bind(user_id)
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {user_id}")));
        }
        Ok(())
    }

    /// Suspends or reinstates a user. `NotFound` for an unknown user. (Does not end the
    /// user's sessions; the host does that if it wants to.)
    pub async fn set_suspended(
        &self,
        user_id: i64,
        suspended: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET suspended = $1, updated_at = $2 WHERE id = $3")
            .bind(i64::from(suspended))
            .bind(now)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {user_id}")));
        }
        Ok(())
    }

    /// The provenance rows of a user, by field name.
    pub async fn provenance(&self, user_id: i64) -> Result<Vec<FieldProvenance>, StoreError> {
        let rows = sqlx::query(
            "SELECT field, idp_id, set_at FROM field_provenance WHERE user_id = $1 ORDER BY field",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(FieldProvenance {
                    field: row.try_get("field")?,
                    idp_id: row.try_get("idp_id")?,
                    set_at: row.try_get("set_at")?,
                })
            })
            .collect()
    }

    /// Links `user_id` to IdP instance `idp_id` (an administrator's deliberate choice, named
    /// in `linked_by`), so SSO through that IdP may sign into it. Linking twice is a no-op.
    /// `NotFound` for an unknown user.
    pub async fn link_idp(
        &self,
        user_id: i64,
        idp_id: &str,
        linked_by: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        if self.user_by_id(user_id).await?.is_none() {
            return Err(StoreError::NotFound(format!("user {user_id}")));
        }
        sqlx::query(
            "INSERT INTO idp_links (user_id, idp_id, linked_by, linked_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, idp_id) DO NOTHING",
        )
        .bind(user_id)
        .bind(idp_id)
        .bind(linked_by)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes the link of `user_id` to `idp_id`; whether there was one.
    pub async fn unlink_idp(&self, user_id: i64, idp_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM idp_links WHERE user_id = $1 AND idp_id = $2")
            .bind(user_id)
            .bind(idp_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The IdP instances `user_id` is linked to, in id order.
    pub async fn linked_idps(&self, user_id: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT idp_id FROM idp_links WHERE user_id = $1 ORDER BY idp_id")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| row.try_get("idp_id").map_err(Into::into))
            .collect()
    }
}

/// Inserts `user` with its additional fields and provenance inside `tx` (the caller's
/// transaction, which this statement opens with a write): three statements whatever the
/// number of fields. Returns the new id; a taken username is `Conflict`, a reserved or
/// empty additional field name `Invalid`, before anything is written.
pub(crate) async fn insert_user(
    tx: &mut Transaction<'_, Any>,
    user: &NewUser,
    provenance: &[FieldProvenance],
    now: i64,
) -> Result<i64, StoreError> {
    for name in user.additional.keys() {
        check_additional_name(name)?;
    }
    // The first statement writes, so SQLite takes the write lock at once (a transaction
    // that reads first could fail with SQLITE_BUSY_SNAPSHOT instead of waiting).
    let row = sqlx::query(
        "INSERT INTO users (username, email, firstname, lastname, idnumber, branch, \
         auth_source, password_hash, suspended, is_admin, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $10) RETURNING id",
    )
    .bind(&user.username)
    .bind(&user.email)
    .bind(&user.firstname)
    .bind(&user.lastname)
    .bind(&user.idnumber)
    .bind(&user.branch)
    .bind(&user.auth_source)
    .bind(user.password_hash.as_deref())
    .bind(i64::from(user.is_admin))
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| {
        conflict_or(e.into(), || {
            format!("username {:?} is already taken", user.username)
        })
    })?;
    let id: i64 = row.try_get("id")?;

    let fields: Vec<(&String, &String)> = user.additional.iter().collect();
    for chunk in fields.chunks(bulk::rows_per_statement(2)) {
        let sql = format!(
            "INSERT INTO user_fields (name, value, user_id) VALUES {}",
            bulk::value_rows(2, chunk.len(), ", $0")
        );
        let mut query = bulk::statement(sql).bind(id);
        for (name, value) in chunk {
            query = query.bind(*name).bind(*value);
        }
        query.execute(&mut **tx).await?;
    }
    // One provenance row per field: the last one given for a field wins.
    let provenance =
        bulk::last_per_key(&provenance.iter().collect::<Vec<_>>(), |p| p.field.as_str());
    for chunk in provenance.chunks(bulk::rows_per_statement(3)) {
        let sql = format!(
            "INSERT INTO field_provenance (field, idp_id, set_at, user_id) VALUES {}",
            bulk::value_rows(3, chunk.len(), ", $0")
        );
        let mut query = bulk::statement(sql).bind(id);
        for p in chunk {
            query = query.bind(&p.field).bind(&p.idp_id).bind(p.set_at);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(id)
}

/// Applies `changes` to user `user_id` inside `tx` (the caller's transaction, which this
/// opens with a write): see [`Store::update_user_fields`]. Names are checked before
/// anything is written.
pub(crate) async fn apply_changes(
    tx: &mut Transaction<'_, Any>,
    user_id: i64,
    changes: &[FieldChange],
    now: i64,
) -> Result<(), StoreError> {
    for change in changes {
        if !CORE_FIELDS.contains(&change.field.as_str()) {
            check_additional_name(&change.field)?;
        }
    }
    // Writes first (see create_user), and tells us whether the user exists.
    let touched = sqlx::query("UPDATE users SET updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    if touched.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("user {user_id}")));
    }

    for change in changes {
        let core_update = match change.field.as_str() {
            "username" => Some("UPDATE users SET username = $1 WHERE id = $2"),
            "email" => Some("UPDATE users SET email = $1 WHERE id = $2"),
            "firstname" => Some("UPDATE users SET firstname = $1 WHERE id = $2"),
            "lastname" => Some("UPDATE users SET lastname = $1 WHERE id = $2"),
            "idnumber" => Some("UPDATE users SET idnumber = $1 WHERE id = $2"),
            _ => None,
        };
        match core_update {
            Some(sql) => {
                sqlx::query(sql)
                    .bind(&change.value)
                    .bind(user_id)
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| {
                        conflict_or(e.into(), || {
                            format!("{} {:?} is already taken", change.field, change.value)
                        })
                    })?;
            }
            None => {
                sqlx::query(UPSERT_FIELD)
                    .bind(user_id)
                    .bind(&change.field)
                    .bind(&change.value)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        match &change.provenance {
            Some(idp_id) => {
                sqlx::query(UPSERT_PROVENANCE)
                    .bind(user_id)
                    .bind(&change.field)
                    .bind(idp_id)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
            }
            None => {
                sqlx::query("DELETE FROM field_provenance WHERE user_id = $1 AND field = $2")
                    .bind(user_id)
                    .bind(&change.field)
                    .execute(&mut **tx)
                    .await?;
            }
        }
    }
    Ok(())
}
