//! `gatehouse directory import|export` through the real binary: an import, its export, and
//! that export imported into a fresh database giving the same directory back; a second
//! import of the same file changing nothing; a bad record (named by index and key) or a
//! record in any section leaving nothing written; items of a framework moved and removed.

use std::{path::Path, process::Command};

use gatehouse_tests::{config_text, plugin_dir};
use serde_json::Value;

const CONFIG: &str = r#"[host]
database = "{database}"
plugin_dir = "{plugin_dir}"
dev_mode = true

[[plugin]]
id = "example"
library = "gatehouse_example"

[[field]]
name = "department"

[[domain]]
name = "root"
hosts = ["localhost"]

[[idp]]
id = "corp"
domain = "root"
plugin = "example"
username_attribute = "sub"
"#;

const DIRECTORY: &str = r#"{
  "users": [
    {"username": "alice", "email": "alice@example.com", "firstname": "Alice", "lastname": "Ng",
     "idnumber": "E100", "password": "correct horse", "suspended": false, "deleted": false,
     "fields": {"department": "Sales"},
     "jobs": [{"idnumber": "J1", "fullname": "Sales rep", "shortname": "rep",
               "position": "POS-2", "organisation": "ORG-1", "startdate": 1700000000, "enddate": 0}]},
    {"username": "bob", "email": "bob@example.com", "firstname": "Bob", "suspended": true}
  ],
  "audiences": [{"idnumber": "AUD-1", "name": "Sales", "description": "", "members": ["alice", "bob"]}],
  "courses": [{"shortname": "C1", "fullname": "Onboarding", "summary": "", "enrolled": ["alice"]}],
  "position_frameworks": [{"idnumber": "PF-1", "fullname": "Positions",
                           "items": [{"idnumber": "POS-2", "fullname": "Rep", "parent": "POS-1", "type": "T1"},
                                     {"idnumber": "POS-1", "fullname": "Head", "parent": null, "type": ""},
                                     {"idnumber": "POS-3", "fullname": "Manager", "parent": null, "type": ""}]}],
  "organisation_frameworks": [{"idnumber": "OF-1", "fullname": "Organisations",
                               "items": [{"idnumber": "ORG-1", "fullname": "Sales", "parent": null, "type": ""}]}]
}"#;

/// A configuration in `dir` with its own SQLite database; its path.
fn configured(dir: &Path) -> std::path::PathBuf {
    let database = format!("sqlite://{}", dir.join("gh.db").display());
    let path = dir.join("plugins.toml");
    std::fs::write(&path, config_text(CONFIG, &database)).expect("write config");
    path
}

