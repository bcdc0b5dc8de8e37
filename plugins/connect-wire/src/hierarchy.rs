//! The replies of `get_positions` and `get_organisations` (API v2; reference §3.1, §5.5):
//! `{"frameworks":[<framework row>…], "positions"|"organisations":[<item row> +
//! "typeidnumber" + "custom_fields":[…]…]}`, or both `null` when the server does not share
//! them. Written as the original writes the rows (database values as strings, parents
//! first as the server orders them) and read leniently (ids and flags as strings or
//! numbers). The typed rows also derive serde, so the client plugin can hand them to the
//! host in a task's output as they are. Not the sync: mapping ids and applying the tree is
//! the host's (`connect_sync::hierarchy`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::jsend::success_json;
use crate::php::{self, PhpValue};
use crate::sep::ServerService;
use crate::services::{ReplyError, field, success_data};

/// Positions or organisations: which service, which reply key, which id-map kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HierarchyKind {
    Position,
    Organisation,
}

impl HierarchyKind {
    pub const ALL: [HierarchyKind; 2] = [HierarchyKind::Position, HierarchyKind::Organisation];

    /// The server service that sends this hierarchy.
    pub fn service(self) -> ServerService {
        match self {
            HierarchyKind::Position => ServerService::GetPositions,
            HierarchyKind::Organisation => ServerService::GetOrganisations,
        }
    }

    /// The reply's key for the items: `positions` or `organisations`.
    pub fn items_key(self) -> &'static str {
        match self {
            HierarchyKind::Position => "positions",
            HierarchyKind::Organisation => "organisations",
        }
    }

    /// The original's `auth_connect_ids.tablename` of a framework: `pos_framework` /
    /// `org_framework`.
    pub fn framework_id_kind(self) -> &'static str {
        match self {
            HierarchyKind::Position => "pos_framework",
            HierarchyKind::Organisation => "org_framework",
        }
    }

    /// The original's `auth_connect_ids.tablename` of an item: `pos` / `org`.
    pub fn item_id_kind(self) -> &'static str {
        match self {
            HierarchyKind::Position => "pos",
            HierarchyKind::Organisation => "org",
        }
    }

    /// The directory's word for it (`hierarchy_frameworks.kind`): `position` /
    /// `organisation`.
    pub fn as_str(self) -> &'static str {
        match self {
            HierarchyKind::Position => "position",
            HierarchyKind::Organisation => "organisation",
        }
    }
}

/// A framework row (`pos_framework` / `org_framework`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HierarchyFramework {
    pub id: i64,
    pub fullname: String,
    pub shortname: String,
    pub idnumber: String,
    pub description: String,
    /// Local on the client (new frameworks are appended); sent as the server has it.
    pub sortorder: i64,
    pub visible: bool,
    pub hidecustomfields: bool,
    #[serde(default)]
    pub timecreated: i64,
    #[serde(default)]
    pub timemodified: i64,
}

/// A custom field value of an item (`*_type_info_data` joined to its field, and the
/// optional `*_type_info_data_param` as `value`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HierarchyCustomField {
    pub shortname: String,
    pub datatype: String,
    pub data: String,
    pub value: Option<String>,
}

/// An item row (`pos` / `org`) with the server's additions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HierarchyItem {
    pub id: i64,
    pub frameworkid: i64,
    /// 0 for a top-level item.
    pub parentid: i64,
    pub fullname: String,
    pub shortname: String,
    pub idnumber: String,
    pub description: String,
    /// `/1/5/9`: the ids from the top down to this item.
    #[serde(default)]
    pub path: String,
    pub depthlevel: i64,
    pub sortthread: String,
    pub visible: bool,
    /// The server's type id (0: none); meaningless on the client, which goes by
    /// `typeidnumber`.
    pub typeid: i64,
    /// The type's idnumber; `None` (or empty) when the item has no type.
    pub typeidnumber: Option<String>,
    #[serde(default)]
    pub custom_fields: Vec<HierarchyCustomField>,
    /// Positions only.
    #[serde(default)]
    pub timevalidfrom: Option<i64>,
    /// Positions only.
    #[serde(default)]
    pub timevalidto: Option<i64>,
    #[serde(default)]
    pub timecreated: i64,
    #[serde(default)]
    pub timemodified: i64,
}

