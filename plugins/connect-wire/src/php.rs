//! PHP's side of JSON: a writer that produces exactly what PHP's `json_encode()` (no flags)
//! produces, and lenient readers for the values PHP sends (numbers as strings, `[]` for an
//! empty object, `"0"`/`"1"` flags). It is not a general JSON library: parsing is
//! `serde_json`'s, this module only reads the parsed values the way PHP code would.

use serde_json::Value;

/// A value as a PHP array or scalar that is about to be `json_encode`d, in the order PHP
/// would keep it (PHP arrays are ordered maps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhpValue {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    /// A PHP list (`array(…)` with keys 0..n): `[…]`.
    List(Vec<PhpValue>),
    /// A PHP array with string keys, in insertion order. An empty one is written as `[]`,
    /// because PHP cannot tell an empty map from an empty list (the original's replies say
    /// `"data":[]`, `"pictures":[]`).
    Map(Vec<(String, PhpValue)>),
}

impl PhpValue {
    /// A string value.
    pub fn str(value: impl Into<String>) -> PhpValue {
        PhpValue::Str(value.into())
    }

    /// A map from `(key, value)` pairs, keeping their order.
    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, PhpValue)>) -> PhpValue {
        PhpValue::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// An empty PHP array, written `[]`.
    pub fn empty() -> PhpValue {
        PhpValue::List(Vec::new())
    }

    /// `json_encode($value)` with no flags, byte for byte.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    pub(crate) fn write(&self, out: &mut String) {
        match self {
            PhpValue::Null => out.push_str("null"),
            PhpValue::Bool(true) => out.push_str("true"),
            PhpValue::Bool(false) => out.push_str("false"),
            PhpValue::Int(n) => out.push_str(&n.to_string()),
            PhpValue::Str(s) => write_php_string(s, out),
            PhpValue::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            PhpValue::Map(entries) => write_map(entries, out),
        }
    }
}

/// A PHP array with string keys, as [`PhpValue::Map`] writes it (an empty one as `[]`), for
/// keys of any string type.
pub(crate) fn write_map<K: AsRef<str>>(entries: &[(K, PhpValue)], out: &mut String) {
    if entries.is_empty() {
        out.push_str("[]");
        return;
    }
    out.push('{');
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_php_string(key.as_ref(), out);
        out.push(':');
        value.write(out);
    }
    out.push('}');
}

/// A string as `json_encode` writes it without flags: `/` as `\/`, every character outside
/// ASCII as `\uXXXX` (lowercase hex, UTF-16 surrogate pairs above U+FFFF), the five short
/// control escapes, other control characters as `\u00XX`. DEL (0x7f) passes as it is.
fn write_php_string(value: &str, out: &mut String) {
    out.push('"');
    // Runs of printable ASCII other than `"`, `\` and `/` are copied as they are, in one
    // piece (most text is only that); every other character is escaped one by one.
    let mut rest = value;
    while !rest.is_empty() {
        let plain = rest
            .bytes()
            .position(|b| !(0x20..0x7f).contains(&b) || matches!(b, b'"' | b'\\' | b'/'))
            .unwrap_or(rest.len());
        out.push_str(&rest[..plain]);
        rest = &rest[plain..];
        let Some(c) = rest.chars().next() else {
            break;
        };
        rest = &rest[c.len_utf8()..];
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e && c != '\u{7f}' => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A scalar read as PHP's `(string)` cast would: strings as they are, integers in decimal,
/// `true` as `"1"`, `false` as `""`. `null`, floats, arrays and objects are `None` (the
/// original never sends a float where a string is read).
pub fn as_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        Value::Bool(true) => Some("1".to_owned()),
        Value::Bool(false) => Some(String::new()),
        _ => None,
    }
}

/// An integer sent as a JSON number or as a decimal string (`"123"`), as database values
/// come from PHP. Surrounding whitespace, signs other than `-`, and fractions are refused.
pub fn as_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => parse_decimal(s),
        _ => None,
    }
}

