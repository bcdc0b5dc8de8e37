//! The Connect client's `positions` and `organisations` tasks (reference §5.5), job
//! assignments within `users` (§5.3) and the manual full `sync`, between two Gatehouse
//! processes (`tests/src/connect.rs`): frameworks and their item trees with types, a moved
//! and a removed item, an item an administrator added to a synced framework removed, jobs
//! with their position and organisation, `gatehouse tasks run sync --idp hq` running the
//! chain in order and stopping at the first step that fails. In process: a hierarchy
//! output the host cannot read or apply whole leaves the directory as it was.

use std::collections::BTreeMap;

use gatehouse::{
    store::{DirectorySnapshot, FrameworkKind},
    tasks::{TaskId, apply_task_output, quiet},
};
use gatehouse_tests::{
    TestHost, build_packages,
    connect::{ClientSetup, ConnectPair},
};
use serde_json::{Value, json};

const DIRECTORY: &str = r#"{
  "users": [
    {"username": "alice", "email": "alice@example.test", "firstname": "Alice", "lastname": "Ng",
     "password": "alice-password-1",
     "jobs": [{"idnumber": "J1", "fullname": "Sales rep", "shortname": "rep",
               "position": "POS-2", "organisation": "ORG-2", "startdate": 1500000000, "enddate": 0},
              {"idnumber": "J2", "fullname": "Mentor", "position": "POS-3"}]},
    {"username": "bob", "email": "bob@example.test", "firstname": "Bob", "lastname": "Li",
     "password": "bob-password-1"}
  ],
  "position_frameworks": [
    {"idnumber": "PF-1", "fullname": "Roles",
     "items": [{"idnumber": "POS-1", "fullname": "Head", "parent": null, "type": "T-LEAD"},
               {"idnumber": "POS-2", "fullname": "Rep", "parent": "POS-1", "type": "T-STAFF"},
               {"idnumber": "POS-3", "fullname": "Mentor", "parent": "POS-1", "type": ""}]},
    {"idnumber": "PF-2", "fullname": "Not shared",
     "items": [{"idnumber": "POS-X", "fullname": "Hidden", "parent": null, "type": ""}]}
  ],
  "organisation_frameworks": [
    {"idnumber": "OF-1", "fullname": "Company",
     "items": [{"idnumber": "ORG-1", "fullname": "HQ", "parent": null, "type": ""},
               {"idnumber": "ORG-2", "fullname": "Sales", "parent": "ORG-1", "type": "T-DEPT"}]}
  ]
}"#;

const SETTINGS: &str = "sync_positions = true\nsync_organisations = true\nsync_jobs = true";

const OPTIONS: [&str; 5] = [
    "--position-framework",
    "PF-1",
    "--organisation-framework",
    "OF-1",
    "--sync-jobs",
];

/// A framework section of an export: each item's (parent, fullname, type) by idnumber.
fn items(
    directory: &Value,
    section: &str,
    framework: &str,
) -> BTreeMap<String, (Value, String, String)> {
    let frameworks = directory[section].as_array().expect("frameworks");
    let framework = frameworks
        .iter()
        .find(|f| f["idnumber"] == framework)
        .unwrap_or_else(|| panic!("framework {framework} in {directory}"));
    framework["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            (
                item["idnumber"].as_str().expect("idnumber").to_owned(),
                (
                    item["parent"].clone(),
                    item["fullname"].as_str().unwrap_or_default().to_owned(),
                    item["type"].as_str().unwrap_or_default().to_owned(),
                ),
            )
        })
        .collect()
}