/// What `get_positions` / `get_organisations` sent. Both `None`: the server does not share
/// this hierarchy (the feature is off), and the client does nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HierarchyReply {
    pub frameworks: Option<Vec<HierarchyFramework>>,
    pub items: Option<Vec<HierarchyItem>>,
}

fn int_text(value: i64) -> PhpValue {
    PhpValue::Str(value.to_string())
}

fn flag(value: bool) -> PhpValue {
    PhpValue::str(if value { "1" } else { "0" })
}

fn opt_int_text(value: Option<i64>) -> PhpValue {
    value.map_or(PhpValue::Null, int_text)
}

impl HierarchyFramework {
    /// The framework row in the table's column order.
    pub fn to_php(&self) -> PhpValue {
        PhpValue::map([
            ("id", int_text(self.id)),
            ("fullname", PhpValue::str(self.fullname.clone())),
            ("shortname", PhpValue::str(self.shortname.clone())),
            ("idnumber", PhpValue::str(self.idnumber.clone())),
            ("description", PhpValue::str(self.description.clone())),
            ("sortorder", int_text(self.sortorder)),
            ("timecreated", int_text(self.timecreated)),
            ("timemodified", int_text(self.timemodified)),
            ("usermodified", int_text(0)),
            ("visible", flag(self.visible)),
            ("hidecustomfields", flag(self.hidecustomfields)),
        ])
    }
}

impl HierarchyItem {
    /// The item row in the table's column order, then `typeidnumber` and `custom_fields`
    /// as `get_positions` adds them; `timevalidfrom`/`timevalidto` only for positions.
    pub fn to_php(&self, kind: HierarchyKind) -> PhpValue {
        let mut entries: Vec<(&str, PhpValue)> = vec![
            ("id", int_text(self.id)),
            ("fullname", PhpValue::str(self.fullname.clone())),
            ("shortname", PhpValue::str(self.shortname.clone())),
            ("description", PhpValue::str(self.description.clone())),
            ("idnumber", PhpValue::str(self.idnumber.clone())),
            ("frameworkid", int_text(self.frameworkid)),
            ("path", PhpValue::str(self.path.clone())),
            ("parentid", int_text(self.parentid)),
            ("sortthread", PhpValue::str(self.sortthread.clone())),
            ("depthlevel", int_text(self.depthlevel)),
            ("visible", flag(self.visible)),
            ("timecreated", int_text(self.timecreated)),
            ("timemodified", int_text(self.timemodified)),
            ("usermodified", int_text(0)),
            ("typeid", int_text(self.typeid)),
            ("totarasync", int_text(0)),
        ];
        if kind == HierarchyKind::Position {
            entries.push(("timevalidfrom", opt_int_text(self.timevalidfrom)));
            entries.push(("timevalidto", opt_int_text(self.timevalidto)));
        }
        entries.push((
            "typeidnumber",
            self.typeidnumber
                .as_ref()
                .map_or(PhpValue::Null, |t| PhpValue::str(t.clone())),
        ));
        entries.push((
            "custom_fields",
            PhpValue::List(
                self.custom_fields
                    .iter()
                    .map(|f| {
                        PhpValue::map([
                            ("shortname", PhpValue::str(f.shortname.clone())),
                            ("datatype", PhpValue::str(f.datatype.clone())),
                            ("data", PhpValue::str(f.data.clone())),
                            (
                                "value",
                                f.value
                                    .as_ref()
                                    .map_or(PhpValue::Null, |v| PhpValue::str(v.clone())),
                            ),
                        ])
                    })
                    .collect(),
            ),
        ));
        PhpValue::map(entries)
    }
}

