//! `get_users` read as a stream: the reply body deserialized straight into [`RemoteUser`]s
//! that keep only the columns the caller names (and jobs only their typed columns), so a server of 100,000 users never exists
//! as a JSON tree in memory (it would be several times the body's size). Each user still
//! goes through [`RemoteUser::from_value`] — one small object at a time — so the leniency
//! rules are the ones [`crate::services::read_users_reply`] applies. Not the reply's
//! meaning for errors: anything the fast path does not accept as a successful list is read
//! again the lenient way, which gives the same users or the same error as before.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::jsend::{JSend, strip_nul};
use crate::services::{ReplyError, read_users_reply};
use crate::user::RemoteUser;

/// The keys every reader of a listed user needs (the rest of the user is skipped).
const ALWAYS: [&str; 5] = ["id", "username", "deleted", "suspended", "password"];

/// Reads a `get_users` reply body, keeping of each user [`ALWAYS`]'s keys and `keep`
/// (columns, or `profile_fields` / `jobs`).
pub fn read_users_listing(body: &[u8], keep: &[&str]) -> Result<Vec<RemoteUser>, ReplyError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let fast = Envelope { keep }
        .deserialize(&mut deserializer)
        .and_then(|users| deserializer.end().map(|()| users));
    match fast {
        Ok(Some(users)) => Ok(users),
        // Not a plain successful list: the lenient reader says what it is.
        _ => {
            let reply = JSend::parse(body).unwrap_or_else(|error| error.to_jsend());
            read_users_reply(reply)
        }
    }
}

/// Drops the text copies a listing does not need, which would otherwise be most of what
/// 100,000 users hold: the typed fields' own columns (id, username, flags, password) and
/// every job's untyped columns.
fn slim(user: &mut RemoteUser, keep: &[&str]) {
    user.columns
        .retain(|column, _| keep.contains(&column.as_str()));
    for job in user.jobs.iter_mut().flatten() {
        job.columns = Default::default();
    }
}

fn kept(keep: &[&str], key: &str) -> bool {
    ALWAYS.contains(&key) || keep.contains(&key)
}

/// The JSend envelope: `Some(users)` for `{"status":"success","data":{"users":[…]}}`,
/// `None` for any other status.
struct Envelope<'k> {
    keep: &'k [&'k str],
}

impl<'de> DeserializeSeed<'de> for Envelope<'_> {
    type Value = Option<Vec<RemoteUser>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Envelope<'_> {
    type Value = Option<Vec<RemoteUser>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSend reply")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut success = None;
        let mut users = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "status" => success = Some(map.next_value::<Value>()? == "success"),
                "data" if users.is_none() => {
                    users = Some(map.next_value_seed(Data { keep: self.keep })?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match (success, users) {
            (Some(true), Some(users)) => Ok(Some(users)),
            _ => Ok(None),
        }
    }
}

/// `data`: `{"users": […]}`.
struct Data<'k> {
    keep: &'k [&'k str],
}

impl<'de> DeserializeSeed<'de> for Data<'_> {
    type Value = Vec<RemoteUser>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Data<'_> {
    type Value = Vec<RemoteUser>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("get_users data with a list of users")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut users = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "users" && users.is_none() {
                users = Some(map.next_value_seed(Users { keep: self.keep })?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        users.ok_or_else(|| de::Error::missing_field("users"))
    }
}

/// The list of users, each read as soon as its object ends.
struct Users<'k> {
    keep: &'k [&'k str],
}

impl<'de> DeserializeSeed<'de> for Users<'_> {
    type Value = Vec<RemoteUser>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Users<'_> {
    type Value = Vec<RemoteUser>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of users")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut users = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(mut object) = seq.next_element_seed(KeptKeys { keep: self.keep })? {
            strip_nul(&mut object);
            let mut user = RemoteUser::from_value(&object).map_err(de::Error::custom)?;
            slim(&mut user, self.keep);
            users.push(user);
        }
        Ok(users)
    }
}

/// One user object with only the kept keys (the others skipped without being built).
struct KeptKeys<'k> {
    keep: &'k [&'k str],
}

impl<'de> DeserializeSeed<'de> for KeptKeys<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for KeptKeys<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a user object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if kept(self.keep, &key) {
                let value = map.next_value::<Value>()?;
                object.insert(key, value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: [&str; 4] = ["email", "firstname", "profile_fields", "jobs"];

    fn body(users: &str) -> Vec<u8> {
        format!(r#"{{"status":"success","data":{{"users":[{users}]}}}}"#).into_bytes()
    }

    const ADA: &str = r#"{"id":"7","auth":"manual","deleted":"0","suspended":"1","username":"ada","email":"ada@example.com","firstname":"Ada\u0000","lastname":"L","city":"X","profile_fields":[{"shortname":"department","datatype":"text","data":"Sales"}],"jobs":null}"#;

    #[test]
    fn the_stream_keeps_only_the_named_keys_and_reads_users_as_the_lenient_reader_does() {
        let users = read_users_listing(&body(ADA), &KEEP).expect("users");
        assert_eq!(users.len(), 1);
        let ada = &users[0];
        assert_eq!((ada.id, ada.username.as_str()), (7, "ada"));
        assert!(ada.suspended && !ada.deleted);
        assert_eq!(ada.column("email"), Some("ada@example.com"));
        // NUL removed, as JSend::parse removes it.
        assert_eq!(ada.column("firstname"), Some("Ada"));
        assert_eq!(ada.column("lastname"), None, "not kept");
        assert_eq!(ada.column("city"), None, "not kept");
        assert_eq!(
            ada.profile_fields.as_ref().map(|f| f[0].data.as_str()),
            Some("Sales")
        );
        let lenient = read_users_reply(JSend::parse(&body(ADA)).expect("jsend")).expect("users");
        assert_eq!(lenient[0].profile_fields, ada.profile_fields);
        assert_eq!(lenient[0].column("email"), ada.column("email"));
    }

    #[test]
    fn anything_else_gets_the_lenient_readers_answer() {
        // A refusal, a user without `deleted`, users as a PHP map, and a cut body.
        let refused = br#"{"status":"error","message":"connect client is not active"}"#;
        assert!(matches!(
            read_users_listing(refused, &KEEP),
            Err(ReplyError::Refused(JSend::Error { .. }))
        ));
        let undeleted = body(r#"{"id":"1","username":"u"}"#);
        assert!(matches!(
            read_users_listing(&undeleted, &KEEP),
            Err(ReplyError::User { index: 0, .. })
        ));
        let as_map = format!(r#"{{"status":"success","data":{{"users":{{"0":{ADA}}}}}}}"#);
        assert_eq!(
            read_users_listing(as_map.as_bytes(), &KEEP)
                .expect("map")
                .len(),
            1
        );
        let cut = body(ADA);
        assert!(read_users_listing(&cut[..cut.len() - 3], &KEEP).is_err());
    }
}
