//! Keeps `docs/configuration.md` in step with the parser: every key `plugins.toml` accepts
//! is documented, every documented key is accepted, and the page's complete example parses
//! cleanly and writes every key. Not a test of what the keys do.
//!
//! The page's convention, which this test reads:
//! - a heading (`##` or `###`) whose backticked spans start with `[` documents those tables
//!   (`` ## `[host]` ``, `` ### `[host.tasks.<task>]` and `[idp.tasks.<task>]` ``); the
//!   heading `## The top level` documents the top level of the file; any other heading ends
//!   the current tables;
//! - each row of a Markdown table under it that starts with `` | `key` `` documents `key`
//!   of each of those tables (rows inside code blocks do not count);
//! - the TOML block under `## A complete example` is the complete example.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use gatehouse_config::{known_keys, open_tables, parse_with};

const TOP_LEVEL_HEADING: &str = "The top level";
const EXAMPLE_HEADING: &str = "A complete example";

fn page_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../docs/configuration.md")
}

fn page() -> String {
    let path = page_path();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The backticked spans of a line, in order.
fn code_spans(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

/// Documented keys per table, as the page's convention says.
fn documented(page: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut tables: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Vec<String> = Vec::new();
    let mut in_code = false;
    for line in page.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        if let Some(heading) = line
            .strip_prefix("## ")
            .or_else(|| line.strip_prefix("### "))
        {
            current = if heading.trim() == TOP_LEVEL_HEADING {
                vec![String::new()]
            } else {
                code_spans(heading)
                    .into_iter()
                    .filter(|span| span.starts_with('['))
                    .map(str::to_owned)
                    .collect()
            };
            for table in &current {
                tables.entry(table.clone()).or_default();
            }
            continue;
        }
        if line.starts_with('#') {
            current.clear();
            continue;
        }
        if let Some(row) = line.strip_prefix("| `")
            && let Some((key, _)) = row.split_once('`')
        {
            for table in &current {
                tables
                    .entry(table.clone())
                    .or_default()
                    .insert(key.to_owned());
            }
        }
    }
    tables
}

fn shown(table: &str) -> &str {
    if table.is_empty() {
        "the top level"
    } else {
        table
    }
}

#[test]
fn every_accepted_key_is_documented_and_every_documented_key_is_accepted() {
    let page = page();
    let documented = documented(&page);
    let mut problems = Vec::new();
    for &(table, keys) in known_keys() {
        let Some(written) = documented.get(table) else {
            problems.push(format!(
                "{} is accepted by the parser but has no section: add a heading `## `{}`` with a row per key",
                shown(table),
                if table.is_empty() { TOP_LEVEL_HEADING } else { table }
            ));
            continue;
        };
        for key in keys {
            if !written.contains(*key) {
                problems.push(format!(
                    "`{key}` of {} is accepted by the parser but not documented: add a row starting `| `{key}` |` under its heading",
                    shown(table)
                ));
            }
        }
    }
    let known: BTreeMap<&str, &[&str]> = known_keys().iter().copied().collect();
    for (table, keys) in &documented {
        if open_tables().contains(&table.as_str()) {
            continue;
        }
        let Some(accepted) = known.get(table.as_str()) else {
            problems.push(format!(
                "{} is documented but the parser has no such table (known: {})",
                shown(table),
                known
                    .keys()
                    .map(|t| shown(t))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            continue;
        };
        for key in keys {
            if !accepted.contains(&key.as_str()) {
                problems.push(format!(
                    "`{key}` is documented under {} but the parser does not accept it there",
                    shown(table)
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "docs/configuration.md is out of step with the parser:\n- {}",
        problems.join("\n- ")
    );
}

/// The TOML block of the complete example.
fn complete_example(page: &str) -> &str {
    let heading = format!("## {EXAMPLE_HEADING}");
    let after = page
        .split_once(heading.as_str())
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("docs/configuration.md has no `{heading}` section"));
    after
        .split_once("```toml\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .map(|(block, _)| block)
        .unwrap_or_else(|| panic!("`{heading}` has no ```toml block"))
}

/// The keys written at `path` of `value` (`<task>` and arrays of tables stand for each of
/// their entries).
fn keys_at(value: &toml::Value, path: &[&str], out: &mut BTreeSet<String>) {
    if let toml::Value::Array(items) = value {
        for item in items {
            keys_at(item, path, out);
        }
        return;
    }
    let Some(table) = value.as_table() else {
        return;
    };
    match path {
        [] => out.extend(table.keys().cloned()),
        [first, rest @ ..] if first.starts_with('<') => {
            for entry in table.values() {
                keys_at(entry, rest, out);
            }
        }
        [first, rest @ ..] => {
            if let Some(entry) = table.get(*first) {
                keys_at(entry, rest, out);
            }
        }
    }
}

#[test]
fn the_complete_example_is_accepted_and_writes_every_key() {
    let page = page();
    let example = complete_example(&page);
    let env = |name: &str| match name {
        "OKTA_CLIENT_SECRET" => Some(String::from("example")),
        "GATEHOUSE_METRICS_TOKEN" => Some(String::from("an-example-metrics-token")),
        _ => None,
    };
    let loaded = parse_with(Path::new("/etc/gatehouse/plugins.toml"), example, &env)
        .expect("the complete example is valid TOML");
    assert!(
        loaded.diagnostics.is_empty(),
        "the complete example has findings: {:#?}",
        loaded.diagnostics
    );

    let root: toml::Value = toml::from_str(example).expect("valid TOML");
    let mut missing = Vec::new();
    for &(table, keys) in known_keys() {
        // An IdP's task names are its plugin's (the example's OIDC plugin has none); the
        // schedule's keys are the same as `[host.tasks.<task>]`'s, which the example writes.
        if table == "[idp.tasks.<task>]" {
            continue;
        }
        let path: Vec<&str> = table
            .trim_matches(['[', ']'])
            .split('.')
            .filter(|s| !s.is_empty())
            .collect();
        let mut written = BTreeSet::new();
        keys_at(&root, &path, &mut written);
        missing.extend(
            keys.iter()
                .filter(|key| !written.contains(**key))
                .map(|key| format!("`{key}` of {}", shown(table))),
        );
    }
    assert!(
        missing.is_empty(),
        "the complete example in docs/configuration.md does not write: {}",
        missing.join(", ")
    );
}

#[test]
fn the_convention_reads_tables_rows_and_the_top_level() {
    let page = "## The top level\n| key |\n|---|\n| `host` | table |\n\
                ## `[host]`\n| `listen` | string |\n```toml\n| `ignored` |\n```\n\
                ### `[host.tasks.<task>]` and `[idp.tasks.<task>]`\n| `enabled` | boolean |\n\
                ## Values\n| `not_a_key` | prose table |\n";
    let found = documented(page);
    let expect = |keys: &[&str]| keys.iter().map(|k| k.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(found[""], expect(&["host"]));
    assert_eq!(found["[host]"], expect(&["listen"]));
    assert_eq!(found["[host.tasks.<task>]"], expect(&["enabled"]));
    assert_eq!(found["[idp.tasks.<task>]"], expect(&["enabled"]));
    assert_eq!(found.len(), 4, "{found:?}");
}

/// The codes `docs/diagnostics.md` documents: the first backticked span of each row of the
/// table under `## Every code`.
fn documented_codes(page: &str) -> BTreeSet<String> {
    page.split("## Every code")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.starts_with("| `"))
        .filter_map(|line| code_spans(line).first().map(|c| c.to_string()))
        .collect()
}

#[test]
fn every_diagnostic_code_is_documented_and_every_documented_code_exists() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../docs/diagnostics.md");
    let page = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let documented = documented_codes(&page);
    let known: BTreeSet<String> = gatehouse_config::codes::ALL
        .iter()
        .map(|c| c.to_string())
        .collect();
    let undocumented: Vec<_> = known.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&known).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "docs/diagnostics.md lacks {undocumented:?} and documents codes that do not exist: {unknown:?}"
    );
}

#[test]
fn every_code_constant_is_in_the_list_of_all_codes() {
    let source = include_str!("../src/diagnostic.rs");
    let declared: BTreeSet<&str> = source
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub const "))
        .filter(|rest| rest.contains(": &str = \""))
        .filter_map(|rest| rest.split('"').nth(1))
        .collect();
    let listed: BTreeSet<&str> = gatehouse_config::codes::ALL.iter().copied().collect();
    assert_eq!(declared, listed, "codes::ALL must list every code constant");
    assert_eq!(
        listed.len(),
        gatehouse_config::codes::ALL.len(),
        "a code is listed twice"
    );
}
