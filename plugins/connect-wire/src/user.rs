//! The user object Connect servers send (`prepare_user_for_client`): every column of
//! Moodle's `user` table with database values as strings, the list form (`get_users`, no
//! `picture`) and the SSO form (`get_sso_user`, `get_user`: `picture` and `pictures`), and
//! API v2's `profile_fields` and `jobs`; read leniently as [`RemoteUser`] and written exactly
//! as [`SharedUser`]. Also the `tc_<server user id>_<server idnumber>` username rule. Not
//! the sync: what a client does with a user is the client plugin's and the directory's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::php::{self, PhpValue};
use crate::token::Token;
use crate::version::ApiVersion;

/// The columns of Moodle's `user` table in `lib/db/install.xml` order, as the server sends
/// them (`secret` is always removed; `picture` only in the list form).
pub const USER_COLUMNS: [&str; 53] = [
    "id",
    "auth",
    "confirmed",
    "policyagreed",
    "deleted",
    "suspended",
    "mnethostid",
    "username",
    "password",
    "idnumber",
    "firstname",
    "lastname",
    "email",
    "emailstop",
    "icq",
    "skype",
    "yahoo",
    "aim",
    "msn",
    "phone1",
    "phone2",
    "institution",
    "department",
    "address",
    "city",
    "country",
    "lang",
    "calendartype",
    "theme",
    "timezone",
    "firstaccess",
    "lastaccess",
    "lastlogin",
    "currentlogin",
    "lastip",
    "picture",
    "url",
    "description",
    "descriptionformat",
    "mailformat",
    "maildigest",
    "maildisplay",
    "autosubscribe",
    "trackforums",
    "timecreated",
    "timemodified",
    "trustbitmask",
    "imagealt",
    "lastnamephonetic",
    "firstnamephonetic",
    "middlename",
    "alternatename",
    "totarasync",
];

/// The columns of a job assignment as sent (the table's, minus the manager and appraiser
/// columns and `userid`).
pub const JOB_COLUMNS: [&str; 16] = [
    "id",
    "fullname",
    "shortname",
    "idnumber",
    "description",
    "startdate",
    "enddate",
    "timecreated",
    "timemodified",
    "usermodified",
    "positionid",
    "positionassignmentdate",
    "organisationid",
    "sortorder",
    "totarasync",
    "synctimemodified",
];

/// The username a client gives a server's user: `tc_<server user id>_<server idnumber>`.
pub fn connect_username(server_user_id: i64, server_idnumber: &Token) -> String {
    format!("tc_{server_user_id}_{}", server_idnumber.as_str())
}

/// The server user id and server idnumber of a `tc_…` username, if it is one.
pub fn parse_connect_username(username: &str) -> Option<(i64, Token)> {
    let rest = username.strip_prefix("tc_")?;
    let (id_text, idnumber) = rest.split_once('_')?;
    let id = php::parse_decimal(id_text)?;
    // The server writes ids without sign or leading zeros: "tc_007_…" is not one of ours.
    if id <= 0 || id.to_string() != id_text {
        return None;
    }
    Some((id, Token::parse(idnumber).ok()?))
}

/// Why a user object (or an item in it) could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UserError {
    #[error("the user is not a JSON object")]
    NotAnObject,
    #[error("the user has no {0}")]
    MissingField(&'static str),
    #[error("the user's {field} is not {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
}

/// A custom profile field value (`user_info_data` joined to `user_info_field`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileFieldValue {
    pub shortname: String,
    pub datatype: String,
    pub data: String,
}

/// A job assignment as a v2 server sends it. The columns part 2 maps are typed; every
/// column is also kept as text in `columns`. With serde (a client's task output hands jobs
/// to the host as they are), only the typed columns travel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteJob {
    pub id: i64,
    pub fullname: Option<String>,
    pub shortname: Option<String>,
    pub idnumber: Option<String>,
    pub description: Option<String>,
    pub startdate: Option<i64>,
    pub enddate: Option<i64>,
    pub positionid: Option<i64>,
    pub organisationid: Option<i64>,
    pub sortorder: Option<i64>,
    #[serde(skip)]
    pub columns: BTreeMap<String, Option<String>>,
}