/// `get_positions` / `get_organisations` as the server writes it: the frameworks and items
/// (items parents first: ordered by `depthlevel, parentid, sortthread`, the caller's
/// order), or `null` for both when the server does not share the hierarchy.
pub fn hierarchy_reply(
    kind: HierarchyKind,
    shared: Option<(&[HierarchyFramework], &[HierarchyItem])>,
) -> String {
    let (frameworks, items) = match shared {
        Some((frameworks, items)) => (
            PhpValue::List(frameworks.iter().map(HierarchyFramework::to_php).collect()),
            PhpValue::List(items.iter().map(|i| i.to_php(kind)).collect()),
        ),
        None => (PhpValue::Null, PhpValue::Null),
    };
    success_json(PhpValue::map([
        ("frameworks", frameworks),
        (kind.items_key(), items),
    ]))
}

/// Reads a row of the reply: a JSON object, each value read the PHP way.
struct Row<'a> {
    list: &'static str,
    index: usize,
    object: &'a serde_json::Map<String, Value>,
}

impl<'a> Row<'a> {
    fn new(list: &'static str, index: usize, value: &'a Value) -> Result<Self, ReplyError> {
        match value {
            Value::Object(object) => Ok(Row {
                list,
                index,
                object,
            }),
            _ => Err(ReplyError::Row {
                list,
                index,
                why: "not an object".to_owned(),
            }),
        }
    }

