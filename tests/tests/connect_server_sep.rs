//! The Connect server's `POST /totara/connect/sep.php` through the real router: every bad
//! input (missing or malformed fields, a secret of the wrong length or alphabet, a wrong
//! secret or idnumber, a disabled server, an inactive client, an unknown service or
//! component, GET, a query string, another content type, an oversized body) gets the
//! documented JSend reply and writes nothing; and each service's effect on the store
//! (`update_api_version`, `get_users` with tombstones and restriction, `get_user`,
//! `get_sso_user` single use and its terminations on the host clock, `force_sso_logout`,
//! `delete_client`). Expected texts are the protocol notes' (§1.4, §3.1, §4.1, §4.4).

use std::time::Duration;

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use gatehouse::store::{
    Batch, Change, ConnectClient, ConnectClientOptions, DirectoryUser, NewConnectClient, Session,
    WrittenBy,
};
use gatehouse_tests::{EXAMPLE_CONFIG, Page, TestHost};
use serde_json::{Value, json};

const SEP: &str = "/totara/connect/sep.php";
const SERVER_IDNUMBER: &str = "0123456789abcdef0123456789abcdef01234567";
const SERVER_SECRET: &str = "89abcdef0123456789abcdef0123456789abcdef";
const SSO_TOKEN: &str = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
const SESSION_KEY: &str = "connect-test-session";

fn config(enabled: bool) -> String {
    format!(
        "{EXAMPLE_CONFIG}\n[[field]]\nname = \"department\"\n\n[connect_server]\nenabled = {enabled}\n"
    )
}

/// A host with a server idnumber, one active client (id returned) and one deleted client
/// whose secret is `deleted_secret()`, alice (member of AUD-1) and bob.
async fn start(enabled: bool) -> (TestHost, i64) {
    let host = TestHost::start(&config(enabled)).await;
    host.store
        .connect_server_idnumber(SERVER_IDNUMBER)
        .await
        .expect("idnumber");
    let users = ["alice", "bob"].map(|name| {
        Change::CreateUser(DirectoryUser {
            username: name.into(),
            email: format!("{name}@example.test"),
            firstname: name.into(),
            password_hash: Some(format!("$argon2id$hash-of-{name}")),
            fields: [("department".to_owned(), format!("dept-{name}"))].into(),
            ..DirectoryUser::default()
        })
    });
    let mut changes = users.to_vec();
    changes.extend([
        Change::CreateAudience {
            idnumber: "AUD-1".into(),
            name: "Sales".into(),
            description: String::new(),
        },
        Change::AddMember {
            audience: "AUD-1".into(),
            username: "alice".into(),
        },
    ]);
    host.store
        .apply_batch(&Batch { changes }, WrittenBy::ADMIN_IMPORT, 1)
        .await
        .expect("directory");
    let id = host
        .store
        .insert_connect_client(&client("http://127.0.0.1:9", 'c', SERVER_SECRET), 1)
        .await
        .expect("client");
    let gone = host
        .store
        .insert_connect_client(&client("http://127.0.0.1:10", 'd', &deleted_secret()), 1)
        .await
        .expect("deleted client");
    host.store
        .mark_connect_client_deleted(gone, 1)
        .await
        .expect("delete");
    (host, id)
}

fn deleted_secret() -> String {
    "7".repeat(40)
}

fn client(url: &str, idnumber: char, server_secret: &str) -> NewConnectClient {
    NewConnectClient {
        client_idnumber: idnumber.to_string().repeat(40),
        client_secret: "1".repeat(40),
        server_secret: server_secret.to_owned(),
        client_url: url.to_owned(),
        client_name: "LMS".into(),
        client_comment: String::new(),
        options: ConnectClientOptions::default(),
    }
}

/// The form of a call with the right credentials, the service and `extra`.
fn call<'a>(service: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("serveridnumber", SERVER_IDNUMBER),
        ("serversecret", SERVER_SECRET),
        ("service", service),
    ];
    form.extend_from_slice(extra);
    form
}

async fn post(host: &TestHost, domain_host: &str, form: &[(&str, &str)]) -> Page {
    host.browser(domain_host).post_form(SEP, form).await
}

