//! The Connect client's `user_collections` task (reference §5.4) between two Gatehouse
//! processes (`tests/src/connect.rs`): the server's linked audiences and courses become
//! audiences of the client's IdP with the right members, keep their row ids across syncs
//! and after a course is renamed, go when the server stops sharing them, and cannot be
//! changed by the client's `gatehouse directory import`. In process: a collections output
//! the host cannot read, or one whose apply fails half way, leaves the directory as it was.

use std::collections::{BTreeMap, BTreeSet};

use gatehouse::{
    store::{
        Batch, Change, CollectionKind, CollectionsState, DirectorySnapshot, SyncSource, WrittenBy,
    },
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
     "password": "alice-password-1"},
    {"username": "bob", "email": "bob@example.test", "firstname": "Bob", "lastname": "Li",
     "password": "bob-password-1"},
    {"username": "carol", "email": "carol@example.test", "firstname": "Carol", "lastname": "Fox",
     "password": "carol-password-1"}
  ],
  "audiences": [
    {"idnumber": "AUD-1", "name": "Staff", "description": "Everyone / on staff", "members": ["alice", "bob"]},
    {"idnumber": "AUD-2", "name": "Sales", "members": ["carol"]},
    {"idnumber": "AUD-3", "name": "Not shared", "members": ["alice"]}
  ],
  "courses": [
    {"shortname": "C1", "fullname": "Onboarding", "summary": "Start here", "enrolled": ["alice", "carol"]},
    {"shortname": "C2", "fullname": "Not shared either", "enrolled": ["bob"]}
  ]
}"#;

/// The client's view: the server idnumber (from a synced username) and, by email, the
/// usernames of the synced users.
fn synced_users(directory: &Value) -> (String, BTreeMap<String, String>) {
    let mut server = String::new();
    let mut by_email = BTreeMap::new();
    for user in directory["users"].as_array().expect("users") {
        let username = user["username"].as_str().expect("username");
        if let Some(rest) = username.strip_prefix("tc_") {
            let (_, idnumber) = rest.split_once('_').expect("tc_<id>_<server>");
            server = idnumber.to_owned();
            by_email.insert(
                user["email"].as_str().expect("email").to_owned(),
                username.to_owned(),
            );
        }
    }
    (server, by_email)
}

/// The client's audiences by name: (idnumber, description, members).
fn audiences_by_name(directory: &Value) -> BTreeMap<String, (String, String, BTreeSet<String>)> {
    directory["audiences"]
        .as_array()
        .expect("audiences")
        .iter()
        .map(|a| {
            let members = a["members"]
                .as_array()
                .expect("members")
                .iter()
                .map(|m| m.as_str().expect("a username").to_owned())
                .collect();
            (
                a["name"].as_str().expect("name").to_owned(),
                (
                    a["idnumber"].as_str().expect("idnumber").to_owned(),
                    a["description"].as_str().unwrap_or_default().to_owned(),
                    members,
                ),
            )
        })
        .collect()
}

async fn client_state(pair: &ConnectPair, server: &str) -> CollectionsState {
    pair.client
        .store()
        .await
        .connect_collections_state(SyncSource {
            idp_id: "hq",
            server_idnumber: server,
        })
        .await
        .expect("the client's collections")
}

/// Audience ids by (kind, name) as the client keeps them.
fn ids_by_name(state: &CollectionsState) -> BTreeMap<(CollectionKind, String), i64> {
    state
        .mapped
        .iter()
        .map(|((kind, _), id)| ((*kind, state.audiences[id].name.clone()), *id))
        .collect()
}

