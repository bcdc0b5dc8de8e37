//! JSend, the reply format of every Connect endpoint: `success` with `data`, `fail` with
//! `data` (parameter → message), `error` with `message` (and optionally `code`, `data`).
//! Replies are read the way Totara's `jsend::request()` reads them and written the way its
//! `jsend::send_result()` writes them. It is not the transport: HTTP status, timeouts and
//! redirects are the caller's.

use serde_json::Value;
use thiserror::Error;

use crate::php::{self, PhpValue};

/// What Totara reports locally when the HTTP request failed, returned nothing, or was not
/// HTTP 200 (`jsend::request`). `sep_setup` relays it to the server as it is.
pub const CANNOT_CONNECT: &str = "Remote data request failed - cannot connect server.";
/// What Totara reports locally when a reply is not a JSend object.
pub const INVALID_RESPONSE_FORMAT: &str = "Remote data request failed - invalid response format.";

/// A JSend reply as received (and, from this crate's writers, as sent).
#[derive(Debug, Clone, PartialEq)]
pub enum JSend {
    /// `{"status":"success","data":…}`; a missing `data` reads as `null`.
    Success { data: Value },
    /// `{"status":"fail","data":{"<param>":"<message>"}}`: a parameter was refused.
    Fail { data: Value },
    /// `{"status":"error","message":…}`, optionally with `code` and `data`.
    Error {
        message: String,
        code: Option<Value>,
        data: Option<Value>,
    },
}

/// Why a body is not a JSend reply. Each has the text Totara would report in its place
/// ([`JSendError::totara_message`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JSendError {
    #[error("the reply was empty")]
    Empty,
    #[error("the reply is not JSON: {0}")]
    NotJson(String),
    #[error("the reply is not a JSON object")]
    NotAnObject,
    #[error("the reply has no status")]
    MissingStatus,
    #[error("the reply's status is {0:?}, not success, fail or error")]
    UnknownStatus(String),
}

impl JSendError {
    /// The message Totara's `jsend::request()` gives the caller instead of this reply.
    pub fn totara_message(&self) -> &'static str {
        match self {
            JSendError::Empty => CANNOT_CONNECT,
            _ => INVALID_RESPONSE_FORMAT,
        }
    }

    /// The error reply Totara would act on (and `sep_setup` would relay) in its place.
    pub fn to_jsend(&self) -> JSend {
        JSend::error(self.totara_message())
    }
}

impl JSend {
    /// An `error` reply with only a message.
    pub fn error(message: impl Into<String>) -> JSend {
        JSend::Error {
            message: message.into(),
            code: None,
            data: None,
        }
    }

    /// A `fail` reply refusing one parameter.
    pub fn fail(parameter: &str, message: &str) -> JSend {
        let mut data = serde_json::Map::new();
        data.insert(parameter.to_owned(), Value::String(message.to_owned()));
        JSend::Fail {
            data: Value::Object(data),
        }
    }

    /// `{"status":"success","data":[]}`, the reply of services that return nothing.
    pub fn success_empty() -> JSend {
        JSend::Success {
            data: Value::Array(Vec::new()),
        }
    }

    /// True for `success`.
    pub fn is_success(&self) -> bool {
        matches!(self, JSend::Success { .. })
    }

    /// Reads a reply body leniently, as `jsend::request()` does: an empty body, a body that
    /// is not a JSON object or has no (or an empty) `status` is an error; a `success` or
    /// `fail` without `data` has `null` data; an `error` without `message` says
    /// "unknown error"; NUL characters are removed from every string; keys other than
    /// `status`, `data`, `message` and `code` are ignored.
    pub fn parse(body: &[u8]) -> Result<JSend, JSendError> {
        if body.is_empty() {
            return Err(JSendError::Empty);
        }
        let mut value: Value =
            serde_json::from_slice(body).map_err(|e| JSendError::NotJson(e.to_string()))?;
        strip_nul(&mut value);
        let Value::Object(mut object) = value else {
            return Err(JSendError::NotAnObject);
        };
        let status = match object.get("status") {
            None | Some(Value::Null) => return Err(JSendError::MissingStatus),
            Some(status) => php::as_string(status).unwrap_or_default(),
        };
        // PHP's empty() is true for "" and "0" as well.
        if status.is_empty() || status == "0" {
            return Err(JSendError::MissingStatus);
        }
        let data = object.remove("data").unwrap_or(Value::Null);
        match status.as_str() {
            "success" => Ok(JSend::Success { data }),
            "fail" => Ok(JSend::Fail { data }),
            "error" => {
                let message = object
                    .get("message")
                    .and_then(php::as_string)
                    .unwrap_or_else(|| "unknown error".to_owned());
                let code = object.remove("code").filter(|c| !c.is_null());
                let data = match data {
                    Value::Array(_) | Value::Object(_) => Some(data),
                    _ => None,
                };
                Ok(JSend::Error {
                    message,
                    code,
                    data,
                })
            }
            other => Err(JSendError::UnknownStatus(other.to_owned())),
        }
    }

