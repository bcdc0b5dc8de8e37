//! The data-driven suite: every `tests/cases/*.toml` is parsed with `gatehouse_config::parse`,
//! resolved with the facts its header states, and the complete list of diagnostics (the
//! config crate's and the resolver's) must equal the header's `# expect:` lines exactly.
//! The header format is documented in `tests/cases/README.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use gatehouse_config::{Diagnostic, Severity, codes};
use gatehouse_resolver::{Facts, resolve};

/// Every code a case must show firing (`<code>.*.toml`) and narrowly missing
/// (`<code>.*.ok.toml`): INTERFACES.md's table without `invalid-settings` (the host's, from
/// plugin validation), plus the resolver's own codes.
const COVERED_CODES: &[&str] = &[
    codes::UNKNOWN_KEY,
    codes::UNKNOWN_PLUGIN,
    codes::UNKNOWN_DOMAIN,
    codes::UNKNOWN_FIELD,
    codes::DUPLICATE_PROTOCOL,
    codes::MULTIPLE_REDIRECTS,
    codes::REDIRECT_WITH_IDP_LOGOUT,
    codes::LOCKOUT,
    codes::UNTESTED_REDIRECT,
    codes::FIELD_MAPPED_TWICE,
    codes::ATTRIBUTE_MAPPED_TWICE,
    codes::MANDATORY_FIELD_UNMAPPED,
    codes::MULTIPLE_PROVISIONERS,
    codes::UPDATE_DISAGREEMENT,
    codes::LOCK_DISAGREEMENT,
    codes::LOCKED_MANDATORY_UNPROVISIONED,
    codes::CONNECT_GUEST_ACCESS,
    codes::CONNECT_MAPPING_EDITABLE,
    codes::EXTERNAL_URL_SHADOWS,
    codes::LOGOUT_UNSUPPORTED,
    codes::REDIRECT_SHADOWS_BUTTONS,
    codes::MATCH_FIELD_EDITABLE,
    codes::EMAIL_TRUST_UNSET,
    codes::EMAIL_UNVERIFIABLE,
    codes::IGNORED_KEY,
];

/// One expected (or actual) finding: what the comparison looks at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Finding {
    severity: Severity,
    code: String,
    line: u32,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.severity, self.code, self.line)
    }
}

impl From<&Diagnostic> for Finding {
    fn from(d: &Diagnostic) -> Self {
        Self {
            severity: d.severity,
            code: d.code.to_owned(),
            line: d.location.line,
        }
    }
}

/// How the header describes one plugin.
#[derive(Debug)]
enum PluginLine {
    Unloaded,
    Loaded { protocol: String, logout: bool },
}

/// A case's header.
#[derive(Debug, Default)]
struct Header {
    /// `None` until an `# expect:` line is seen; `Some(empty)` after `# expect: none`.
    expect: Option<Vec<Finding>>,
    expect_none: bool,
    plugins: Vec<(String, PluginLine)>,
    proven: Vec<String>,
}

const DIRECTIVES: [&str; 3] = ["expect", "plugin", "proven"];