    fn wrong(&self, key: &str, expected: &str) -> ReplyError {
        ReplyError::Row {
            list: self.list,
            index: self.index,
            why: format!("{key} is not {expected}"),
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.object.get(key).filter(|v| !v.is_null())
    }

    fn int(&self, key: &str) -> Result<i64, ReplyError> {
        self.opt_int(key)?
            .ok_or_else(|| self.wrong(key, "an integer"))
    }

    fn opt_int(&self, key: &str) -> Result<Option<i64>, ReplyError> {
        self.get(key)
            .map(|v| php::as_int(v).ok_or_else(|| self.wrong(key, "an integer")))
            .transpose()
    }

    /// Text; absent or `null` reads as empty (nullable text columns).
    fn text(&self, key: &str) -> Result<String, ReplyError> {
        Ok(self.opt_text(key)?.unwrap_or_default())
    }

    fn opt_text(&self, key: &str) -> Result<Option<String>, ReplyError> {
        self.get(key)
            .map(|v| php::as_string(v).ok_or_else(|| self.wrong(key, "a string")))
            .transpose()
    }

    /// A flag; absent reads as `default`.
    fn flag(&self, key: &str, default: bool) -> Result<bool, ReplyError> {
        self.get(key).map_or(Ok(default), |v| {
            php::as_flag(v).ok_or_else(|| self.wrong(key, "a flag"))
        })
    }
}

fn read_framework(value: &Value, index: usize) -> Result<HierarchyFramework, ReplyError> {
    let row = Row::new("frameworks", index, value)?;
    Ok(HierarchyFramework {
        id: row.int("id")?,
        fullname: row.text("fullname")?,
        shortname: row.text("shortname")?,
        idnumber: row.text("idnumber")?,
        description: row.text("description")?,
        sortorder: row.opt_int("sortorder")?.unwrap_or(0),
        visible: row.flag("visible", true)?,
        hidecustomfields: row.flag("hidecustomfields", false)?,
        timecreated: row.opt_int("timecreated")?.unwrap_or(0),
        timemodified: row.opt_int("timemodified")?.unwrap_or(0),
    })
}

fn read_item(
    kind: HierarchyKind,
    value: &Value,
    index: usize,
) -> Result<HierarchyItem, ReplyError> {
    let row = Row::new(kind.items_key(), index, value)?;
    let custom_fields = match row.get("custom_fields") {
        None => Vec::new(),
        Some(list) => php::as_list(list)
            .ok_or_else(|| row.wrong("custom_fields", "a list"))?
            .into_iter()
            .enumerate()
            .map(|(i, field)| {
                let Value::Object(object) = field else {
                    return Err(row.wrong(&format!("custom_fields[{i}]"), "an object"));
                };
                let text = |key: &str| -> Result<Option<String>, ReplyError> {
                    object
                        .get(key)
                        .filter(|v| !v.is_null())
                        .map(|v| {
                            php::as_string(v).ok_or_else(|| {
                                row.wrong(&format!("custom_fields[{i}].{key}"), "a string")
                            })
                        })
                        .transpose()
                };
                Ok(HierarchyCustomField {
                    shortname: text("shortname")?.ok_or_else(|| {
                        row.wrong(&format!("custom_fields[{i}].shortname"), "a string")
                    })?,
                    datatype: text("datatype")?.unwrap_or_default(),
                    data: text("data")?.unwrap_or_default(),
                    value: text("value")?,
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let (timevalidfrom, timevalidto) = match kind {
        HierarchyKind::Position => (row.opt_int("timevalidfrom")?, row.opt_int("timevalidto")?),
        HierarchyKind::Organisation => (None, None),
    };
    Ok(HierarchyItem {
        id: row.int("id")?,
        frameworkid: row.int("frameworkid")?,
        parentid: row.opt_int("parentid")?.unwrap_or(0),
        fullname: row.text("fullname")?,
        shortname: row.text("shortname")?,
        idnumber: row.text("idnumber")?,
        description: row.text("description")?,
        path: row.text("path")?,
        depthlevel: row.opt_int("depthlevel")?.unwrap_or(1),
        sortthread: row.text("sortthread")?,
        visible: row.flag("visible", true)?,
        typeid: row.opt_int("typeid")?.unwrap_or(0),
        typeidnumber: row.opt_text("typeidnumber")?,
        custom_fields,
        timevalidfrom,
        timevalidto,
        timecreated: row.opt_int("timecreated")?.unwrap_or(0),
        timemodified: row.opt_int("timemodified")?.unwrap_or(0),
    })
}

/// `get_positions` / `get_organisations` as the client reads it: `frameworks` and the
/// items (`positions` / `organisations`), each a list or `null`; a refusal (a v1 client's
/// "get_positions not available in api version 1") is [`ReplyError::Refused`].
pub fn read_hierarchy_reply(
    kind: HierarchyKind,
    reply: crate::JSend,
) -> Result<HierarchyReply, ReplyError> {
    let data = success_data(reply)?;
    let frameworks = match field(&data, "frameworks")? {
        Value::Null => None,
        list => Some(
            php::as_list(list)
                .ok_or(ReplyError::WrongType {
                    field: "frameworks",
                    expected: "a list",
                })?
                .into_iter()
                .enumerate()
                .map(|(index, row)| read_framework(row, index))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let items = match field(&data, kind.items_key())? {
        Value::Null => None,
        list => Some(
            php::as_list(list)
                .ok_or(ReplyError::WrongType {
                    field: kind.items_key(),
                    expected: "a list",
                })?
                .into_iter()
                .enumerate()
                .map(|(index, row)| read_item(kind, row, index))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok(HierarchyReply { frameworks, items })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JSend;

    fn parse(body: &str) -> JSend {
        JSend::parse(body.as_bytes()).expect("a JSend reply")
    }

    /// A reply in the shape the reference gives (§3.1, §5.5): ids as strings, `\/`, a
    /// custom field with a `null` value, positions with their validity times.
    const POSITIONS: &str = r#"{"status":"success","data":{"frameworks":[{"id":"3","fullname":"Roles","shortname":"roles","idnumber":"PF-1","description":"<p>a\/b<\/p>","sortorder":"1","timecreated":"1550000000","timemodified":"1550000001","usermodified":"2","visible":"1","hidecustomfields":"0"}],"positions":[{"id":"11","fullname":"Head","shortname":"head","description":"","idnumber":"P-1","frameworkid":"3","path":"\/11","parentid":"0","sortthread":"01","depthlevel":"1","visible":"1","timecreated":"1550000000","timemodified":"1550000000","usermodified":"2","typeid":"4","totarasync":"0","timevalidfrom":null,"timevalidto":"1900000000","typeidnumber":"T1","custom_fields":[{"shortname":"grade","datatype":"text","data":"7","value":null}]},{"id":"12","fullname":"Deputy","shortname":"","description":null,"idnumber":"P-2","frameworkid":"3","path":"\/11\/12","parentid":"11","sortthread":"01.01","depthlevel":"2","visible":"0","typeid":"0","typeidnumber":null,"custom_fields":[]}]}}"#;

    #[test]
    fn a_positions_reply_in_the_references_shape_is_read() {
        let reply = read_hierarchy_reply(HierarchyKind::Position, parse(POSITIONS)).expect("reads");
        let frameworks = reply.frameworks.expect("frameworks");
        assert_eq!(frameworks.len(), 1);
        assert_eq!(frameworks[0].id, 3);
        assert_eq!(frameworks[0].description, "<p>a/b</p>");
        assert!(frameworks[0].visible && !frameworks[0].hidecustomfields);
        let items = reply.items.expect("positions");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].typeidnumber.as_deref(), Some("T1"));
        assert_eq!(items[0].timevalidto, Some(1_900_000_000));
        assert_eq!(items[0].timevalidfrom, None);
        assert_eq!(items[0].custom_fields[0].value, None);
        assert_eq!((items[1].parentid, items[1].depthlevel), (11, 2));
        assert!(!items[1].visible);
        assert_eq!(items[1].description, "");
        assert_eq!(items[1].typeidnumber, None);
    }

    #[test]
    fn a_server_that_does_not_share_sends_null_and_the_client_does_nothing() {
        let body = r#"{"status":"success","data":{"frameworks":null,"organisations":null}}"#;
        let reply = read_hierarchy_reply(HierarchyKind::Organisation, parse(body)).expect("reads");
        assert_eq!(reply, HierarchyReply::default());
        assert_eq!(
            hierarchy_reply(HierarchyKind::Organisation, None),
            body,
            "the server writes the same"
        );
    }

    #[test]
    fn empty_lists_are_written_as_php_writes_them() {
        assert_eq!(
            hierarchy_reply(HierarchyKind::Position, Some((&[], &[]))),
            r#"{"status":"success","data":{"frameworks":[],"positions":[]}}"#
        );
    }

    #[test]
    fn what_the_server_writes_the_client_reads_back() {
        let original =
            read_hierarchy_reply(HierarchyKind::Position, parse(POSITIONS)).expect("reads");
        let frameworks = original.frameworks.clone().unwrap_or_default();
        let items = original.items.clone().unwrap_or_default();
        let written = hierarchy_reply(HierarchyKind::Position, Some((&frameworks, &items)));
        assert!(written.contains(r#""path":"\/11\/12""#), "{written}");
        let again = read_hierarchy_reply(HierarchyKind::Position, parse(&written)).expect("reads");
        assert_eq!(again, original);
        // Organisations have no validity times.
        let org = hierarchy_reply(HierarchyKind::Organisation, Some((&frameworks, &items)));
        assert!(!org.contains("timevalidfrom"), "{org}");
    }

    #[test]
    fn a_v1_refusal_and_malformed_replies_are_errors() {
        let refusal =
            parse(r#"{"status":"error","message":"get_positions not available in api version 1"}"#);
        assert!(matches!(
            read_hierarchy_reply(HierarchyKind::Position, refusal),
            Err(ReplyError::Refused(_))
        ));
        for body in [
            r#"{"status":"success","data":{"positions":[]}}"#,
            r#"{"status":"success","data":{"frameworks":[]}}"#,
            r#"{"status":"success","data":{"frameworks":"x","positions":[]}}"#,
            r#"{"status":"success","data":{"frameworks":[{"fullname":"no id"}],"positions":[]}}"#,
            r#"{"status":"success","data":{"frameworks":[],"positions":[{"id":"1"}]}}"#,
            r#"{"status":"success","data":{"frameworks":[],"positions":[{"id":"1","frameworkid":"x"}]}}"#,
            r#"{"status":"success","data":{"frameworks":[],"positions":[7]}}"#,
            r#"{"status":"success","data":{"frameworks":[],"positions":[{"id":"1","frameworkid":"2","custom_fields":[{"data":"x"}]}]}}"#,
        ] {
            assert!(
                read_hierarchy_reply(HierarchyKind::Position, parse(body)).is_err(),
                "{body}"
            );
        }
    }

    #[test]
    fn the_typed_rows_survive_a_task_output_as_they_are() {
        let reply = read_hierarchy_reply(HierarchyKind::Position, parse(POSITIONS)).expect("reads");
        let json = serde_json::to_value(&reply).expect("serialises");
        let back: HierarchyReply = serde_json::from_value(json).expect("deserialises");
        assert_eq!(back, reply);
    }
}
