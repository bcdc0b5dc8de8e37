//! The directory: users with their custom profile field values and job assignments,
//! audiences with their members, courses with their enrolled users, position and
//! organisation frameworks with their item trees, and Connect links (which server user a
//! synced user is). Two halves: a **pure planner** ([`plan`]) that compares an
//! [`ImportDocument`] with the current [`DirectorySnapshot`] and returns a [`Batch`] of
//! changes (no database, no clock; property-tested to be idempotent), and the store side that
//! reads the snapshot and applies one batch in **one transaction** ([`Store::apply_batch`]).
//! Not the file format (JSON is the host's `directory` module) and not password hashing (the
//! caller hashes before planning, so planning stays pure).

use std::collections::{BTreeMap, BTreeSet};

use futures_util::TryStreamExt;
use sqlx::Row;

use crate::users::{ADMIN_PROVENANCE, CORE_FIELDS, RESERVED_FIELDS};
use crate::{FrameworkKind, Store, StoreError, get_bool};

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
    /// `""` for an administrator's audience, else the Connect IdP that keeps it in step with
    /// its server (an import may not change it).
    pub component: String,
}

/// A user synced from a Connect server: which server (its idnumber, and the Connect IdP
/// instance that syncs it) and the user's id there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectLink {
    pub idp_id: String,
    pub server_idnumber: String,
    pub server_user_id: i64,
}

/// A course. Shortnames are the key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryCourse {
    pub shortname: String,
    pub fullname: String,
    pub summary: String,
    /// Usernames of the enrolled users.
    pub enrolled: BTreeSet<String>,
}

/// An item of a position or organisation framework. Idnumbers are the key, unique per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryItem {
    pub idnumber: String,
    pub fullname: String,
    /// The parent item's idnumber (in the same framework), `None` at the top.
    pub parent: Option<String>,
    /// The item's type, by the type's idnumber; `""` for none.
    pub type_idnumber: String,
}

/// A position or organisation framework and its items (by idnumber).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryFramework {
    pub idnumber: String,
    pub fullname: String,
    pub items: BTreeMap<String, DirectoryItem>,
}

/// A user's job assignment. Idnumbers are the key, per user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryJob {
    pub idnumber: String,
    pub fullname: String,
    pub shortname: String,
    /// The position item's idnumber, `None` for none (or when the item was deleted).
    pub position: Option<String>,
    /// The organisation item's idnumber, `None` for none.
    pub organisation: Option<String>,
    pub startdate: i64,
    pub enddate: i64,
    /// Its place in the user's list, from 1 (Totara's first job is the primary one).
    pub sortorder: i64,
}

/// The directory as it is: every user and audience, by key, and the Connect links.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectorySnapshot {
    pub users: BTreeMap<String, DirectoryUser>,
    pub audiences: BTreeMap<String, DirectoryAudience>,
    /// By username. A user has at most one; a server user is linked to at most one user.
    pub connect_links: BTreeMap<String, ConnectLink>,
    pub courses: BTreeMap<String, DirectoryCourse>,
    pub position_frameworks: BTreeMap<String, DirectoryFramework>,
    pub organisation_frameworks: BTreeMap<String, DirectoryFramework>,
    /// Job assignments by username, then by job idnumber (users without jobs are absent).
    pub jobs: BTreeMap<String, BTreeMap<String, DirectoryJob>>,
}

/// The name `hierarchy_frameworks.kind` and `hierarchy_items.kind` give a kind.
pub fn framework_kind_name(kind: FrameworkKind) -> &'static str {
    match kind {
        FrameworkKind::Position => "position",
        FrameworkKind::Organisation => "organisation",
    }
}

/// The file's section for a kind of framework.
fn framework_section(kind: FrameworkKind) -> &'static str {
    match kind {
        FrameworkKind::Position => "position_frameworks",
        FrameworkKind::Organisation => "organisation_frameworks",
    }
}

impl DirectorySnapshot {
    /// The frameworks of one kind.
    pub fn frameworks(&self, kind: FrameworkKind) -> &BTreeMap<String, DirectoryFramework> {
        match kind {
            FrameworkKind::Position => &self.position_frameworks,
            FrameworkKind::Organisation => &self.organisation_frameworks,
        }
    }

    fn frameworks_mut(&mut self, kind: FrameworkKind) -> &mut BTreeMap<String, DirectoryFramework> {
        match kind {
            FrameworkKind::Position => &mut self.position_frameworks,
            FrameworkKind::Organisation => &mut self.organisation_frameworks,
        }
    }

    /// Which framework holds the item `idnumber` of this kind.
    fn framework_of_item(&self, kind: FrameworkKind, idnumber: &str) -> Option<&str> {
        self.frameworks(kind)
            .values()
            .find(|f| f.items.contains_key(idnumber))
            .map(|f| f.idnumber.as_str())
    }
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
    /// When present, the user's whole list of job assignments.
    pub jobs: Option<Vec<ImportJob>>,
}

/// One job assignment of a user record. `None` leaves a value as it is; a position or
/// organisation of `Some("")` is none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportJob {
    pub idnumber: String,
    pub fullname: Option<String>,
    pub shortname: Option<String>,
    pub position: Option<String>,
    pub organisation: Option<String>,
    pub startdate: Option<i64>,
    pub enddate: Option<i64>,
}

/// One course record. `enrolled`, when present, is the whole list of enrolled users.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportCourse {
    pub shortname: String,
    pub fullname: Option<String>,
    pub summary: Option<String>,
    pub enrolled: Option<Vec<String>>,
}

/// One framework record. `items`, when present, is the framework's whole tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportFramework {
    pub idnumber: String,
    pub fullname: Option<String>,
    pub items: Option<Vec<ImportItem>>,
}