/// A user as a Connect server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUser {
    /// The server's user id (sent as a string).
    pub id: i64,
    pub username: String,
    /// `deleted != 0`.
    pub deleted: bool,
    /// `suspended != 0` (absent reads as not suspended).
    pub suspended: bool,
    /// The password hash, when the server syncs passwords; `None` otherwise.
    pub password: Option<String>,
    /// Every scalar column as text (`null` as `None`), as the original compares columns as
    /// strings when it updates a local user (§4.3).
    pub columns: BTreeMap<String, Option<String>>,
    /// SSO form: file name → base64 content; empty in the list form or when the server sent
    /// `[]`.
    pub pictures: BTreeMap<String, String>,
    /// API v2 with the client's `syncprofilefields` on: the values, ordered by shortname.
    /// `None` when absent (v1, deleted users) or `null` (sync off on the server).
    pub profile_fields: Option<Vec<ProfileFieldValue>>,
    /// API v2 with `syncjobs` on; `None` as for `profile_fields`.
    pub jobs: Option<Vec<RemoteJob>>,
}

impl RemoteUser {
    /// A text column (`None` when absent or `null`).
    pub fn column(&self, name: &str) -> Option<&str> {
        self.columns.get(name).and_then(|v| v.as_deref())
    }

    /// Reads a user object, accepting ids, flags and times as strings or numbers and `[]`
    /// for an empty `pictures`. `id` and `username` are required; `deleted` too, since every
    /// server sends it and a user of unknown standing must not be synced.
    pub fn from_value(value: &Value) -> Result<RemoteUser, UserError> {
        let Value::Object(object) = value else {
            return Err(UserError::NotAnObject);
        };
        let id = required(object, "id", "an integer", php::as_int)?;
        let username = required(object, "username", "a string", php::as_string)?;
        let deleted = required(object, "deleted", "a flag", php::as_flag)?;
        let suspended = optional(object, "suspended", "a flag", php::as_flag)?.unwrap_or(false);
        let password = optional(object, "password", "a string", php::as_string)?;

        let mut columns = BTreeMap::new();
        for (key, item) in object {
            match item {
                Value::Null => {
                    columns.insert(key.clone(), None);
                }
                Value::Array(_) | Value::Object(_) => {}
                scalar => {
                    let text = php::as_string(scalar).ok_or_else(|| UserError::WrongType {
                        field: key.clone(),
                        expected: "a string or an integer",
                    })?;
                    columns.insert(key.clone(), Some(text));
                }
            }
        }
        // The v2 additions and pictures are not columns.
        for extra in ["pictures", "profile_fields", "jobs"] {
            columns.remove(extra);
        }

        let pictures = match object.get("pictures") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(pictures) => php::as_map(pictures)
                .ok_or_else(|| wrong("pictures", "a map of file names to base64"))?
                .into_iter()
                .map(|(name, content)| {
                    php::as_string(content)
                        .map(|content| (name.to_owned(), content))
                        .ok_or_else(|| wrong(&format!("pictures.{name}"), "a string"))
                })
                .collect::<Result<_, _>>()?,
        };
        let profile_fields = list_of(
            object.get("profile_fields"),
            "profile_fields",
            read_profile_field,
        )?;
        let jobs = list_of(object.get("jobs"), "jobs", read_job)?;

        Ok(RemoteUser {
            id,
            username,
            deleted,
            suspended,
            password,
            columns,
            pictures,
            profile_fields,
            jobs,
        })
    }
}

fn wrong(field: &str, expected: &'static str) -> UserError {
    UserError::WrongType {
        field: field.to_owned(),
        expected,
    }
}

fn required<T>(
    object: &serde_json::Map<String, Value>,
    field: &'static str,
    expected: &'static str,
    read: impl Fn(&Value) -> Option<T>,
) -> Result<T, UserError> {
    match object.get(field) {
        None | Some(Value::Null) => Err(UserError::MissingField(field)),
        Some(value) => read(value).ok_or_else(|| wrong(field, expected)),
    }
}

fn optional<T>(
    object: &serde_json::Map<String, Value>,
    field: &'static str,
    expected: &'static str,
    read: impl Fn(&Value) -> Option<T>,
) -> Result<Option<T>, UserError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => read(value).map(Some).ok_or_else(|| wrong(field, expected)),
    }
}

fn list_of<T>(
    value: Option<&Value>,
    field: &str,
    read: impl Fn(&Value, &str) -> Result<T, UserError>,
) -> Result<Option<Vec<T>>, UserError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            let items = php::as_list(value).ok_or_else(|| wrong(field, "a list"))?;
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| read(item, &format!("{field}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        }
    }
}

fn text_at(
    object: &serde_json::Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<Option<String>, UserError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => php::as_string(v)
            .map(Some)
            .ok_or_else(|| wrong(&format!("{path}.{key}"), "a string")),
    }
}

