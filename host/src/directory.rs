//! The directory file (`gatehouse directory import FILE`, `gatehouse directory export`): the
//! JSON of INTERFACES.md "The directory file", read with every refusal named by index and key
//! (`users[3].email: …`), passwords hashed with the host's argon2, then planned by the
//! store's pure planner and applied in one transaction; and the export in the same format.
//! Not the planning itself (`gatehouse_store::plan`) and not Connect's sync (which builds its
//! batches from a server's replies).

use std::collections::{BTreeMap, BTreeSet};

use gatehouse_store::{
    BatchSummary, DirectorySnapshot, ImportAudience, ImportDocument, ImportUser, PlanError, Store,
    StoreError, WrittenBy, plan,
};
use serde_json::{Map, Value, json};

use crate::clock::Randomness;
use crate::passwords;

/// Why an import wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is not the directory format, or a record in it is refused.
    #[error("{0}")]
    File(#[from] PlanError),
    #[error("could not hash the password of users[{index}]: {message}")]
    Hash { index: usize, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A parsed directory file: the document the planner takes, and the passwords in clear
/// (by user index) still to be hashed.
#[derive(Debug, Clone, Default)]
pub struct DirectoryFile {
    pub document: ImportDocument,
    passwords: BTreeMap<usize, String>,
}

/// Sections of the file format that part 2 of Totara Connect brings.
const LATER_SECTIONS: [(&str, &str); 3] = [
    ("courses", "courses"),
    ("position_frameworks", "position frameworks"),
    ("organisation_frameworks", "organisation frameworks"),
];

fn refuse(path: impl Into<String>, message: impl Into<String>) -> PlanError {
    PlanError {
        path: path.into(),
        message: message.into(),
    }
}

fn later(path: &str, what: &str) -> PlanError {
    refuse(
        path,
        format!(
            "importing {what} comes with Totara Connect part 2; remove the section to import the rest"
        ),
    )
}

/// A section that names something: present, not `null`, not an empty list.
fn names_something(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Array(items)) => !items.is_empty(),
        Some(_) => true,
    }
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, PlanError> {
    value
        .as_object()
        .ok_or_else(|| refuse(path, "must be an object"))
}

fn list<'a>(value: &'a Value, path: &str) -> Result<&'a [Value], PlanError> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| refuse(path, "must be a list"))
}

fn text(record: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, PlanError> {
    match record.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(refuse(format!("{path}.{key}"), "must be a string")),
    }
}

fn flag(record: &Map<String, Value>, key: &str, path: &str) -> Result<Option<bool>, PlanError> {
    match record.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(refuse(format!("{path}.{key}"), "must be true or false")),
    }
}

