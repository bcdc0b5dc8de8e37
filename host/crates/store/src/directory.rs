//! The directory: users with their custom profile field values, audiences with their
//! members, and Connect links (which server user a synced user is). Two halves: a **pure planner** ([`plan`]) that compares an
//! [`ImportDocument`] with the current [`DirectorySnapshot`] and returns a [`Batch`] of
//! changes (no database, no clock; property-tested to be idempotent), and the store side that
//! reads the snapshot and applies one batch in **one transaction** ([`Store::apply_batch`]).
//! Not the file format (JSON is the host's `directory` module) and not password hashing (the
//! caller hashes before planning, so planning stays pure).

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row;

use crate::users::{ADMIN_PROVENANCE, CORE_FIELDS, RESERVED_FIELDS};
use crate::{Store, StoreError, get_bool};

// ---- State and documents --------------------------------------------------------------------

/// A user as the directory sees it. Usernames are the key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryUser {
    pub username: String,
    pub email: String,
    pub firstname: String,
    pub lastname: String,
    pub idnumber: String,
    pub suspended: bool,
    pub password_hash: Option<String>,
    /// Custom profile field values, by field name.
    pub fields: BTreeMap<String, String>,
    /// Which IdP (or `@admin`) set each field; read for export, never planned.
    pub provenance: BTreeMap<String, String>,
}

/// An audience. Idnumbers are the key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryAudience {
    pub idnumber: String,
    pub name: String,
    pub description: String,
    /// Usernames of the members.
    pub members: BTreeSet<String>,
}

/// A user synced from a Connect server: which server (its idnumber, and the Connect IdP
/// instance that syncs it) and the user's id there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectLink {
    pub idp_id: String,
    pub server_idnumber: String,
    pub server_user_id: i64,
}

/// The directory as it is: every user and audience, by key, and the Connect links.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectorySnapshot {
    pub users: BTreeMap<String, DirectoryUser>,
    pub audiences: BTreeMap<String, DirectoryAudience>,
    /// By username. A user has at most one; a server user is linked to at most one user.
    pub connect_links: BTreeMap<String, ConnectLink>,
}

/// One user record of an import. `None` leaves a value as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportUser {
    pub username: String,
    pub email: Option<String>,
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub idnumber: Option<String>,
    /// A hash already made by the caller, and only when the stored one does not verify the
    /// file's password (so that importing a file twice changes nothing).
    pub password_hash: Option<String>,
    pub suspended: Option<bool>,
    /// Deletes the user (and so its memberships and links).
    pub deleted: bool,
    /// Field name → value to set, or `None` to unset.
    pub fields: BTreeMap<String, Option<String>>,
}

/// One audience record of an import. `members`, when present, is the whole membership.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportAudience {
    pub idnumber: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub members: Option<Vec<String>>,
}

/// What an import names. What it does not name is left as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportDocument {
    pub users: Vec<ImportUser>,
    pub audiences: Vec<ImportAudience>,
}

// ---- Changes --------------------------------------------------------------------------------

/// A core column of `users` the directory writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CoreField {
    Email,
    Firstname,
    Lastname,
    Idnumber,
}

impl CoreField {
    pub const ALL: [CoreField; 4] = [
        CoreField::Email,
        CoreField::Firstname,
        CoreField::Lastname,
        CoreField::Idnumber,
    ];

