//! Printing diagnostics: rustc-like text for people and `{"diagnostics":[...]}` for programs.
//! It is not where diagnostics are made and it does no I/O; callers print the strings.

use std::fmt::Write as _;

use crate::diagnostic::{Diagnostic, Severity};

/// Renders diagnostics like the Rust compiler: code, message, the offending line of `source`
/// with a caret under the key or value, the fix, and a summary line at the end.
pub fn render_human(diagnostics: &[Diagnostic], source: &str) -> String {
    let lines: Vec<&str> = source.lines().collect();
    let mut out = String::new();
    for d in diagnostics {
        render_one(&mut out, d, &lines);
        out.push('\n');
    }
    out.push_str(&summary(diagnostics));
    out.push('\n');
    out
}

/// `{"diagnostics":[...]}`, each diagnostic in the shape INTERFACES.md gives.
pub fn render_json(diagnostics: &[Diagnostic]) -> String {
    #[derive(serde::Serialize)]
    struct Report<'a> {
        diagnostics: &'a [Diagnostic],
    }
    serde_json::to_string(&Report { diagnostics })
        .unwrap_or_else(|_| String::from("{\"diagnostics\":[]}"))
}

/// "2 errors, 1 warning", "1 error", "no errors or warnings".
pub fn summary(diagnostics: &[Diagnostic]) -> String {
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diagnostics.len() - errors;
    let plural = |n: usize, word: &str| {
        if n == 1 {
            format!("1 {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    match (errors, warnings) {
        (0, 0) => String::from("no errors or warnings"),
        (e, 0) => plural(e, "error"),
        (0, w) => plural(w, "warning"),
        (e, w) => format!("{}, {}", plural(e, "error"), plural(w, "warning")),
    }
}

fn render_one(out: &mut String, d: &Diagnostic, lines: &[&str]) {
    let _ = writeln!(out, "{}[{}]: {}", d.severity, d.code, d.message);
    let loc = d.location;
    let snippet = if loc.is_unknown() {
        None
    } else {
        usize::try_from(loc.line)
            .ok()
            .and_then(|n| lines.get(n.checked_sub(1)?))
            .map(|l| l.trim_end_matches('\r'))
    };
    let number = loc.line.to_string();
    let width = if snippet.is_some() { number.len() } else { 1 };
    let pad = " ".repeat(width);
    if loc.is_unknown() {
        let _ = writeln!(out, "{pad}--> {}", d.file.display());
    } else {
        let _ = writeln!(out, "{pad}--> {}:{}", d.file.display(), loc);
    }
    let mut context = Vec::new();
    if let Some(idp) = &d.idp {
        context.push(format!("idp `{idp}`"));
    }
    if let Some(domain) = &d.domain {
        context.push(format!("domain `{domain}`"));
    }
    if let Some(text) = snippet {
        let chars: Vec<char> = text.chars().collect();
        let column = usize::try_from(loc.column.max(1)).unwrap_or(1) - 1;
        let column = column.min(chars.len());
        let shown: String = chars
            .iter()
            .map(|&c| {
                if c == '\t' {
                    "    ".to_owned()
                } else {
                    c.to_string()
                }
            })
            .collect();
        let indent: usize = chars[..column]
            .iter()
            .map(|&c| if c == '\t' { 4 } else { 1 })
            .sum();
        let carets = token_len(&chars[column..]).max(1);
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{number} | {shown}");
        let _ = writeln!(out, "{pad} | {}{}", " ".repeat(indent), "^".repeat(carets));
    }
    if !context.is_empty() {
        let _ = writeln!(out, "{pad} = note: in {}", context.join(", "));
    }
    if let Some(help) = &d.help {
        let mut help_lines = help.lines();
        let _ = writeln!(
            out,
            "{pad} = help: {}",
            help_lines.next().unwrap_or_default()
        );
        for line in help_lines {
            let _ = writeln!(out, "{pad}         {line}");
        }
    }
}

/// How many characters the TOML token starting at `rest` spans on its line: a quoted string,
/// a `[header]`, a bracketed array or inline table, or a bare key / scalar.
fn token_len(rest: &[char]) -> usize {
    let Some(&first) = rest.first() else {
        return 0;
    };
    match first {
        '"' | '\'' => {
            let mut escaped = false;
            for (i, &c) in rest.iter().enumerate().skip(1) {
                if first == '"' && c == '\\' && !escaped {
                    escaped = true;
                    continue;
                }
                if c == first && !escaped {
                    return i + 1;
                }
                escaped = false;
            }
            trimmed_len(rest)
        }
        '[' | '{' => {
            let mut depth = 0usize;
            let mut quote: Option<char> = None;
            for (i, &c) in rest.iter().enumerate() {
                match quote {
                    Some(q) if c == q => quote = None,
                    Some(_) => {}
                    None => match c {
                        '"' | '\'' => quote = Some(c),
                        '[' | '{' => depth += 1,
                        ']' | '}' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                // `[[idp]]` closes with two brackets.
                                let double = rest.get(i + 1) == Some(&']')
                                    && rest.get(1) == Some(&'[')
                                    && c == ']';
                                return i + 1 + usize::from(double);
                            }
                        }
                        '#' => break,
                        _ => {}
                    },
                }
            }
            trimmed_len(rest)
        }
        _ => rest
            .iter()
            .position(|c| c.is_whitespace() || matches!(c, '=' | ',' | ']' | '}' | '#'))
            .unwrap_or(rest.len()),
    }
}

fn trimmed_len(rest: &[char]) -> usize {
    rest.iter()
        .rposition(|c| !c.is_whitespace())
        .map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len(s: &str) -> usize {
        token_len(&s.chars().collect::<Vec<_>>())
    }

    #[test]
    fn tokens_are_measured() {
        assert_eq!(len("behavour = \"button\""), 8);
        assert_eq!(len("\"redir\\\"ct\" # x"), 11);
        assert_eq!(len("'lit' "), 5);
        assert_eq!(len("[[idp]]"), 7);
        assert_eq!(len("[host]  # c"), 6);
        assert_eq!(len("[\"a\", \"]\"] # x"), 10);
        assert_eq!(len("{ a = { b = 1 } }, x"), 17);
        assert_eq!(len("42,"), 2);
        assert_eq!(len("\"unterminated  "), 13);
    }

    #[test]
    fn summaries_count() {
        assert_eq!(summary(&[]), "no errors or warnings");
    }
}