/// One item of a framework record. `parent` `None` is the top of the tree; `type_idnumber`
/// `None` leaves the type as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportItem {
    pub idnumber: String,
    pub fullname: Option<String>,
    pub parent: Option<String>,
    pub type_idnumber: Option<String>,
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
    pub courses: Vec<ImportCourse>,
    pub position_frameworks: Vec<ImportFramework>,
    pub organisation_frameworks: Vec<ImportFramework>,
}

impl ImportDocument {
    /// The frameworks of one kind.
    pub fn frameworks(&self, kind: FrameworkKind) -> &[ImportFramework] {
        match kind {
            FrameworkKind::Position => &self.position_frameworks,
            FrameworkKind::Organisation => &self.organisation_frameworks,
        }
    }
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

    pub(crate) fn of(self, user: &DirectoryUser) -> &str {
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
    /// Creates a course (and links it to the Connect clients that add new courses).
    CreateCourse {
        shortname: String,
        fullname: String,
        summary: String,
    },
    UpdateCourse {
        shortname: String,
        fullname: String,
        summary: String,
    },
    Enrol {
        course: String,
        username: String,
    },
    Unenrol {
        course: String,
        username: String,
    },
    CreateFramework {
        kind: FrameworkKind,
        idnumber: String,
        fullname: String,
    },
    UpdateFramework {
        kind: FrameworkKind,
        idnumber: String,
        fullname: String,
    },
    /// Creates an item in `framework`; its parent, if any, is already there.
    CreateItem {
        kind: FrameworkKind,
        framework: String,
        item: DirectoryItem,
    },
    /// Sets an item's name, parent and type (it stays in its framework).
    UpdateItem {
        kind: FrameworkKind,
        item: DirectoryItem,
    },
    /// Deletes an item; its children are gone or moved by then. Jobs naming it keep no
    /// position (or organisation).
    DeleteItem {
        kind: FrameworkKind,
        idnumber: String,
    },
    CreateJob {
        username: String,
        job: DirectoryJob,
    },
    UpdateJob {
        username: String,
        job: DirectoryJob,
    },
    DeleteJob {
        username: String,
        idnumber: String,
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
    pub courses_created: usize,
    pub courses_updated: usize,
    pub enrolments_added: usize,
    pub enrolments_removed: usize,
    pub frameworks_created: usize,
    pub frameworks_updated: usize,
    pub items_created: usize,
    pub items_updated: usize,
    pub items_deleted: usize,
    pub jobs_created: usize,
    pub jobs_updated: usize,
    pub jobs_deleted: usize,
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
                Change::CreateCourse { .. } => summary.courses_created += 1,
                Change::UpdateCourse { .. } => summary.courses_updated += 1,
                Change::Enrol { .. } => summary.enrolments_added += 1,
                Change::Unenrol { .. } => summary.enrolments_removed += 1,
                Change::CreateFramework { .. } => summary.frameworks_created += 1,
                Change::UpdateFramework { .. } => summary.frameworks_updated += 1,
                Change::CreateItem { .. } => summary.items_created += 1,
                Change::UpdateItem { .. } => summary.items_updated += 1,
                Change::DeleteItem { .. } => summary.items_deleted += 1,
                Change::CreateJob { .. } => summary.jobs_created += 1,
                Change::UpdateJob { .. } => summary.jobs_updated += 1,
                Change::DeleteJob { .. } => summary.jobs_deleted += 1,
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
        let wanted = match &audience.members {
            None => None,
            Some(members) => Some(named_users(&at("members"), members, &exists)?),
        };
        let existing = current.audiences.get(&audience.idnumber);
        let had: BTreeSet<&str> = existing
            .map(|a| a.members.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let planned = changes.len();
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
            membership_changes(&had, &wanted, &exists, &mut changes, |username, add| {
                let (audience, username) = (audience.idnumber.clone(), username.to_owned());
                if add {
                    Change::AddMember { audience, username }
                } else {
                    Change::RemoveMember { audience, username }
                }
            });
        }
        if let Some(existing) = existing
            && !existing.component.is_empty()
            && changes.len() > planned
        {
            return Err(refuse(
                at("idnumber"),
                format!(
                    "audience {:?} is kept in step with its Connect server by the IdP `{}`: it cannot be changed here (change it on the server)",
                    audience.idnumber, existing.component
                ),
            ));
        }
    }
    plan_courses(current, document, &exists, &mut changes)?;
    let positions = plan_frameworks(current, document, FrameworkKind::Position, &mut changes)?;
    let organisations =
        plan_frameworks(current, document, FrameworkKind::Organisation, &mut changes)?;
    plan_jobs(
        current,
        document,
        [&positions, &organisations],
        &mut changes,
    )?;
    Ok(Batch { changes })
}

/// A list of usernames that must all exist once the users section is applied, as a set.
fn named_users<'a>(
    path: &str,
    names: &'a [String],
    exists: &BTreeSet<&str>,
) -> Result<BTreeSet<&'a str>, PlanError> {
    let mut set = BTreeSet::new();
    for (index, username) in names.iter().enumerate() {
        if !exists.contains(username.as_str()) {
            return Err(refuse(
                format!("{path}[{index}]"),
                format!("there is no user {username:?} (or the file deletes it)"),
            ));
        }
        set.insert(username.as_str());
    }
    Ok(set)
}

/// The additions and removals that make a membership list `wanted`; a member the users
/// section deletes leaves with its account, so no removal is planned for it.
fn membership_changes(
    had: &BTreeSet<&str>,
    wanted: &BTreeSet<&str>,
    exists: &BTreeSet<&str>,
    changes: &mut Vec<Change>,
    change: impl Fn(&str, bool) -> Change,
) {
    for username in wanted.difference(had) {
        changes.push(change(username, true));
    }
    for username in had.difference(wanted) {
        if exists.contains(username) {
            changes.push(change(username, false));
        }
    }
}