    /// Its column (and field) name.
    pub fn name(self) -> &'static str {
        match self {
            CoreField::Email => "email",
            CoreField::Firstname => "firstname",
            CoreField::Lastname => "lastname",
            CoreField::Idnumber => "idnumber",
        }
    }

    fn of(self, user: &DirectoryUser) -> &str {
        match self {
            CoreField::Email => &user.email,
            CoreField::Firstname => &user.firstname,
            CoreField::Lastname => &user.lastname,
            CoreField::Idnumber => &user.idnumber,
        }
    }

    fn of_mut(self, user: &mut DirectoryUser) -> &mut String {
        match self {
            CoreField::Email => &mut user.email,
            CoreField::Firstname => &mut user.firstname,
            CoreField::Lastname => &mut user.lastname,
            CoreField::Idnumber => &mut user.idnumber,
        }
    }

    fn of_import(self, user: &ImportUser) -> Option<&String> {
        match self {
            CoreField::Email => user.email.as_ref(),
            CoreField::Firstname => user.firstname.as_ref(),
            CoreField::Lastname => user.lastname.as_ref(),
            CoreField::Idnumber => user.idnumber.as_ref(),
        }
    }
}

/// One change to the directory. Records are named by their key; the store resolves keys to
/// rows inside the transaction, so a batch may create a user and add it to an audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    CreateUser(DirectoryUser),
    SetCore {
        username: String,
        field: CoreField,
        value: String,
    },
    SetSuspended {
        username: String,
        suspended: bool,
    },
    SetPasswordHash {
        username: String,
        hash: String,
    },
    SetField {
        username: String,
        field: String,
        value: String,
    },
    UnsetField {
        username: String,
        field: String,
    },
    DeleteUser {
        username: String,
    },
    CreateAudience {
        idnumber: String,
        name: String,
        description: String,
    },
    UpdateAudience {
        idnumber: String,
        name: String,
        description: String,
    },
    DeleteAudience {
        idnumber: String,
    },
    AddMember {
        audience: String,
        username: String,
    },
    RemoveMember {
        audience: String,
        username: String,
    },
    /// Records that `username` is a server's user (a Connect sync's creation or migration);
    /// replaces any link the user had.
    LinkConnectUser {
        username: String,
        link: ConnectLink,
    },
    /// Forgets a user's Connect link (the account stays).
    UnlinkConnectUser {
        username: String,
    },
}

/// The changes one import or sync makes, applied together or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub changes: Vec<Change>,
}

/// How many records a batch touches, for summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchSummary {
    pub users_created: usize,
    /// Users with at least one value changed (and not created or deleted).
    pub users_updated: usize,
    pub users_deleted: usize,
    pub audiences_created: usize,
    pub audiences_updated: usize,
    pub audiences_deleted: usize,
    pub members_added: usize,
    pub members_removed: usize,
    pub connect_links_added: usize,
    pub connect_links_removed: usize,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Counts per kind of record.
    pub fn summary(&self) -> BatchSummary {
        let mut summary = BatchSummary::default();
        let mut updated = BTreeSet::new();
        for change in &self.changes {
            match change {
                Change::CreateUser(_) => summary.users_created += 1,
                Change::DeleteUser { .. } => summary.users_deleted += 1,
                Change::SetCore { username, .. }
                | Change::SetSuspended { username, .. }
                | Change::SetPasswordHash { username, .. }
                | Change::SetField { username, .. }
                | Change::UnsetField { username, .. } => {
                    updated.insert(username.as_str());
                }
                Change::CreateAudience { .. } => summary.audiences_created += 1,
                Change::UpdateAudience { .. } => summary.audiences_updated += 1,
                Change::DeleteAudience { .. } => summary.audiences_deleted += 1,
                Change::AddMember { .. } => summary.members_added += 1,
                Change::RemoveMember { .. } => summary.members_removed += 1,
                Change::LinkConnectUser { .. } => summary.connect_links_added += 1,
                Change::UnlinkConnectUser { .. } => summary.connect_links_removed += 1,
            }
        }
        summary.users_updated = updated.len();
        summary
    }
}

// ---- Planning -------------------------------------------------------------------------------

/// A record the planner refuses, named by where it is in the document (`users[3].email`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PlanError {
    pub path: String,
    pub message: String,
}

fn refuse(path: impl Into<String>, message: impl Into<String>) -> PlanError {
    PlanError {
        path: path.into(),
        message: message.into(),
    }
}