fn reply(page: &Page) -> Value {
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert_eq!(
        page.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/json; charset=utf-8")
    );
    page.json()
}

fn error(message: &str) -> Value {
    json!({"status": "error", "message": message})
}

fn fail(key: &str, message: &str) -> Value {
    json!({"status": "fail", "data": {key: message}})
}

/// Everything a SEP call may change: the clients (all columns), the SSO session and the
/// Gatehouse session behind it, and the users.
async fn written(host: &TestHost) -> (Vec<ConnectClient>, String) {
    let clients = host.store.connect_clients().await.expect("clients");
    let sso = host
        .store
        .connect_sso_sessions_of_session(SESSION_KEY)
        .await
        .expect("sso");
    let session = host
        .store
        .session(SESSION_KEY, host.state.now())
        .await
        .expect("session");
    let users = host
        .store
        .connect_visible_users(None, true)
        .await
        .expect("users");
    let mut sso_rows = Vec::new();
    for (client, _) in &sso {
        sso_rows.push(
            host.store
                .connect_sso_session_by_token(client.id, SSO_TOKEN)
                .await
                .expect("sso row"),
        );
    }
    (
        clients,
        format!("{sso_rows:?} {session:?} {users:?} {}", sso.len()),
    )
}

/// alice signed in (session `SESSION_KEY`, live for an hour) with an SSO session at the
/// client.
async fn signed_in_with_sso(host: &TestHost, client_id: i64) -> i64 {
    let alice = host
        .store
        .user_by_username("alice")
        .await
        .expect("read")
        .expect("alice")
        .id;
    let now = host.state.now();
    host.store
        .create_session(&Session {
            id_hash: SESSION_KEY.into(),
            user_id: alice,
            domain: "root".into(),
            idp_id: None,
            subject: None,
            logout_state: Vec::new(),
            csrf_token: "csrf".into(),
            created_at: now,
            expires_at: now + 3600,
        })
        .await
        .expect("session");
    host.store
        .create_connect_sso_session(client_id, alice, SESSION_KEY, SSO_TOKEN, now)
        .await
        .expect("sso");
    alice
}