async fn synced_pair() -> ConnectPair {
    let pair = ConnectPair::start(
        &ClientSetup::default(),
        DIRECTORY,
        &[
            "--audience",
            "AUD-1",
            "--audience",
            "AUD-2",
            "--course",
            "C1",
        ],
    )
    .await;
    pair.run_client_task("handshake");
    pair.run_client_task("users");
    pair
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiences_and_courses_become_client_audiences_that_keep_their_ids() {
    let pair = synced_pair().await;
    let first = pair.run_client_task("user_collections");
    assert!(first.contains("audiences created 3"), "{first}");

    let directory = pair.client_directory();
    let (server, users) = synced_users(&directory);
    let user = |email: &str| users[email].clone();
    let audiences = audiences_by_name(&directory);
    let staff = &audiences["Staff"];
    assert!(
        staff.0.starts_with("tc_cohort_") && staff.0.ends_with(&format!("_{server}")),
        "{staff:?}"
    );
    assert_eq!(staff.1, "Everyone / on staff");
    assert_eq!(
        staff.2,
        BTreeSet::from([user("alice@example.test"), user("bob@example.test")])
    );
    assert_eq!(
        audiences["Sales"].2,
        BTreeSet::from([user("carol@example.test")])
    );
    let course = &audiences["Onboarding"];
    assert!(course.0.starts_with("tc_course_"), "{course:?}");
    assert_eq!(course.1, "Start here");
    assert_eq!(
        course.2,
        BTreeSet::from([user("alice@example.test"), user("carol@example.test")])
    );
    assert!(!audiences.contains_key("Not shared"));
    assert!(!audiences.contains_key("Not shared either"));
    let ids = ids_by_name(&client_state(&pair, &server).await);
    assert_eq!(ids.len(), 3);

    // Nothing changed on the server: nothing changes here.
    let again = pair.run_client_task("user_collections");
    assert!(
        again.contains("audiences created 0, updated 0, deleted 0, unchanged 3"),
        "{again}"
    );
    assert_eq!(ids_by_name(&client_state(&pair, &server).await), ids);

    // The course renamed and bob enrolled on the server: the same audience, renamed.
    pair.import(r#"{"courses": [{"shortname": "C1", "fullname": "Onboarding 2026", "enrolled": ["alice", "bob", "carol"]}]}"#);
    let renamed = pair.run_client_task("user_collections");
    assert!(renamed.contains("updated 1"), "{renamed}");
    let state = client_state(&pair, &server).await;
    let course_id = ids[&(CollectionKind::Course, "Onboarding".to_owned())];
    assert_eq!(
        state.mapped.values().copied().collect::<BTreeSet<_>>(),
        ids.values().copied().collect::<BTreeSet<_>>(),
        "every audience kept its id"
    );
    assert_eq!(state.audiences[&course_id].name, "Onboarding 2026");
    let course = &audiences_by_name(&pair.client_directory())["Onboarding 2026"];
    assert_eq!(course.2.len(), 3);

    // AUD-2 deleted on the server: its audience goes here, the others stay as they are.
    let server_store = pair.server.store().await;
    server_store
        .apply_batch(
            &Batch {
                changes: vec![Change::DeleteAudience {
                    idnumber: "AUD-2".into(),
                }],
            },
            WrittenBy::ADMIN_IMPORT,
            1_800_000_000,
        )
        .await
        .expect("AUD-2 deleted on the server");
    let removed = pair.run_client_task("user_collections");
    assert!(removed.contains("deleted 1"), "{removed}");
    let state = client_state(&pair, &server).await;
    let mut kept = ids.clone();
    kept.remove(&(CollectionKind::Cohort, "Sales".to_owned()));
    assert_eq!(
        state.mapped.values().copied().collect::<BTreeSet<_>>(),
        kept.values().copied().collect::<BTreeSet<_>>()
    );
    assert!(!audiences_by_name(&pair.client_directory()).contains_key("Sales"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_on_the_client_cannot_change_a_synced_audience() {
    let pair = synced_pair().await;
    pair.run_client_task("user_collections");
    let before = pair.client_directory();
    let staff = audiences_by_name(&before)["Staff"].0.clone();

    let file = pair.client.dir().join("edit-synced.json");
    std::fs::write(
        &file,
        json!({"audiences": [
            {"idnumber": "LOCAL-1", "name": "Mine"},
            {"idnumber": staff, "name": "Renamed here"},
        ]})
        .to_string(),
    )
    .expect("write the file");
    let output = pair
        .client
        .cli(&["directory", "import", file.to_str().expect("a UTF-8 path")]);
    assert!(!output.status.success(), "the import was refused");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("audiences[1].idnumber"), "{stderr}");
    assert!(stderr.contains(&staff), "{stderr}");
    assert!(stderr.contains("`hq`"), "{stderr}");
    assert_eq!(pair.client_directory(), before, "nothing was written");

    // Its own export, read back, changes nothing and is not refused.
    let export = pair.client.dir().join("export.json");
    std::fs::write(&export, before.to_string()).expect("write the export");
    pair.client.cli_ok(&[
        "directory",
        "import",
        export.to_str().expect("a UTF-8 path"),
    ]);
    assert_eq!(pair.client_directory(), before);
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
"#;

const SERVER: &str = "5f3b0c9a1e2d4f6a8b7c0d1e2f3a4b5c6d7e8f90";

fn output(collections: Value) -> Value {
    json!({"summary": "x", "directory": {"connect_collections": {
        "server_idnumber": SERVER, "collections": collections}}})
}

async fn snapshot(host: &TestHost) -> DirectorySnapshot {
    host.state
        .store()
        .directory_snapshot()
        .await
        .expect("snapshot")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collections_sync_that_cannot_be_read_or_applied_whole_writes_nothing() {
    build_packages(&["gatehouse-connect"]);
    let host = TestHost::start(IN_PROCESS).await;
    let task = TaskId::plugin("user_collections", "hq");
    let sales =
        json!({"type": "cohort", "id": 3, "name": "Sales", "description": "", "members": []});
    apply_task_output(&host.state, &task, &output(json!([sales])), &quiet)
        .await
        .expect("the first sync");
    let before = snapshot(&host).await;
    assert_eq!(before.audiences.len(), 1);

    // A rename and a new course, then a row the host cannot read: nothing is applied.
    let renamed =
        json!({"type": "cohort", "id": 3, "name": "Sales EU", "description": "", "members": []});
    let course =
        json!({"type": "course", "id": 1, "name": "Onboarding", "description": "", "members": []});
    let bad = json!({"type": "group", "id": 4, "name": "?", "description": "", "members": []});
    let refused = apply_task_output(
        &host.state,
        &task,
        &output(json!([renamed.clone(), course.clone(), bad])),
        &quiet,
    )
    .await
    .expect_err("a malformed section");
    assert!(refused.contains("collections[2].type"), "{refused}");
    assert_eq!(snapshot(&host).await, before);

    // Planned with a rename and a new course; then another writer takes the course
    // audience's idnumber before the write: the apply fails on the unique key, after the
    // rename, and keeps nothing.
    let idnumber = format!("tc_course_1_{SERVER}");
    let state = host
        .state
        .store()
        .connect_collections_state(SyncSource {
            idp_id: "hq",
            server_idnumber: SERVER,
        })
        .await
        .expect("state");
    let plan = gatehouse::store::plan_collections_sync(
        &state,
        SyncSource {
            idp_id: "hq",
            server_idnumber: SERVER,
        },
        &[
            gatehouse::store::ServerCollection {
                kind: CollectionKind::Cohort,
                remote_id: 3,
                name: "Sales EU".into(),
                description: String::new(),
                members: vec![],
            },
            gatehouse::store::ServerCollection {
                kind: CollectionKind::Course,
                remote_id: 1,
                name: "Onboarding".into(),
                description: String::new(),
                members: vec![],
            },
        ],
    );
    host.state
        .store()
        .apply_batch(
            &Batch {
                changes: vec![Change::CreateAudience {
                    idnumber: idnumber.clone(),
                    name: "Taken meanwhile".into(),
                    description: String::new(),
                }],
            },
            WrittenBy::ADMIN_IMPORT,
            host.state.now(),
        )
        .await
        .expect("an administrator's audience");
    let taken = snapshot(&host).await;
    let failed = host
        .state
        .store()
        .apply_collections_plan(
            &plan,
            SyncSource {
                idp_id: "hq",
                server_idnumber: SERVER,
            },
            host.state.now(),
        )
        .await;
    assert!(failed.is_err(), "the course's audience could not be made");
    assert_eq!(
        snapshot(&host).await,
        taken,
        "the rename before it was not kept either"
    );

    // Planned again, the taken idnumber is skipped and named; the rename goes through.
    let recorded = apply_task_output(
        &host.state,
        &task,
        &output(json!([renamed, course])),
        &quiet,
    )
    .await
    .expect("the next sync")
    .expect("a summary");
    assert!(recorded.contains("1 collections skipped"), "{recorded}");
    assert!(recorded.contains(&idnumber), "{recorded}");
    let after = snapshot(&host).await;
    assert_eq!(
        after.audiences[&format!("tc_cohort_3_{SERVER}")].name,
        "Sales EU"
    );
    assert_eq!(after.audiences[&idnumber].name, "Taken meanwhile");
}
