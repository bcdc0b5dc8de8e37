//! Loading plugin libraries through the real loader: the good one loads, and every
//! kind of bad library is refused with its own message, all in one run.

use std::{fs, path::PathBuf, process::Command};

use gatehouse::plugins::{LoadFailureReason, LoadRequest, load_all};
use gatehouse_tests::{library, plugin_dir};

fn request(id: &str, path: PathBuf) -> LoadRequest {
    LoadRequest {
        id: id.into(),
        path,
    }
}

#[test]
fn the_example_plugin_loads_with_its_manifest() {
    let report = load_all(&[request("example", library("gatehouse_example"))], true);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let info = &report.loaded[0].info;
    assert_eq!(info.id, "example");
    assert_eq!(info.protocol, "example");
    assert_eq!(info.api_version, gatehouse_plugin_api::API_VERSION);
    assert!(info.attributes.contains(&"email".to_owned()));
}

#[test]
fn every_bad_library_is_reported_together() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text_file = dir.path().join("libpretend.so");
    fs::write(&text_file, "this is a text file, not a library\n").expect("write");
    let copy = dir.path().join("libexample_copy.so");
    fs::copy(library("gatehouse_example"), &copy).expect("copy the example library");

    let requests = [
        request("example", library("gatehouse_example")),
        request("missing", dir.path().join("libnothing_here.so")),
        request("pretend", text_file.clone()),
        request("bare", library("gatehouse_fixture_no_root_module")),
        request("future", library("gatehouse_fixture_future_api")),
        request("reshaped", library("gatehouse_fixture_layout_mismatch")),
        request("renamed", library("gatehouse_example")),
        request("example-copy", copy.clone()),
    ];
    let report = load_all(&requests, true);
    assert_eq!(report.loaded.len(), 1, "only the first example loads");
    let reason_of = |id: &str| {
        report
            .failures
            .iter()
            .find(|f| f.id == id)
            .unwrap_or_else(|| panic!("no failure for {id}: {:#?}", report.failures))
    };

    assert_eq!(reason_of("missing").reason, LoadFailureReason::Missing);
    assert!(matches!(
        reason_of("pretend").reason,
        LoadFailureReason::NotASharedLibrary { .. }
    ));
    assert_eq!(reason_of("bare").reason, LoadFailureReason::NoRootModule);
    assert_eq!(
        reason_of("future").reason,
        LoadFailureReason::IncompatibleApi {
            library: "2.0".into()
        }
    );
    let LoadFailureReason::LayoutMismatch { summary } = &reason_of("reshaped").reason else {
        panic!("expected a layout mismatch: {:?}", reason_of("reshaped"));
    };
    assert!(
        summary.lines().count() <= 2 && summary.len() < 400,
        "summary too long: {summary}"
    );
    assert_eq!(
        reason_of("renamed").reason,
        LoadFailureReason::IdMismatch {
            declared: "example".into()
        }
    );
    assert!(
        matches!(&reason_of("example-copy").reason, LoadFailureReason::DuplicateId { declared, .. } if declared == "example")
    );
    assert_eq!(report.failures.len(), 7);

    // Every message names the file and says how to fix it, in one line.
    for failure in &report.failures {
        let line = failure.to_string();
        assert!(line.contains(&failure.path.display().to_string()), "{line}");
        assert!(line.contains("fix:"), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }
    assert!(reason_of("future").to_string().contains("plugin API 2.0"));
    assert!(reason_of("renamed").fix().contains("id = \"example\""));
}

#[test]
fn a_development_plugin_is_refused_without_dev_mode() {
    let report = load_all(&[request("example", library("gatehouse_example"))], false);
    assert!(report.loaded.is_empty());
    assert_eq!(report.failures[0].reason, LoadFailureReason::DevOnly);
    assert!(report.failures[0].fix().contains("dev_mode = true"));
}

fn gatehouse_binary() -> PathBuf {
    plugin_dir().join("gatehouse")
}

fn write_config(dir: &std::path::Path, extra_plugins: &str) -> PathBuf {
    let text = format!(
        r#"[host]
plugin_dir = "{}"
database = "sqlite://{}/gh.db"
listen = "127.0.0.1:0"
dev_mode = true

[[plugin]]
id = "example"
library = "gatehouse_example"
{extra_plugins}
[[domain]]
name = "root"
hosts = ["localhost"]
"#,
        plugin_dir().display(),
        dir.display()
    );
    let path = dir.join("plugins.toml");
    fs::write(&path, text).expect("write config");
    path
}

#[test]
fn gatehouse_plugins_lists_every_library_with_its_status() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(
        dir.path(),
        "[[plugin]]\nid = \"future\"\nlibrary = \"gatehouse_fixture_future_api\"\n\n[[plugin]]\nid = \"off\"\nlibrary = \"nothing\"\nenabled = false\n",
    );
    let output = Command::new(gatehouse_binary())
        .args(["plugins", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "a failed plugin makes the listing fail: {stdout}"
    );
    let example = stdout
        .lines()
        .find(|l| l.starts_with("example"))
        .expect("example listed");
    assert!(
        example.contains("loaded") && example.contains("1.0"),
        "{example}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("future") && l.contains("failed")),
        "{stdout}"
    );
    assert!(stdout.contains("plugin API 2.0"), "{stdout}");
    // The routes a plugin serves besides start and callback (plugin API 1.1).
    for route in [
        "serves POST /sso/{idp}/notify",
        "serves POST /example/sep.php",
        "serves GET /example/sso_finish.php (browser callback)",
    ] {
        assert!(stdout.contains(route), "{route}: {stdout}");
    }
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("off") && l.contains("disabled")),
        "{stdout}"
    );
}

#[test]
fn serve_refuses_to_start_when_an_enabled_plugin_fails_and_lists_them_all() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(
        dir.path(),
        "[[plugin]]\nid = \"future\"\nlibrary = \"gatehouse_fixture_future_api\"\n\n[[plugin]]\nid = \"gone\"\nlibrary = \"does_not_exist\"\n",
    );
    let output = Command::new(gatehouse_binary())
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("plugin `future`") && stderr.contains("plugin API 2.0"),
        "{stderr}"
    );
    assert!(
        stderr.contains("plugin `gone`") && stderr.contains("does not exist"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("gh.db").exists(),
        "nothing is written when start-up fails"
    );
}
