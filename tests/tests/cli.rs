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
    // Regression: the summary line ("2 errors, 1 warning") was printed twice.
    let summary = stderr.lines().last().expect("a summary line");
    assert!(summary.contains("error"), "{stderr}");
    assert_eq!(
        stderr.lines().filter(|line| *line == summary).count(),
        1,
        "{stderr}"
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

/// Runs `gatehouse <args>` in `dir` with `GATEHOUSE_CONFIG` set as given (or unset), and
/// waits for it. A command that starts serving instead of exiting is killed and fails the
/// test: the guard keeps a regression from hanging the suite, it times nothing.
fn run_in(dir: &Path, env_config: Option<&Path>, args: &[&str]) -> std::process::Output {
    let mut command = gatehouse();
    command
        .current_dir(dir)
        .args(args)
        .env_remove("GATEHOUSE_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(path) = env_config {
        command.env("GATEHOUSE_CONFIG", path);
    }
    let mut child = command.spawn().unwrap();
    for _ in 0..600 {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    panic!(
        "`gatehouse {}` kept running: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

const EVERY_COMMAND: [&[&str]; 4] = [
    &["serve"],
    &["check"],
    &["plugins"],
    &["explain", "--domain", "root"],
];

#[test]
fn a_missing_file_named_by_gatehouse_config_is_exit_2_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let named = dir.path().join("etc").join("plugins.toml");
    for args in EVERY_COMMAND {
        let output = run_in(dir.path(), Some(&named), args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&named.display().to_string()),
            "{args:?} names the path: {stderr}"
        );
        assert!(stderr.contains("GATEHOUSE_CONFIG"), "{args:?}: {stderr}");
        assert!(!stderr.contains("embedded"), "{args:?}: {stderr}");
    }
    assert!(
        !dir.path().join("gatehouse.db").exists(),
        "nothing was served"
    );
}

#[test]
fn a_missing_file_named_by_the_flag_is_exit_2_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let named = dir.path().join("absent.toml");
    let named_text = named.display().to_string();
    for args in EVERY_COMMAND {
        let mut with_flag = args.to_vec();
        with_flag.extend(["--config", named_text.as_str()]);
        let output = run_in(dir.path(), None, &with_flag);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&named_text), "{args:?}: {stderr}");
        assert!(stderr.contains("--config"), "{args:?}: {stderr}");
    }
}

#[test]
fn only_the_default_plugins_toml_falls_back_to_the_embedded_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_in(dir.path(), None, &["explain", "--domain", "root"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("plugins.toml not found")
            && stderr.contains("embedded development defaults"),
        "the fallback is announced: {stderr}"
    );
}

const SECRET_SOURCED_SETTINGS: &str = r#"[host]
database = "{database}"
plugin_dir = "{plugin_dir}"

[[plugin]]
id = "oidc"
library = "gatehouse_oidc"

[[domain]]
name = "root"
hosts = ["localhost"]

[[domain]]
name = "acme"
hosts = ["acme.test"]

[[idp]]
id = "corp"
domain = "root"
plugin = "oidc"
username_attribute = "sub"

[idp.settings]
issuer = { file = "issuer.txt" }
client_id = "gatehouse"
client_secret = "not-read-from-anywhere"

[[idp]]
id = "partner"
domain = "acme"
plugin = "oidc"
username_attribute = "sub"

[idp.settings]
issuer = { env = "GH_TEST_PARTNER_ISSUER" }
client_id = "gatehouse"
client_secret = "not-read-from-anywhere"
"#;

/// The values the two refused settings hold: the file's and the environment's.
const FILE_ISSUER: &str = "http://issuer.internal.example/tenant-4711";
const ENV_ISSUER: &str = "https://partner.example/?tenant=\"p-0815\"";

