//! The log subscriber `serve` installs: `human` (tracing-subscriber's full text format) or
//! `json` (one JSON object a line). It is not what is logged (callers decide that) and it
//! does not filter secrets (they never reach a log call).
//!
//! Logged values include outside data (request values, plugin messages). In the human
//! format, every field and message passes through [`EscapingFields`], so a value cannot
//! start a line of its own or drive the terminal: CR, LF, the other C0 and C1 controls,
//! DEL, the Unicode line and paragraph separators and the bidirectional controls are
//! written as escapes. The JSON format needs no help: serde_json escapes every control
//! character, so one event is one line.

use std::fmt;

use gatehouse_config::LogFormat;
use tracing_subscriber::{
    EnvFilter,
    field::RecordFields,
    fmt::{
        FormatFields, MakeWriter,
        format::{DefaultFields, Writer},
    },
};

/// A subscriber that can be installed globally or for one scope.
pub type BoxedSubscriber = Box<dyn tracing::Subscriber + Send + Sync + 'static>;

/// True for characters that would break a log line or act on a terminal.
fn must_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}'
                | '\u{061c}'
                | '\u{200e}' | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// A `fmt::Write` that writes what it is given with [`must_escape`] characters escaped.
struct Escaping<W>(W);

impl<W: fmt::Write> fmt::Write for Escaping<W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(must_escape) {
            self.0.write_str(&rest[..at])?;
            let mut chars = rest[at..].chars();
            match chars.next() {
                Some('\n') => self.0.write_str("\\n")?,
                Some('\r') => self.0.write_str("\\r")?,
                Some('\t') => self.0.write_str("\\t")?,
                Some(c) => write!(self.0, "{}", c.escape_unicode())?,
                None => {}
            }
            rest = chars.as_str();
        }
        self.0.write_str(rest)
    }
}

/// tracing-subscriber's default field formatting (`message name=value …`), escaped.
///
/// The inner formatter writes without ANSI styling, so every escape character in its output
/// came from a value and is escaped; the event's own colours are added outside fields.
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapingFields;

impl<'writer> FormatFields<'writer> for EscapingFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut escaping = Escaping(&mut writer);
        DefaultFields::new().format_fields(Writer::new(&mut escaping), fields)
    }
}

/// The subscriber for `format`, filtered by `filter`, writing to `writer`; `ansi` colours
/// the human format's levels.
pub fn subscriber<W>(format: LogFormat, filter: EnvFilter, ansi: bool, writer: W) -> BoxedSubscriber
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Json => Box::new(builder.json().finish()),
        LogFormat::Human => Box::new(builder.with_ansi(ansi).fmt_fields(EscapingFields).finish()),
    }
}

/// Installs the subscriber for `format` on standard error (level from `RUST_LOG`, else
/// `info`; colours on a terminal).
pub fn init(format: LogFormat) -> Result<(), tracing::subscriber::SetGlobalDefaultError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing::subscriber::set_global_default(subscriber(format, filter, ansi, std::io::stderr))
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer into a shared buffer, so a test can read what the subscriber wrote.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("not poisoned").clone()).expect("UTF-8")
        }
    }

    /// What the subscriber for `format` writes for one event carrying hostile values in
    /// its message, a Display field, a Debug field, a string field and a span field.
    fn log_hostile(format: LogFormat, ansi: bool) -> String {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = subscriber(format, EnvFilter::new("info"), ansi, move || writer.clone());
        let hostile = "alice\nINFO gatehouse: forged line\r\x1b[31mred\u{2028}\u{85}";
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", path = %hostile);
            let _entered = span.enter();
            tracing::info!(
                user = %hostile,
                debug = ?hostile,
                plain = hostile,
                "sign-in refused for {hostile}"
            );
        });
        out.text()
    }

    #[test]
    fn the_human_format_writes_one_line_with_control_characters_escaped() {
        for ansi in [false, true] {
            let text = log_hostile(LogFormat::Human, ansi);
            assert_eq!(text.lines().count(), 1, "{text:?}");
            assert!(text.ends_with('\n'), "{text:?}");
            let line = text.trim_end_matches('\n');
            assert!(!line.contains(['\r', '\u{2028}', '\u{85}']), "{line:?}");
            // Level colours are the only escape characters, and only with ansi on.
            assert_eq!(line.contains('\x1b'), ansi, "{line:?}");
            assert!(!line.contains("\x1b[31m"), "{line:?}");
            // tracing-subscriber itself writes a message's ESC as `\x1b`; either escape will do.
            assert!(
                line.contains("sign-in refused for alice\\nINFO gatehouse: forged line\\r\\"),
                "the message: {line:?}"
            );
            assert!(line.contains("red\\u{2028}\\u{85} user="), "{line:?}");
            assert!(
                line.contains("user=alice\\nINFO"),
                "a Display field: {line:?}"
            );
            assert!(line.contains("path=alice\\nINFO"), "a span field: {line:?}");
        }
    }

    #[test]
    fn the_json_format_writes_one_line_that_keeps_the_values() {
        let text = log_hostile(LogFormat::Json, false);
        assert_eq!(text.lines().count(), 1, "{text:?}");
        assert!(!text.trim_end().contains(['\r', '\x1b']), "{text:?}");
        let event: serde_json::Value = serde_json::from_str(text.trim_end()).expect("JSON");
        let hostile = "alice\nINFO gatehouse: forged line\r\x1b[31mred\u{2028}\u{85}";
        assert_eq!(event["fields"]["user"], hostile);
        assert_eq!(
            event["fields"]["message"],
            format!("sign-in refused for {hostile}")
        );
    }

    #[test]
    fn ordinary_text_is_unchanged() {
        let mut out = String::new();
        Escaping(&mut out)
            .write_str("Gatehouse is serving on 127.0.0.1:8080 — façade ✓")
            .expect("write");
        assert_eq!(out, "Gatehouse is serving on 127.0.0.1:8080 — façade ✓");
    }
}
