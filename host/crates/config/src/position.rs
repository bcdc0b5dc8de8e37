//! Positions in the configuration file: 1-based line/column pairs and the conversion from byte
//! offsets. It is not a TOML parser; spans come from the `toml` crate.

use std::collections::BTreeMap;

use serde::Serialize;

/// A 1-based line and column (columns count characters, not bytes).
///
/// `Location::default()` (line 0, column 0) means "the file as a whole": a finding about
/// something that is missing rather than something written somewhere.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Location {
    pub line: u32,
    pub column: u32,
}

impl Location {
    pub const fn new(line: u32, column: u32) -> Self {
        Self { line, column }
    }

    /// True for `Location::default()`, the "whole file" location.
    pub fn is_unknown(&self) -> bool {
        self.line == 0
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Turns byte offsets of one text into [`Location`]s.
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { text, line_starts }
    }

    pub(crate) fn location(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        Location {
            line: saturate(line + 1),
            column: saturate(column + 1),
        }
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Where each key of a table (and its value) was written.
///
/// Nested keys are recorded with dotted names: an IdP records `logout.at_idp`,
/// `provisioning.fields.email`, `settings.client_secret`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeyLocations {
    entries: BTreeMap<String, (Location, Location)>,
}

impl KeyLocations {
    /// Records where `key` and its value were written.
    pub fn insert(&mut self, key: impl Into<String>, key_at: Location, value_at: Location) {
        self.entries.insert(key.into(), (key_at, value_at));
    }

    /// Where `key` was written; for a dotted key that was not written, where its nearest
    /// written parent was. `None` when neither was written.
    pub fn key(&self, key: &str) -> Option<Location> {
        self.lookup(key).map(|(k, _)| k)
    }

    /// Where the value of `key` starts; falls back like [`KeyLocations::key`].
    pub fn value(&self, key: &str) -> Option<Location> {
        self.lookup(key).map(|(_, v)| v)
    }

    /// True when `key` itself was written in the file.
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    fn lookup(&self, key: &str) -> Option<(Location, Location)> {
        let mut key = key;
        loop {
            if let Some(found) = self.entries.get(key) {
                return Some(*found);
            }
            key = &key[..key.rfind('.')?];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_columns() {
        let index = LineIndex::new("ab\ncdé\n\nx");
        assert_eq!(index.location(0), Location::new(1, 1));
        assert_eq!(index.location(3), Location::new(2, 1));
        assert_eq!(index.location(7), Location::new(2, 4)); // after the two-byte é
        assert_eq!(index.location(8), Location::new(3, 1));
        assert_eq!(index.location(9), Location::new(4, 1));
        assert_eq!(index.location(100), Location::new(4, 2));
    }

    #[test]
    fn dotted_keys_fall_back_to_their_parent() {
        let mut keys = KeyLocations::default();
        keys.insert("logout", Location::new(3, 1), Location::new(3, 10));
        assert_eq!(keys.key("logout.at_idp"), Some(Location::new(3, 1)));
        assert_eq!(keys.value("logout"), Some(Location::new(3, 10)));
        assert_eq!(keys.key("nothing"), None);
    }
}
