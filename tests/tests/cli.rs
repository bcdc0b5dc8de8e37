//! `gatehouse check` and `gatehouse explain` through the real binary: exit statuses, the
//! rustc-like and JSON renderings, the sign-in history they consult, and the explanation.

use std::{path::Path, process::Command};

use gatehouse_tests::{config_text, plugin_dir};

fn gatehouse() -> Command {
    Command::new(plugin_dir().join("gatehouse"))
}

const TWO_OIDC_LIKE: &str = r#"[host]
database = "{database}"
plugin_dir = "{plugin_dir}"
dev_mode = true

[[plugin]]
id = "example"
library = "gatehouse_example"

[[domain]]
name = "root"
hosts = ["localhost"]
login_form = "hidden"

[[idp]]
id = "first"
domain = "root"
plugin = "example"
behaviour = "redirect"
username_attribute = "email"

[[idp]]
id = "second"
domain = "root"
plugin = "example"
username_attribute = "email"
"#;

fn write(dir: &Path, template: &str) -> std::path::PathBuf {
    let database = format!("sqlite://{}", dir.join("gh.db").display());
    let path = dir.join("plugins.toml");
    std::fs::write(&path, config_text(template, &database)).expect("write config");
    path
}

#[test]
fn check_reports_conflicts_like_a_compiler_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), TWO_OIDC_LIKE);
    let output = gatehouse()
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("duplicate-protocol"), "{stderr}");
    assert!(stderr.contains("untested-redirect"), "{stderr}");
    // The offending line, a caret under it, and the fix.
    assert!(stderr.contains("plugin = \"example\""), "{stderr}");
    assert!(stderr.contains('^'), "{stderr}");
    assert!(stderr.contains("help:"), "{stderr}");
    assert!(
        !dir.path().join("gh.db").exists(),
        "check creates no database"
    );
}

#[test]
fn check_json_prints_one_object_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), TWO_OIDC_LIKE);
    let output = gatehouse()
        .args(["check", "--format", "json", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON object");
    let diagnostics = json["diagnostics"].as_array().expect("diagnostics");
    let duplicate = diagnostics
        .iter()
        .find(|d| d["code"] == "duplicate-protocol")
        .expect("duplicate-protocol");
    assert_eq!(duplicate["severity"], "error");
    assert_eq!(duplicate["line"], 25, "the second IdP's `plugin` key");
    assert_eq!(duplicate["domain"], "root");
    assert_eq!(duplicate["idp"], "second");
    assert!(duplicate["help"].as_str().is_some_and(|h| !h.is_empty()));
}

#[test]
fn check_passes_with_warnings_only_and_consults_the_sign_in_history() {
    let dir = tempfile::tempdir().unwrap();
    let one_redirect = TWO_OIDC_LIKE
        .split("[[idp]]\nid = \"second\"")
        .next()
        .unwrap()
        .replace(
            "username_attribute = \"email\"\n",
            "username_attribute = \"email\"\nlogout = { at_idp = true }\n",
        );
    let path = write(dir.path(), &one_redirect);
    let output = gatehouse()
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "untested: {stderr}");

    // Record a successful sign-in in the database the file names.
    let database = format!("sqlite://{}", dir.path().join("gh.db").display());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = gatehouse::store::Store::connect(&database).await.unwrap();
        store.record_idp_success("first", 10).await.unwrap();
        store.close().await;
    });
    let output = gatehouse()
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("redirect-with-idp-logout"),
        "a warning remains: {stderr}"
    );
}

#[test]
fn check_exits_2_when_the_file_cannot_be_read_or_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let missing = gatehouse()
        .args(["check", "--config"])
        .arg(dir.path().join("absent.toml"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[[domain]\nname =").unwrap();
    let output = gatehouse()
        .args(["check", "--config"])
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn explain_says_what_the_login_page_does_and_which_rule_decided() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), TWO_OIDC_LIKE);
    let output = gatehouse()
        .args(["explain", "--domain", "root", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("is sent straight to IdP `first`"),
        "{stdout}"
    );
    assert!(stdout.contains("rule 3"), "{stdout}");
    assert!(stdout.contains("with ?nosso=1"), "{stdout}");
    assert!(
        stdout.contains("untested-redirect"),
        "findings are listed: {stdout}"
    );

    let unknown = gatehouse()
        .args(["explain", "--domain", "nope", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("root"));
}