/// Runs `gatehouse directory <args> --config <config>`: exit code, stdout, stderr.
fn directory(config: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(plugin_dir().join("gatehouse"))
        .arg("directory")
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

fn import(config: &Path, file: &Path) -> (Option<i32>, String) {
    let (code, _, stderr) = directory(config, &["import", &file.display().to_string()]);
    (code, stderr)
}

fn export(config: &Path) -> Value {
    let (code, stdout, stderr) = directory(config, &["export"]);
    assert_eq!(code, Some(0), "{stderr}");
    serde_json::from_str(&stdout).expect("export is JSON")
}

#[test]
fn import_export_round_trip_and_a_second_import_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = configured(dir.path());
    let file = dir.path().join("directory.json");
    std::fs::write(&file, DIRECTORY).unwrap();

    let (code, stderr) = import(&config, &file);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("users: 2 created"), "{stderr}");
    assert!(stderr.contains("members: 2 added"), "{stderr}");
    assert!(stderr.contains("courses: 1 created"), "{stderr}");
    assert!(stderr.contains("items: 4 created"), "{stderr}");
    assert!(stderr.contains("jobs: 1 created"), "{stderr}");

    let exported = export(&config);
    let alice = &exported["users"][0];
    assert_eq!(alice["username"], "alice");
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(alice["fields"]["department"], "Sales");
    assert_eq!(alice["provenance"]["department"], "@admin");
    assert!(
        alice.get("password").is_none(),
        "no password or hash is exported: {alice}"
    );
    assert_eq!(exported["users"][1]["suspended"], true);
    assert_eq!(
        exported["audiences"][0]["members"],
        serde_json::json!(["alice", "bob"])
    );
    assert_eq!(
        exported["courses"],
        serde_json::json!([{"shortname": "C1", "fullname": "Onboarding", "summary": "", "enrolled": ["alice"]}])
    );
    // Items parents first.
    assert_eq!(
        exported["position_frameworks"][0]["items"],
        serde_json::json!([
            {"idnumber": "POS-1", "fullname": "Head", "parent": null, "type": ""},
            {"idnumber": "POS-3", "fullname": "Manager", "parent": null, "type": ""},
            {"idnumber": "POS-2", "fullname": "Rep", "parent": "POS-1", "type": "T1"},
        ])
    );
    assert_eq!(exported["organisation_frameworks"][0]["idnumber"], "OF-1");
    assert_eq!(
        alice["jobs"],
        serde_json::json!([{"idnumber": "J1", "fullname": "Sales rep", "shortname": "rep",
                            "position": "POS-2", "organisation": "ORG-1",
                            "startdate": 1700000000, "enddate": 0}])
    );
    assert_eq!(exported["users"][1]["jobs"], serde_json::json!([]));

    // The same file again (its password included): nothing changes.
    let (code, stderr) = import(&config, &file);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("nothing to change"), "{stderr}");
    assert_eq!(export(&config), exported);

    // The export is an import file: into a fresh database, it gives the same directory, and
    // into this one it changes nothing.
    let exported_file = dir.path().join("exported.json");
    std::fs::write(&exported_file, serde_json::to_string(&exported).unwrap()).unwrap();
    let (code, stderr) = import(&config, &exported_file);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("nothing to change"), "{stderr}");
    let fresh = tempfile::tempdir().unwrap();
    let fresh_config = configured(fresh.path());
    let (code, stderr) = import(&fresh_config, &exported_file);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(export(&fresh_config), exported);
}

#[test]
fn a_bad_record_leaves_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let config = configured(dir.path());
    let file = dir.path().join("directory.json");
    let bad_member = r#"{
      "users": [{"username": "alice"}, {"username": "bob"}, {"username": "carol"},
                {"username": "dave", "email": "not an address"}],
      "audiences": [{"idnumber": "AUD-1", "members": ["alice"]}]
    }"#;
    std::fs::write(&file, bad_member).unwrap();
    let (code, stderr) = import(&config, &file);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("users[3].email: \"not an address\" is not an email address"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    let exported = export(&config);
    assert_eq!(exported["users"], serde_json::json!([]));
    assert_eq!(exported["audiences"], serde_json::json!([]));

    // An unknown member, a field the platform does not declare: refused the same way.
    let cases = [
        (
            r#"{"users": [{"username": "alice"}], "audiences": [{"idnumber": "A", "members": ["alice", "zed"]}]}"#,
            "audiences[0].members[1]: there is no user \"zed\"",
        ),
        (
            r#"{"users": [{"username": "alice", "fields": {"shoe": "42"}}]}"#,
            "users[0].fields.shoe: the platform has no [[field]] named \"shoe\"",
        ),
        (
            r#"{"users": [{"username": "alice"}], "courses": [{"shortname": "C0"}, {"shortname": "C1"}, {"shortname": "C2", "enrolled": ["zed"]}]}"#,
            "courses[2].enrolled[0]: there is no user \"zed\"",
        ),
        (
            r#"{"users": [{"username": "alice"}], "position_frameworks": [{"idnumber": "PF", "items": [{"idnumber": "P1"}, {"idnumber": "P2", "parent": "P1"}, {"idnumber": "P3"}, {"idnumber": "P4", "parent": "P9"}]}]}"#,
            "position_frameworks[0].items[3].parent: \"P9\" is not an item of this framework's list",
        ),
        (
            r#"{"users": [{"username": "alice"}], "organisation_frameworks": [{"idnumber": "OF", "items": [{"idnumber": "O1", "parent": "O2"}, {"idnumber": "O2", "parent": "O1"}]}]}"#,
            "organisation_frameworks[0].items[0].parent: makes a cycle: O1 → O2 → O1",
        ),
        (
            r#"{"users": [{"username": "alice", "jobs": [{"idnumber": "J1", "position": "POS-404"}]}], "position_frameworks": [{"idnumber": "PF", "items": [{"idnumber": "P1"}]}]}"#,
            "users[0].jobs[0].position: there is no position \"POS-404\"",
        ),
    ];
    for (text, message) in cases {
        std::fs::write(&file, text).unwrap();
        let (code, stderr) = import(&config, &file);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains(message), "{stderr}");
        let exported = export(&config);
        for section in [
            "users",
            "courses",
            "position_frameworks",
            "organisation_frameworks",
        ] {
            assert_eq!(
                exported[section],
                serde_json::json!([]),
                "{message}: {section}"
            );
        }
    }
}