fn int_at(
    object: &serde_json::Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<Option<i64>, UserError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => php::as_int(v)
            .map(Some)
            .ok_or_else(|| wrong(&format!("{path}.{key}"), "an integer")),
    }
}

fn read_profile_field(value: &Value, path: &str) -> Result<ProfileFieldValue, UserError> {
    let Value::Object(object) = value else {
        return Err(wrong(path, "an object"));
    };
    let need = |key: &str| -> Result<String, UserError> {
        text_at(object, path, key)?.ok_or_else(|| wrong(&format!("{path}.{key}"), "a string"))
    };
    Ok(ProfileFieldValue {
        shortname: need("shortname")?,
        datatype: need("datatype")?,
        // `user_info_data.data` is NOT NULL in Moodle; a null is read as empty.
        data: text_at(object, path, "data")?.unwrap_or_default(),
    })
}

fn read_job(value: &Value, path: &str) -> Result<RemoteJob, UserError> {
    let Value::Object(object) = value else {
        return Err(wrong(path, "an object"));
    };
    let mut columns = BTreeMap::new();
    for (key, item) in object {
        let text = match item {
            Value::Null => None,
            scalar => Some(
                php::as_string(scalar)
                    .ok_or_else(|| wrong(&format!("{path}.{key}"), "a string"))?,
            ),
        };
        columns.insert(key.clone(), text);
    }
    Ok(RemoteJob {
        id: int_at(object, path, "id")?
            .ok_or_else(|| wrong(&format!("{path}.id"), "an integer"))?,
        fullname: text_at(object, path, "fullname")?,
        shortname: text_at(object, path, "shortname")?,
        idnumber: text_at(object, path, "idnumber")?,
        description: text_at(object, path, "description")?,
        startdate: int_at(object, path, "startdate")?,
        enddate: int_at(object, path, "enddate")?,
        positionid: int_at(object, path, "positionid")?,
        organisationid: int_at(object, path, "organisationid")?,
        sortorder: int_at(object, path, "sortorder")?,
        columns,
    })
}

/// A job assignment as a Gatehouse server shares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedJob {
    pub id: i64,
    pub fullname: String,
    pub shortname: String,
    pub idnumber: String,
    pub description: String,
    pub startdate: i64,
    pub enddate: i64,
    pub positionid: Option<i64>,
    pub organisationid: Option<i64>,
    pub sortorder: i64,
    pub timecreated: i64,
    pub timemodified: i64,
}

/// A user as a Gatehouse server shares it; the columns Gatehouse does not keep are written
/// with the values a fresh Moodle account has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedUser {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub firstname: String,
    pub lastname: String,
    pub idnumber: String,
    /// The stored hash; sent only when the server syncs passwords.
    pub password_hash: Option<String>,
    pub deleted: bool,
    pub suspended: bool,
    pub timecreated: i64,
    pub timemodified: i64,
    /// Ordered by shortname by the caller, as the original's query orders them.
    pub profile_fields: Vec<ProfileFieldValue>,
    pub jobs: Vec<SharedJob>,
}

/// Which of the two forms, and what the client may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserWriteOptions {
    /// The SSO form (`get_sso_user`, `get_user`) with these pictures (file name → base64);
    /// `None` for the list form (`get_users`).
    pub sso_pictures: Option<Vec<(String, String)>>,
    pub api_version: ApiVersion,
    /// The server's `[connect_server] sync_passwords`.
    pub sync_passwords: bool,
    /// The client's `syncprofilefields`.
    pub sync_profile_fields: bool,
    /// The client's `syncjobs`.
    pub sync_jobs: bool,
}

fn flag(value: bool) -> PhpValue {
    PhpValue::str(if value { "1" } else { "0" })
}

fn int_text(value: i64) -> PhpValue {
    PhpValue::Str(value.to_string())
}

fn opt_int_text(value: Option<i64>) -> PhpValue {
    value.map_or(PhpValue::Null, int_text)
}

impl SharedUser {
    /// The user object as `prepare_user_for_client` leaves it, columns in table order, then
    /// `pictures` (SSO form), then `profile_fields` and `jobs` (v2, not for deleted users).
    pub fn to_php(&self, options: &UserWriteOptions) -> PhpValue {
        PhpValue::map(self.entries(options))
    }

    /// [`SharedUser::to_php`]'s JSON appended to `out`, without making its keys (a list of
    /// 100,000 users is written this way).
    pub fn write_json(&self, options: &UserWriteOptions, out: &mut String) {
        php::write_map(&self.entries(options), out);
    }