    /// The reply as the original's `send_result()` writes it: `status` first, then `data`,
    /// or `message`, `code`, `data` for errors; PHP's escaping (`\/`, `\uXXXX`).
    pub fn to_json(&self) -> String {
        self.to_php().to_json()
    }

    /// The reply as a PHP array (see [`JSend::to_json`]).
    pub fn to_php(&self) -> PhpValue {
        match self {
            JSend::Success { data } => PhpValue::map([
                ("status", PhpValue::str("success")),
                ("data", value_to_php(data)),
            ]),
            JSend::Fail { data } => PhpValue::map([
                ("status", PhpValue::str("fail")),
                ("data", value_to_php(data)),
            ]),
            JSend::Error {
                message,
                code,
                data,
            } => {
                let mut entries = vec![
                    ("status".to_owned(), PhpValue::str("error")),
                    ("message".to_owned(), PhpValue::str(message.clone())),
                ];
                if let Some(code) = code {
                    entries.push(("code".to_owned(), value_to_php(code)));
                }
                if let Some(data) = data {
                    entries.push(("data".to_owned(), value_to_php(data)));
                }
                PhpValue::Map(entries)
            }
        }
    }
}

/// A `success` reply whose data is a PHP array built by this crate, written directly (so
/// the order of its keys is the original's, not `serde_json`'s).
pub fn success_json(data: PhpValue) -> String {
    PhpValue::map([("status", PhpValue::str("success")), ("data", data)]).to_json()
}

/// A parsed JSON value as PHP would hold it. Object keys keep `serde_json`'s order (sorted),
/// so use [`success_json`] with a [`PhpValue`] where the order matters; a float (never sent
/// by Connect) is kept as its decimal text.
pub fn value_to_php(value: &Value) -> PhpValue {
    match value {
        Value::Null => PhpValue::Null,
        Value::Bool(b) => PhpValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => PhpValue::Int(i),
            None => PhpValue::Str(n.to_string()),
        },
        Value::String(s) => PhpValue::Str(s.clone()),
        Value::Array(items) => PhpValue::List(items.iter().map(value_to_php).collect()),
        Value::Object(map) => PhpValue::Map(
            map.iter()
                .map(|(k, v)| (k.clone(), value_to_php(v)))
                .collect(),
        ),
    }
}

impl PhpValue {
    /// The value as `json_decode` of its `json_encode` would give it back (an empty map
    /// comes back as an empty list).
    pub fn to_value(&self) -> Value {
        match self {
            PhpValue::Null => Value::Null,
            PhpValue::Bool(b) => Value::Bool(*b),
            PhpValue::Int(n) => Value::from(*n),
            PhpValue::Str(s) => Value::String(s.clone()),
            PhpValue::List(items) => Value::Array(items.iter().map(PhpValue::to_value).collect()),
            PhpValue::Map(entries) if entries.is_empty() => Value::Array(Vec::new()),
            PhpValue::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

/// Totara's `clean_result` removes NUL bytes from every string (and fixes invalid UTF-8,
/// which `serde_json` has already refused).
pub(crate) fn strip_nul(value: &mut Value) {
    match value {
        Value::String(s) if s.contains('\0') => s.retain(|c| c != '\0'),
        Value::Array(items) => items.iter_mut().for_each(strip_nul),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let entries = std::mem::take(map);
                for (mut key, mut item) in entries {
                    key.retain(|c| c != '\0');
                    strip_nul(&mut item);
                    map.insert(key, item);
                }
            } else {
                map.values_mut().for_each(strip_nul);
            }
        }
        _ => {}
    }
}
