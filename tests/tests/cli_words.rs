//! What the CLI says when the file is wrong, through the real binary: every diagnostic shows
//! its line with a caret, a refused setting is pointed at with the closest known one, a
//! library typo gets the closest library, hosts have their own code, JSON stays JSON on exit
//! 2, and `plugins` lists the libraries whatever else is wrong.

use std::{path::Path, process::Command};

use gatehouse_tests::{config_text, plugin_dir};

fn gatehouse() -> Command {
    Command::new(plugin_dir().join("gatehouse"))
}

fn write(dir: &Path, template: &str) -> std::path::PathBuf {
    let database = format!("sqlite://{}", dir.join("gh.db").display());
    let path = dir.join("plugins.toml");
    std::fs::write(&path, config_text(template, &database)).expect("write config");
    path
}

fn run(args: &[&str], config: &Path) -> (Option<i32>, String, String) {
    let output = gatehouse()
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run gatehouse");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const BASE: &str = r#"[host]
database = "{database}"
plugin_dir = "{plugin_dir}"
dev_mode = true

[[plugin]]
id = "example"
library = "gatehouse_example"

[[plugin]]
id = "oidc"
library = "gatehouse_oidc"

[[domain]]
name = "root"
hosts = ["localhost"]
"#;

/// Regression: config-level findings (unknown-key, unknown-domain, duplicate ids…) were
/// printed without the file's text, so without the line and caret every other diagnostic has.
#[test]
fn config_level_diagnostics_show_the_line_and_a_caret() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        &format!(
            "{BASE}colour = \"red\"\n\n[[idp]]\nid = \"okta\"\ndomain = \"rot\"\nplugin = \"example\"\nusername_attribute = \"sub\"\n"
        ),
    );
    let (code, _, stderr) = run(&["check"], &path);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("error[unknown-key]"), "{stderr}");
    assert!(
        stderr.contains("| colour = \"red\"\n") && stderr.contains("| ^^^^^^\n"),
        "the unknown key's line and caret: {stderr}"
    );
    assert!(stderr.contains("error[unknown-domain]"), "{stderr}");
    assert!(
        stderr.contains("| domain = \"rot\"\n") && stderr.contains("did you mean `root`?"),
        "{stderr}"
    );
    // The summary line once, at the end.
    assert_eq!(stderr.matches("2 errors").count(), 1, "{stderr}");
    assert!(stderr.trim_end().ends_with("2 errors"), "{stderr}");
}

#[test]
fn a_refused_setting_is_pointed_at_with_the_closest_known_setting() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        &format!(
            "{BASE}\n[[idp]]\nid = \"okta\"\ndomain = \"root\"\nplugin = \"oidc\"\nusername_attribute = \"email\"\n\n[idp.settings]\nissuer = \"https://example.okta.com\"\nclientid = \"gatehouse\"\n"
        ),
    );
    let (code, _, stderr) = run(&["check"], &path);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("error[invalid-settings]"), "{stderr}");
    let line = config_text(BASE, "").lines().count() + 10;
    assert!(
        stderr.contains(&format!("{line} | clientid = \"gatehouse\"")),
        "points at the key, not the [idp.settings] header: {stderr}"
    );
    assert!(
        stderr.contains("help: did you mean `client_id`?"),
        "{stderr}"
    );
}

#[test]
fn a_library_typo_suggests_the_closest_library_in_plugin_dir() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        &BASE.replace(
            "library = \"gatehouse_oidc\"",
            "library = \"gatehouse_oicd\"",
        ),
    );
    let (code, _, stderr) = run(&["check"], &path);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("error[plugin-load-failed]"), "{stderr}");
    assert!(
        stderr.contains("| library = \"gatehouse_oicd\""),
        "points at the library's value: {stderr}"
    );
    assert!(
        stderr.contains("did you mean `library = \"gatehouse_oidc\"`?"),
        "{stderr}"
    );
}

#[test]
fn a_host_served_twice_has_its_own_code() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        &format!("{BASE}\n[[domain]]\nname = \"acme\"\nhosts = [\"localhost\"]\n"),
    );
    let (code, stdout, _) = run(&["check", "--format", "json"], &path);
    assert_eq!(code, Some(1));
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    let codes: Vec<&str> = report["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .filter_map(|d| d["code"].as_str())
        .collect();
    assert_eq!(codes, ["duplicate-host"], "{stdout}");
}

/// Regression: `check --format json` printed nothing on standard output when the file could
/// not be parsed (exit 2), so a script got no object to read.
#[test]
fn check_json_prints_an_object_on_exit_2_too() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("plugins.toml");
    std::fs::write(&broken, "[[domain]\nname =").unwrap();
    let (code, stdout, stderr) = run(&["check", "--format", "json"], &broken);
    assert_eq!(code, Some(2), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    let diagnostic = &report["diagnostics"][0];
    assert_eq!(diagnostic["code"], "syntax-error", "{stdout}");
    assert_eq!(diagnostic["line"], 1, "{stdout}");

    let (code, stdout, _) = run(
        &["check", "--format", "json"],
        &dir.path().join("absent.toml"),
    );
    assert_eq!(code, Some(2));
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(report["diagnostics"][0]["code"], "read-error", "{stdout}");
}

/// Regression: `plugins` printed only the file's errors, although a library that does not
/// load is often why the admin runs it.
#[test]
fn plugins_prints_its_table_even_when_the_file_has_other_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        &format!("{BASE}colour = \"red\"\n").replace("gatehouse_oidc", "gatehouse_missing"),
    );
    let (code, stdout, stderr) = run(&["plugins"], &path);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("error[unknown-key]"), "{stderr}");
    let example = stdout
        .lines()
        .find(|l| l.starts_with("example "))
        .unwrap_or_else(|| panic!("no row for example: {stdout}"));
    assert!(example.contains(" loaded "), "{example}");
    let oidc = stdout
        .lines()
        .find(|l| l.starts_with("oidc "))
        .unwrap_or_else(|| panic!("no row for oidc: {stdout}"));
    assert!(oidc.contains(" failed "), "{oidc}");

    let (code, stdout, _) = run(&["plugins", "--format", "json"], &path);
    assert_eq!(code, Some(1));
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(report["plugins"][0]["status"], "loaded", "{stdout}");
    assert_eq!(report["plugins"][1]["status"], "failed", "{stdout}");
    assert_eq!(report["diagnostics"][0]["code"], "unknown-key", "{stdout}");
}
