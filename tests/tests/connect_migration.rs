//! Migration of pre-existing local accounts (`migrate_users`, `migrate_map`, reference §4.3)
//! between two `gatehouse serve` processes on loopback: `gatehouse connect
//! migration-preview` lists the takeovers and the server users whose mapping value is
//! missing, invalid or matches several local accounts, and writes nothing; the users sync
//! takes over local accounts by email, idnumber and uniqueid (refusing an ambiguous match);
//! single sign-on lands in the migrated account, and takes one over by username before any
//! sync; the client's administrator is never taken over.

use gatehouse_tests::{
    connect::{ClientSetup, ConnectPair, signed_in_user},
    served::WebClient,
};
use serde_json::{Value, json};

/// The server's users: alice and bob with an email and idnumber, carol with neither, dave
/// with an email the server takes but that is not an address by Totara's `validate_email`
/// (no dot after the `@`), and the server's own `admin`, without an email.
const DIRECTORY: &str = r#"{
  "users": [
    {"username": "alice", "email": "alice@example.test", "idnumber": "E-ALICE",
     "firstname": "Alice", "lastname": "Ng", "password": "alice-password-1"},
    {"username": "bob", "email": "bob@example.test", "idnumber": "E-BOB",
     "firstname": "Bob", "lastname": "Lee", "password": "bob-password-1"},
    {"username": "carol", "firstname": "Carol", "lastname": "Fox",
     "password": "carol-password-1"},
    {"username": "dave", "email": "dave@localhost", "firstname": "Dave", "lastname": "Oz",
     "password": "dave-password-1"}
  ]
}"#;

/// The client's local accounts, made before the client syncs: alice's by her email, bob's
/// twice (two local accounts with his email and idnumber).
const LOCAL_ACCOUNTS: &str = r#"{
  "users": [
    {"username": "alice.local", "email": "alice@example.test", "idnumber": "E-ALICE",
     "firstname": "Al", "lastname": "Local", "password": "local-password-1"},
    {"username": "bob1", "email": "bob@example.test", "idnumber": "E-BOB",
     "firstname": "Bob", "lastname": "One", "password": "local-password-1"},
    {"username": "bob2", "email": "bob@example.test", "idnumber": "E-BOB",
     "firstname": "Bob", "lastname": "Two", "password": "local-password-1"}
  ]
}"#;

async fn pair_migrating_by(map: &str, local_accounts: &str) -> ConnectPair {
    // Email is the users' own to edit unless `[registration]` says otherwise, and `gatehouse
    // check` refuses to migrate by a field users can change (the settings end the file, so
    // a table after them is the file's own).
    let settings = format!(
        "migrate_users = true\nmigrate_map = \"{map}\"\n\n[registration]\nuser_editable_core = [\"firstname\", \"lastname\"]"
    );
    let pair = ConnectPair::start(
        &ClientSetup {
            settings: &settings,
            ..ClientSetup::default()
        },
        DIRECTORY,
        &[],
    )
    .await;
    pair.import_on_client(local_accounts);
    pair
}

fn preview(pair: &ConnectPair) -> Value {
    serde_json::from_str(&pair.client.cli_ok(&[
        "connect",
        "migration-preview",
        "--idp",
        "hq",
        "--format",
        "json",
    ]))
    .expect("the preview prints JSON")
}

/// The client's users by username.
fn users(pair: &ConnectPair) -> std::collections::BTreeMap<String, Value> {
    pair.client_directory()["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| {
            (
                u["username"].as_str().expect("username").to_owned(),
                u.clone(),
            )
        })
        .collect()
}