fn framework_names(directory: &Value, section: &str) -> Vec<String> {
    directory[section]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|f| f["idnumber"].as_str().expect("idnumber").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The jobs of the synced user whose email is `email`: (idnumber, fullname, position,
/// organisation; `""` for none, as the export writes it) in their order.
fn jobs_of(directory: &Value, email: &str) -> Vec<(String, String, Value, Value)> {
    let user = directory["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| {
            u["email"] == email && u["username"].as_str().is_some_and(|n| n.starts_with("tc_"))
        })
        .unwrap_or_else(|| panic!("a synced {email} in {directory}"));
    user["jobs"]
        .as_array()
        .map(|jobs| {
            jobs.iter()
                .map(|job| {
                    (
                        job["idnumber"].as_str().expect("idnumber").to_owned(),
                        job["fullname"].as_str().unwrap_or_default().to_owned(),
                        job["position"].clone(),
                        job["organisation"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn job(
    idnumber: &str,
    fullname: &str,
    position: Value,
    organisation: Value,
) -> (String, String, Value, Value) {
    (
        idnumber.to_owned(),
        fullname.to_owned(),
        position,
        organisation,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hierarchies_and_jobs_are_synced_with_moves_and_removals() {
    let setup = ClientSetup {
        settings: SETTINGS,
        ..ClientSetup::default()
    };
    let pair = ConnectPair::start(&setup, DIRECTORY, &OPTIONS).await;
    pair.run_client_task("handshake");
    let positions = pair.run_client_task("positions");
    assert!(positions.contains("items: created 3"), "{positions}");
    let organisations = pair.run_client_task("organisations");
    assert!(
        organisations.contains("items: created 2"),
        "{organisations}"
    );
    let users = pair.run_client_task("users");
    assert!(users.contains("jobs: created 2"), "{users}");

    let directory = pair.client_directory();
    assert_eq!(framework_names(&directory, "position_frameworks"), ["PF-1"]);
    assert_eq!(
        items(&directory, "position_frameworks", "PF-1"),
        BTreeMap::from([
            (
                "POS-1".to_owned(),
                (Value::Null, "Head".to_owned(), "T-LEAD".to_owned())
            ),
            (
                "POS-2".to_owned(),
                (json!("POS-1"), "Rep".to_owned(), "T-STAFF".to_owned())
            ),
            (
                "POS-3".to_owned(),
                (json!("POS-1"), "Mentor".to_owned(), String::new())
            ),
        ])
    );
    assert_eq!(
        items(&directory, "organisation_frameworks", "OF-1")["ORG-2"],
        (json!("ORG-1"), "Sales".to_owned(), "T-DEPT".to_owned())
    );
    assert_eq!(
        jobs_of(&directory, "alice@example.test"),
        [
            job("J1", "Sales rep", json!("POS-2"), json!("ORG-2")),
            job("J2", "Mentor", json!("POS-3"), json!("")),
        ]
    );

    // Nothing changed on the server: nothing changes here.
    let again = pair.run_client_task("positions");
    assert!(
        again.contains("created 0, updated 0, deleted 0; items: created 0, updated 0, deleted 0"),
        "{again}"
    );

    // An administrator adds an item to the synced framework on the client; on the server
    // POS-3 moves under POS-2 and is renamed, a new POS-4 comes, and J2 moves to POS-4.
    pair.import_on_client(
        r#"{"position_frameworks": [{"idnumber": "PF-1", "fullname": "Roles", "items": [
             {"idnumber": "POS-1", "fullname": "Head", "parent": null, "type": "T-LEAD"},
             {"idnumber": "POS-2", "fullname": "Rep", "parent": "POS-1", "type": "T-STAFF"},
             {"idnumber": "POS-3", "fullname": "Mentor", "parent": "POS-1", "type": ""},
             {"idnumber": "LOCAL-1", "fullname": "Mine", "parent": null, "type": ""}]}]}"#,
    );
    pair.import(
        r#"{"position_frameworks": [{"idnumber": "PF-1", "fullname": "Roles", "items": [
             {"idnumber": "POS-1", "fullname": "Head", "parent": null, "type": "T-LEAD"},
             {"idnumber": "POS-2", "fullname": "Rep", "parent": "POS-1", "type": "T-STAFF"},
             {"idnumber": "POS-3", "fullname": "Senior mentor", "parent": "POS-2", "type": ""},
             {"idnumber": "POS-4", "fullname": "Coach", "parent": "POS-1", "type": ""}]}],
           "users": [{"username": "alice", "jobs": [
             {"idnumber": "J1", "fullname": "Sales rep", "shortname": "rep",
              "position": "POS-2", "organisation": "ORG-2", "startdate": 1500000000, "enddate": 0},
             {"idnumber": "J2", "fullname": "Coach", "position": "POS-4"}]}]}"#,
    );
    let moved = pair.run_client_task("positions");
    assert!(
        moved.contains("items: created 1, updated 1, deleted 1"),
        "{moved}"
    );
    let users = pair.run_client_task("users");
    assert!(
        users.contains("jobs: created 0, updated 1, deleted 0"),
        "{users}"
    );
    let directory = pair.client_directory();
    let pf1 = items(&directory, "position_frameworks", "PF-1");
    assert_eq!(
        pf1["POS-3"],
        (json!("POS-2"), "Senior mentor".to_owned(), String::new())
    );
    assert_eq!(pf1["POS-4"].0, json!("POS-1"));
    assert!(
        !pf1.contains_key("LOCAL-1"),
        "a local item of a synced framework goes: {pf1:?}"
    );
    assert_eq!(
        jobs_of(&directory, "alice@example.test")[1],
        job("J2", "Coach", json!("POS-4"), json!(""))
    );

    // POS-2 removed on the server (its child POS-3 moved up first): J1 loses its position.
    pair.import(
        r#"{"position_frameworks": [{"idnumber": "PF-1", "fullname": "Roles", "items": [
             {"idnumber": "POS-1", "fullname": "Head", "parent": null, "type": "T-LEAD"},
             {"idnumber": "POS-3", "fullname": "Senior mentor", "parent": "POS-1", "type": ""},
             {"idnumber": "POS-4", "fullname": "Coach", "parent": "POS-1", "type": ""}]}]}"#,
    );
    let removed = pair.run_client_task("positions");
    assert!(removed.contains("updated 1, deleted 1"), "{removed}");
    let directory = pair.client_directory();
    let pf1 = items(&directory, "position_frameworks", "PF-1");
    assert!(!pf1.contains_key("POS-2"), "{pf1:?}");
    assert_eq!(pf1["POS-3"].0, json!("POS-1"));
    assert_eq!(jobs_of(&directory, "alice@example.test")[0].2, json!(""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manual_full_sync_runs_the_chain_in_order() {
    let setup = ClientSetup {
        settings: SETTINGS,
        ..ClientSetup::default()
    };
    let pair = ConnectPair::start(&setup, DIRECTORY, &OPTIONS).await;
    let output = pair.run_client_task("sync");
    // Each step ran, in order; jobs found their positions because positions came first.
    let order: Vec<usize> = [
        "handshake:",
        "positions:",
        "organisations:",
        "users:",
        "user_collections:",
    ]
    .iter()
    .map(|step| {
        output
            .find(step)
            .unwrap_or_else(|| panic!("{step} in {output}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{output}");
    let directory = pair.client_directory();
    assert_eq!(
        jobs_of(&directory, "alice@example.test")[0],
        job("J1", "Sales rep", json!("POS-2"), json!("ORG-2"))
    );
    // Each step was recorded as its own run.
    let listed = pair.client.cli_ok(&["tasks", "list"]);
    for step in ["positions", "organisations", "users", "sync"] {
        assert!(listed.contains(step), "{listed}");
    }

    // A server that refuses (the client deleted there): the chain stops at its first step
    // and says which.
    let server_store = pair.server.store().await;
    let clients = server_store.connect_clients().await.expect("clients");
    server_store
        .mark_connect_client_deleted(clients[0].id, 1_800_000_000)
        .await
        .expect("client deleted on the server");
    let failed = pair.client.cli(&["tasks", "run", "sync", "--idp", "hq"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&failed.stdout),
        String::from_utf8_lossy(&failed.stderr)
    );
    assert!(text.contains("step `handshake`"), "{text}");
    assert!(text.contains("connect client is not active"), "{text}");
}

const IN_PROCESS: &str = r#"
[host]
public_url = "http://localhost:8080"
database = "{database}"
plugin_dir = "{plugin_dir}"

[[plugin]]
id = "connect"
library = "gatehouse_connect"

[[domain]]
name = "root"
hosts = ["localhost"]

[[idp]]
id = "hq"
domain = "root"
plugin = "connect"
name = "Head office"

[idp.settings]
server_url = "https://hq.example.test"
sync_positions = true
"#;

const SERVER: &str = "5f3b0c9a1e2d4f6a8b7c0d1e2f3a4b5c6d7e8f90";

fn output(frameworks: Value, items: Value) -> Value {
    json!({"summary": "x", "directory": {"connect_hierarchy": {
        "server_idnumber": SERVER, "kind": "position",
        "frameworks": frameworks, "items": items}}})
}

fn framework(id: i64, idnumber: &str) -> Value {
    json!({"id": id, "fullname": idnumber, "shortname": "", "idnumber": idnumber,
           "description": "", "sortorder": 1, "visible": true, "hidecustomfields": false})
}

fn item(id: i64, framework: i64, parent: i64, idnumber: &str) -> Value {
    json!({"id": id, "frameworkid": framework, "parentid": parent, "fullname": idnumber,
           "shortname": "", "idnumber": idnumber, "description": "", "depthlevel": 1,
           "sortthread": "01", "visible": true, "typeid": 0, "typeidnumber": null})
}

async fn snapshot(host: &TestHost) -> DirectorySnapshot {
    host.state
        .store()
        .directory_snapshot()
        .await
        .expect("snapshot")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hierarchy_sync_that_cannot_be_read_or_applied_whole_writes_nothing() {
    build_packages(&["gatehouse-connect"]);
    let host = TestHost::start(IN_PROCESS).await;
    let task = TaskId::plugin("positions", "hq");
    apply_task_output(
        &host.state,
        &task,
        &output(
            json!([framework(1, "PF-1")]),
            json!([item(10, 1, 0, "A"), item(11, 1, 10, "B")]),
        ),
        &quiet,
    )
    .await
    .expect("the first sync");
    let before = snapshot(&host).await;
    assert_eq!(before.position_frameworks["PF-1"].items.len(), 2);

    // Unreadable: a negative parent id after a good item. Nothing written.
    let unreadable = output(
        json!([framework(1, "PF-1"), framework(2, "PF-2")]),
        json!([item(12, 2, 0, "C"), item(13, 2, -4, "D")]),
    );
    let error = apply_task_output(&host.state, &task, &unreadable, &quiet)
        .await
        .expect_err("refused");
    assert!(error.contains("items[1]"), "{error}");
    assert_eq!(snapshot(&host).await, before);

    // Readable but not applicable whole: the framework renamed, a new item, and an item
    // whose idnumber an administrator's framework holds. The store refuses it all.
    host.state
        .store()
        .apply_batch(
            &gatehouse::store::Batch {
                changes: vec![
                    gatehouse::store::Change::CreateFramework {
                        kind: FrameworkKind::Position,
                        idnumber: "ADMIN".into(),
                        fullname: "Admin's".into(),
                    },
                    gatehouse::store::Change::CreateItem {
                        kind: FrameworkKind::Position,
                        framework: "ADMIN".into(),
                        item: gatehouse::store::DirectoryItem {
                            idnumber: "TAKEN".into(),
                            fullname: "Taken".into(),
                            parent: None,
                            type_idnumber: String::new(),
                        },
                    },
                ],
            },
            gatehouse::store::WrittenBy::ADMIN_IMPORT,
            1_800_000_000,
        )
        .await
        .expect("the administrator's framework");
    let before = snapshot(&host).await;
    let conflicting = output(
        json!([framework(1, "PF-RENAMED")]),
        json!([
            item(10, 1, 0, "A"),
            item(11, 1, 10, "B2"),
            item(14, 1, 0, "TAKEN")
        ]),
    );
    let error = apply_task_output(&host.state, &task, &conflicting, &quiet)
        .await
        .expect_err("refused");
    assert!(error.contains("`TAKEN`"), "{error}");
    assert_eq!(snapshot(&host).await, before, "nothing half-applied");
}