/// Records that `key` is named at `index` of `section`, refusing a second naming.
fn named_once<'a>(
    seen: &mut BTreeMap<&'a str, String>,
    key: &'a str,
    here: String,
    path: String,
) -> Result<(), PlanError> {
    if let Some(first) = seen.get(key) {
        return Err(refuse(path, format!("{key:?} is already named by {first}")));
    }
    seen.insert(key, here);
    Ok(())
}

fn plan_courses(
    current: &DirectorySnapshot,
    document: &ImportDocument,
    exists: &BTreeSet<&str>,
    changes: &mut Vec<Change>,
) -> Result<(), PlanError> {
    let mut seen = BTreeMap::new();
    for (index, course) in document.courses.iter().enumerate() {
        let at = |key: &str| format!("courses[{index}].{key}");
        check_identifier(&at("shortname"), &course.shortname, false)?;
        named_once(
            &mut seen,
            &course.shortname,
            format!("courses[{index}]"),
            at("shortname"),
        )?;
        for (key, value) in [("fullname", &course.fullname), ("summary", &course.summary)] {
            if let Some(value) = value {
                check_text(&at(key), value)?;
            }
        }
        let wanted = match &course.enrolled {
            None => None,
            Some(enrolled) => Some(named_users(&at("enrolled"), enrolled, exists)?),
        };
        let existing = current.courses.get(&course.shortname);
        match existing {
            None => changes.push(Change::CreateCourse {
                shortname: course.shortname.clone(),
                fullname: course.fullname.clone().unwrap_or_default(),
                summary: course.summary.clone().unwrap_or_default(),
            }),
            Some(existing) => {
                let fullname = course.fullname.as_ref().unwrap_or(&existing.fullname);
                let summary = course.summary.as_ref().unwrap_or(&existing.summary);
                if *fullname != existing.fullname || *summary != existing.summary {
                    changes.push(Change::UpdateCourse {
                        shortname: course.shortname.clone(),
                        fullname: fullname.clone(),
                        summary: summary.clone(),
                    });
                }
            }
        }
        if let Some(wanted) = wanted {
            let had: BTreeSet<&str> = existing
                .map(|c| c.enrolled.iter().map(String::as_str).collect())
                .unwrap_or_default();
            membership_changes(&had, &wanted, exists, changes, |username, add| {
                let (course, username) = (course.shortname.clone(), username.to_owned());
                if add {
                    Change::Enrol { course, username }
                } else {
                    Change::Unenrol { course, username }
                }
            });
        }
    }
    Ok(())
}

/// Plans the frameworks of one kind and their item trees; returns the idnumbers of the items
/// of that kind once the batch is applied (what job assignments may name).
fn plan_frameworks(
    current: &DirectorySnapshot,
    document: &ImportDocument,
    kind: FrameworkKind,
    changes: &mut Vec<Change>,
) -> Result<BTreeSet<String>, PlanError> {
    let section = framework_section(kind);
    let stored = current.frameworks(kind);
    let mut after: BTreeSet<String> = stored
        .values()
        .flat_map(|f| f.items.keys().cloned())
        .collect();
    let mut seen_frameworks = BTreeMap::new();
    let mut seen_items = BTreeMap::new();
    for (index, framework) in document.frameworks(kind).iter().enumerate() {
        let here = format!("{section}[{index}]");
        let at = |key: &str| format!("{here}.{key}");
        check_identifier(&at("idnumber"), &framework.idnumber, false)?;
        named_once(
            &mut seen_frameworks,
            &framework.idnumber,
            here.clone(),
            at("idnumber"),
        )?;
        if let Some(fullname) = &framework.fullname {
            check_text(&at("fullname"), fullname)?;
        }
        let existing = stored.get(&framework.idnumber);
        match existing {
            None => changes.push(Change::CreateFramework {
                kind,
                idnumber: framework.idnumber.clone(),
                fullname: framework.fullname.clone().unwrap_or_default(),
            }),
            Some(existing) => {
                if let Some(fullname) = &framework.fullname
                    && *fullname != existing.fullname
                {
                    changes.push(Change::UpdateFramework {
                        kind,
                        idnumber: framework.idnumber.clone(),
                        fullname: fullname.clone(),
                    });
                }
            }
        }
        let Some(items) = &framework.items else {
            continue;
        };
        let item_at = |i: usize, key: &str| format!("{here}.items[{i}].{key}");
        let mut named: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            check_identifier(&item_at(i, "idnumber"), &item.idnumber, false)?;
            named_once(
                &mut seen_items,
                &item.idnumber,
                format!("{here}.items[{i}]"),
                item_at(i, "idnumber"),
            )?;
            named.insert(&item.idnumber, i);
            if let Some(fullname) = &item.fullname {
                check_text(&item_at(i, "fullname"), fullname)?;
            }
            if let Some(type_idnumber) = &item.type_idnumber {
                check_identifier(&item_at(i, "type"), type_idnumber, true)?;
            }
            if let Some(other) = current.framework_of_item(kind, &item.idnumber)
                && other != framework.idnumber
            {
                return Err(refuse(
                    item_at(i, "idnumber"),
                    format!(
                        "{:?} is an item of framework {other:?}; items do not move between frameworks",
                        item.idnumber
                    ),
                ));
            }
        }
        // Each item's depth in the new tree (parents first), refusing unknown parents and
        // cycles.
        let mut order = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let mut chain = vec![item.idnumber.as_str()];
            let mut at_item = item;
            while let Some(parent) = &at_item.parent {
                let Some(&p) = named.get(parent.as_str()) else {
                    return Err(refuse(
                        item_at(i, "parent"),
                        format!(
                            "{parent:?} is not an item of this framework's list (the list is the framework's whole tree)"
                        ),
                    ));
                };
                if let Some(start) = chain.iter().position(|id| id == parent) {
                    // Named at the cycle's first item in the list, from there round.
                    let cycle = &chain[start..];
                    let (first, at) = cycle
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, id)| named.get(**id))
                        .map(|(k, id)| (named.get(*id).copied().unwrap_or(i), k))
                        .unwrap_or((i, 0));
                    let mut round: Vec<&str> =
                        cycle[at..].iter().chain(&cycle[..at]).copied().collect();
                    round.push(round[0]);
                    return Err(refuse(
                        item_at(first, "parent"),
                        format!("makes a cycle: {}", round.join(" → ")),
                    ));
                }
                chain.push(parent);
                at_item = &items[p];
            }
            order.push((chain.len(), i));
        }
        order.sort();
        let stored_items = existing.map(|f| &f.items);
        for (_, i) in order {
            let item = &items[i];
            match stored_items.and_then(|s| s.get(&item.idnumber)) {
                None => changes.push(Change::CreateItem {
                    kind,
                    framework: framework.idnumber.clone(),
                    item: DirectoryItem {
                        idnumber: item.idnumber.clone(),
                        fullname: item.fullname.clone().unwrap_or_default(),
                        parent: item.parent.clone(),
                        type_idnumber: item.type_idnumber.clone().unwrap_or_default(),
                    },
                }),
                Some(had) => {
                    let wanted = DirectoryItem {
                        idnumber: item.idnumber.clone(),
                        fullname: item.fullname.clone().unwrap_or(had.fullname.clone()),
                        parent: item.parent.clone(),
                        type_idnumber: item
                            .type_idnumber
                            .clone()
                            .unwrap_or(had.type_idnumber.clone()),
                    };
                    if wanted != *had {
                        changes.push(Change::UpdateItem { kind, item: wanted });
                    }
                }
            }
            after.insert(item.idnumber.clone());
        }
        // Stored items the list does not name: deleted after the moves, children first.
        if let Some(stored_items) = stored_items {
            let mut gone: Vec<(usize, &str)> = stored_items
                .keys()
                .filter(|id| !named.contains_key(id.as_str()))
                .map(|id| (stored_depth(stored_items, id), id.as_str()))
                .collect();
            gone.sort_by(|a, b| b.cmp(a));
            for (_, idnumber) in gone {
                after.remove(idnumber);
                changes.push(Change::DeleteItem {
                    kind,
                    idnumber: idnumber.to_owned(),
                });
            }
        }
    }
    Ok(after)
}

