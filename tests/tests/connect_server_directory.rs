//! What a Gatehouse Connect server shares from its directory, through a `gatehouse serve`
//! process: the directory imported with `gatehouse directory import`, clients stored beside
//! it, and every answer read from `POST /totara/connect/sep.php` as a client reads it.
//! `get_user_collections` (members without deleted users, within a client's restricting
//! audience), "add new courses / audiences" (an import's new collections reach the clients
//! that asked), `get_positions` / `get_organisations` (linked frameworks only, parents
//! first even after a move, types by idnumber; API v1 refused with the original's text),
//! and v2 user objects' `jobs` and `profile_fields` (present only when the client's options
//! say so, jobs naming the items `get_positions` sends). Shapes and texts from the protocol
//! notes §3.1, §5.4, §5.5, §8.1, §8.3.

use gatehouse::store::{ConnectClientOptions, NewConnectClient};
use gatehouse_tests::{
    build_packages,
    connect::SERVER_CONFIG,
    served::{ServedProcess, WebClient},
};
use serde_json::{Value, json};

const SERVER_IDNUMBER: &str = "0123456789abcdef0123456789abcdef01234567";

/// Users (dave is deleted by [`DELETE_DAVE`]), two audiences, a course and both hierarchies;
/// the position items listed children first, which the import puts in order.
const DIRECTORY: &str = r#"{
  "users": [
    {"username": "alice", "email": "alice@example.com", "firstname": "Alice", "lastname": "Ng",
     "fields": {"department": "Sales"},
     "jobs": [
       {"idnumber": "J-REP", "fullname": "Sales rep", "shortname": "rep",
        "position": "POS-REP", "organisation": "ORG-SALES", "startdate": 100, "enddate": 0},
       {"idnumber": "J-MENTOR", "fullname": "Mentor", "shortname": "mentor"}
     ]},
    {"username": "bob", "email": "bob@example.com", "firstname": "Bob", "lastname": "Li",
     "fields": {"department": "Ops"}},
    {"username": "carol", "email": "carol@example.com", "firstname": "Carol", "lastname": "Ade"},
    {"username": "dave", "email": "dave@example.com", "firstname": "Dave", "lastname": "Oh"}
  ],
  "audiences": [
    {"idnumber": "AUD-SALES", "name": "Sales", "description": "The sales team",
     "members": ["alice", "carol"]},
    {"idnumber": "AUD-OPS", "name": "Ops", "description": "",
     "members": ["bob", "carol", "dave"]}
  ],
  "courses": [
    {"shortname": "C-ONBOARD", "fullname": "Onboarding", "summary": "First week",
     "enrolled": ["alice", "bob", "dave"]}
  ],
  "position_frameworks": [
    {"idnumber": "PF-MAIN", "fullname": "Positions", "items": [
      {"idnumber": "POS-JUNIOR", "fullname": "Junior rep", "parent": "POS-REP", "type": "T-REP"},
      {"idnumber": "POS-REP", "fullname": "Rep", "parent": "POS-HEAD", "type": "T-REP"},
      {"idnumber": "POS-HEAD", "fullname": "Head of sales", "parent": null, "type": ""}
    ]},
    {"idnumber": "PF-OTHER", "fullname": "Other positions", "items": [
      {"idnumber": "POS-OTHER", "fullname": "Other", "parent": null, "type": ""}
    ]}
  ],
  "organisation_frameworks": [
    {"idnumber": "OF-MAIN", "fullname": "Organisations", "items": [
      {"idnumber": "ORG-SALES", "fullname": "Sales", "parent": null, "type": "T-DEPT"}
    ]}
  ]
}"#;

const DELETE_DAVE: &str = r#"{"users": [{"username": "dave", "deleted": true}]}"#;

/// The Connect server process, with its idnumber made.
async fn server() -> ServedProcess {
    build_packages(&["gatehouse"]);
    let server = ServedProcess::start("127.0.0.1", SERVER_CONFIG).await;
    server
        .store()
        .await
        .connect_server_idnumber(SERVER_IDNUMBER)
        .await
        .expect("server idnumber");
    server
}

fn import(server: &ServedProcess, name: &str, directory: &str) {
    let file = server.dir().join(format!("{name}.json"));
    std::fs::write(&file, directory).expect("write the directory file");
    server.cli_ok(&["directory", "import", file.to_str().expect("a UTF-8 path")]);
}