#[tokio::test]
async fn every_bad_input_gets_its_documented_reply_and_writes_nothing() {
    let (host, client_id) = start(true).await;
    signed_in_with_sso(&host, client_id).await;
    let before = written(&host).await;
    let wrong_length = &SERVER_SECRET[..39];
    let wrong_alphabet = format!("{}!", &SERVER_SECRET[..39]);
    let upper = SERVER_SECRET.to_uppercase();
    let other = "f".repeat(40);
    let deleted = deleted_secret();
    let short_token = &SSO_TOKEN[..39];
    let long_token = format!("{SSO_TOKEN}e");
    let unknown_token = "a".repeat(40);
    let mut cases: Vec<(Vec<(&str, &str)>, Value)> = vec![
        // §1.4 step 1: empty (or "0") envelope fields.
        (vec![], error("invalid parameters")),
        (
            vec![
                ("serveridnumber", SERVER_IDNUMBER),
                ("service", "get_users"),
            ],
            error("invalid parameters"),
        ),
        (
            vec![("serversecret", SERVER_SECRET), ("service", "get_users")],
            error("invalid parameters"),
        ),
        (
            vec![
                ("serveridnumber", SERVER_IDNUMBER),
                ("serversecret", SERVER_SECRET),
            ],
            error("invalid parameters"),
        ),
        (
            vec![
                ("serveridnumber", SERVER_IDNUMBER),
                ("serversecret", "0"),
                ("service", "get_users"),
            ],
            error("invalid parameters"),
        ),
        // Step 3: the secret's length, alphabet or value, or another idnumber.
        (
            vec![
                ("serveridnumber", SERVER_IDNUMBER),
                ("serversecret", wrong_length),
                ("service", "delete_client"),
            ],
            error("invalid server secret or idnumber"),
        ),
        (
            vec![
                ("serveridnumber", SERVER_IDNUMBER),
                ("serversecret", &wrong_alphabet),
                ("service", "delete_client"),
            ],
            error("invalid server secret or idnumber"),
        ),
        (
            vec![
                ("serveridnumber", SERVER_IDNUMBER),
                ("serversecret", &upper),
                ("service", "delete_client"),
            ],
            error("invalid server secret or idnumber"),
        ),
        (
            vec![
                ("serveridnumber", SERVER_IDNUMBER),
                ("serversecret", &other),
                ("service", "delete_client"),
            ],
            error("invalid server secret or idnumber"),
        ),
        (
            vec![
                ("serveridnumber", &other),
                ("serversecret", SERVER_SECRET),
                ("service", "delete_client"),
            ],
            error("invalid server secret or idnumber"),
        ),
        // Step 5: a deleted client.
        (
            vec![
                ("serveridnumber", SERVER_IDNUMBER),
                ("serversecret", &deleted),
                ("service", "delete_client"),
            ],
            error("connect client is not active"),
        ),
        // Steps 7–8.
        (
            call("delete_client", &[("component", "mod_forum")]),
            error("invalid server service component: mod_forum"),
        ),
        (
            call("drop_tables", &[]),
            error("invalid server service name: drop_tables"),
        ),
        // Each service's parameters.
        (
            call("get_api_version", &[]),
            fail("clienttype", "incorrect or missing clienttype name"),
        ),
        (
            call("update_api_version", &[("clienttype", "totaralms")]),
            fail("apiversion", "missing api version number"),
        ),
        (
            call(
                "update_api_version",
                &[("apiversion", "2.0"), ("clienttype", "totaralms")],
            ),
            fail("apiversion", "missing api version number"),
        ),
        (
            call(
                "update_api_version",
                &[("apiversion", "3"), ("clienttype", "totaralms")],
            ),
            fail("apiversion", "unsupported api version number"),
        ),
        (
            call(
                "update_api_version",
                &[("apiversion", "2"), ("clienttype", "moodle")],
            ),
            fail("clienttype", "incorrect or missing clienttype name"),
        ),
        (
            call("get_user", &[]),
            fail("if", "missing server user id number"),
        ),
        (
            call("get_user", &[("userid", "one")]),
            fail("if", "missing server user id number"),
        ),
        (
            call("get_sso_user", &[]),
            fail("ssotoken", "missing sso token"),
        ),
        (
            call("get_sso_user", &[("ssotoken", short_token)]),
            fail("ssotoken", "invalid sso token format"),
        ),
        (
            call("get_sso_user", &[("ssotoken", &long_token)]),
            fail("ssotoken", "invalid sso token format"),
        ),
        (
            call("get_sso_user", &[("ssotoken", &unknown_token)]),
            fail("ssotoken", "invalid sso token"),
        ),
        (
            call("force_sso_logout", &[]),
            fail("ssotoken", "missing sso token"),
        ),
        (
            call("force_sso_logout", &[("ssotoken", short_token)]),
            fail("ssotoken", "invalid sso token format"),
        ),
        // An unknown token is a success that ends nothing.
        (
            call("force_sso_logout", &[("ssotoken", &unknown_token)]),
            json!({"status": "success", "data": []}),
        ),
        (
            call("get_positions", &[]),
            error("get_positions not available in api version 1"),
        ),
        (
            call("get_organisations", &[]),
            error("get_organisations not available in api version 1"),
        ),
    ];
    // The reads answer too, and write nothing either.
    cases.push((
        call("get_api_version", &[("clienttype", "totaralms")]),
        json!({"status": "success", "data": {"minapiversion": 1, "maxapiversion": 2}}),
    ));
    cases.push((
        call("get_user_collections", &[]),
        json!({"status": "success", "data": {"cohort": [], "course": []}}),
    ));
    for (form, expected) in &cases {
        let page = post(&host, "localhost", form).await;
        assert_eq!(&reply(&page), expected, "{form:?}");
        assert_eq!(written(&host).await, before, "{form:?} wrote something");
    }
}