/// An item's depth in a stored tree (which has no cycles; the bound is a guard).
fn stored_depth(items: &BTreeMap<String, DirectoryItem>, idnumber: &str) -> usize {
    let mut depth = 0;
    let mut at = items.get(idnumber);
    while let Some(parent) = at.and_then(|item| item.parent.as_ref()) {
        depth += 1;
        if depth > items.len() {
            break;
        }
        at = items.get(parent);
    }
    depth
}

/// Plans each named user's job assignments (a given list is the user's whole list), after
/// the frameworks: `items` are the position and organisation idnumbers once they are applied.
fn plan_jobs(
    current: &DirectorySnapshot,
    document: &ImportDocument,
    items: [&BTreeSet<String>; 2],
    changes: &mut Vec<Change>,
) -> Result<(), PlanError> {
    let [positions, organisations] = items;
    for (index, user) in document.users.iter().enumerate() {
        let Some(jobs) = &user.jobs else { continue };
        if user.deleted {
            continue;
        }
        let stored = current.jobs.get(&user.username);
        let mut seen = BTreeMap::new();
        for (j, job) in jobs.iter().enumerate() {
            let here = format!("users[{index}].jobs[{j}]");
            let at = |key: &str| format!("{here}.{key}");
            check_identifier(&at("idnumber"), &job.idnumber, false)?;
            named_once(&mut seen, &job.idnumber, here.clone(), at("idnumber"))?;
            for (key, value) in [("fullname", &job.fullname), ("shortname", &job.shortname)] {
                if let Some(value) = value {
                    check_text(&at(key), value)?;
                }
            }
            for (key, value, known) in [
                ("position", &job.position, positions),
                ("organisation", &job.organisation, organisations),
            ] {
                if let Some(value) = value
                    && !value.is_empty()
                    && !known.contains(value)
                {
                    return Err(refuse(
                        at(key),
                        format!("there is no {key} {value:?} (or the file removes it)"),
                    ));
                }
            }
            // As the stored job will be once the items the file removes are gone.
            let had = stored
                .and_then(|s| s.get(&job.idnumber))
                .map(|had| DirectoryJob {
                    position: had.position.clone().filter(|p| positions.contains(p)),
                    organisation: had
                        .organisation
                        .clone()
                        .filter(|o| organisations.contains(o)),
                    ..had.clone()
                });
            let base = had.clone().unwrap_or_default();
            let item = |given: &Option<String>, kept: Option<String>| match given {
                None => kept,
                Some(value) if value.is_empty() => None,
                Some(value) => Some(value.clone()),
            };
            let wanted = DirectoryJob {
                idnumber: job.idnumber.clone(),
                fullname: job.fullname.clone().unwrap_or(base.fullname),
                shortname: job.shortname.clone().unwrap_or(base.shortname),
                position: item(&job.position, base.position),
                organisation: item(&job.organisation, base.organisation),
                startdate: job.startdate.unwrap_or(base.startdate),
                enddate: job.enddate.unwrap_or(base.enddate),
                sortorder: i64::try_from(j).map_or(i64::MAX, |j| j + 1),
            };
            let username = user.username.clone();
            match had {
                None => changes.push(Change::CreateJob {
                    username,
                    job: wanted,
                }),
                Some(had) if had != wanted => changes.push(Change::UpdateJob {
                    username,
                    job: wanted,
                }),
                Some(_) => {}
            }
        }
        for idnumber in stored.into_iter().flat_map(|s| s.keys()) {
            if !seen.contains_key(idnumber.as_str()) {
                changes.push(Change::DeleteJob {
                    username: user.username.clone(),
                    idnumber: idnumber.clone(),
                });
            }
        }
    }
    Ok(())
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
                    self.jobs.remove(username);
                    for audience in self.audiences.values_mut() {
                        audience.members.remove(username);
                    }
                    for course in self.courses.values_mut() {
                        course.enrolled.remove(username);
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
                Change::CreateCourse {
                    shortname,
                    fullname,
                    summary,
                }
                | Change::UpdateCourse {
                    shortname,
                    fullname,
                    summary,
                } => {
                    let course =
                        self.courses
                            .entry(shortname.clone())
                            .or_insert_with(|| DirectoryCourse {
                                shortname: shortname.clone(),
                                ..DirectoryCourse::default()
                            });
                    course.fullname = fullname.clone();
                    course.summary = summary.clone();
                }
                Change::Enrol { course, username } => {
                    if let Some(course) = self.courses.get_mut(course) {
                        course.enrolled.insert(username.clone());
                    }
                }
                Change::Unenrol { course, username } => {
                    if let Some(course) = self.courses.get_mut(course) {
                        course.enrolled.remove(username);
                    }
                }
                Change::CreateFramework {
                    kind,
                    idnumber,
                    fullname,
                }
                | Change::UpdateFramework {
                    kind,
                    idnumber,
                    fullname,
                } => {
                    let framework = self
                        .frameworks_mut(*kind)
                        .entry(idnumber.clone())
                        .or_insert_with(|| DirectoryFramework {
                            idnumber: idnumber.clone(),
                            ..DirectoryFramework::default()
                        });
                    framework.fullname = fullname.clone();
                }
                Change::CreateItem {
                    kind,
                    framework,
                    item,
                } => {
                    if let Some(framework) = self.frameworks_mut(*kind).get_mut(framework) {
                        framework.items.insert(item.idnumber.clone(), item.clone());
                    }
                }
                Change::UpdateItem { kind, item } => {
                    for framework in self.frameworks_mut(*kind).values_mut() {
                        if let Some(stored) = framework.items.get_mut(&item.idnumber) {
                            *stored = item.clone();
                        }
                    }
                }
                Change::DeleteItem { kind, idnumber } => self.delete_item(*kind, idnumber),
                Change::CreateJob { username, job } | Change::UpdateJob { username, job } => {
                    if self.users.contains_key(username) {
                        self.jobs
                            .entry(username.clone())
                            .or_default()
                            .insert(job.idnumber.clone(), job.clone());
                    }
                }
                Change::DeleteJob { username, idnumber } => {
                    if let Some(jobs) = self.jobs.get_mut(username) {
                        jobs.remove(idnumber);
                        if jobs.is_empty() {
                            self.jobs.remove(username);
                        }
                    }
                }
            }
        }
    }
}