/// A registered client as the server knows it: what it presents to `sep.php`.
struct Client {
    server_secret: String,
}

/// Stores client `n` (1–9) with `options`, and tells the server it speaks `api_version`
/// (the client's handshake).
async fn client(
    server: &ServedProcess,
    n: u8,
    api_version: u8,
    options: ConnectClientOptions,
) -> Client {
    let digit = char::from(b'0' + n);
    let server_secret = format!("{}{digit}", "a".repeat(39));
    server
        .store()
        .await
        .insert_connect_client(
            &NewConnectClient {
                client_idnumber: format!("{}{digit}", "b".repeat(39)),
                client_secret: format!("{}{digit}", "c".repeat(39)),
                server_secret: server_secret.clone(),
                client_url: format!("http://127.0.0.1:{}", 9000 + u32::from(n)),
                client_name: format!("Client {n}"),
                client_comment: String::new(),
                options,
            },
            1,
        )
        .await
        .expect("client");
    let client = Client { server_secret };
    let version = api_version.to_string();
    let answer = sep(
        server,
        &client,
        "update_api_version",
        &[("apiversion", &version), ("clienttype", "totaralms")],
    )
    .await;
    assert_eq!(answer, json!({"status": "success", "data": []}));
    client
}

/// The JSend answer of `service` with `params`, called as `client`.
async fn sep(
    server: &ServedProcess,
    client: &Client,
    service: &str,
    params: &[(&str, &str)],
) -> Value {
    let mut form = vec![
        ("serveridnumber", SERVER_IDNUMBER),
        ("serversecret", client.server_secret.as_str()),
        ("service", service),
    ];
    form.extend_from_slice(params);
    let page = WebClient::new()
        .post_form(&server.url("/totara/connect/sep.php"), &form)
        .await;
    assert_eq!(page.status, 200, "{service}: {}", page.body);
    serde_json::from_str(&page.body).expect("a JSON answer")
}

/// The server's user ids by username (as `get_users` of an unrestricted client sends them).
async fn user_ids(server: &ServedProcess) -> std::collections::BTreeMap<String, String> {
    let store = server.store().await;
    let mut ids = std::collections::BTreeMap::new();
    for name in ["alice", "bob", "carol", "dave"] {
        if let Some(user) = store.user_by_username(name).await.expect("read") {
            ids.insert(name.to_owned(), user.id.to_string());
        }
    }
    ids
}

fn members(ids: &std::collections::BTreeMap<String, String>, names: &[&str]) -> Value {
    let mut found: Vec<i64> = names
        .iter()
        .map(|n| ids[*n].parse().expect("an id"))
        .collect();
    found.sort_unstable();
    Value::Array(
        found
            .into_iter()
            .map(|id| json!({"id": id.to_string()}))
            .collect(),
    )
}