/// Reads the directives of the leading comment block (comment and blank lines before the
/// first line of TOML).
fn header(text: &str) -> Result<Header, String> {
    let mut header = Header::default();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let Some(comment) = line.strip_prefix('#') else {
            break;
        };
        let comment = comment.trim();
        let Some((word, rest)) = comment.split_once(':') else {
            continue;
        };
        let word = word.trim();
        if !DIRECTIVES.contains(&word) {
            if DIRECTIVES.iter().any(|d| word.starts_with(d)) {
                return Err(format!("line {}: unknown directive `{word}:`", index + 1));
            }
            continue;
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        let bad = |why: &str| format!("line {}: {why}: `{line}`", index + 1);
        match word {
            "expect" => {
                let list = header.expect.get_or_insert_with(Vec::new);
                match words.as_slice() {
                    ["none"] => header.expect_none = true,
                    [severity, code, at] => {
                        let severity = match *severity {
                            "error" => Severity::Error,
                            "warning" => Severity::Warning,
                            _ => return Err(bad("severity must be error or warning")),
                        };
                        let line = at.parse().map_err(|_| bad("the line must be a number"))?;
                        list.push(Finding {
                            severity,
                            code: (*code).to_owned(),
                            line,
                        });
                    }
                    _ => {
                        return Err(bad(
                            "write `# expect: <severity> <code> <line>` or `# expect: none`",
                        ));
                    }
                }
            }
            "plugin" => match words.as_slice() {
                [id, "unloaded"] => header
                    .plugins
                    .push(((*id).to_owned(), PluginLine::Unloaded)),
                [id, protocol] => header.plugins.push((
                    (*id).to_owned(),
                    PluginLine::Loaded {
                        protocol: (*protocol).to_owned(),
                        logout: true,
                    },
                )),
                [id, protocol, "no-logout"] => header.plugins.push((
                    (*id).to_owned(),
                    PluginLine::Loaded {
                        protocol: (*protocol).to_owned(),
                        logout: false,
                    },
                )),
                _ => {
                    return Err(bad(
                        "write `# plugin: <id> <protocol> [no-logout]` or `# plugin: <id> unloaded`",
                    ));
                }
            },
            "proven" => match words.as_slice() {
                [idp] => header.proven.push((*idp).to_owned()),
                _ => return Err(bad("write `# proven: <idp id>`")),
            },
            _ => unreachable!("checked against DIRECTIVES"),
        }
    }
    match &header.expect {
        None => Err(String::from("no `# expect:` line")),
        Some(list) if header.expect_none && !list.is_empty() => Err(String::from(
            "`# expect: none` together with other `# expect:` lines",
        )),
        Some(_) => Ok(header),
    }
}

/// The facts the header describes: every `[[plugin]]` of the file is loaded with protocol =
/// its id and logout support, unless a `# plugin:` line says otherwise.
fn facts(header: &Header, config: &gatehouse_config::Config) -> Result<Facts, String> {
    let mut facts = Facts::default();
    for (id, _) in &header.plugins {
        if config.plugin(id).is_none() {
            return Err(format!("`# plugin: {id}` names no [[plugin]] of the file"));
        }
    }
    for plugin in &config.plugins {
        match header.plugins.iter().find(|(id, _)| *id == plugin.id) {
            Some((_, PluginLine::Unloaded)) => {}
            Some((_, PluginLine::Loaded { protocol, logout })) => {
                facts = facts.with_plugin(&plugin.id, protocol, *logout);
            }
            None => facts = facts.with_plugin(&plugin.id, &plugin.id, true),
        }
    }
    for idp in &header.proven {
        if config.idp(idp).is_none() {
            return Err(format!("`# proven: {idp}` names no [[idp]] of the file"));
        }
        facts = facts.with_proven(idp);
    }
    Ok(facts)
}

/// What one case found; `Err` describes the failure.
struct Outcome {
    expected: Vec<Finding>,
    actual: Vec<Diagnostic>,
}