impl DirectorySnapshot {
    /// Deletes an item as the tables do: its descendants with it (ON DELETE CASCADE), and
    /// jobs naming any of them keep no position or organisation (ON DELETE SET NULL).
    fn delete_item(&mut self, kind: FrameworkKind, idnumber: &str) {
        let mut gone = BTreeSet::from([idnumber.to_owned()]);
        for framework in self.frameworks_mut(kind).values_mut() {
            if framework.items.remove(idnumber).is_none() {
                continue;
            }
            loop {
                let orphans: Vec<String> = framework
                    .items
                    .values()
                    .filter(|item| item.parent.as_ref().is_some_and(|p| gone.contains(p)))
                    .map(|item| item.idnumber.clone())
                    .collect();
                if orphans.is_empty() {
                    break;
                }
                for orphan in orphans {
                    framework.items.remove(&orphan);
                    gone.insert(orphan);
                }
            }
        }
        for job in self.jobs.values_mut().flat_map(|jobs| jobs.values_mut()) {
            let slot = match kind {
                FrameworkKind::Position => &mut job.position,
                FrameworkKind::Organisation => &mut job.organisation,
            };
            if slot.as_ref().is_some_and(|id| gone.contains(id)) {
                *slot = None;
            }
        }
    }
}

// ---- The store side -------------------------------------------------------------------------

pub(crate) type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// How much of the directory a snapshot reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parts {
    All,
    Users,
}