#[test]
fn values_from_files_and_the_environment_never_appear_in_check_output() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), SECRET_SOURCED_SETTINGS);
    std::fs::write(dir.path().join("issuer.txt"), format!("{FILE_ISSUER}\n")).unwrap();
    let run = |format: &str| {
        let output = gatehouse()
            .args(["check", "--format", format, "--config"])
            .arg(&path)
            .env("GH_TEST_PARTNER_ISSUER", ENV_ISSUER)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "the plugin refuses both");
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    let human = run("human");
    let json = run("json");
    let json_report: serde_json::Value =
        serde_json::from_str(json.lines().next().unwrap_or_default()).expect("one JSON object");
    let refusals: Vec<&serde_json::Value> = json_report["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .filter(|d| d["code"] == "invalid-settings")
        .collect();
    assert_eq!(refusals.len(), 2, "{json}");
    for (output, what) in [(&human, "human"), (&json, "json")] {
        for leak in [
            "tenant-4711",
            "issuer.internal.example",
            "p-0815",
            "partner.example",
        ] {
            assert!(
                !output.contains(leak),
                "{what} output shows {leak:?}: {output}"
            );
        }
        assert!(output.contains("[redacted]"), "{what}: {output}");
        assert!(
            output.contains("`issuer`"),
            "{what} still names the setting: {output}"
        );
    }
}

/// `gatehouse users link|unlink`: an administrator links a local account to an IdP from the
/// command line (so SSO through it may sign into the account), and only to a configured one.
#[tokio::test]
async fn users_link_and_unlink_an_account_to_a_configured_idp() {
    let dir = tempfile::tempdir().unwrap();
    let template = r#"[host]
database = "{database}"
plugin_dir = "{plugin_dir}"
dev_mode = true

[[plugin]]
id = "example"
library = "gatehouse_example"

[[domain]]
name = "root"
hosts = ["localhost"]

[[idp]]
id = "corp"
domain = "root"
plugin = "example"
username_attribute = "sub"
"#;
    let path = write(dir.path(), template);
    let database = format!("sqlite://{}", dir.path().join("gh.db").display());
    let store = gatehouse::store::Store::connect(&database).await.unwrap();
    let user = gatehouse::store::NewUser {
        username: "admin".into(),
        branch: "root".into(),
        auth_source: "local".into(),
        is_admin: true,
        ..Default::default()
    };
    let id = store.create_user(&user, &[], 1).await.unwrap();
    let run = |args: &[&str]| {
        let output = gatehouse()
            .args(["users"])
            .args(args)
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };

    let (code, stderr) = run(&["link", "--username", "admin", "--idp", "corp"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(store.linked_idps(id).await.unwrap(), ["corp"]);
    let audit = store.recent_audit(1).await.unwrap();
    assert_eq!(audit[0].method, "admin-link");

    let (code, stderr) = run(&["link", "--username", "admin", "--idp", "nope"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no IdP `nope`"), "{stderr}");
    let (code, stderr) = run(&["link", "--username", "nobody", "--idp", "corp"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no account `nobody`"), "{stderr}");

    let (code, stderr) = run(&["unlink", "--username", "admin", "--idp", "corp"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(store.linked_idps(id).await.unwrap().is_empty());
    let (code, _) = run(&["unlink", "--username", "admin", "--idp", "corp"]);
    assert_eq!(code, Some(1), "nothing to unlink");
}

/// `plugin_dir` and `{ file }` secrets relative to the configuration file's directory, with
/// the process started somewhere else.
const RELATIVE_PATHS: &str = r#"[host]
database = "{database}"
plugin_dir = "libs"
dev_mode = true

[[plugin]]
id = "example"
library = "gatehouse_example"

[[domain]]
name = "root"
hosts = ["localhost"]

[[idp]]
id = "example"
domain = "root"
plugin = "example"
username_attribute = "email"
trust_email = false

[idp.settings]
inbound_secret = { file = "secrets/inbound" }
"#;

#[test]
fn relative_paths_in_the_file_resolve_against_its_directory_not_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(conf.join("libs")).unwrap();
    std::fs::create_dir_all(conf.join("secrets")).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    let library = format!(
        "{}gatehouse_example{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    std::os::unix::fs::symlink(
        plugin_dir().join(&library),
        conf.join("libs").join(&library),
    )
    .unwrap();
    std::fs::write(conf.join("secrets/inbound"), "s3cret\n").unwrap();
    let path = write(&conf, RELATIVE_PATHS);

    let output = gatehouse()
        .current_dir(&elsewhere)
        .env_remove("GATEHOUSE_CONFIG")
        .args(["plugins", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("loaded") && stdout.contains(&conf.join("libs").display().to_string()),
        "the library is found beside the file: {stdout}"
    );

    let output = gatehouse()
        .current_dir(&elsewhere)
        .env_remove("GATEHOUSE_CONFIG")
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "the secret file is found: {stderr}"
    );
    assert!(!stderr.contains("secret-unavailable"), "{stderr}");
}
