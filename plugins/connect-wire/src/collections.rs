//! `get_user_collections` (reference §3.1, §5.4): the cohorts (audiences) and courses a
//! server shares with a client, each a full table row plus `"members":[{"id":"<uid>"}]`,
//! written as the original writes them ([`SharedCohort`], [`SharedCourse`],
//! [`user_collections_reply`]) and read leniently ([`read_user_collections_reply`] into
//! [`RemoteCollections`]). Not which collections a client sees, nor what a client does with
//! them: that is the server role's and the directory's.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use thiserror::Error;

use crate::jsend::{JSend, success_json};
use crate::php::{self, PhpValue};
use crate::services::{ReplyError, field, success_data};

/// The two kinds of collection, as the reply's keys and the local audience's idnumber
/// (`tc_<type>_<server id>_<server idnumber>`) name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CollectionType {
    Cohort,
    Course,
}

impl CollectionType {
    /// Both, in the order the reply lists them (and the original processes them).
    pub const ALL: [CollectionType; 2] = [CollectionType::Cohort, CollectionType::Course];

    /// `cohort` or `course`.
    pub fn as_str(self) -> &'static str {
        match self {
            CollectionType::Cohort => "cohort",
            CollectionType::Course => "course",
        }
    }

    /// The inverse of [`CollectionType::as_str`].
    pub fn parse(text: &str) -> Option<CollectionType> {
        CollectionType::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

impl std::fmt::Display for CollectionType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The columns of Totara 12's `cohort` table as the server sends them (`SELECT c.*`), in
/// table order, then `members`.
pub const COHORT_COLUMNS: [&str; 18] = [
    "id",
    "contextid",
    "name",
    "idnumber",
    "description",
    "descriptionformat",
    "visible",
    "component",
    "timecreated",
    "timemodified",
    "theme",
    "cohorttype",
    "activecollectionid",
    "draftcollectionid",
    "startdate",
    "enddate",
    "alertmembers",
    "calculationstatus",
];

/// The columns of Totara 12's `course` table as the server sends them (`SELECT c.*`), in
/// table order, then `members`.
pub const COURSE_COLUMNS: [&str; 37] = [
    "id",
    "category",
    "sortorder",
    "fullname",
    "shortname",
    "idnumber",
    "summary",
    "summaryformat",
    "format",
    "showgrades",
    "newsitems",
    "startdate",
    "enddate",
    "marker",
    "maxbytes",
    "legacyfiles",
    "showreports",
    "visible",
    "visibleold",
    "groupmode",
    "groupmodeforce",
    "defaultgroupingid",
    "lang",
    "calendartype",
    "theme",
    "timecreated",
    "timemodified",
    "requested",
    "enablecompletion",
    "completionnotify",
    "cacherev",
    "coursetype",
    "icon",
    "audiencevisible",
    "completionstartonenrol",
    "completionprogressonview",
    "duedate",
];

/// Moodle's `FORMAT_PLAIN`: Gatehouse keeps descriptions and summaries as plain text.
pub const FORMAT_PLAIN: i64 = 2;

/// The category a Gatehouse server writes for its courses: the original shares only
/// courses with `category > 0` (the site course has 0), so every shared course is in one.
pub const SHARED_COURSE_CATEGORY: i64 = 1;

/// An audience as a Gatehouse server shares it. `members` are server user ids; the caller
/// leaves out deleted users and, for a restricted client, users outside its audience, and
/// orders them by id as the original's query does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedCohort {
    pub id: i64,
    pub name: String,
    pub idnumber: String,
    pub description: String,
    pub timecreated: i64,
    pub timemodified: i64,
    pub members: Vec<i64>,
}

/// A course as a Gatehouse server shares it; `members` as for [`SharedCohort`] (enrolled,
/// not deleted users).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedCourse {
    pub id: i64,
    pub fullname: String,
    pub shortname: String,
    pub idnumber: String,
    pub summary: String,
    pub timecreated: i64,
    pub timemodified: i64,
    pub members: Vec<i64>,
}

fn int_text(value: i64) -> PhpValue {
    PhpValue::Str(value.to_string())
}

fn members_php(members: &[i64]) -> PhpValue {
    PhpValue::List(
        members
            .iter()
            .map(|id| PhpValue::map([("id", int_text(*id))]))
            .collect(),
    )
}