/// An identifier as the house compares them: exactly, so it must not carry surrounding
/// whitespace or control characters (they would make two "equal" keys differ).
fn check_identifier(path: &str, value: &str, may_be_empty: bool) -> Result<(), PlanError> {
    if value.is_empty() {
        return if may_be_empty {
            Ok(())
        } else {
            Err(refuse(path, "must not be empty"))
        };
    }
    if value.trim() != value {
        return Err(refuse(path, "must not begin or end with white space"));
    }
    if value.chars().any(char::is_control) {
        return Err(refuse(path, "must not contain control characters"));
    }
    Ok(())
}

fn check_text(path: &str, value: &str) -> Result<(), PlanError> {
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(refuse(path, "must not contain control characters"));
    }
    Ok(())
}

/// Plans `document` against `current`: the changes that make the directory say what the
/// document says, and nothing else. `known_fields` are the platform's `[[field]]` names (a
/// value for any other field is refused). The first refused record is the error, and then
/// nothing is planned. Applying the batch and planning again gives an empty batch.
pub fn plan(
    current: &DirectorySnapshot,
    document: &ImportDocument,
    known_fields: &BTreeSet<String>,
) -> Result<Batch, PlanError> {
    let mut changes = Vec::new();
    let mut seen_users: BTreeMap<&str, usize> = BTreeMap::new();
    // Who exists once the users section is applied, for the memberships.
    let mut exists: BTreeSet<&str> = current.users.keys().map(String::as_str).collect();

    for (index, user) in document.users.iter().enumerate() {
        let at = |key: &str| format!("users[{index}].{key}");
        check_identifier(&at("username"), &user.username, false)?;
        if let Some(first) = seen_users.insert(&user.username, index) {
            return Err(refuse(
                at("username"),
                format!("{:?} is already named by users[{first}]", user.username),
            ));
        }
        for field in CoreField::ALL {
            if let Some(value) = field.of_import(user) {
                match field {
                    CoreField::Email | CoreField::Idnumber => {
                        check_identifier(&at(field.name()), value, true)?
                    }
                    CoreField::Firstname | CoreField::Lastname => {
                        check_text(&at(field.name()), value)?
                    }
                }
            }
        }
        if let Some(email) = &user.email
            && !email.is_empty()
            && !email.contains('@')
        {
            return Err(refuse(
                at("email"),
                format!("{email:?} is not an email address"),
            ));
        }
        for (name, value) in &user.fields {
            let path = at(&format!("fields.{name}"));
            if CORE_FIELDS.contains(&name.as_str()) || RESERVED_FIELDS.contains(&name.as_str()) {
                return Err(refuse(
                    path,
                    format!("{name:?} is a core field, not a custom profile field"),
                ));
            }
            if !known_fields.contains(name) {
                return Err(refuse(
                    path,
                    format!("the platform has no [[field]] named {name:?}"),
                ));
            }
            if let Some(value) = value {
                check_text(&path, value)?;
            }
        }

        let existing = current.users.get(&user.username);
        if user.deleted {
            if existing.is_some() {
                changes.push(Change::DeleteUser {
                    username: user.username.clone(),
                });
            }
            exists.remove(user.username.as_str());
            continue;
        }
        exists.insert(&user.username);
        match existing {
            None => {
                let mut created = DirectoryUser {
                    username: user.username.clone(),
                    suspended: user.suspended.unwrap_or(false),
                    password_hash: user.password_hash.clone(),
                    ..DirectoryUser::default()
                };
                for field in CoreField::ALL {
                    if let Some(value) = field.of_import(user) {
                        *field.of_mut(&mut created) = value.clone();
                    }
                }
                for (name, value) in &user.fields {
                    if let Some(value) = value {
                        created.fields.insert(name.clone(), value.clone());
                    }
                }
                changes.push(Change::CreateUser(created));
            }
            Some(existing) => {
                for field in CoreField::ALL {
                    if let Some(value) = field.of_import(user)
                        && value != field.of(existing)
                    {
                        changes.push(Change::SetCore {
                            username: user.username.clone(),
                            field,
                            value: value.clone(),
                        });
                    }
                }
                if let Some(suspended) = user.suspended
                    && suspended != existing.suspended
                {
                    changes.push(Change::SetSuspended {
                        username: user.username.clone(),
                        suspended,
                    });
                }
                if let Some(hash) = &user.password_hash
                    && existing.password_hash.as_ref() != Some(hash)
                {
                    changes.push(Change::SetPasswordHash {
                        username: user.username.clone(),
                        hash: hash.clone(),
                    });
                }
                for (name, value) in &user.fields {
                    match (value, existing.fields.get(name)) {
                        (Some(value), current) if current != Some(value) => {
                            changes.push(Change::SetField {
                                username: user.username.clone(),
                                field: name.clone(),
                                value: value.clone(),
                            });
                        }
                        (None, Some(_)) => changes.push(Change::UnsetField {
                            username: user.username.clone(),
                            field: name.clone(),
                        }),
                        _ => {}
                    }
                }
            }
        }
    }

    let mut seen_audiences: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, audience) in document.audiences.iter().enumerate() {
        let at = |key: &str| format!("audiences[{index}].{key}");
        check_identifier(&at("idnumber"), &audience.idnumber, false)?;
        if let Some(first) = seen_audiences.insert(&audience.idnumber, index) {
            return Err(refuse(
                at("idnumber"),
                format!(
                    "{:?} is already named by audiences[{first}]",
                    audience.idnumber
                ),
            ));
        }
        for (key, value) in [
            ("name", &audience.name),
            ("description", &audience.description),
        ] {
            if let Some(value) = value {
                check_text(&at(key), value)?;
            }
        }
        let wanted: Option<BTreeSet<&str>> = match &audience.members {
            None => None,
            Some(members) => {
                let mut set = BTreeSet::new();
                for (m, username) in members.iter().enumerate() {
                    if !exists.contains(username.as_str()) {
                        return Err(refuse(
                            at(&format!("members[{m}]")),
                            format!("there is no user {username:?} (or the file deletes it)"),
                        ));
                    }
                    set.insert(username.as_str());
                }
                Some(set)
            }
        };
        let existing = current.audiences.get(&audience.idnumber);
        let had: BTreeSet<&str> = existing
            .map(|a| a.members.iter().map(String::as_str).collect())
            .unwrap_or_default();
        match existing {
            None => changes.push(Change::CreateAudience {
                idnumber: audience.idnumber.clone(),
                name: audience.name.clone().unwrap_or_default(),
                description: audience.description.clone().unwrap_or_default(),
            }),
            Some(existing) => {
                let name = audience.name.as_ref().unwrap_or(&existing.name);
                let description = audience
                    .description
                    .as_ref()
                    .unwrap_or(&existing.description);
                if *name != existing.name || *description != existing.description {
                    changes.push(Change::UpdateAudience {
                        idnumber: audience.idnumber.clone(),
                        name: name.clone(),
                        description: description.clone(),
                    });
                }
            }
        }
        if let Some(wanted) = wanted {
            for username in wanted.difference(&had) {
                changes.push(Change::AddMember {
                    audience: audience.idnumber.clone(),
                    username: (*username).to_owned(),
                });
            }
            for username in had.difference(&wanted) {
                // A member the users section deletes leaves with its account.
                if exists.contains(username) {
                    changes.push(Change::RemoveMember {
                        audience: audience.idnumber.clone(),
                        username: (*username).to_owned(),
                    });
                }
            }
        }
    }
    Ok(Batch { changes })
}