fn only_keys(record: &Map<String, Value>, known: &[&str], path: &str) -> Result<(), PlanError> {
    match record.keys().find(|k| !known.contains(&k.as_str())) {
        Some(key) => Err(refuse(
            format!("{path}.{key}"),
            format!("unknown key; the keys are {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

const USER_KEYS: [&str; 11] = [
    "username",
    "email",
    "firstname",
    "lastname",
    "idnumber",
    "password",
    "suspended",
    "deleted",
    "fields",
    "jobs",
    "provenance",
];
const AUDIENCE_KEYS: [&str; 4] = ["idnumber", "name", "description", "members"];
const TOP_KEYS: [&str; 5] = [
    "users",
    "audiences",
    "courses",
    "position_frameworks",
    "organisation_frameworks",
];

fn read_user(value: &Value, index: usize) -> Result<(ImportUser, Option<String>), PlanError> {
    let path = format!("users[{index}]");
    let record = object(value, &path)?;
    only_keys(record, &USER_KEYS, &path)?;
    if names_something(record.get("jobs")) {
        return Err(later(&format!("{path}.jobs"), "job assignments"));
    }
    let username = text(record, "username", &path)?
        .ok_or_else(|| refuse(format!("{path}.username"), "is required"))?;
    let mut fields = BTreeMap::new();
    if let Some(given) = record.get("fields") {
        let field_path = format!("{path}.fields");
        for (name, value) in object(given, &field_path)? {
            let value = match value {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                _ => {
                    return Err(refuse(
                        format!("{field_path}.{name}"),
                        "must be a string, or null to remove the value",
                    ));
                }
            };
            fields.insert(name.clone(), value);
        }
    }
    let password = text(record, "password", &path)?;
    if password.as_deref() == Some("") {
        return Err(refuse(format!("{path}.password"), "must not be empty"));
    }
    let user = ImportUser {
        username,
        email: text(record, "email", &path)?,
        firstname: text(record, "firstname", &path)?,
        lastname: text(record, "lastname", &path)?,
        idnumber: text(record, "idnumber", &path)?,
        password_hash: None,
        suspended: flag(record, "suspended", &path)?,
        deleted: flag(record, "deleted", &path)?.unwrap_or(false),
        fields,
    };
    Ok((user, password))
}

fn read_audience(value: &Value, index: usize) -> Result<ImportAudience, PlanError> {
    let path = format!("audiences[{index}]");
    let record = object(value, &path)?;
    only_keys(record, &AUDIENCE_KEYS, &path)?;
    let members = match record.get("members") {
        None => None,
        Some(members) => {
            let members_path = format!("{path}.members");
            let mut names = Vec::new();
            for (m, member) in list(members, &members_path)?.iter().enumerate() {
                match member {
                    Value::String(name) => names.push(name.clone()),
                    _ => {
                        return Err(refuse(format!("{members_path}[{m}]"), "must be a username"));
                    }
                }
            }
            Some(names)
        }
    };
    Ok(ImportAudience {
        idnumber: text(record, "idnumber", &path)?
            .ok_or_else(|| refuse(format!("{path}.idnumber"), "is required"))?,
        name: text(record, "name", &path)?,
        description: text(record, "description", &path)?,
        members,
    })
}

/// Reads a directory file. Every key is optional; the sections part 2 brings are refused
/// when they name anything (an empty list names nothing).
pub fn parse_file(contents: &str) -> Result<DirectoryFile, PlanError> {
    let root: Value = serde_json::from_str(contents)
        .map_err(|e| refuse("the file", format!("is not JSON: {e}")))?;
    let root = object(&root, "the file")?;
    if let Some(key) = root.keys().find(|k| !TOP_KEYS.contains(&k.as_str())) {
        return Err(refuse(
            key.clone(),
            format!("unknown section; the sections are {}", TOP_KEYS.join(", ")),
        ));
    }
    for (key, what) in LATER_SECTIONS {
        if names_something(root.get(key)) {
            return Err(later(key, what));
        }
    }
    let mut file = DirectoryFile::default();
    if let Some(users) = root.get("users") {
        for (index, value) in list(users, "users")?.iter().enumerate() {
            let (user, password) = read_user(value, index)?;
            if let Some(password) = password {
                file.passwords.insert(index, password);
            }
            file.document.users.push(user);
        }
    }
    if let Some(audiences) = root.get("audiences") {
        for (index, value) in list(audiences, "audiences")?.iter().enumerate() {
            file.document.audiences.push(read_audience(value, index)?);
        }
    }
    Ok(file)
}

/// Imports a parsed file: hashes each password the stored hash does not already verify
/// (so a second import of the same file changes nothing), refuses to delete an
/// administrator, plans against the directory as it is and applies the batch in one
/// transaction. `known_fields` are the `[[field]]` names of the configuration.
pub async fn import(
    store: &Store,
    mut file: DirectoryFile,
    known_fields: &BTreeSet<String>,
    random: &Randomness,
    now: i64,
) -> Result<BatchSummary, ImportError> {
    let current = store.directory_snapshot().await?;
    for (index, user) in file.document.users.iter_mut().enumerate() {
        if user.deleted
            && let Some(stored) = store.user_by_username(&user.username).await?
            && stored.is_admin
        {
            return Err(refuse(
                format!("users[{index}].deleted"),
                format!(
                    "{:?} is an administrator; the directory does not delete administrators",
                    user.username
                ),
            )
            .into());
        }
        let Some(password) = file.passwords.get(&index) else {
            continue;
        };
        let stored_hash = current
            .users
            .get(&user.username)
            .and_then(|u| u.password_hash.as_deref());
        if stored_hash.is_some_and(|hash| passwords::verify(password, hash)) {
            continue;
        }
        user.password_hash =
            Some(
                passwords::hash(password, random).map_err(|e| ImportError::Hash {
                    index,
                    message: e.to_string(),
                })?,
            );
    }
    let batch = plan(&current, &file.document, known_fields)?;
    if batch.is_empty() {
        return Ok(BatchSummary::default());
    }
    Ok(store
        .apply_batch(&batch, WrittenBy::ADMIN_IMPORT, now)
        .await?)
}

/// The directory in the import format: users (username order) with their fields and the
/// provenance of each value (never a password hash), audiences with their members.
/// Importing it again changes nothing.
pub fn export_json(snapshot: &DirectorySnapshot) -> Value {
    let users: Vec<Value> = snapshot
        .users
        .values()
        .map(|user| {
            json!({
                "username": user.username,
                "email": user.email,
                "firstname": user.firstname,
                "lastname": user.lastname,
                "idnumber": user.idnumber,
                "suspended": user.suspended,
                "fields": user.fields,
                "provenance": user.provenance,
            })
        })
        .collect();
    let audiences: Vec<Value> = snapshot
        .audiences
        .values()
        .map(|audience| {
            json!({
                "idnumber": audience.idnumber,
                "name": audience.name,
                "description": audience.description,
                "members": audience.members,
            })
        })
        .collect();
    json!({ "users": users, "audiences": audiences })
}

/// The one-line summary `gatehouse directory import` prints.
pub fn summary_line(summary: &BatchSummary) -> String {
    if *summary == BatchSummary::default() {
        return "nothing to change: the directory already says what the file says".to_owned();
    }
    format!(
        "users: {} created, {} updated, {} deleted; audiences: {} created, {} updated; members: {} added, {} removed",
        summary.users_created,
        summary.users_updated,
        summary.users_deleted,
        summary.audiences_created,
        summary.audiences_updated,
        summary.members_added,
        summary.members_removed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> String {
        parse_file(text).expect_err("refused").to_string()
    }

    #[test]
    fn later_sections_are_refused_by_name() {
        assert_eq!(
            refused(r#"{"courses": [{"shortname": "C1"}]}"#),
            "courses: importing courses comes with Totara Connect part 2; remove the section to import the rest"
        );
        assert_eq!(
            refused(r#"{"position_frameworks": [{}]}"#),
            "position_frameworks: importing position frameworks comes with Totara Connect part 2; remove the section to import the rest"
        );
        assert_eq!(
            refused(
                r#"{"users": [{"username": "a"}, {"username": "b", "jobs": [{"idnumber": "J1"}]}]}"#
            ),
            "users[1].jobs: importing job assignments comes with Totara Connect part 2; remove the section to import the rest"
        );
        assert!(parse_file(r#"{"courses": [], "users": [{"username": "a", "jobs": []}]}"#).is_ok());
    }

    #[test]
    fn shapes_are_refused_by_index_and_key() {
        assert_eq!(
            refused(r#"{"users": [{"username": "a"}, {"username": "b", "email": 5}]}"#),
            "users[1].email: must be a string"
        );
        assert_eq!(
            refused(r#"{"users": [{"email": "a@x"}]}"#),
            "users[0].username: is required"
        );
        assert_eq!(
            refused(r#"{"users": [{"username": "a", "shoe": 1}]}"#),
            "users[0].shoe: unknown key; the keys are username, email, firstname, lastname, idnumber, password, suspended, deleted, fields, jobs, provenance"
        );
        assert_eq!(
            refused(r#"{"audiences": [{"idnumber": "A", "members": ["a", 2]}]}"#),
            "audiences[0].members[1]: must be a username"
        );
        assert_eq!(
            refused(r#"{"users": [{"username": "a", "fields": {"dept": 3}}]}"#),
            "users[0].fields.dept: must be a string, or null to remove the value"
        );
        assert_eq!(
            refused(r#"{"groups": []}"#),
            "groups: unknown section; the sections are users, audiences, courses, position_frameworks, organisation_frameworks"
        );
        assert!(refused("[1]").starts_with("the file: must be an object"));
    }
}