impl SharedCohort {
    /// The row as `SELECT c.* FROM {cohort}` gives it (database values as strings; the
    /// columns Gatehouse does not keep as a fresh system-context static audience has them),
    /// then `members`.
    pub fn to_php(&self) -> PhpValue {
        let mut entries: Vec<(String, PhpValue)> = Vec::with_capacity(COHORT_COLUMNS.len() + 1);
        for column in COHORT_COLUMNS {
            let value = match column {
                "id" => int_text(self.id),
                // The system context.
                "contextid" => int_text(1),
                "name" => PhpValue::str(self.name.clone()),
                "idnumber" => PhpValue::str(self.idnumber.clone()),
                "description" => PhpValue::str(self.description.clone()),
                "descriptionformat" => int_text(FORMAT_PLAIN),
                "visible" => int_text(1),
                "component" | "theme" => PhpValue::str(""),
                "timecreated" => int_text(self.timecreated),
                "timemodified" => int_text(self.timemodified),
                // Totara's static (set) audience.
                "cohorttype" => int_text(1),
                // activecollectionid, draftcollectionid, startdate, enddate, alertmembers,
                // calculationstatus.
                _ => int_text(0),
            };
            entries.push((column.to_owned(), value));
        }
        entries.push(("members".to_owned(), members_php(&self.members)));
        PhpValue::Map(entries)
    }
}

impl SharedCourse {
    /// The row as `SELECT c.* FROM {course}` gives it (database values as strings; the
    /// columns Gatehouse does not keep as a fresh course has them), then `members`.
    pub fn to_php(&self) -> PhpValue {
        let mut entries: Vec<(String, PhpValue)> = Vec::with_capacity(COURSE_COLUMNS.len() + 1);
        for column in COURSE_COLUMNS {
            let value = match column {
                "id" => int_text(self.id),
                "category" => int_text(SHARED_COURSE_CATEGORY),
                "fullname" => PhpValue::str(self.fullname.clone()),
                "shortname" => PhpValue::str(self.shortname.clone()),
                "idnumber" => PhpValue::str(self.idnumber.clone()),
                "summary" => PhpValue::str(self.summary.clone()),
                "summaryformat" => int_text(FORMAT_PLAIN),
                "format" => PhpValue::str("topics"),
                "showgrades" | "visible" | "visibleold" | "enablecompletion" => int_text(1),
                "newsitems" => int_text(5),
                "lang" | "calendartype" | "theme" | "icon" => PhpValue::str(""),
                "timecreated" => int_text(self.timecreated),
                "timemodified" => int_text(self.timemodified),
                // Totara's "enrolled users and members of the selected audiences".
                "audiencevisible" => int_text(2),
                "cacherev" => int_text(self.timemodified),
                // sortorder, startdate, enddate, marker, maxbytes, legacyfiles, showreports,
                // groupmode, groupmodeforce, defaultgroupingid, requested, completionnotify,
                // coursetype, completionstartonenrol, completionprogressonview, duedate.
                _ => int_text(0),
            };
            entries.push((column.to_owned(), value));
        }
        entries.push(("members".to_owned(), members_php(&self.members)));
        PhpValue::Map(entries)
    }
}

/// `get_user_collections`:
/// `{"status":"success","data":{"cohort":[…],"course":[…]}}`, each list ordered by id by
/// the caller (an empty one is `[]`).
pub fn user_collections_reply(cohorts: &[SharedCohort], courses: &[SharedCourse]) -> String {
    success_json(PhpValue::map([
        (
            "cohort",
            PhpValue::List(cohorts.iter().map(SharedCohort::to_php).collect()),
        ),
        (
            "course",
            PhpValue::List(courses.iter().map(SharedCourse::to_php).collect()),
        ),
    ]))
}

/// Why one collection of a reply could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CollectionError {
    #[error("it is not a JSON object")]
    NotAnObject,
    #[error("it has no {0}")]
    MissingField(&'static str),
    #[error("its {field} is not {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
    /// Two collections of one type with the same id: the original keys them by id, so a
    /// reply that repeats one is not one the original could send.
    #[error("its id {0} was already listed")]
    DuplicateId(i64),
}

/// A cohort or course as a Connect server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCollection {
    pub collection_type: CollectionType,
    /// The server's cohort or course id.
    pub id: i64,
    /// The cohort's `name` or the course's `fullname`.
    pub name: String,
    /// The row's `idnumber` (empty when absent or null).
    pub idnumber: String,
    /// The cohort's `description` or the course's `summary` (empty when absent or null).
    pub description: String,
    /// The cohort's `descriptionformat` or the course's `summaryformat`, when sent.
    pub description_format: Option<i64>,
    /// The course's `shortname`; `None` for a cohort.
    pub shortname: Option<String>,
    /// The server user ids of the members, in the order sent, each once.
    pub members: Vec<i64>,
    /// Every scalar column as text (`null` as `None`), `members` not included.
    pub columns: BTreeMap<String, Option<String>>,
}