fn run_case(path: &Path) -> Result<Outcome, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let header = header(&text).map_err(|e| format!("bad header: {e}"))?;
    let loaded = gatehouse_config::parse(path, &text)
        .map_err(|e| format!("gatehouse_config::parse failed: {e}"))?;
    let mut actual = loaded.diagnostics.clone();
    if let Some(config) = &loaded.config {
        let facts = facts(&header, config)?;
        let resolved = resolve(config, &facts);
        let mut problems = String::new();
        for d in &resolved.diagnostics {
            if d.help.as_deref().is_none_or(|h| h.trim().is_empty()) {
                let _ = writeln!(problems, "resolver diagnostic `{}` has no help", d.code);
            }
            if d.location.line == 0 {
                let _ = writeln!(problems, "resolver diagnostic `{}` has line 0", d.code);
            }
            if d.message.trim().is_empty() {
                let _ = writeln!(problems, "resolver diagnostic `{}` has no message", d.code);
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        actual.extend(resolved.diagnostics);
    } else if !header.plugins.is_empty() || !header.proven.is_empty() {
        // Facts only matter to the resolver; stating them for a file the config crate
        // rejects means the case does not test what it says.
        return Err(String::from(
            "the header states plugin facts, but the file has config errors so the resolver never runs",
        ));
    }
    let mut expected = header.expect.unwrap_or_default();
    expected.sort();
    Ok(Outcome { expected, actual })
}

fn case_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn every_case_produces_exactly_the_diagnostics_its_header_states() {
    let files = case_files();
    assert!(
        files.len() >= 2 * COVERED_CODES.len(),
        "expected at least {} cases in tests/cases, found {}",
        2 * COVERED_CODES.len(),
        files.len()
    );
    let mut failures = Vec::new();
    for path in &files {
        let outcome = match run_case(path) {
            Ok(outcome) => outcome,
            Err(why) => {
                failures.push(format!("{}: {why}", path.display()));
                continue;
            }
        };
        let mut actual: Vec<Finding> = outcome.actual.iter().map(Finding::from).collect();
        actual.sort();
        if actual != outcome.expected {
            let mut report = format!("{}:\n  expected:\n", path.display());
            for f in &outcome.expected {
                let _ = writeln!(report, "    {f}");
            }
            if outcome.expected.is_empty() {
                report.push_str("    none\n");
            }
            report.push_str("  actual:\n");
            for d in &outcome.actual {
                let _ = writeln!(report, "    {}    {}", Finding::from(d), d.message);
            }
            if outcome.actual.is_empty() {
                report.push_str("    none\n");
            }
            failures.push(report);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// Each covered code has a case named after it that fires it and a near miss that does not.
#[test]
fn every_code_has_a_firing_case_and_a_near_miss() {
    let files = case_files();
    let cases: Vec<(String, Header)> = files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).expect("readable case");
            let header =
                header(&text).unwrap_or_else(|e| panic!("{}: bad header: {e}", path.display()));
            (file_name(path), header)
        })
        .collect();
    let expects = |header: &Header, code: &str| {
        header
            .expect
            .iter()
            .flatten()
            .any(|finding| finding.code == code)
    };
    let mut missing = Vec::new();
    for code in COVERED_CODES {
        let named: Vec<&(String, Header)> = cases
            .iter()
            .filter(|(name, _)| name.starts_with(&format!("{code}.")))
            .collect();
        let fires = named
            .iter()
            .any(|(name, header)| !name.ends_with(".ok.toml") && expects(header, code));
        let near_miss = named
            .iter()
            .any(|(name, header)| name.ends_with(".ok.toml") && !expects(header, code));
        if !fires {
            missing.push(format!("{code}: no `{code}.*.toml` case expecting it"));
        }
        if !near_miss {
            missing.push(format!("{code}: no `{code}.*.ok.toml` near miss"));
        }
    }
    // A `.ok` case must not expect the code it is named after; a firing case must.
    for (name, header) in &cases {
        let Some(code) = COVERED_CODES
            .iter()
            .find(|code| name.starts_with(&format!("{code}.")))
        else {
            continue;
        };
        if name.ends_with(".ok.toml") == expects(header, code) {
            missing.push(format!(
                "{name}: its name and its `{code}` expectation disagree"
            ));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// The header parser itself: the runner must not accept what it cannot check.
#[test]
fn malformed_headers_are_refused() {
    assert!(header("[[domain]]\n").is_err(), "no expectation at all");
    assert!(header("# expect: none\n# expect: error lockout 3\n").is_err());
    assert!(header("# expect: fatal lockout 3\n").is_err());
    assert!(header("# expect: error lockout\n").is_err());
    assert!(header("# expects: none\n").is_err(), "a misspelt directive");
    assert!(header("# plugin: oidc\n# expect: none\n").is_err());
    let h = header(
        "# A description: with a colon.\n# expect: warning lock-disagreement 12\n\
         # plugin: a saml no-logout\n# plugin: b unloaded\n# proven: okta\n[[domain]]\n# expect: none\n",
    )
    .expect("a valid header");
    assert_eq!(
        h.expect,
        Some(vec![Finding {
            severity: Severity::Warning,
            code: "lock-disagreement".into(),
            line: 12
        }]),
        "directives after the first TOML line are not part of the header"
    );
    assert!(matches!(
        &h.plugins[..],
        [
            (a, PluginLine::Loaded { protocol, logout: false }),
            (b, PluginLine::Unloaded)
        ] if a == "a" && protocol == "saml" && b == "b"
    ));
    assert_eq!(h.proven, vec![String::from("okta")]);
}