#[tokio::test]
async fn only_a_form_posted_body_is_read() {
    let (host, _) = start(true).await;
    let before = written(&host).await;
    let query = format!(
        "{SEP}?serveridnumber={SERVER_IDNUMBER}&serversecret={SERVER_SECRET}&service=delete_client"
    );
    let mut browser = host.browser("localhost");
    // GET, even with every field in the query.
    assert_eq!(
        reply(&browser.get(&query).await),
        error("invalid parameters")
    );
    // POST with the fields in the query string and none in the body.
    assert_eq!(
        reply(&browser.post_form(&query, &[]).await),
        error("invalid parameters")
    );
    // A JSON body is not a form.
    let body = json!({
        "serveridnumber": SERVER_IDNUMBER,
        "serversecret": SERVER_SECRET,
        "service": "delete_client",
    });
    let request = Request::builder()
        .method("POST")
        .uri(SEP)
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    assert_eq!(
        reply(&browser.send(request).await),
        error("invalid parameters")
    );
    // An oversized body is refused before it is read.
    let padding = "x".repeat(70 * 1024);
    let mut form = call("delete_client", &[]);
    form.push(("padding", &padding));
    let page = post(&host, "localhost", &form).await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE, "{page:?}");
    assert_eq!(page.json()["status"], "error");
    assert_eq!(written(&host).await, before);
}

#[tokio::test]
async fn a_disabled_server_says_so_only_to_a_caller_with_the_right_credentials() {
    let (host, _) = start(false).await;
    let before = written(&host).await;
    assert_eq!(
        reply(&post(&host, "localhost", &call("delete_client", &[])).await),
        error("connect server not enabled")
    );
    let other = "f".repeat(40);
    let wrong = [
        ("serveridnumber", SERVER_IDNUMBER),
        ("serversecret", other.as_str()),
        ("service", "delete_client"),
    ];
    assert_eq!(
        reply(&post(&host, "localhost", &wrong).await),
        error("invalid server secret or idnumber")
    );
    assert_eq!(written(&host).await, before);
}

#[tokio::test]
async fn update_api_version_and_delete_client_change_the_client_on_any_domain() {
    let (host, client_id) = start(true).await;
    let page = post(
        &host,
        "acme.test",
        &call(
            "update_api_version",
            &[("apiversion", "2"), ("clienttype", "totarasocial")],
        ),
    )
    .await;
    assert_eq!(page.body, r#"{"status":"success","data":[]}"#);
    let stored = |clients: Vec<ConnectClient>| {
        clients
            .into_iter()
            .find(|c| c.id == client_id)
            .expect("client")
    };
    let client = stored(host.store.connect_clients().await.expect("clients"));
    assert_eq!(client.api_version, 2);
    assert_eq!(client.client_type, "totarasocial");
    // v2 now: the hierarchies are served (nothing is linked to this client).
    assert_eq!(
        reply(&post(&host, "localhost", &call("get_positions", &[])).await),
        json!({"status": "success", "data": {"frameworks": [], "positions": []}})
    );

    signed_in_with_sso(&host, client_id).await;
    let page = post(&host, "localhost", &call("delete_client", &[])).await;
    assert_eq!(page.body, r#"{"status":"success","data":[]}"#);
    let client = stored(host.store.connect_clients().await.expect("clients"));
    assert!(!client.active, "the row is kept, deleted");
    assert!(
        host.store
            .connect_sso_sessions_of_session(SESSION_KEY)
            .await
            .expect("sso")
            .is_empty()
    );
    assert_eq!(
        reply(&post(&host, "localhost", &call("get_users", &[])).await),
        error("connect client is not active")
    );
}

#[tokio::test]
async fn get_users_and_get_user_share_the_directory_with_tombstones_and_restriction() {
    let (host, _) = start(true).await;
    let bob = host
        .store
        .user_by_username("bob")
        .await
        .expect("read")
        .expect("bob")
        .id;
    host.store
        .apply_batch(
            &Batch {
                changes: vec![Change::DeleteUser {
                    username: "bob".into(),
                }],
            },
            WrittenBy::ADMIN_IMPORT,
            5,
        )
        .await
        .expect("delete bob");
    let users = reply(&post(&host, "localhost", &call("get_users", &[])).await);
    let users = users["data"]["users"].as_array().expect("users").clone();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["username"], "alice");
    assert_eq!(users[0]["password"], Value::Null, "sync_passwords is off");
    assert!(users[0].get("profile_fields").is_none(), "API v1");
    assert_eq!(users[1]["id"], bob.to_string());
    assert_eq!(users[1]["deleted"], "1");
    assert!(
        users[1]["username"]
            .as_str()
            .is_some_and(|u| u.starts_with("deleted_") && u.len() == 40)
    );
    let one = reply(
        &post(
            &host,
            "localhost",
            &call("get_user", &[("userid", &bob.to_string())]),
        )
        .await,
    );
    assert_eq!(one["data"]["user"]["deleted"], "1");

    // v2 with profile fields, restricted to AUD-1 (a second client on the same host).
    let mut restricted = client("http://127.0.0.1:11", 'e', &"b".repeat(40));
    restricted.options.restrict_audience = Some("AUD-1".into());
    restricted.options.sync_profile_fields = true;
    let restricted_id = host
        .store
        .insert_connect_client(&restricted, 1)
        .await
        .expect("restricted client");
    host.store
        .update_connect_client_api_version(restricted_id, 2, "totaralms", 1)
        .await
        .expect("v2");
    let secret = "b".repeat(40);
    let as_restricted = |service: &'static str, extra: Vec<(&'static str, String)>| {
        let mut form: Vec<(String, String)> = vec![
            ("serveridnumber".into(), SERVER_IDNUMBER.into()),
            ("serversecret".into(), secret.clone()),
            ("service".into(), service.into()),
        ];
        form.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
        form
    };
    let form = as_restricted("get_users", vec![]);
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let users = reply(&post(&host, "localhost", &pairs).await);
    assert_eq!(
        users["data"]["users"]
            .as_array()
            .expect("users")
            .iter()
            .map(|u| u["username"].clone())
            .collect::<Vec<_>>(),
        [json!("alice")],
        "members only, no tombstone"
    );
    assert_eq!(
        users["data"]["users"][0]["profile_fields"],
        json!([{"shortname": "department", "datatype": "text", "data": "dept-alice"}])
    );
    let form = as_restricted("get_user", vec![("userid", bob.to_string())]);
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        post(&host, "localhost", &pairs).await.body,
        r#"{"status":"success","data":{"user":null}}"#
    );
}

