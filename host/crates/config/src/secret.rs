//! Secrets: values that must never be printed, written inline or taken from `{ env = "NAME" }`
//! or `{ file = "path" }`, and the [`Redactor`] that keeps the latter out of any text shown.
//! It is not a vault: values live in memory as plain strings.

use std::borrow::Cow;
use std::fmt;

use crate::diagnostic::Diagnostic;

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

/// What replaces a value from `{ env }` or `{ file }` wherever text is shown.
pub const REDACTED: &str = "[redacted]";

/// The shortest line of a multi-line secret that is redacted on its own: shorter lines
/// (`-----`, `}`) are structure, not secret, and would shred unrelated text.
const MIN_LINE_FRAGMENT: usize = 8;

/// Removes every value that came from `{ env = ... }` or `{ file = ... }` from text about
/// to be shown: diagnostics, above all the messages plugins write about their settings,
/// which quote the values they refuse. Each value is matched as written, as Rust's `{:?}`
/// and as JSON would escape it, and each long line of a multi-line value on its own.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Redactor {
    /// Longest first, so that a value containing another is removed whole.
    needles: Vec<String>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} forms)", self.needles.len())
    }
}

/// `value` escaped like a string literal (`{:?}` or JSON), without the quotes.
fn escaped_inner(quoted: &str) -> &str {
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or(quoted)
}

impl Redactor {
    /// A redactor for these values (those that came from the environment or a file).
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut needles = Vec::new();
        for value in values.into_iter().filter(|v| !v.is_empty()) {
            let debug = format!("{value:?}");
            let json = serde_json::to_string(value).unwrap_or_default();
            needles.push(value.to_owned());
            needles.push(escaped_inner(&debug).to_owned());
            needles.push(escaped_inner(&json).to_owned());
            if value.contains('\n') {
                needles.extend(
                    value
                        .lines()
                        .map(str::trim)
                        .filter(|line| line.chars().count() >= MIN_LINE_FRAGMENT)
                        .map(str::to_owned),
                );
            }
        }
        needles.retain(|n| !n.is_empty());
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        Self { needles }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every occurrence of a secret replaced by [`REDACTED`].
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = Cow::Owned(out.replace(needle.as_str(), REDACTED));
            }
        }
        out
    }

    /// Redacts the diagnostic's message and help in place.
    pub fn redact_diagnostic(&self, diagnostic: &mut Diagnostic) {
        if let Cow::Owned(message) = self.redact(&diagnostic.message) {
            diagnostic.message = message;
        }
        if let Some(help) = &diagnostic.help
            && let Cow::Owned(help) = self.redact(help)
        {
            diagnostic.help = Some(help);
        }
    }

    /// Redacts every diagnostic in place.
    pub fn redact_all(&self, diagnostics: &mut [Diagnostic]) {
        if self.is_empty() {
            return;
        }
        for diagnostic in diagnostics {
            self.redact_diagnostic(diagnostic);
        }
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
    fn every_form_of_a_secret_is_redacted_even_inside_words() {
        let r = Redactor::new([
            "tenant-\"4711\"",
            "ab",
            "-----BEGIN KEY-----\nMIIEvQIBADANBg\n-----END KEY-----",
        ]);
        assert_eq!(
            r.redact("issuer tenant-\"4711\" refused"),
            "issuer [redacted] refused"
        );
        assert_eq!(
            r.redact("issuer = \"tenant-\\\"4711\\\"\" refused"),
            "issuer = \"[redacted]\" refused",
            "as {{:?}} and JSON quote it"
        );
        assert_eq!(r.redact("bad line MIIEvQIBADANBg"), "bad line [redacted]");
        assert_eq!(r.redact("grab a cab"), "gr[redacted] a c[redacted]");
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
        assert!(Redactor::new([""]).is_empty());
    }

    #[test]
    fn one_newline_is_trimmed() {
        assert_eq!(trim_one_newline("a\n\n".into()), "a\n");
        assert_eq!(trim_one_newline("a\r\n".into()), "a");
        assert_eq!(trim_one_newline("a".into()), "a");
    }
}