#[test]
fn an_item_moved_and_an_item_removed() {
    let dir = tempfile::tempdir().unwrap();
    let config = configured(dir.path());
    let file = dir.path().join("directory.json");
    std::fs::write(&file, DIRECTORY).unwrap();
    assert_eq!(import(&config, &file).0, Some(0));
    // POS-2 moves under POS-3 and POS-1 goes: alice's job keeps POS-2.
    let moved = r#"{"position_frameworks": [{"idnumber": "PF-1",
        "items": [{"idnumber": "POS-3", "parent": null}, {"idnumber": "POS-2", "parent": "POS-3"}]}]}"#;
    std::fs::write(&file, moved).unwrap();
    let (code, stderr) = import(&config, &file);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("items: 0 created, 1 updated, 1 deleted"),
        "{stderr}"
    );
    let exported = export(&config);
    assert_eq!(
        exported["position_frameworks"][0]["items"],
        serde_json::json!([
            {"idnumber": "POS-3", "fullname": "Manager", "parent": null, "type": ""},
            {"idnumber": "POS-2", "fullname": "Rep", "parent": "POS-3", "type": "T1"},
        ])
    );
    assert_eq!(exported["users"][0]["jobs"][0]["position"], "POS-2");
    let (code, stderr) = import(&config, &file);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("nothing to change"), "{stderr}");

    // Removing the item a job names leaves the job without a position.
    let removed =
        r#"{"position_frameworks": [{"idnumber": "PF-1", "items": [{"idnumber": "POS-3"}]}]}"#;
    std::fs::write(&file, removed).unwrap();
    let (code, stderr) = import(&config, &file);
    assert_eq!(code, Some(0), "{stderr}");
    let exported = export(&config);
    assert_eq!(
        exported["position_frameworks"][0]["items"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(exported["users"][0]["jobs"][0]["position"], "");
    assert_eq!(exported["users"][0]["jobs"][0]["organisation"], "ORG-1");

    // A user's jobs keep the file's order (the first is the primary one).
    let job_ids = |exported: &Value| -> Vec<String> {
        exported["users"][0]["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|job| job["idnumber"].as_str().map(str::to_owned))
            .collect()
    };
    for order in [["J1", "J0"], ["J0", "J1"]] {
        let jobs = r#"{"users": [{"username": "alice", "jobs": [{"idnumber": "FIRST", "position": "POS-3"}, {"idnumber": "SECOND"}]}]}"#
            .replace("FIRST", order[0])
            .replace("SECOND", order[1]);
        std::fs::write(&file, jobs).unwrap();
        let (code, stderr) = import(&config, &file);
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(job_ids(&export(&config)), order);
    }
}

#[test]
fn deleted_true_deletes_a_user() {
    let dir = tempfile::tempdir().unwrap();
    let config = configured(dir.path());
    let file = dir.path().join("directory.json");
    std::fs::write(&file, DIRECTORY).unwrap();
    assert_eq!(import(&config, &file).0, Some(0));
    std::fs::write(
        &file,
        r#"{"users": [{"username": "bob", "deleted": true}]}"#,
    )
    .unwrap();
    let (code, stderr) = import(&config, &file);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("1 deleted"), "{stderr}");
    let exported = export(&config);
    assert_eq!(exported["users"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        exported["audiences"][0]["members"],
        serde_json::json!(["alice"])
    );
}
