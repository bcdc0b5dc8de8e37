//! Secrets: values that must never be printed, written inline or taken from `{ env = "NAME" }`
//! or `{ file = "path" }`. It is not a vault: values live in memory as plain strings.

use std::fmt;

/// A secret value from the file, or from `{ env = "NAME" }` / `{ file = "path" }`.
/// `Debug` and `Display` print `[redacted]`; [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Strips one trailing newline (`\n` or `\r\n`) from a secret file's content.
pub(crate) fn trim_one_newline(mut content: String) -> String {
    if content.ends_with("\r\n") {
        content.truncate(content.len() - 2);
    } else if content.ends_with('\n') {
        content.truncate(content.len() - 1);
    }
    content
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn one_newline_is_trimmed() {
        assert_eq!(trim_one_newline("a\n\n".into()), "a\n");
        assert_eq!(trim_one_newline("a\r\n".into()), "a");
        assert_eq!(trim_one_newline("a".into()), "a");
    }
}
