//! The directory file (`gatehouse directory import FILE`, `gatehouse directory export`): the
//! JSON of INTERFACES.md "The directory file", read with every refusal named by index and key
//! (`users[3].email: …`), passwords hashed with the host's argon2, then planned by the
//! store's pure planner and applied in one transaction; and the export in the same format.
//! Not the planning itself (`gatehouse_store::plan`) and not Connect's sync (which builds its
//! batches from a server's replies).

use std::collections::{BTreeMap, BTreeSet};

use gatehouse_store::{
    BatchSummary, DirectoryFramework, DirectoryItem, DirectoryJob, DirectorySnapshot,
    FrameworkKind, ImportAudience, ImportCourse, ImportDocument, ImportFramework, ImportItem,
    ImportJob, ImportUser, PlanError, Store, StoreError, WrittenBy, plan,
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

fn refuse(path: impl Into<String>, message: impl Into<String>) -> PlanError {
    PlanError {
        path: path.into(),
        message: message.into(),
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
const JOB_KEYS: [&str; 7] = [
    "idnumber",
    "fullname",
    "shortname",
    "position",
    "organisation",
    "startdate",
    "enddate",
];
const COURSE_KEYS: [&str; 4] = ["shortname", "fullname", "summary", "enrolled"];
const FRAMEWORK_KEYS: [&str; 3] = ["idnumber", "fullname", "items"];
const ITEM_KEYS: [&str; 4] = ["idnumber", "fullname", "parent", "type"];
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
        jobs: match record.get("jobs") {
            None => None,
            Some(jobs) => {
                let jobs_path = format!("{path}.jobs");
                let jobs = list(jobs, &jobs_path)?;
                Some(
                    jobs.iter()
                        .enumerate()
                        .map(|(j, job)| read_job(job, &format!("{jobs_path}[{j}]")))
                        .collect::<Result<_, _>>()?,
                )
            }
        },
    };
    Ok((user, password))
}

/// A list of usernames (an audience's members, a course's enrolled users).
fn usernames(value: &Value, path: &str) -> Result<Vec<String>, PlanError> {
    list(value, path)?
        .iter()
        .enumerate()
        .map(|(m, member)| match member {
            Value::String(name) => Ok(name.clone()),
            _ => Err(refuse(format!("{path}[{m}]"), "must be a username")),
        })
        .collect()
}

/// A required key (a record's own key).
fn key(record: &Map<String, Value>, key: &str, path: &str) -> Result<String, PlanError> {
    text(record, key, path)?.ok_or_else(|| refuse(format!("{path}.{key}"), "is required"))
}

/// A string, or `null` read as `""` (an item's parent, a job's position: none).
fn text_or_null(
    record: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, PlanError> {
    match record.get(key) {
        Some(Value::Null) => Ok(Some(String::new())),
        _ => text(record, key, path),
    }
}

fn integer(record: &Map<String, Value>, key: &str, path: &str) -> Result<Option<i64>, PlanError> {
    match record.get(key) {
        None => Ok(None),
        Some(value) => value.as_i64().map(Some).ok_or_else(|| {
            refuse(
                format!("{path}.{key}"),
                "must be a whole number (a Unix time)",
            )
        }),
    }
}

fn read_audience(value: &Value, index: usize) -> Result<ImportAudience, PlanError> {
    let path = format!("audiences[{index}]");
    let record = object(value, &path)?;
    only_keys(record, &AUDIENCE_KEYS, &path)?;
    let members = match record.get("members") {
        None => None,
        Some(members) => Some(usernames(members, &format!("{path}.members"))?),
    };
    Ok(ImportAudience {
        idnumber: key(record, "idnumber", &path)?,
        name: text(record, "name", &path)?,
        description: text(record, "description", &path)?,
        members,
    })
}

fn read_course(value: &Value, index: usize) -> Result<ImportCourse, PlanError> {
    let path = format!("courses[{index}]");
    let record = object(value, &path)?;
    only_keys(record, &COURSE_KEYS, &path)?;
    let enrolled = match record.get("enrolled") {
        None => None,
        Some(enrolled) => Some(usernames(enrolled, &format!("{path}.enrolled"))?),
    };
    Ok(ImportCourse {
        shortname: key(record, "shortname", &path)?,
        fullname: text(record, "fullname", &path)?,
        summary: text(record, "summary", &path)?,
        enrolled,
    })
}

fn read_framework(value: &Value, path: &str) -> Result<ImportFramework, PlanError> {
    let record = object(value, path)?;
    only_keys(record, &FRAMEWORK_KEYS, path)?;
    let items = match record.get("items") {
        None => None,
        Some(items) => {
            let items_path = format!("{path}.items");
            let mut read = Vec::new();
            for (i, item) in list(items, &items_path)?.iter().enumerate() {
                let item_path = format!("{items_path}[{i}]");
                let item = object(item, &item_path)?;
                only_keys(item, &ITEM_KEYS, &item_path)?;
                read.push(ImportItem {
                    idnumber: key(item, "idnumber", &item_path)?,
                    fullname: text(item, "fullname", &item_path)?,
                    // Absent, null and "" are all the top of the tree.
                    parent: text_or_null(item, "parent", &item_path)?.filter(|p| !p.is_empty()),
                    type_idnumber: text(item, "type", &item_path)?,
                });
            }
            Some(read)
        }
    };
    Ok(ImportFramework {
        idnumber: key(record, "idnumber", path)?,
        fullname: text(record, "fullname", path)?,
        items,
    })
}

fn read_job(value: &Value, path: &str) -> Result<ImportJob, PlanError> {
    let record = object(value, path)?;
    only_keys(record, &JOB_KEYS, path)?;
    Ok(ImportJob {
        idnumber: key(record, "idnumber", path)?,
        fullname: text(record, "fullname", path)?,
        shortname: text(record, "shortname", path)?,
        position: text_or_null(record, "position", path)?,
        organisation: text_or_null(record, "organisation", path)?,
        startdate: integer(record, "startdate", path)?,
        enddate: integer(record, "enddate", path)?,
    })
}

/// Reads a directory file. Every key is optional.
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
    if let Some(courses) = root.get("courses") {
        for (index, value) in list(courses, "courses")?.iter().enumerate() {
            file.document.courses.push(read_course(value, index)?);
        }
    }
    for (section, frameworks) in [
        (
            "position_frameworks",
            &mut file.document.position_frameworks,
        ),
        (
            "organisation_frameworks",
            &mut file.document.organisation_frameworks,
        ),
    ] {
        if let Some(given) = root.get(section) {
            for (index, value) in list(given, section)?.iter().enumerate() {
                frameworks.push(read_framework(value, &format!("{section}[{index}]"))?);
            }
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
    let current = store.planning_snapshot().await?;
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

/// The directory in the import format: users (username order) with their fields, the
/// provenance of each value (never a password hash) and their job assignments (in their
/// order: the first is the primary one); audiences
/// with their members; courses with their enrolled users; position and organisation
/// frameworks with their items, parents first. Importing it again changes nothing.
pub fn export_json(snapshot: &DirectorySnapshot) -> Value {
    let users: Vec<Value> = snapshot
        .users
        .values()
        .map(|user| {
            let mut jobs: Vec<&DirectoryJob> = snapshot
                .jobs
                .get(&user.username)
                .into_iter()
                .flat_map(|jobs| jobs.values())
                .collect();
            jobs.sort_by_key(|job| (job.sortorder, &job.idnumber));
            let jobs: Vec<Value> = jobs
                .into_iter()
                .map(|job| {
                    json!({
                        "idnumber": job.idnumber,
                        "fullname": job.fullname,
                        "shortname": job.shortname,
                        "position": job.position.as_deref().unwrap_or(""),
                        "organisation": job.organisation.as_deref().unwrap_or(""),
                        "startdate": job.startdate,
                        "enddate": job.enddate,
                    })
                })
                .collect();
            json!({
                "username": user.username,
                "email": user.email,
                "firstname": user.firstname,
                "lastname": user.lastname,
                "idnumber": user.idnumber,
                "suspended": user.suspended,
                "fields": user.fields,
                "jobs": jobs,
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
    let courses: Vec<Value> = snapshot
        .courses
        .values()
        .map(|course| {
            json!({
                "shortname": course.shortname,
                "fullname": course.fullname,
                "summary": course.summary,
                "enrolled": course.enrolled,
            })
        })
        .collect();
    json!({
        "users": users,
        "audiences": audiences,
        "courses": courses,
        "position_frameworks": export_frameworks(snapshot, FrameworkKind::Position),
        "organisation_frameworks": export_frameworks(snapshot, FrameworkKind::Organisation),
    })
}

fn export_frameworks(snapshot: &DirectorySnapshot, kind: FrameworkKind) -> Vec<Value> {
    snapshot
        .frameworks(kind)
        .values()
        .map(|framework| {
            json!({
                "idnumber": framework.idnumber,
                "fullname": framework.fullname,
                "items": items_parents_first(framework),
            })
        })
        .collect()
}

/// A framework's items, each after its parent (breadth first from the top, by idnumber).
fn items_parents_first(framework: &DirectoryFramework) -> Vec<Value> {
    let mut children: BTreeMap<Option<&String>, Vec<&DirectoryItem>> = BTreeMap::new();
    for item in framework.items.values() {
        children.entry(item.parent.as_ref()).or_default().push(item);
    }
    let mut out = Vec::with_capacity(framework.items.len());
    let mut level: Vec<Option<&String>> = vec![None];
    while !level.is_empty() {
        let mut next = Vec::new();
        for parent in level {
            for item in children.remove(&parent).unwrap_or_default() {
                out.push(json!({
                    "idnumber": item.idnumber,
                    "fullname": item.fullname,
                    "parent": item.parent,
                    "type": item.type_idnumber,
                }));
                next.push(Some(&item.idnumber));
            }
        }
        level = next;
    }
    out
}

/// The one-line summary `gatehouse directory import` prints.
pub fn summary_line(summary: &BatchSummary) -> String {
    if *summary == BatchSummary::default() {
        return "nothing to change: the directory already says what the file says".to_owned();
    }
    let mut parts = vec![
        format!(
            "users: {} created, {} updated, {} deleted",
            summary.users_created, summary.users_updated, summary.users_deleted
        ),
        format!(
            "audiences: {} created, {} updated",
            summary.audiences_created, summary.audiences_updated
        ),
        format!(
            "members: {} added, {} removed",
            summary.members_added, summary.members_removed
        ),
    ];
    let more = [
        (
            summary.courses_created + summary.courses_updated,
            format!(
                "courses: {} created, {} updated",
                summary.courses_created, summary.courses_updated
            ),
        ),
        (
            summary.enrolments_added + summary.enrolments_removed,
            format!(
                "enrolments: {} added, {} removed",
                summary.enrolments_added, summary.enrolments_removed
            ),
        ),
        (
            summary.frameworks_created + summary.frameworks_updated,
            format!(
                "frameworks: {} created, {} updated",
                summary.frameworks_created, summary.frameworks_updated
            ),
        ),
        (
            summary.items_created + summary.items_updated + summary.items_deleted,
            format!(
                "items: {} created, {} updated, {} deleted",
                summary.items_created, summary.items_updated, summary.items_deleted
            ),
        ),
        (
            summary.jobs_created + summary.jobs_updated + summary.jobs_deleted,
            format!(
                "jobs: {} created, {} updated, {} deleted",
                summary.jobs_created, summary.jobs_updated, summary.jobs_deleted
            ),
        ),
    ];
    parts.extend(
        more.into_iter()
            .filter(|(count, _)| *count > 0)
            .map(|(_, part)| part),
    );
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> String {
        parse_file(text).expect_err("refused").to_string()
    }

    #[test]
    fn every_section_is_read() {
        let file = parse_file(
            r#"{"users": [{"username": "a", "jobs": [{"idnumber": "J1", "position": null, "organisation": "O1", "startdate": 5}]}],
                "courses": [{"shortname": "C1", "enrolled": ["a"]}],
                "position_frameworks": [{"idnumber": "PF", "items": [{"idnumber": "P1", "parent": null, "type": "T"}, {"idnumber": "P2", "parent": "P1"}]}],
                "organisation_frameworks": [{"idnumber": "OF"}]}"#,
        )
        .expect("read");
        let document = file.document;
        let job = &document.users[0].jobs.as_ref().expect("jobs")[0];
        assert_eq!(
            (
                job.position.as_deref(),
                job.organisation.as_deref(),
                job.startdate,
                job.enddate
            ),
            (Some(""), Some("O1"), Some(5), None)
        );
        assert_eq!(document.courses[0].enrolled, Some(vec!["a".to_owned()]));
        let items = document.position_frameworks[0]
            .items
            .as_ref()
            .expect("items");
        assert_eq!(items[0].parent, None);
        assert_eq!(items[1].parent.as_deref(), Some("P1"));
        assert_eq!(document.organisation_frameworks[0].items, None);
    }

    #[test]
    fn an_export_read_back_plans_nothing_and_lists_parents_first() {
        use gatehouse_store::{DirectoryCourse, DirectoryUser};
        let item = |id: &str, parent: Option<&str>| DirectoryItem {
            idnumber: id.to_owned(),
            fullname: format!("Item {id}"),
            parent: parent.map(str::to_owned),
            type_idnumber: String::new(),
        };
        let mut snapshot = DirectorySnapshot::default();
        snapshot.users.insert(
            "alice".to_owned(),
            DirectoryUser {
                username: "alice".to_owned(),
                ..DirectoryUser::default()
            },
        );
        snapshot.courses.insert(
            "C1".to_owned(),
            DirectoryCourse {
                shortname: "C1".to_owned(),
                enrolled: ["alice".to_owned()].into(),
                ..DirectoryCourse::default()
            },
        );
        // A deeper tree whose idnumbers sort against its shape.
        let items = [
            item("A", Some("B")),
            item("B", Some("C")),
            item("C", None),
            item("D", Some("C")),
        ];
        snapshot.position_frameworks.insert(
            "PF".to_owned(),
            DirectoryFramework {
                idnumber: "PF".to_owned(),
                fullname: "Positions".to_owned(),
                items: items.into_iter().map(|i| (i.idnumber.clone(), i)).collect(),
            },
        );
        snapshot.jobs.insert(
            "alice".to_owned(),
            [(
                "J1".to_owned(),
                DirectoryJob {
                    idnumber: "J1".to_owned(),
                    position: Some("A".to_owned()),
                    sortorder: 1,
                    ..DirectoryJob::default()
                },
            )]
            .into(),
        );
        let exported = export_json(&snapshot);
        let order: Vec<&str> = exported["position_frameworks"][0]["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|i| i["idnumber"].as_str())
            .collect();
        assert_eq!(order, ["C", "B", "D", "A"]);
        let file = parse_file(&exported.to_string()).expect("the export is a directory file");
        let batch = plan(&snapshot, &file.document, &BTreeSet::new()).expect("plans");
        assert!(batch.is_empty(), "{:?}", batch.changes);
    }

    #[test]
    fn shapes_of_the_new_sections_are_refused_by_index_and_key() {
        assert_eq!(
            refused(r#"{"courses": [{"shortname": "C1"}, {"fullname": "x"}]}"#),
            "courses[1].shortname: is required"
        );
        assert_eq!(
            refused(r#"{"courses": [{"shortname": "C1", "enrolled": [3]}]}"#),
            "courses[0].enrolled[0]: must be a username"
        );
        assert_eq!(
            refused(
                r#"{"position_frameworks": [{"idnumber": "PF", "items": [{"idnumber": "P", "parent": 1}]}]}"#
            ),
            "position_frameworks[0].items[0].parent: must be a string"
        );
        assert_eq!(
            refused(
                r#"{"organisation_frameworks": [{"idnumber": "OF", "items": [{"idnumber": "O", "colour": "red"}]}]}"#
            ),
            "organisation_frameworks[0].items[0].colour: unknown key; the keys are idnumber, fullname, parent, type"
        );
        assert_eq!(
            refused(
                r#"{"users": [{"username": "a", "jobs": [{"idnumber": "J", "startdate": "today"}]}]}"#
            ),
            "users[0].jobs[0].startdate: must be a whole number (a Unix time)"
        );
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