#[tokio::test]
async fn sync_passwords_sends_the_stored_hash() {
    let template = config(true).replace(
        "[connect_server]\nenabled = true\n",
        "[connect_server]\nenabled = true\nsync_passwords = true\n",
    );
    let host = TestHost::start(&template).await;
    host.store
        .connect_server_idnumber(SERVER_IDNUMBER)
        .await
        .expect("idnumber");
    host.store
        .apply_batch(
            &Batch {
                changes: vec![Change::CreateUser(DirectoryUser {
                    username: "alice".into(),
                    password_hash: Some("$argon2id$v=19$stored".into()),
                    ..DirectoryUser::default()
                })],
            },
            WrittenBy::ADMIN_IMPORT,
            1,
        )
        .await
        .expect("alice");
    host.store
        .insert_connect_client(&client("http://127.0.0.1:9", 'c', SERVER_SECRET), 1)
        .await
        .expect("client");
    let users = reply(&post(&host, "localhost", &call("get_users", &[])).await);
    assert_eq!(
        users["data"]["users"][0]["password"],
        "$argon2id$v=19$stored"
    );
}

#[tokio::test]
async fn get_sso_user_answers_once_and_ends_a_session_that_ran_out() {
    let (host, client_id) = start(true).await;
    let alice = signed_in_with_sso(&host, client_id).await;
    let form = call("get_sso_user", &[("ssotoken", SSO_TOKEN)]);
    let user = reply(&post(&host, "localhost", &form).await);
    assert_eq!(user["status"], "success");
    assert_eq!(user["data"]["id"], alice.to_string());
    assert_eq!(user["data"]["username"], "alice");
    assert_eq!(user["data"]["pictures"], json!([]));
    // Single use.
    assert_eq!(
        reply(&post(&host, "localhost", &form).await),
        error("reused ssotoken")
    );
    // Another client's token is not this client's.
    let other_secret = "b".repeat(40);
    host.store
        .insert_connect_client(&client("http://127.0.0.1:11", 'e', &other_secret), 1)
        .await
        .expect("other client");
    let other = [
        ("serveridnumber", SERVER_IDNUMBER),
        ("serversecret", other_secret.as_str()),
        ("service", "get_sso_user"),
        ("ssotoken", SSO_TOKEN),
    ];
    assert_eq!(
        reply(&post(&host, "localhost", &other).await),
        fail("ssotoken", "invalid sso token")
    );

    // A fresh token whose session runs out on the host clock: "session expired", and the
    // session's SSO sessions are gone.
    let token = "f".repeat(40);
    host.store
        .create_connect_sso_session(client_id, alice, SESSION_KEY, &token, host.state.now())
        .await
        .expect("sso");
    host.clock.advance(Duration::from_secs(3601));
    let form = call("get_sso_user", &[("ssotoken", &token)]);
    assert_eq!(
        reply(&post(&host, "localhost", &form).await),
        error("session expired")
    );
    assert!(
        host.store
            .connect_sso_sessions_of_session(SESSION_KEY)
            .await
            .expect("sso")
            .is_empty()
    );
}