    fn entries(&self, options: &UserWriteOptions) -> Vec<(&'static str, PhpValue)> {
        let sso = options.sso_pictures.is_some();
        let password = match &self.password_hash {
            Some(hash) if options.sync_passwords && !self.deleted => PhpValue::str(hash.clone()),
            _ => PhpValue::Null,
        };
        let mut entries: Vec<(&'static str, PhpValue)> = Vec::with_capacity(USER_COLUMNS.len() + 3);
        for column in USER_COLUMNS {
            let value = match column {
                "id" => int_text(self.id),
                "auth" => PhpValue::str("manual"),
                "confirmed" => flag(true),
                "deleted" => flag(self.deleted),
                "suspended" => flag(self.suspended),
                "mnethostid" => int_text(1),
                "username" => PhpValue::str(self.username.clone()),
                "password" => password.clone(),
                "idnumber" => PhpValue::str(self.idnumber.clone()),
                "firstname" => PhpValue::str(self.firstname.clone()),
                "lastname" => PhpValue::str(self.lastname.clone()),
                "email" => PhpValue::str(self.email.clone()),
                "lang" => PhpValue::str("en"),
                "calendartype" => PhpValue::str("gregorian"),
                "timezone" => PhpValue::str("99"),
                "picture" if !sso => continue,
                "description" if self.deleted => PhpValue::Null,
                "descriptionformat" if self.deleted => PhpValue::Null,
                // FORMAT_HTML, a string constant in Moodle.
                "descriptionformat" => PhpValue::str("1"),
                "mailformat" | "autosubscribe" => int_text(1),
                "maildisplay" => int_text(2),
                "timecreated" => int_text(self.timecreated),
                "timemodified" => int_text(self.timemodified),
                "imagealt" | "lastnamephonetic" | "firstnamephonetic" | "middlename"
                | "alternatename" => PhpValue::Null,
                "policyagreed" | "emailstop" | "firstaccess" | "lastaccess" | "lastlogin"
                | "currentlogin" | "picture" | "maildigest" | "trackforums" | "trustbitmask"
                | "totarasync" => int_text(0),
                // icq, skype, …, url, description: empty text.
                _ => PhpValue::str(""),
            };
            entries.push((column, value));
        }
        if let Some(pictures) = &options.sso_pictures {
            let pictures = if self.deleted {
                Vec::new()
            } else {
                pictures
                    .iter()
                    .map(|(name, content)| (name.clone(), PhpValue::str(content.clone())))
                    .collect()
            };
            entries.push(("pictures", PhpValue::Map(pictures)));
        }
        if options.api_version.has_v2_data() && !self.deleted {
            let profile_fields = if options.sync_profile_fields {
                PhpValue::List(
                    self.profile_fields
                        .iter()
                        .map(|f| {
                            PhpValue::map([
                                ("shortname", PhpValue::str(f.shortname.clone())),
                                ("datatype", PhpValue::str(f.datatype.clone())),
                                ("data", PhpValue::str(f.data.clone())),
                            ])
                        })
                        .collect(),
                )
            } else {
                PhpValue::Null
            };
            entries.push(("profile_fields", profile_fields));
            let jobs = if options.sync_jobs {
                PhpValue::List(self.jobs.iter().map(SharedJob::to_php).collect())
            } else {
                PhpValue::Null
            };
            entries.push(("jobs", jobs));
        }
        entries
    }
}

impl SharedJob {
    /// The job assignment row minus the columns the original removes.
    pub fn to_php(&self) -> PhpValue {
        PhpValue::map([
            ("id", int_text(self.id)),
            ("fullname", PhpValue::str(self.fullname.clone())),
            ("shortname", PhpValue::str(self.shortname.clone())),
            ("idnumber", PhpValue::str(self.idnumber.clone())),
            ("description", PhpValue::str(self.description.clone())),
            ("startdate", int_text(self.startdate)),
            ("enddate", int_text(self.enddate)),
            ("timecreated", int_text(self.timecreated)),
            ("timemodified", int_text(self.timemodified)),
            ("usermodified", int_text(0)),
            ("positionid", opt_int_text(self.positionid)),
            ("positionassignmentdate", int_text(self.timecreated)),
            ("organisationid", opt_int_text(self.organisationid)),
            ("sortorder", int_text(self.sortorder)),
            ("totarasync", int_text(0)),
            ("synctimemodified", int_text(0)),
        ])
    }
}