/// `(idnumber or shortname, members)` of each collection of `kind` in a reply.
fn collections(reply: &Value, kind: &str) -> Vec<(String, Value)> {
    assert_eq!(reply["status"], "success", "{reply}");
    let key = if kind == "cohort" {
        "idnumber"
    } else {
        "shortname"
    };
    reply["data"][kind]
        .as_array()
        .unwrap_or_else(|| panic!("{kind} is a list: {reply}"))
        .iter()
        .map(|c| {
            (
                c[key].as_str().expect("a key").to_owned(),
                c["members"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn collections_carry_their_members_without_deleted_users_and_within_the_restriction() {
    let server = server().await;
    import(&server, "directory", DIRECTORY);
    let linked = || ConnectClientOptions {
        audiences: vec!["AUD-SALES".into(), "AUD-OPS".into()],
        courses: vec!["C-ONBOARD".into()],
        ..ConnectClientOptions::default()
    };
    let open = client(&server, 1, 2, linked()).await;
    let restricted = client(
        &server,
        2,
        1,
        ConnectClientOptions {
            restrict_audience: Some("AUD-SALES".into()),
            ..linked()
        },
    )
    .await;
    let unlinked = client(&server, 3, 2, ConnectClientOptions::default()).await;
    let ids = user_ids(&server).await;

    let reply = sep(&server, &open, "get_user_collections", &[]).await;
    assert_eq!(
        collections(&reply, "cohort"),
        [
            ("AUD-SALES".to_owned(), members(&ids, &["alice", "carol"])),
            (
                "AUD-OPS".to_owned(),
                members(&ids, &["bob", "carol", "dave"])
            ),
        ]
    );
    assert_eq!(
        collections(&reply, "course"),
        [(
            "C-ONBOARD".to_owned(),
            members(&ids, &["alice", "bob", "dave"])
        )]
    );
    let cohort = &reply["data"]["cohort"][0];
    assert_eq!(cohort["name"], "Sales");
    assert_eq!(cohort["description"], "The sales team");
    let course = &reply["data"]["course"][0];
    assert_eq!(course["fullname"], "Onboarding");
    assert_eq!(course["summary"], "First week");
    assert_eq!(course["category"], "1");

    // A client restricted to AUD-SALES (alice, carol) sees only those members, at API v1
    // too (collections have no version gate).
    let reply = sep(&server, &restricted, "get_user_collections", &[]).await;
    assert_eq!(
        collections(&reply, "cohort"),
        [
            ("AUD-SALES".to_owned(), members(&ids, &["alice", "carol"])),
            ("AUD-OPS".to_owned(), members(&ids, &["carol"])),
        ]
    );
    assert_eq!(
        collections(&reply, "course"),
        [("C-ONBOARD".to_owned(), members(&ids, &["alice"]))]
    );

    // Nothing linked: empty lists.
    assert_eq!(
        sep(&server, &unlinked, "get_user_collections", &[]).await,
        json!({"status": "success", "data": {"cohort": [], "course": []}})
    );

    // A deleted user is a member of nothing.
    import(&server, "delete-dave", DELETE_DAVE);
    let reply = sep(&server, &open, "get_user_collections", &[]).await;
    assert_eq!(
        collections(&reply, "cohort")[1],
        ("AUD-OPS".to_owned(), members(&ids, &["bob", "carol"]))
    );
    assert_eq!(
        collections(&reply, "course"),
        [("C-ONBOARD".to_owned(), members(&ids, &["alice", "bob"]))]
    );
}

#[tokio::test]
async fn an_import_links_new_courses_and_audiences_to_the_clients_that_add_new_ones() {
    let server = server().await;
    let adding = client(
        &server,
        1,
        2,
        ConnectClientOptions {
            add_new_audiences: true,
            add_new_courses: true,
            ..ConnectClientOptions::default()
        },
    )
    .await;
    let audiences_only = client(
        &server,
        2,
        2,
        ConnectClientOptions {
            add_new_audiences: true,
            ..ConnectClientOptions::default()
        },
    )
    .await;
    let neither = client(&server, 3, 2, ConnectClientOptions::default()).await;

    import(&server, "directory", DIRECTORY);
    let ids = user_ids(&server).await;
    let reply = sep(&server, &adding, "get_user_collections", &[]).await;
    assert_eq!(
        collections(&reply, "cohort"),
        [
            ("AUD-SALES".to_owned(), members(&ids, &["alice", "carol"])),
            (
                "AUD-OPS".to_owned(),
                members(&ids, &["bob", "carol", "dave"])
            ),
        ]
    );
    assert_eq!(
        collections(&reply, "course"),
        [(
            "C-ONBOARD".to_owned(),
            members(&ids, &["alice", "bob", "dave"])
        )]
    );
    let reply = sep(&server, &audiences_only, "get_user_collections", &[]).await;
    assert_eq!(collections(&reply, "cohort").len(), 2);
    assert!(collections(&reply, "course").is_empty());
    assert_eq!(
        sep(&server, &neither, "get_user_collections", &[]).await,
        json!({"status": "success", "data": {"cohort": [], "course": []}})
    );

    // Importing the same file again creates nothing, so links nothing twice; a course
    // created later is added as well.
    import(&server, "again", DIRECTORY);
    import(
        &server,
        "later",
        r#"{"courses": [{"shortname": "C-LATER", "fullname": "Later", "summary": ""}]}"#,
    );
    let reply = sep(&server, &adding, "get_user_collections", &[]).await;
    let courses: Vec<String> = collections(&reply, "course")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(courses, ["C-ONBOARD", "C-LATER"]);
    assert_eq!(collections(&reply, "cohort").len(), 2);
}

/// `(idnumber, parent's idnumber, depthlevel, typeidnumber)` of each item of a hierarchy
/// reply, in the order sent; each parent must come before its children.
fn items(reply: &Value, key: &str) -> Vec<(String, Option<String>, String, Value)> {
    assert_eq!(reply["status"], "success", "{reply}");
    let list = reply["data"][key].as_array().expect("a list of items");
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut out = Vec::new();
    for item in list {
        let id = item["id"].as_str().expect("a string id").to_owned();
        let idnumber = item["idnumber"].as_str().expect("idnumber").to_owned();
        let parent = item["parentid"].as_str().expect("a string parentid");
        let parent = (parent != "0").then(|| {
            seen.iter()
                .find(|(seen_id, _)| seen_id == parent)
                .unwrap_or_else(|| panic!("{idnumber} came before its parent: {reply}"))
                .1
                .clone()
        });
        assert_eq!(item["custom_fields"], json!([]));
        out.push((
            idnumber.clone(),
            parent,
            item["depthlevel"].as_str().expect("depthlevel").to_owned(),
            item["typeidnumber"].clone(),
        ));
        seen.push((id, idnumber));
    }
    out
}

fn item(
    idnumber: &str,
    parent: Option<&str>,
    depth: &str,
    type_idnumber: Value,
) -> (String, Option<String>, String, Value) {
    (
        idnumber.to_owned(),
        parent.map(str::to_owned),
        depth.to_owned(),
        type_idnumber,
    )
}

#[tokio::test]
async fn positions_and_organisations_come_parents_first_with_types_and_v1_is_refused() {
    let server = server().await;
    import(&server, "directory", DIRECTORY);
    let options = || ConnectClientOptions {
        position_frameworks: vec!["PF-MAIN".into()],
        organisation_frameworks: vec!["OF-MAIN".into()],
        ..ConnectClientOptions::default()
    };
    let v2 = client(&server, 1, 2, options()).await;
    let v1 = client(&server, 2, 1, options()).await;

    let reply = sep(&server, &v2, "get_positions", &[]).await;
    let frameworks: Vec<&str> = reply["data"]["frameworks"]
        .as_array()
        .expect("frameworks")
        .iter()
        .map(|f| f["idnumber"].as_str().expect("idnumber"))
        .collect();
    assert_eq!(frameworks, ["PF-MAIN"], "PF-OTHER is not linked");
    assert_eq!(reply["data"]["frameworks"][0]["fullname"], "Positions");
    assert_eq!(
        items(&reply, "positions"),
        [
            item("POS-HEAD", None, "1", Value::Null),
            item("POS-REP", Some("POS-HEAD"), "2", json!("T-REP")),
            item("POS-JUNIOR", Some("POS-REP"), "3", json!("T-REP")),
        ]
    );
    assert!(reply["data"].get("organisations").is_none());

    let reply = sep(&server, &v2, "get_organisations", &[]).await;
    assert_eq!(reply["data"]["frameworks"][0]["idnumber"], "OF-MAIN");
    assert_eq!(
        items(&reply, "organisations"),
        [item("ORG-SALES", None, "1", json!("T-DEPT"))]
    );

    // A moved item: POS-HEAD goes under a new top item, made after it (a higher id); the
    // new parent still comes first.
    import(
        &server,
        "moved",
        r#"{"position_frameworks": [{"idnumber": "PF-MAIN", "fullname": "Positions", "items": [
          {"idnumber": "POS-CEO", "fullname": "Chief", "parent": null, "type": ""},
          {"idnumber": "POS-HEAD", "fullname": "Head of sales", "parent": "POS-CEO", "type": ""},
          {"idnumber": "POS-REP", "fullname": "Rep", "parent": "POS-HEAD", "type": "T-REP"},
          {"idnumber": "POS-JUNIOR", "fullname": "Junior rep", "parent": "POS-REP", "type": "T-REP"}
        ]}]}"#,
    );
    let reply = sep(&server, &v2, "get_positions", &[]).await;
    assert_eq!(
        items(&reply, "positions"),
        [
            item("POS-CEO", None, "1", Value::Null),
            item("POS-HEAD", Some("POS-CEO"), "2", Value::Null),
            item("POS-REP", Some("POS-HEAD"), "3", json!("T-REP")),
            item("POS-JUNIOR", Some("POS-REP"), "4", json!("T-REP")),
        ]
    );

    // API v1: the original's error, word for word, for both services.
    assert_eq!(
        sep(&server, &v1, "get_positions", &[]).await,
        json!({"status": "error", "message": "get_positions not available in api version 1"})
    );
    assert_eq!(
        sep(&server, &v1, "get_organisations", &[]).await,
        json!({"status": "error", "message": "get_organisations not available in api version 1"})
    );
}

/// The user `username` in a `get_users` reply.
fn user<'a>(reply: &'a Value, username: &str) -> &'a Value {
    reply["data"]["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["username"] == username)
        .unwrap_or_else(|| panic!("{username} not in {reply}"))
}