/// Everything `get_user_collections` sent: the cohorts, then the courses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteCollections {
    pub cohorts: Vec<RemoteCollection>,
    pub courses: Vec<RemoteCollection>,
}

impl RemoteCollections {
    /// Both lists, cohorts first.
    pub fn iter(&self) -> impl Iterator<Item = &RemoteCollection> {
        self.cohorts.iter().chain(self.courses.iter())
    }

    /// How many collections of both types.
    pub fn len(&self) -> usize {
        self.cohorts.len() + self.courses.len()
    }

    /// No collection at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn wrong(field: &str, expected: &'static str) -> CollectionError {
    CollectionError::WrongType {
        field: field.to_owned(),
        expected,
    }
}

fn text(
    object: &serde_json::Map<String, Value>,
    key: &'static str,
) -> Result<Option<String>, CollectionError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => php::as_string(value)
            .map(Some)
            .ok_or_else(|| wrong(key, "a string")),
    }
}

fn int(
    object: &serde_json::Map<String, Value>,
    key: &'static str,
) -> Result<Option<i64>, CollectionError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => php::as_int(value)
            .map(Some)
            .ok_or_else(|| wrong(key, "an integer")),
    }
}

fn read_members(value: Option<&Value>) -> Result<Vec<i64>, CollectionError> {
    let value = value.ok_or(CollectionError::MissingField("members"))?;
    let items = php::as_list(value).ok_or_else(|| wrong("members", "a list"))?;
    let mut seen = BTreeSet::new();
    let mut members = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let path = format!("members[{index}].id");
        let id = match item {
            Value::Object(member) => member.get("id").and_then(php::as_int),
            _ => None,
        }
        .ok_or_else(|| wrong(&path, "an integer"))?;
        // The original's query is DISTINCT; a repeated member means nothing more.
        if seen.insert(id) {
            members.push(id);
        }
    }
    Ok(members)
}

impl RemoteCollection {
    /// Reads one cohort or course row, accepting ids and formats as strings or numbers and
    /// `null` for empty text. `id`, the name (`name` or `fullname`) and `members` are
    /// required.
    pub fn from_value(
        collection_type: CollectionType,
        value: &Value,
    ) -> Result<RemoteCollection, CollectionError> {
        let Value::Object(object) = value else {
            return Err(CollectionError::NotAnObject);
        };
        let (name_key, description_key, format_key) = match collection_type {
            CollectionType::Cohort => ("name", "description", "descriptionformat"),
            CollectionType::Course => ("fullname", "summary", "summaryformat"),
        };
        let id = int(object, "id")?.ok_or(CollectionError::MissingField("id"))?;
        let name = text(object, name_key)?.ok_or(CollectionError::MissingField(name_key))?;
        let shortname = match collection_type {
            CollectionType::Cohort => None,
            CollectionType::Course => Some(text(object, "shortname")?.unwrap_or_default()),
        };
        let members = read_members(object.get("members"))?;

        let mut columns = BTreeMap::new();
        for (key, item) in object {
            match item {
                Value::Null => {
                    columns.insert(key.clone(), None);
                }
                Value::Array(_) | Value::Object(_) => {}
                scalar => {
                    let text = php::as_string(scalar)
                        .ok_or_else(|| wrong(key, "a string or an integer"))?;
                    columns.insert(key.clone(), Some(text));
                }
            }
        }

        Ok(RemoteCollection {
            collection_type,
            id,
            name,
            idnumber: text(object, "idnumber")?.unwrap_or_default(),
            description: text(object, description_key)?.unwrap_or_default(),
            description_format: int(object, format_key)?,
            shortname,
            members,
            columns,
        })
    }
}

fn read_list(
    data: &Value,
    collection_type: CollectionType,
) -> Result<Vec<RemoteCollection>, ReplyError> {
    let key = collection_type.as_str();
    let items = php::as_list(field(data, key)?).ok_or(ReplyError::WrongType {
        field: key,
        expected: "a list",
    })?;
    let mut seen = BTreeSet::new();
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let collection = RemoteCollection::from_value(collection_type, item)
                .and_then(|c| {
                    if seen.insert(c.id) {
                        Ok(c)
                    } else {
                        Err(CollectionError::DuplicateId(c.id))
                    }
                })
                .map_err(|error| ReplyError::Collection {
                    collection_type: key,
                    index,
                    error,
                })?;
            Ok(collection)
        })
        .collect()
}