/// The `tc_` accounts the client has, by email.
fn tc_emails(pair: &ConnectPair) -> Vec<String> {
    users(pair)
        .values()
        .filter(|u| u["username"].as_str().is_some_and(|n| n.starts_with("tc_")))
        .map(|u| u["email"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn server_names(list: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|u| u["server_username"].as_str().expect("server_username"))
        .collect();
    names.sort_unstable();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_lists_what_migration_by_email_would_do_and_writes_nothing_then_the_sync_does_it()
 {
    let pair = pair_migrating_by("email", LOCAL_ACCOUNTS).await;
    let before = pair.client_directory();

    let shown = preview(&pair);
    assert_eq!(shown["migrate_map"], "email");
    assert_eq!(shown["migrate_users"], true);
    let takeovers = shown["takeovers"].as_array().expect("takeovers");
    assert_eq!(takeovers.len(), 1, "{shown}");
    assert_eq!(takeovers[0]["server_username"], "alice");
    assert_eq!(takeovers[0]["local_username"], "alice.local");
    assert!(
        takeovers[0]["server_user_id"]
            .as_i64()
            .is_some_and(|id| id > 0)
    );
    assert_eq!(
        server_names(&shown["missing"]),
        ["admin", "carol"],
        "{shown}"
    );
    assert_eq!(server_names(&shown["invalid"]), ["dave"], "{shown}");
    let ambiguous = shown["ambiguous"].as_array().expect("ambiguous");
    assert_eq!(ambiguous.len(), 1, "{shown}");
    assert_eq!(ambiguous[0]["server_username"], "bob");
    assert_eq!(ambiguous[0]["local_usernames"], json!(["bob1", "bob2"]));

    // Nothing written: the directory is as it was, and a second preview finds the same
    // (a link written by the first would have removed alice's takeover).
    assert_eq!(
        pair.client_directory(),
        before,
        "the preview wrote to the directory"
    );
    assert_eq!(preview(&pair), shown);
    let human = pair
        .client
        .cli_ok(&["connect", "migration-preview", "--idp", "hq"]);
    assert!(
        human.contains("alice.local <- alice (server user"),
        "{human}"
    );
    assert!(
        human.contains("bob (server user") && human.contains("bob1, bob2"),
        "{human}"
    );

    // The sync does what the preview said: alice.local taken over and updated, bob refused
    // (no account made for him), the rest created as tc_ accounts.
    let run = pair.run_client_task("users");
    assert!(run.contains("migrated 1"), "{run}");
    assert!(run.contains("1 not migrated"), "{run}");
    let after = users(&pair);
    assert_eq!(
        after["alice.local"]["firstname"], "Alice",
        "{:?}",
        after["alice.local"]
    );
    assert_eq!(after["alice.local"]["lastname"], "Ng");
    assert_eq!(after["bob1"]["lastname"], "One");
    assert_eq!(after["bob2"]["lastname"], "Two");
    let mut created = tc_emails(&pair);
    created.sort();
    assert_eq!(created, ["", "", "dave@localhost"], "admin, carol and dave");
    let again = preview(&pair);
    assert_eq!(
        again["takeovers"],
        json!([]),
        "alice is linked now: {again}"
    );
    assert_eq!(server_names(&again["ambiguous"]), ["bob"]);
    let second = pair.run_client_task("users");
    assert!(
        second.contains("created 0, updated 0, suspended 0, deleted 0, unchanged 4"),
        "{second}"
    );

    // Single sign-on lands in the migrated account, not in a new tc_ one.
    let browser = WebClient::new();
    pair.sign_in(&browser, "alice", "alice-password-1").await;
    assert_eq!(
        signed_in_user(&browser, &pair.client).await.as_deref(),
        Some("alice.local")
    );
    // A taken-over account signs in only through the server ("Totara Connect accounts can
    // log in only via single sign-on"): its old local password no longer opens it, while
    // an account nobody took over still signs in with its own.
    assert_eq!(
        local_password_sign_in(&pair, "alice.local", "local-password-1").await,
        403
    );
    assert_eq!(
        local_password_sign_in(&pair, "bob1", "local-password-1").await,
        303
    );
    // bob's sign-in is refused while two local accounts match him.
    let bob = WebClient::new();
    let chain = pair.sign_in(&bob, "bob", "bob-password-1").await;
    assert_eq!(chain.last().expect("a page").status, 403, "{chain:?}");
    assert_eq!(signed_in_user(&bob, &pair.client).await, None);
    assert!(!tc_emails(&pair).contains(&"bob@example.test".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_sync_takes_over_local_accounts_by_idnumber() {
    let pair = pair_migrating_by(
        "idnumber",
        r#"{"users": [
            {"username": "a.ng", "idnumber": "E-ALICE", "firstname": "A", "lastname": "Ng",
             "password": "local-password-1"},
            {"username": "b.lee", "idnumber": "E-BOB", "firstname": "B", "lastname": "Lee",
             "password": "local-password-1"}
        ]}"#,
    )
    .await;
    let run = pair.run_client_task("users");
    assert!(run.contains("migrated 2"), "{run}");
    let after = users(&pair);
    assert_eq!(after["a.ng"]["email"], "alice@example.test");
    assert_eq!(after["b.lee"]["email"], "bob@example.test");
    assert!(!tc_emails(&pair).contains(&"alice@example.test".to_owned()));
    let browser = WebClient::new();
    pair.sign_in(&browser, "bob", "bob-password-1").await;
    assert_eq!(
        signed_in_user(&browser, &pair.client).await.as_deref(),
        Some("b.lee")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_sync_takes_over_a_local_account_by_uniqueid() {
    let pair = pair_migrating_by("uniqueid", r#"{"users": []}"#).await;
    let servers: Value = serde_json::from_str(
        &pair
            .client
            .cli_ok(&["connect", "servers", "--format", "json"]),
    )
    .expect("JSON");
    let server_idnumber = servers["servers"][0]["server_idnumber"]
        .as_str()
        .expect("registered")
        .to_owned();
    let alice_id = pair
        .server
        .store()
        .await
        .user_by_username("alice")
        .await
        .expect("reads")
        .expect("alice")
        .id;
    let unique = format!("tc_{alice_id}_{server_idnumber}");
    pair.import_on_client(
        &json!({"users": [{"username": unique, "firstname": "Was", "lastname": "Here",
            "password": "local-password-1"}]})
        .to_string(),
    );
    let shown = preview(&pair);
    assert_eq!(
        shown["takeovers"][0]["local_username"],
        unique.as_str(),
        "{shown}"
    );
    let run = pair.run_client_task("users");
    assert!(run.contains("migrated 1"), "{run}");
    assert_eq!(users(&pair)[&unique]["firstname"], "Alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sign_on_takes_over_by_username_before_any_sync_and_never_the_admin() {
    let pair = pair_migrating_by(
        "username",
        r#"{"users": [{"username": "carol", "firstname": "Local", "lastname": "Carol",
            "password": "local-password-1"}]}"#,
    )
    .await;
    let browser = WebClient::new();
    pair.sign_in(&browser, "carol", "carol-password-1").await;
    assert_eq!(
        signed_in_user(&browser, &pair.client).await.as_deref(),
        Some("carol"),
        "client log:\n{}",
        pair.client.log()
    );
    assert_eq!(
        users(&pair)["carol"]["lastname"],
        "Fox",
        "updated at sign-in"
    );

    // The sync finds carol linked already; the server's admin does not take the client's.
    let run = pair.run_client_task("users");
    assert!(!run.contains("migrated"), "{run}");
    let after = users(&pair);
    let admins_made: Vec<&Value> = after
        .values()
        .filter(|u| {
            u["username"].as_str().is_some_and(|n| n.starts_with("tc_"))
                && u["lastname"] == "Administrator"
        })
        .collect();
    assert_eq!(
        admins_made.len(),
        1,
        "the server's admin got a tc_ account: {after:?}"
    );
    assert!(
        !after.values().any(
            |u| u["username"].as_str().is_some_and(|n| n.starts_with("tc_"))
                && u["lastname"] == "Fox"
        ),
        "no tc_ account for carol: {after:?}"
    );
    // Signing in again lands in the same account (found by its link).
    let again = WebClient::new();
    pair.sign_in(&again, "carol", "carol-password-1").await;
    assert_eq!(
        signed_in_user(&again, &pair.client).await.as_deref(),
        Some("carol")
    );
}

/// A password sign-in at the client's own form (`?nosso=1`) in a fresh browser: the status
/// of the answer to the POST (303 signed in, 403 refused).
async fn local_password_sign_in(pair: &ConnectPair, username: &str, password: &str) -> u16 {
    let browser = WebClient::new();
    let form = browser.get(&pair.client.url("/login?nosso=1")).await;
    let csrf = gatehouse_tests::connect::hidden_field(&form.body, "csrf").expect("the form's CSRF");
    browser
        .post_form(
            &pair.client.url("/login?nosso=1"),
            &[
                ("csrf", csrf.as_str()),
                ("username", username),
                ("password", password),
                ("return_to", "/"),
            ],
        )
        .await
        .status
}