impl DirectorySnapshot {
    /// The state after `batch`, computed without a database: what [`Store::apply_batch`]
    /// does to the tables, as a model (the planner's property tests use it).
    pub fn apply(&mut self, batch: &Batch) {
        for change in &batch.changes {
            match change {
                Change::CreateUser(user) => {
                    self.users.insert(user.username.clone(), user.clone());
                }
                Change::SetCore {
                    username,
                    field,
                    value,
                } => {
                    if let Some(user) = self.users.get_mut(username) {
                        *field.of_mut(user) = value.clone();
                    }
                }
                Change::SetSuspended {
                    username,
                    suspended,
                } => {
                    if let Some(user) = self.users.get_mut(username) {
                        user.suspended = *suspended;
                    }
                }
                Change::SetPasswordHash { username, hash } => {
                    if let Some(user) = self.users.get_mut(username) {
                        user.password_hash = Some(hash.clone());
                    }
                }
                Change::SetField {
                    username,
                    field,
                    value,
                } => {
                    if let Some(user) = self.users.get_mut(username) {
                        user.fields.insert(field.clone(), value.clone());
                    }
                }
                Change::UnsetField { username, field } => {
                    if let Some(user) = self.users.get_mut(username) {
                        user.fields.remove(field);
                    }
                }
                Change::DeleteUser { username } => {
                    self.users.remove(username);
                    self.connect_links.remove(username);
                    for audience in self.audiences.values_mut() {
                        audience.members.remove(username);
                    }
                }
                Change::CreateAudience {
                    idnumber,
                    name,
                    description,
                }
                | Change::UpdateAudience {
                    idnumber,
                    name,
                    description,
                } => {
                    let audience = self.audiences.entry(idnumber.clone()).or_insert_with(|| {
                        DirectoryAudience {
                            idnumber: idnumber.clone(),
                            ..DirectoryAudience::default()
                        }
                    });
                    audience.name = name.clone();
                    audience.description = description.clone();
                }
                Change::DeleteAudience { idnumber } => {
                    self.audiences.remove(idnumber);
                }
                Change::AddMember { audience, username } => {
                    if let Some(audience) = self.audiences.get_mut(audience) {
                        audience.members.insert(username.clone());
                    }
                }
                Change::RemoveMember { audience, username } => {
                    if let Some(audience) = self.audiences.get_mut(audience) {
                        audience.members.remove(username);
                    }
                }
                Change::LinkConnectUser { username, link } => {
                    if self.users.contains_key(username) {
                        self.connect_links.insert(username.clone(), link.clone());
                    }
                }
                Change::UnlinkConnectUser { username } => {
                    self.connect_links.remove(username);
                }
            }
        }
    }
}