#[tokio::test]
async fn jobs_and_profile_fields_are_sent_only_when_the_client_asks() {
    let server = server().await;
    import(&server, "directory", DIRECTORY);
    import(&server, "delete-dave", DELETE_DAVE);
    let both = || ConnectClientOptions {
        sync_jobs: true,
        sync_profile_fields: true,
        position_frameworks: vec!["PF-MAIN".into()],
        organisation_frameworks: vec!["OF-MAIN".into()],
        ..ConnectClientOptions::default()
    };
    let asking = client(&server, 1, 2, both()).await;
    let not_asking = client(&server, 2, 2, ConnectClientOptions::default()).await;
    let jobs_only = client(
        &server,
        3,
        2,
        ConnectClientOptions {
            sync_profile_fields: false,
            ..both()
        },
    )
    .await;
    let v1 = client(&server, 4, 1, both()).await;

    let reply = sep(&server, &asking, "get_users", &[]).await;
    let alice = user(&reply, "alice");
    assert_eq!(
        alice["profile_fields"],
        json!([{"shortname": "department", "datatype": "text", "data": "Sales"}])
    );
    // The server's item ids, as get_positions and get_organisations send them.
    let id_of = |reply: &Value, key: &str, idnumber: &str| -> Value {
        reply["data"][key]
            .as_array()
            .expect("items")
            .iter()
            .find(|i| i["idnumber"] == idnumber)
            .map(|i| i["id"].clone())
            .unwrap_or_else(|| panic!("{idnumber} not in {reply}"))
    };
    let positions = sep(&server, &asking, "get_positions", &[]).await;
    let organisations = sep(&server, &asking, "get_organisations", &[]).await;
    let jobs = alice["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0]["idnumber"], "J-REP");
    assert_eq!(jobs[0]["fullname"], "Sales rep");
    assert_eq!(jobs[0]["shortname"], "rep");
    assert_eq!(jobs[0]["startdate"], "100");
    assert_eq!(jobs[0]["sortorder"], "1");
    assert_eq!(
        jobs[0]["positionid"],
        id_of(&positions, "positions", "POS-REP")
    );
    assert_eq!(
        jobs[0]["organisationid"],
        id_of(&organisations, "organisations", "ORG-SALES")
    );
    assert_eq!(jobs[1]["idnumber"], "J-MENTOR");
    assert_eq!(jobs[1]["sortorder"], "2");
    assert_eq!(jobs[1]["positionid"], Value::Null);
    assert!(jobs[0].get("userid").is_none() && jobs[0].get("managerjaid").is_none());
    // bob has a field and no jobs; carol neither.
    assert_eq!(user(&reply, "bob")["jobs"], json!([]));
    assert_eq!(user(&reply, "carol")["profile_fields"], json!([]));
    // The deleted user carries neither key.
    let dave = reply["data"]["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["deleted"] == "1")
        .expect("dave's tombstone");
    assert!(dave.get("jobs").is_none() && dave.get("profile_fields").is_none());

    // Options off: null; one on, one off: each as set.
    let reply = sep(&server, &not_asking, "get_users", &[]).await;
    assert_eq!(user(&reply, "alice")["jobs"], Value::Null);
    assert_eq!(user(&reply, "alice")["profile_fields"], Value::Null);
    let reply = sep(&server, &jobs_only, "get_users", &[]).await;
    assert_eq!(
        user(&reply, "alice")["jobs"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(user(&reply, "alice")["profile_fields"], Value::Null);
    // API v1: neither key, whatever the options.
    let reply = sep(&server, &v1, "get_users", &[]).await;
    assert!(user(&reply, "alice").get("jobs").is_none());
    assert!(user(&reply, "alice").get("profile_fields").is_none());

    // get_user (the SSO form) carries them too.
    let alice_id = user_ids(&server).await["alice"].clone();
    let reply = sep(&server, &asking, "get_user", &[("userid", &alice_id)]).await;
    assert_eq!(
        reply["data"]["user"]["jobs"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(reply["data"]["user"]["profile_fields"][0]["data"], "Sales");
}