#[tokio::test]
async fn get_sso_user_refuses_a_suspended_user_and_ends_the_session() {
    let (host, client_id) = start(true).await;
    let alice = signed_in_with_sso(&host, client_id).await;
    host.store
        .set_suspended(alice, true, host.state.now())
        .await
        .expect("suspend");
    let form = call("get_sso_user", &[("ssotoken", SSO_TOKEN)]);
    assert_eq!(
        reply(&post(&host, "localhost", &form).await),
        error("invalid user session")
    );
    assert!(
        host.store
            .session(SESSION_KEY, host.state.now())
            .await
            .expect("session")
            .is_none(),
        "the Gatehouse session ended"
    );
}

#[tokio::test]
async fn force_sso_logout_ends_the_session_behind_a_known_token() {
    let (host, client_id) = start(true).await;
    signed_in_with_sso(&host, client_id).await;
    let page = post(
        &host,
        "localhost",
        &call("force_sso_logout", &[("ssotoken", SSO_TOKEN)]),
    )
    .await;
    assert_eq!(page.body, r#"{"status":"success","data":[]}"#);
    assert!(
        host.store
            .session(SESSION_KEY, host.state.now())
            .await
            .expect("session")
            .is_none()
    );
    assert!(
        host.store
            .connect_sso_sessions_of_session(SESSION_KEY)
            .await
            .expect("sso")
            .is_empty()
    );
}

/// `gatehouse connect clients` on this host's configuration.
fn connect_clients(host: &TestHost, format: &str) -> String {
    let output = std::process::Command::new(gatehouse_tests::plugin_dir().join("gatehouse"))
        .args(["connect", "clients", "--format", format, "--config"])
        .arg(&host.config_path)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run gatehouse");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn connect_clients_lists_each_client_with_its_status_and_options_and_no_secret() {
    let (host, _) = start(true).await;
    let listed: Value = serde_json::from_str(&connect_clients(&host, "json")).expect("json");
    let clients = listed["clients"].as_array().expect("clients");
    assert_eq!(clients.len(), 2);
    assert_eq!(clients[0]["status"], "active");
    assert_eq!(clients[0]["url"], "http://127.0.0.1:9");
    assert_eq!(clients[0]["api_version"], 1);
    assert_eq!(clients[0]["sync_profile_fields"], false);
    assert_eq!(clients[1]["status"], "deleted");
    let human = connect_clients(&host, "human");
    assert!(human.contains("LMS (active)"), "{human}");
    assert!(human.contains("LMS (deleted)"), "{human}");
    assert!(human.contains("url: http://127.0.0.1:9"), "{human}");
    for text in [human.as_str(), &listed.to_string()] {
        assert!(!text.contains(SERVER_SECRET), "{text}");
        assert!(!text.contains(&deleted_secret()), "{text}");
        assert!(!text.contains(&"1".repeat(40)), "{text}");
    }
}