/// A decimal integer as PHP's database layer writes one: optional `-`, digits only.
pub fn parse_decimal(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A flag as Totara sends one: `"0"`/`"1"` from the database, `0`/`1`, or a JSON bool.
/// Any other integer counts as true, as PHP's `!= 0` does (`deleted` is compared that way).
pub fn as_flag(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        _ => as_int(value).map(|n| n != 0),
    }
}

/// The entries of a PHP array sent as a JSON object, or of an empty one sent as `[]`.
/// A non-empty JSON list is not a map and gives `None`.
pub fn as_map(value: &Value) -> Option<Vec<(&str, &Value)>> {
    match value {
        Value::Object(map) => Some(map.iter().map(|(k, v)| (k.as_str(), v)).collect()),
        Value::Array(items) if items.is_empty() => Some(Vec::new()),
        _ => None,
    }
}

/// The items of a PHP list. PHP writes a list whose keys are not 0..n as an object, so an
/// object's values (in order) count as the list too.
pub fn as_list(value: &Value) -> Option<Vec<&Value>> {
    match value {
        Value::Array(items) => Some(items.iter().collect()),
        Value::Object(map) => Some(map.values().collect()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_php_does() {
        assert_eq!(
            PhpValue::str("https://a.example/x").to_json(),
            r#""https:\/\/a.example\/x""#
        );
        assert_eq!(
            PhpValue::str("é€😀").to_json(),
            r#""\u00e9\u20ac\ud83d\ude00""#
        );
        assert_eq!(
            PhpValue::str("a\"b\\c\n\u{1}\u{7f}").to_json(),
            "\"a\\\"b\\\\c\\n\\u0001\u{7f}\""
        );
    }

    /// Every character below U+0200 and a few beyond, alone and between plain runs, is
    /// written as one escape-or-copy per character would write it (the plain runs are
    /// copied whole).
    #[test]
    fn plain_runs_are_copied_and_every_other_character_escaped() {
        fn one_by_one(value: &str) -> String {
            let mut out = String::from('"');
            for c in value.chars() {
                let mut units = [0u16; 2];
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '/' => out.push_str("\\/"),
                    '\u{08}' => out.push_str("\\b"),
                    '\u{0c}' => out.push_str("\\f"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if (c as u32) < 0x20 || (c as u32) > 0x7e && c != '\u{7f}' => {
                        for unit in c.encode_utf16(&mut units) {
                            out.push_str(&format!("\\u{unit:04x}"));
                        }
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        let mut samples: Vec<String> = (0u32..0x200)
            .chain([0x7ff, 0x800, 0xfffd, 0x1_0000, 0x1_f600, 0x10_ffff])
            .filter_map(char::from_u32)
            .map(|c| format!("{c}ab{c}{c}cd/e\\\"f{c}"))
            .collect();
        samples.extend(["".to_owned(), "plain text".to_owned(), "é".to_owned()]);
        for sample in &samples {
            assert_eq!(
                PhpValue::str(sample.clone()).to_json(),
                one_by_one(sample),
                "{sample:?}"
            );
        }
    }

    #[test]
    fn an_empty_map_is_an_empty_list() {
        assert_eq!(PhpValue::Map(vec![]).to_json(), "[]");
        assert_eq!(
            PhpValue::map([("a", PhpValue::Int(1)), ("b", PhpValue::Null)]).to_json(),
            r#"{"a":1,"b":null}"#
        );
    }

    #[test]
    fn lenient_readers() {
        assert_eq!(as_int(&Value::from("123")), Some(123));
        assert_eq!(as_int(&Value::from(" 123")), None);
        assert_eq!(as_int(&Value::from("1e3")), None);
        assert_eq!(as_flag(&Value::from("0")), Some(false));
        assert_eq!(as_flag(&Value::from("2")), Some(true));
        assert_eq!(as_flag(&Value::from(true)), Some(true));
        assert_eq!(as_string(&Value::from(7)), Some("7".to_owned()));
        assert!(as_map(&serde_json::json!([])).is_some_and(|m| m.is_empty()));
        assert!(as_map(&serde_json::json!([1])).is_none());
    }
}