/// Whether a snapshot reads who set each value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provenance {
    Read,
    Skipped,
}

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
        self.read_snapshot(Provenance::Read, Parts::All).await
    }

    /// [`Store::directory_snapshot`] without who set each value (`provenance` left empty),
    /// which no planner reads: for planning an import or a sync, where it would be the
    /// largest part (a row per user and field).
    pub async fn planning_snapshot(&self) -> Result<DirectorySnapshot, StoreError> {
        self.read_snapshot(Provenance::Skipped, Parts::All).await
    }

    /// The part of [`Store::planning_snapshot`] a Connect users sync reads: users with their
    /// fields and the Connect links (audiences, courses, hierarchies and jobs left empty:
    /// their syncs read their own state).
    pub async fn users_snapshot(&self) -> Result<DirectorySnapshot, StoreError> {
        self.read_snapshot(Provenance::Skipped, Parts::Users).await
    }

    /// [`Store::users_snapshot`] with who set each value, which account migration's matching
    /// rule reads (an email or idnumber counts only when an IdP or an administrator set it).
    pub async fn users_snapshot_with_provenance(&self) -> Result<DirectorySnapshot, StoreError> {
        self.read_snapshot(Provenance::Read, Parts::Users).await
    }

    async fn read_snapshot(
        &self,
        provenance: Provenance,
        parts: Parts,
    ) -> Result<DirectorySnapshot, StoreError> {
        // One read transaction, so the parts agree with each other. Rows are taken as they
        // come (`fetch`), never all held at once beside what is built from them.
        let mut tx = self.pool.begin().await?;
        let mut snapshot = DirectorySnapshot::default();
        let mut by_id: BTreeMap<i64, String> = BTreeMap::new();
        let mut rows = sqlx::query(
            "SELECT id, username, email, firstname, lastname, idnumber, suspended, password_hash \
             FROM users ORDER BY id",
        )
        .fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            let row = &row;
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
        drop(rows);
        // One row per user, not per value (a row costs far more to hand over than its bytes).
        let fields: std::collections::HashMap<i64, Vec<(String, String)>> =
            crate::connect_server::per_user(
                &mut tx,
                self.backend(),
                crate::connect_server::FIELD_VALUES,
                crate::connect_server::UsersOf::All,
            )
            .await?;
        for (id, values) in fields {
            if let Some(name) = by_id.get(&id)
                && let Some(user) = snapshot.users.get_mut(name)
            {
                user.fields.extend(values);
            }
        }
        if provenance == Provenance::Read {
            let mut rows =
                sqlx::query("SELECT user_id, field, idp_id FROM field_provenance").fetch(&mut *tx);
            while let Some(row) = rows.try_next().await? {
                let id: i64 = row.try_get("user_id")?;
                if let Some(name) = by_id.get(&id)
                    && let Some(user) = snapshot.users.get_mut(name)
                {
                    user.provenance
                        .insert(row.try_get("field")?, row.try_get("idp_id")?);
                }
            }
        }
        if parts == Parts::Users {
            read_connect_links(&mut tx, &by_id, &mut snapshot).await?;
            tx.commit().await?;
            return Ok(snapshot);
        }
        let mut audience_by_id: BTreeMap<i64, String> = BTreeMap::new();
        let mut rows = sqlx::query(
            "SELECT id, idnumber, name, description, component FROM audiences ORDER BY id",
        )
        .fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            let audience = DirectoryAudience {
                idnumber: row.try_get("idnumber")?,
                name: row.try_get("name")?,
                description: row.try_get("description")?,
                members: BTreeSet::new(),
                component: row.try_get("component")?,
            };
            audience_by_id.insert(row.try_get("id")?, audience.idnumber.clone());
            snapshot
                .audiences
                .insert(audience.idnumber.clone(), audience);
        }
        drop(rows);
        let mut rows =
            sqlx::query("SELECT audience_id, user_id FROM audience_members").fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            let audience: i64 = row.try_get("audience_id")?;
            let user: i64 = row.try_get("user_id")?;
            if let (Some(idnumber), Some(username)) =
                (audience_by_id.get(&audience), by_id.get(&user))
                && let Some(audience) = snapshot.audiences.get_mut(idnumber)
            {
                audience.members.insert(username.clone());
            }
        }
        drop(rows);
        read_connect_links(&mut tx, &by_id, &mut snapshot).await?;
        read_courses(&mut tx, &by_id, &mut snapshot).await?;
        let items = read_hierarchies(&mut tx, &mut snapshot).await?;
        read_jobs(&mut tx, &by_id, &items, &mut snapshot).await?;
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
        crate::batch_writer::write_batch(&mut tx, batch, by, now).await?;
        tx.commit().await?;
        Ok(batch.summary())
    }
}