// ---- The store side -------------------------------------------------------------------------

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

async fn user_id(tx: &mut Tx<'_>, username: &str) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT id FROM users WHERE username = $1")
        .bind(username)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("user {username:?}")))?;
    Ok(row.try_get("id")?)
}

async fn audience_id(tx: &mut Tx<'_>, idnumber: &str) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT id FROM audiences WHERE idnumber = $1")
        .bind(idnumber)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("audience {idnumber:?}")))?;
    Ok(row.try_get("id")?)
}

const UPSERT_FIELD: &str = "INSERT INTO user_fields (user_id, name, value) VALUES ($1, $2, $3) \
     ON CONFLICT (user_id, name) DO UPDATE SET value = excluded.value";
const UPSERT_PROVENANCE: &str = "INSERT INTO field_provenance (user_id, field, idp_id, set_at) \
     VALUES ($1, $2, $3, $4) \
     ON CONFLICT (user_id, field) DO UPDATE SET idp_id = excluded.idp_id, set_at = excluded.set_at";

/// What every directory write records as who set a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenBy<'a> {
    /// The provenance of each value set: [`ADMIN_PROVENANCE`] for an administrator's
    /// import, or the Connect IdP instance for a sync.
    pub provenance: &'a str,
    /// `branch` of created users.
    pub branch: &'a str,
    /// `auth_source` of created users (`"local"`, or `"idp:<id>"`).
    pub auth_source: &'a str,
}