/// `get_user_collections`' cohorts and courses, in the order sent. Both keys are required
/// (the original always sends both, `[]` when empty); any row that cannot be read fails the
/// whole reply, so a client never applies part of one.
pub fn read_user_collections_reply(reply: JSend) -> Result<RemoteCollections, ReplyError> {
    let data = success_data(reply)?;
    Ok(RemoteCollections {
        cohorts: read_list(&data, CollectionType::Cohort)?,
        courses: read_list(&data, CollectionType::Course)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: &str) -> JSend {
        JSend::parse(body.as_bytes()).expect("a JSend reply")
    }

    #[test]
    fn a_reply_as_totara_writes_it_is_read() {
        let reply = parse(
            r#"{"status":"success","data":{"cohort":[{"id":"3","contextid":"1","name":"Sales \/ EU","idnumber":"AUD-1","description":"<p>x<\/p>","descriptionformat":"1","visible":"1","component":"","members":[{"id":"2"},{"id":"7"}]}],"course":[{"id":"12","category":"1","fullname":"Onboarding","shortname":"C1","idnumber":"","summary":null,"summaryformat":"1","members":[]}]}}"#,
        );
        let collections = read_user_collections_reply(reply).expect("read");
        assert_eq!(collections.cohorts.len(), 1);
        let cohort = &collections.cohorts[0];
        assert_eq!(cohort.collection_type, CollectionType::Cohort);
        assert_eq!(cohort.id, 3);
        assert_eq!(cohort.name, "Sales / EU");
        assert_eq!(cohort.description, "<p>x</p>");
        assert_eq!(cohort.description_format, Some(1));
        assert_eq!(cohort.members, vec![2, 7]);
        assert_eq!(cohort.shortname, None);
        let course = &collections.courses[0];
        assert_eq!(course.name, "Onboarding");
        assert_eq!(course.shortname.as_deref(), Some("C1"));
        assert_eq!(course.description, "");
        assert!(course.members.is_empty());
        assert_eq!(course.columns.get("summary"), Some(&None));
    }

    #[test]
    fn empty_lists_are_php_empty_arrays() {
        assert_eq!(
            user_collections_reply(&[], &[]),
            r#"{"status":"success","data":{"cohort":[],"course":[]}}"#
        );
        let read = read_user_collections_reply(parse(&user_collections_reply(&[], &[])));
        assert_eq!(read, Ok(RemoteCollections::default()));
    }

    #[test]
    fn written_rows_read_back() {
        let cohort = SharedCohort {
            id: 4,
            name: "Sales/EU".into(),
            idnumber: "AUD-1".into(),
            description: "é".into(),
            timecreated: 10,
            timemodified: 11,
            members: vec![2, 5],
        };
        let course = SharedCourse {
            id: 9,
            fullname: "Onboarding".into(),
            shortname: "C1".into(),
            idnumber: "".into(),
            summary: "s".into(),
            timecreated: 10,
            timemodified: 12,
            members: vec![5],
        };
        let body = user_collections_reply(std::slice::from_ref(&cohort), &[course]);
        assert!(body.contains(r#""name":"Sales\/EU""#));
        assert!(body.contains(r#""description":"\u00e9""#));
        assert!(body.contains(r#""members":[{"id":"2"},{"id":"5"}]"#));
        assert!(body.contains(r#""category":"1""#));
        let read = read_user_collections_reply(parse(&body)).expect("read");
        assert_eq!(read.cohorts[0].name, "Sales/EU");
        assert_eq!(read.cohorts[0].members, vec![2, 5]);
        assert_eq!(read.cohorts[0].description_format, Some(FORMAT_PLAIN));
        assert_eq!(read.courses[0].name, "Onboarding");
        assert_eq!(read.courses[0].members, vec![5]);
    }

    #[test]
    fn a_bad_row_fails_the_whole_reply() {
        for (body, expected) in [
            (
                json!({"cohort": [{"id": "1", "name": "A", "members": [{"id": "x"}]}], "course": []}),
                ReplyError::Collection {
                    collection_type: "cohort",
                    index: 0,
                    error: wrong("members[0].id", "an integer"),
                },
            ),
            (
                json!({"cohort": [], "course": [{"id": "1", "members": []}]}),
                ReplyError::Collection {
                    collection_type: "course",
                    index: 0,
                    error: CollectionError::MissingField("fullname"),
                },
            ),
            (
                json!({"cohort": [{"id": "1", "name": "A", "members": []}, {"id": 1, "name": "B", "members": []}], "course": []}),
                ReplyError::Collection {
                    collection_type: "cohort",
                    index: 1,
                    error: CollectionError::DuplicateId(1),
                },
            ),
            (
                json!({"cohort": [{"id": "1", "name": "A"}], "course": []}),
                ReplyError::Collection {
                    collection_type: "cohort",
                    index: 0,
                    error: CollectionError::MissingField("members"),
                },
            ),
            (json!({"cohort": []}), ReplyError::MissingField("course")),
            (
                json!({"cohort": "x", "course": []}),
                ReplyError::WrongType {
                    field: "cohort",
                    expected: "a list",
                },
            ),
        ] {
            let reply = JSend::Success { data: body.clone() };
            assert_eq!(read_user_collections_reply(reply), Err(expected), "{body}");
        }
    }

    #[test]
    fn a_refusal_is_kept() {
        let reply = JSend::error("connect client is not active");
        assert_eq!(
            read_user_collections_reply(reply.clone()),
            Err(ReplyError::Refused(reply))
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Any text but NUL, which the reading side removes (Totara's `clean_result`).
        fn text() -> impl Strategy<Value = String> {
            any::<String>().prop_map(|s| s.replace('\0', ""))
        }

        fn members() -> impl Strategy<Value = Vec<i64>> {
            prop::collection::btree_set(1i64..1_000_000, 0..8).prop_map(|m| m.into_iter().collect())
        }

        fn cohorts() -> impl Strategy<Value = Vec<SharedCohort>> {
            prop::collection::btree_map(1i64..10_000, (text(), text(), text(), members()), 0..5)
                .prop_map(|rows| {
                    rows.into_iter()
                        .map(
                            |(id, (name, idnumber, description, members))| SharedCohort {
                                id,
                                name,
                                idnumber,
                                description,
                                timecreated: 1,
                                timemodified: 2,
                                members,
                            },
                        )
                        .collect()
                })
        }

        fn courses() -> impl Strategy<Value = Vec<SharedCourse>> {
            prop::collection::btree_map(1i64..10_000, (text(), text(), text(), members()), 0..5)
                .prop_map(|rows| {
                    rows.into_iter()
                        .map(
                            |(id, (fullname, shortname, summary, members))| SharedCourse {
                                id,
                                fullname,
                                shortname,
                                idnumber: String::new(),
                                summary,
                                timecreated: 1,
                                timemodified: 2,
                                members,
                            },
                        )
                        .collect()
                })
        }

        proptest! {
            #[test]
            fn what_is_written_reads_back(cohorts in cohorts(), courses in courses()) {
                let body = user_collections_reply(&cohorts, &courses);
                let read = read_user_collections_reply(parse(&body)).expect("reads");
                prop_assert_eq!(read.cohorts.len(), cohorts.len());
                for (read, sent) in read.cohorts.iter().zip(&cohorts) {
                    prop_assert_eq!(read.id, sent.id);
                    prop_assert_eq!(&read.name, &sent.name);
                    prop_assert_eq!(&read.idnumber, &sent.idnumber);
                    prop_assert_eq!(&read.description, &sent.description);
                    prop_assert_eq!(&read.members, &sent.members);
                }
                prop_assert_eq!(read.courses.len(), courses.len());
                for (read, sent) in read.courses.iter().zip(&courses) {
                    prop_assert_eq!(read.id, sent.id);
                    prop_assert_eq!(&read.name, &sent.fullname);
                    prop_assert_eq!(read.shortname.as_ref(), Some(&sent.shortname));
                    prop_assert_eq!(&read.description, &sent.summary);
                    prop_assert_eq!(&read.members, &sent.members);
                }
            }

            #[test]
            fn no_body_panics_the_reader(body in any::<String>()) {
                if let Ok(reply) = JSend::parse(body.as_bytes()) {
                    let _ = read_user_collections_reply(reply);
                }
            }

            #[test]
            fn no_data_panics_the_reader(data in json_value()) {
                let _ = read_user_collections_reply(JSend::Success { data });
            }
        }

        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                "[a-z0-9]{0,4}".prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 32, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                    prop::collection::btree_map(
                        prop::sample::select(vec![
                            "cohort", "course", "id", "name", "fullname", "members", "x"
                        ]),
                        inner,
                        0..4
                    )
                    .prop_map(|m| Value::Object(
                        m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                    )),
                ]
            })
        }
    }

    #[test]
    fn repeated_members_count_once() {
        let data = json!({"cohort": [{"id": 1, "name": "A", "members": [{"id": 3}, {"id": "3"}]}], "course": []});
        let read = read_user_collections_reply(JSend::Success { data }).expect("read");
        assert_eq!(read.cohorts[0].members, vec![3]);
    }
}