async fn read_connect_links(
    tx: &mut Tx<'_>,
    users: &BTreeMap<i64, String>,
    snapshot: &mut DirectorySnapshot,
) -> Result<(), StoreError> {
    let mut rows =
        sqlx::query("SELECT user_id, idp_id, server_idnumber, server_user_id FROM connect_users")
            .fetch(&mut **tx);
    while let Some(row) = rows.try_next().await? {
        let user: i64 = row.try_get("user_id")?;
        if let Some(username) = users.get(&user) {
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
    drop(rows);
    Ok(())
}

async fn read_courses(
    tx: &mut Tx<'_>,
    users: &BTreeMap<i64, String>,
    snapshot: &mut DirectorySnapshot,
) -> Result<(), StoreError> {
    let mut by_id: BTreeMap<i64, String> = BTreeMap::new();
    for row in sqlx::query("SELECT id, shortname, fullname, summary FROM courses")
        .fetch_all(&mut **tx)
        .await?
    {
        let course = DirectoryCourse {
            shortname: row.try_get("shortname")?,
            fullname: row.try_get("fullname")?,
            summary: row.try_get("summary")?,
            enrolled: BTreeSet::new(),
        };
        by_id.insert(row.try_get("id")?, course.shortname.clone());
        snapshot.courses.insert(course.shortname.clone(), course);
    }
    for row in sqlx::query("SELECT course_id, user_id FROM course_enrolments")
        .fetch_all(&mut **tx)
        .await?
    {
        let course: i64 = row.try_get("course_id")?;
        let user: i64 = row.try_get("user_id")?;
        if let (Some(shortname), Some(username)) = (by_id.get(&course), users.get(&user))
            && let Some(course) = snapshot.courses.get_mut(shortname)
        {
            course.enrolled.insert(username.clone());
        }
    }
    Ok(())
}

/// Reads the frameworks and their items; returns each item's idnumber by row id.
async fn read_hierarchies(
    tx: &mut Tx<'_>,
    snapshot: &mut DirectorySnapshot,
) -> Result<BTreeMap<i64, String>, StoreError> {
    let mut frameworks: BTreeMap<i64, (FrameworkKind, String)> = BTreeMap::new();
    for row in sqlx::query("SELECT id, kind, idnumber, fullname FROM hierarchy_frameworks")
        .fetch_all(&mut **tx)
        .await?
    {
        let kind = kind_of(&row.try_get::<String, _>("kind")?)?;
        let framework = DirectoryFramework {
            idnumber: row.try_get("idnumber")?,
            fullname: row.try_get("fullname")?,
            items: BTreeMap::new(),
        };
        frameworks.insert(row.try_get("id")?, (kind, framework.idnumber.clone()));
        snapshot
            .frameworks_mut(kind)
            .insert(framework.idnumber.clone(), framework);
    }
    let rows = sqlx::query(
        "SELECT id, framework_id, parent_id, idnumber, fullname, type_idnumber \
         FROM hierarchy_items",
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut items: BTreeMap<i64, String> = BTreeMap::new();
    for row in &rows {
        items.insert(row.try_get("id")?, row.try_get("idnumber")?);
    }
    for row in &rows {
        let framework: i64 = row.try_get("framework_id")?;
        let parent: Option<i64> = row.try_get("parent_id")?;
        let item = DirectoryItem {
            idnumber: row.try_get("idnumber")?,
            fullname: row.try_get("fullname")?,
            parent: parent.and_then(|id| items.get(&id).cloned()),
            type_idnumber: row.try_get("type_idnumber")?,
        };
        if let Some((kind, idnumber)) = frameworks.get(&framework)
            && let Some(framework) = snapshot.frameworks_mut(*kind).get_mut(idnumber)
        {
            framework.items.insert(item.idnumber.clone(), item);
        }
    }
    Ok(items)
}

async fn read_jobs(
    tx: &mut Tx<'_>,
    users: &BTreeMap<i64, String>,
    items: &BTreeMap<i64, String>,
    snapshot: &mut DirectorySnapshot,
) -> Result<(), StoreError> {
    let mut rows = sqlx::query(
        "SELECT user_id, idnumber, fullname, shortname, position_id, organisation_id, \
         startdate, enddate, sortorder FROM job_assignments",
    )
    .fetch(&mut **tx);
    while let Some(row) = rows.try_next().await? {
        let user: i64 = row.try_get("user_id")?;
        let item = |column: &str| -> Result<Option<String>, StoreError> {
            let id: Option<i64> = row.try_get(column)?;
            Ok(id.and_then(|id| items.get(&id).cloned()))
        };
        let job = DirectoryJob {
            idnumber: row.try_get("idnumber")?,
            fullname: row.try_get("fullname")?,
            shortname: row.try_get("shortname")?,
            position: item("position_id")?,
            organisation: item("organisation_id")?,
            startdate: row.try_get("startdate")?,
            enddate: row.try_get("enddate")?,
            sortorder: row.try_get("sortorder")?,
        };
        if let Some(username) = users.get(&user) {
            snapshot
                .jobs
                .entry(username.clone())
                .or_default()
                .insert(job.idnumber.clone(), job);
        }
    }
    Ok(())
}

fn kind_of(name: &str) -> Result<FrameworkKind, StoreError> {
    match name {
        "position" => Ok(FrameworkKind::Position),
        "organisation" => Ok(FrameworkKind::Organisation),
        other => Err(StoreError::Corrupt(format!(
            "hierarchy kind {other:?} is neither position nor organisation"
        ))),
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

pub(crate) async fn apply_change(
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
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO audiences (idnumber, name, description, component, created_at, \
                 updated_at) VALUES ($1, $2, $3, '', $4, $4) RETURNING id",
            )
            .bind(idnumber)
            .bind(name)
            .bind(description)
            .bind(now)
            .fetch_one(&mut **tx)
            .await?;
            // "Add new audiences": every active client that asked syncs it from now on.
            sqlx::query(
                "INSERT INTO connect_client_audiences (client_id, audience_id) \
                 SELECT id, $1 FROM connect_clients WHERE status = 0 AND addnewaudiences = 1",
            )
            .bind(id)
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
        Change::CreateCourse {
            shortname,
            fullname,
            summary,
        } => {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO courses (shortname, fullname, summary, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4) RETURNING id",
            )
            .bind(shortname)
            .bind(fullname)
            .bind(summary)
            .bind(now)
            .fetch_one(&mut **tx)
            .await?;
            // "Add new courses": every active client that asked syncs it from now on.
            sqlx::query(
                "INSERT INTO connect_client_courses (client_id, course_id) \
                 SELECT id, $1 FROM connect_clients WHERE status = 0 AND addnewcourses = 1",
            )
            .bind(id)
            .execute(&mut **tx)
            .await?;
        }
        Change::UpdateCourse {
            shortname,
            fullname,
            summary,
        } => {
            let done = sqlx::query(
                "UPDATE courses SET fullname = $1, summary = $2, updated_at = $3 \
                 WHERE shortname = $4",
            )
            .bind(fullname)
            .bind(summary)
            .bind(now)
            .bind(shortname)
            .execute(&mut **tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("course {shortname:?}")));
            }
        }
        Change::Enrol { course, username } => {
            let course = course_id(tx, course).await?;
            let user = user_id(tx, username).await?;
            sqlx::query(
                "INSERT INTO course_enrolments (course_id, user_id, enrolled_at) \
                 VALUES ($1, $2, $3) ON CONFLICT (course_id, user_id) DO NOTHING",
            )
            .bind(course)
            .bind(user)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        Change::Unenrol { course, username } => {
            let course = course_id(tx, course).await?;
            let user = user_id(tx, username).await?;
            sqlx::query("DELETE FROM course_enrolments WHERE course_id = $1 AND user_id = $2")
                .bind(course)
                .bind(user)
                .execute(&mut **tx)
                .await?;
        }
        Change::CreateFramework {
            kind,
            idnumber,
            fullname,
        } => {
            sqlx::query(
                "INSERT INTO hierarchy_frameworks (kind, idnumber, fullname, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $4)",
            )
            .bind(framework_kind_name(*kind))
            .bind(idnumber)
            .bind(fullname)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        Change::UpdateFramework {
            kind,
            idnumber,
            fullname,
        } => {
            let done = sqlx::query(
                "UPDATE hierarchy_frameworks SET fullname = $1, updated_at = $2 \
                 WHERE kind = $3 AND idnumber = $4",
            )
            .bind(fullname)
            .bind(now)
            .bind(framework_kind_name(*kind))
            .bind(idnumber)
            .execute(&mut **tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!(
                    "{} framework {idnumber:?}",
                    framework_kind_name(*kind)
                )));
            }
        }
        Change::CreateItem {
            kind,
            framework,
            item,
        } => {
            let framework: i64 = sqlx::query_scalar(
                "SELECT id FROM hierarchy_frameworks WHERE kind = $1 AND idnumber = $2",
            )
            .bind(framework_kind_name(*kind))
            .bind(framework)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(format!(
                    "{} framework {framework:?}",
                    framework_kind_name(*kind)
                ))
            })?;
            let parent = match &item.parent {
                Some(parent) => Some(item_id(tx, *kind, parent).await?),
                None => None,
            };
            sqlx::query(
                "INSERT INTO hierarchy_items (kind, framework_id, parent_id, idnumber, fullname, \
                 type_idnumber, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(framework_kind_name(*kind))
            .bind(framework)
            .bind(parent)
            .bind(&item.idnumber)
            .bind(&item.fullname)
            .bind(&item.type_idnumber)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        Change::UpdateItem { kind, item } => {
            let parent = match &item.parent {
                Some(parent) => Some(item_id(tx, *kind, parent).await?),
                None => None,
            };
            let done = sqlx::query(
                "UPDATE hierarchy_items SET fullname = $1, parent_id = $2, type_idnumber = $3, \
                 updated_at = $4 WHERE kind = $5 AND idnumber = $6",
            )
            .bind(&item.fullname)
            .bind(parent)
            .bind(&item.type_idnumber)
            .bind(now)
            .bind(framework_kind_name(*kind))
            .bind(&item.idnumber)
            .execute(&mut **tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!(
                    "{} {:?}",
                    framework_kind_name(*kind),
                    item.idnumber
                )));
            }
        }
        Change::DeleteItem { kind, idnumber } => {
            sqlx::query("DELETE FROM hierarchy_items WHERE kind = $1 AND idnumber = $2")
                .bind(framework_kind_name(*kind))
                .bind(idnumber)
                .execute(&mut **tx)
                .await?;
        }
        Change::CreateJob { username, job } => {
            let user = user_id(tx, username).await?;
            let (position, organisation) = job_items(tx, job).await?;
            sqlx::query(
                "INSERT INTO job_assignments (user_id, idnumber, fullname, shortname, \
                 position_id, organisation_id, startdate, enddate, sortorder, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
            )
            .bind(user)
            .bind(&job.idnumber)
            .bind(&job.fullname)
            .bind(&job.shortname)
            .bind(position)
            .bind(organisation)
            .bind(job.startdate)
            .bind(job.enddate)
            .bind(job.sortorder)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        Change::UpdateJob { username, job } => {
            let user = user_id(tx, username).await?;
            let (position, organisation) = job_items(tx, job).await?;
            let done = sqlx::query(
                "UPDATE job_assignments SET fullname = $1, shortname = $2, position_id = $3, \
                 organisation_id = $4, startdate = $5, enddate = $6, sortorder = $7, \
                 updated_at = $8 WHERE user_id = $9 AND idnumber = $10",
            )
            .bind(&job.fullname)
            .bind(&job.shortname)
            .bind(position)
            .bind(organisation)
            .bind(job.startdate)
            .bind(job.enddate)
            .bind(job.sortorder)
            .bind(now)
            .bind(user)
            .bind(&job.idnumber)
            .execute(&mut **tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!(
                    "job {:?} of {username:?}",
                    job.idnumber
                )));
            }
        }
        Change::DeleteJob { username, idnumber } => {
            let user = user_id(tx, username).await?;
            sqlx::query("DELETE FROM job_assignments WHERE user_id = $1 AND idnumber = $2")
                .bind(user)
                .bind(idnumber)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

async fn course_id(tx: &mut Tx<'_>, shortname: &str) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT id FROM courses WHERE shortname = $1")
        .bind(shortname)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("course {shortname:?}")))
}

async fn item_id(tx: &mut Tx<'_>, kind: FrameworkKind, idnumber: &str) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT id FROM hierarchy_items WHERE kind = $1 AND idnumber = $2")
        .bind(framework_kind_name(kind))
        .bind(idnumber)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("{} {idnumber:?}", framework_kind_name(kind))))
}

/// The row ids of a job's position and organisation.
async fn job_items(
    tx: &mut Tx<'_>,
    job: &DirectoryJob,
) -> Result<(Option<i64>, Option<i64>), StoreError> {
    let position = match &job.position {
        Some(idnumber) => Some(item_id(tx, FrameworkKind::Position, idnumber).await?),
        None => None,
    };
    let organisation = match &job.organisation {
        Some(idnumber) => Some(item_id(tx, FrameworkKind::Organisation, idnumber).await?),
        None => None,
    };
    Ok((position, organisation))
}