impl WrittenBy<'static> {
    /// An administrator's import into the root branch, as local accounts.
    pub const ADMIN_IMPORT: WrittenBy<'static> = WrittenBy {
        provenance: ADMIN_PROVENANCE,
        branch: "root",
        auth_source: "local",
    };
}

impl Store {
    /// The whole directory: users with their fields and provenance, audiences with members.
    pub async fn directory_snapshot(&self) -> Result<DirectorySnapshot, StoreError> {
        // One read transaction, so the parts agree with each other.
        let mut tx = self.pool.begin().await?;
        let mut snapshot = DirectorySnapshot::default();
        let mut by_id: BTreeMap<i64, String> = BTreeMap::new();
        let rows = sqlx::query(
            "SELECT id, username, email, firstname, lastname, idnumber, suspended, password_hash \
             FROM users ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            let user = DirectoryUser {
                username: row.try_get("username")?,
                email: row.try_get("email")?,
                firstname: row.try_get("firstname")?,
                lastname: row.try_get("lastname")?,
                idnumber: row.try_get("idnumber")?,
                suspended: get_bool(row, "suspended")?,
                password_hash: row.try_get("password_hash")?,
                fields: BTreeMap::new(),
                provenance: BTreeMap::new(),
            };
            by_id.insert(row.try_get("id")?, user.username.clone());
            snapshot.users.insert(user.username.clone(), user);
        }
        for row in sqlx::query("SELECT user_id, name, value FROM user_fields")
            .fetch_all(&mut *tx)
            .await?
        {
            let id: i64 = row.try_get("user_id")?;
            if let Some(name) = by_id.get(&id)
                && let Some(user) = snapshot.users.get_mut(name)
            {
                user.fields
                    .insert(row.try_get("name")?, row.try_get("value")?);
            }
        }
        for row in sqlx::query("SELECT user_id, field, idp_id FROM field_provenance")
            .fetch_all(&mut *tx)
            .await?
        {
            let id: i64 = row.try_get("user_id")?;
            if let Some(name) = by_id.get(&id)
                && let Some(user) = snapshot.users.get_mut(name)
            {
                user.provenance
                    .insert(row.try_get("field")?, row.try_get("idp_id")?);
            }
        }
        let mut audience_by_id: BTreeMap<i64, String> = BTreeMap::new();
        for row in sqlx::query("SELECT id, idnumber, name, description FROM audiences ORDER BY id")
            .fetch_all(&mut *tx)
            .await?
        {
            let audience = DirectoryAudience {
                idnumber: row.try_get("idnumber")?,
                name: row.try_get("name")?,
                description: row.try_get("description")?,
                members: BTreeSet::new(),
            };
            audience_by_id.insert(row.try_get("id")?, audience.idnumber.clone());
            snapshot
                .audiences
                .insert(audience.idnumber.clone(), audience);
        }
        for row in sqlx::query("SELECT audience_id, user_id FROM audience_members")
            .fetch_all(&mut *tx)
            .await?
        {
            let audience: i64 = row.try_get("audience_id")?;
            let user: i64 = row.try_get("user_id")?;
            if let (Some(idnumber), Some(username)) =
                (audience_by_id.get(&audience), by_id.get(&user))
                && let Some(audience) = snapshot.audiences.get_mut(idnumber)
            {
                audience.members.insert(username.clone());
            }
        }
        for row in sqlx::query(
            "SELECT user_id, idp_id, server_idnumber, server_user_id FROM connect_users",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            let user: i64 = row.try_get("user_id")?;
            if let Some(username) = by_id.get(&user) {
                snapshot.connect_links.insert(
                    username.clone(),
                    ConnectLink {
                        idp_id: row.try_get("idp_id")?,
                        server_idnumber: row.try_get("server_idnumber")?,
                        server_user_id: row.try_get("server_user_id")?,
                    },
                );
            }
        }
        tx.commit().await?;
        Ok(snapshot)
    }

    /// Applies `batch` in one transaction: every change or none. Values set are recorded
    /// with `by.provenance`; users created get `by.branch` and `by.auth_source`. A change
    /// naming a record that is not there (another writer got in between) is `NotFound`,
    /// a username taken meanwhile `Conflict`; either way nothing is written.
    pub async fn apply_batch(
        &self,
        batch: &Batch,
        by: WrittenBy<'_>,
        now: i64,
    ) -> Result<BatchSummary, StoreError> {
        let mut tx = self.pool.begin().await?;
        // A write first, so that SQLite takes the write lock at once: a transaction that reads
        // first could fail with SQLITE_BUSY_SNAPSHOT instead of waiting (see create_user).
        sqlx::query("DELETE FROM audience_members WHERE 1 = 0")
            .execute(&mut *tx)
            .await?;
        for change in &batch.changes {
            apply_change(&mut tx, change, by, now).await?;
        }
        tx.commit().await?;
        Ok(batch.summary())
    }
}

async fn record_provenance(
    tx: &mut Tx<'_>,
    user: i64,
    field: &str,
    by: WrittenBy<'_>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(UPSERT_PROVENANCE)
        .bind(user)
        .bind(field)
        .bind(by.provenance)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn touch(tx: &mut Tx<'_>, user: i64, now: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE users SET updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(user)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn apply_change(
    tx: &mut Tx<'_>,
    change: &Change,
    by: WrittenBy<'_>,
    now: i64,
) -> Result<(), StoreError> {
    match change {
        Change::CreateUser(user) => {
            let row = sqlx::query(
                "INSERT INTO users (username, email, firstname, lastname, idnumber, branch, \
                 auth_source, password_hash, suspended, is_admin, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $10) RETURNING id",
            )
            .bind(&user.username)
            .bind(&user.email)
            .bind(&user.firstname)
            .bind(&user.lastname)
            .bind(&user.idnumber)
            .bind(by.branch)
            .bind(by.auth_source)
            .bind(user.password_hash.as_deref())
            .bind(i64::from(user.suspended))
            .bind(now)
            .fetch_one(&mut **tx)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("username {:?} is already taken", user.username))
                }
                other => other,
            })?;
            let id: i64 = row.try_get("id")?;
            for field in CoreField::ALL {
                if !field.of(user).is_empty() {
                    record_provenance(tx, id, field.name(), by, now).await?;
                }
            }
            for (name, value) in &user.fields {
                sqlx::query(UPSERT_FIELD)
                    .bind(id)
                    .bind(name)
                    .bind(value)
                    .execute(&mut **tx)
                    .await?;
                record_provenance(tx, id, name, by, now).await?;
            }
        }
        Change::SetCore {
            username,
            field,
            value,
        } => {
            let id = user_id(tx, username).await?;
            let sql = match field {
                CoreField::Email => "UPDATE users SET email = $1, updated_at = $2 WHERE id = $3",
                CoreField::Firstname => {
                    "UPDATE users SET firstname = $1, updated_at = $2 WHERE id = $3"
                }
                CoreField::Lastname => {
                    "UPDATE users SET lastname = $1, updated_at = $2 WHERE id = $3"
                }
                CoreField::Idnumber => {
                    "UPDATE users SET idnumber = $1, updated_at = $2 WHERE id = $3"
                }
            };
            sqlx::query(sql)
                .bind(value)
                .bind(now)
                .bind(id)
                .execute(&mut **tx)
                .await?;
            record_provenance(tx, id, field.name(), by, now).await?;
        }
        Change::SetSuspended {
            username,
            suspended,
        } => {
            let id = user_id(tx, username).await?;
            sqlx::query("UPDATE users SET suspended = $1, updated_at = $2 WHERE id = $3")
                .bind(i64::from(*suspended))
                .bind(now)
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
        Change::SetPasswordHash { username, hash } => {
            let id = user_id(tx, username).await?;
            sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
                .bind(hash)
                .bind(now)
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
        Change::SetField {
            username,
            field,
            value,
        } => {
            let id = user_id(tx, username).await?;
            sqlx::query(UPSERT_FIELD)
                .bind(id)
                .bind(field)
                .bind(value)
                .execute(&mut **tx)
                .await?;
            record_provenance(tx, id, field, by, now).await?;
            touch(tx, id, now).await?;
        }
        Change::UnsetField { username, field } => {
            let id = user_id(tx, username).await?;
            sqlx::query("DELETE FROM user_fields WHERE user_id = $1 AND name = $2")
                .bind(id)
                .bind(field)
                .execute(&mut **tx)
                .await?;
            sqlx::query("DELETE FROM field_provenance WHERE user_id = $1 AND field = $2")
                .bind(id)
                .bind(field)
                .execute(&mut **tx)
                .await?;
            touch(tx, id, now).await?;
        }
        Change::DeleteUser { username } => {
            let id = user_id(tx, username).await?;
            // The tombstone a Connect server keeps reporting as deleted (connect_server.rs).
            crate::connect_server::write_tombstone(tx, id, now).await?;
            // Fields, provenance, sessions, links, memberships and Connect links go with it
            // (ON DELETE CASCADE).
            sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
        Change::CreateAudience {
            idnumber,
            name,
            description,
        } => {
            sqlx::query(
                "INSERT INTO audiences (idnumber, name, description, component, created_at, \
                 updated_at) VALUES ($1, $2, $3, '', $4, $4)",
            )
            .bind(idnumber)
            .bind(name)
            .bind(description)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        Change::UpdateAudience {
            idnumber,
            name,
            description,
        } => {
            let done = sqlx::query(
                "UPDATE audiences SET name = $1, description = $2, updated_at = $3 \
                 WHERE idnumber = $4",
            )
            .bind(name)
            .bind(description)
            .bind(now)
            .bind(idnumber)
            .execute(&mut **tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("audience {idnumber:?}")));
            }
        }
        Change::DeleteAudience { idnumber } => {
            sqlx::query("DELETE FROM audiences WHERE idnumber = $1")
                .bind(idnumber)
                .execute(&mut **tx)
                .await?;
        }
        Change::AddMember { audience, username } => {
            let audience = audience_id(tx, audience).await?;
            let user = user_id(tx, username).await?;
            sqlx::query(
                "INSERT INTO audience_members (audience_id, user_id, added_at) \
                 VALUES ($1, $2, $3) ON CONFLICT (audience_id, user_id) DO NOTHING",
            )
            .bind(audience)
            .bind(user)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        Change::RemoveMember { audience, username } => {
            let audience = audience_id(tx, audience).await?;
            let user = user_id(tx, username).await?;
            sqlx::query("DELETE FROM audience_members WHERE audience_id = $1 AND user_id = $2")
                .bind(audience)
                .bind(user)
                .execute(&mut **tx)
                .await?;
        }
        Change::LinkConnectUser { username, link } => {
            let user = user_id(tx, username).await?;
            sqlx::query(
                "INSERT INTO connect_users (user_id, idp_id, server_idnumber, server_user_id, \
                 created_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (user_id) DO UPDATE SET idp_id = excluded.idp_id, \
                 server_idnumber = excluded.server_idnumber, \
                 server_user_id = excluded.server_user_id",
            )
            .bind(user)
            .bind(&link.idp_id)
            .bind(&link.server_idnumber)
            .bind(link.server_user_id)
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!(
                    "server user {} of {} is already linked to another user",
                    link.server_user_id, link.server_idnumber
                )),
                other => other,
            })?;
        }
        Change::UnlinkConnectUser { username } => {
            let user = user_id(tx, username).await?;
            sqlx::query("DELETE FROM connect_users WHERE user_id = $1")
                .bind(user)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}
