//! The Connect client's sync tasks through the real loader and scheduler against a scripted
//! Connect server on loopback (a peer that answers `sep.php` with reference-shaped JSend:
//! string ids, PHP's `\/`, `[]`): registration, `handshake`, then `users` creating
//! `tc_<id>_<serveridnumber>` accounts with their profile fields, a second run changing
//! nothing, a user dropped from the list kept / suspended / deleted as `remove_user` says, a
//! server-deleted user deleted whatever the setting (and the sessions of suspended and
//! deleted users ended), a cut or interrupted reply writing nothing, `gatehouse connect
//! servers`' view, and 10,000 users in one sync (within a Connect IdP's 64 MiB default
//! response cap; over an IdP's cap, the reply is refused and nothing is written). The same
//! sync between two Gatehouse processes is `connect_two_hosts.rs`; its timing at 10,000 users,
//! the `connect_sync` bench.

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use gatehouse::{
    store::{DirectorySnapshot, Session, TaskOutcome},
    tasks::{RunReport, Scheduler, TaskSettings, quiet},
};
use gatehouse_tests::{TestHost, build_packages};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
};

const SERVER_IDNUMBER: &str = "5f3b0c9a1e2d4f6a8b7c0d1e2f3a4b5c6d7e8f90";
const SERVER_SECRET: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
const CLIENT_IDNUMBER: &str = "0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5";
const CLIENT_SECRET: &str = "ffeeddccbbaa99887766554433221100fedcba98";

const CONFIG: &str = r#"
[host]
public_url = "http://localhost:8080"
database = "{database}"
plugin_dir = "{plugin_dir}"

[[plugin]]
id = "connect"
library = "gatehouse_connect"

[[field]]
name = "department"

[[domain]]
name = "root"
hosts = ["localhost", "127.0.0.1"]

[[idp]]
id = "hq"
domain = "root"
plugin = "connect"
name = "Head office"
username_attribute = "username"
{idp_extra}

[idp.provisioning]
create_users = true
update_existing = true
fields = { email = "email", firstname = "firstname", lastname = "lastname", department = "profile_field_department" }

[idp.settings]
server_url = "http://127.0.0.1:{server_port}"
sync_profile_fields = true
remove_user = "{remove_user}"
"#;

/// A server user, for the scripted server to list.
#[derive(Debug, Clone)]
struct ServerUser {
    id: i64,
    username: String,
    firstname: String,
    lastname: String,
    email: String,
    idnumber: String,
    suspended: bool,
    deleted: bool,
    department: Option<String>,
}

fn user(id: i64, first: &str, department: &str) -> ServerUser {
    ServerUser {
        id,
        username: first.to_lowercase(),
        firstname: first.to_owned(),
        lastname: "Tester".to_owned(),
        email: format!("{}@example.test", first.to_lowercase()),
        idnumber: format!("E{id}"),
        suspended: false,
        deleted: false,
        department: Some(department.to_owned()),
    }
}

/// PHP's `json_encode` of a string: `/` as `\/`, non-ASCII as `\uXXXX`.
fn php_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

/// The user as `get_users` lists it (API v2, `syncprofilefields` on): every column of the
/// `user` table as a string or `null`; a deleted user has no `profile_fields` or `jobs`.
fn listed(user: &ServerUser) -> String {
    let flag = |b: bool| if b { "\"1\"" } else { "\"0\"" };
    let mut out = format!(
        "{{\"id\":\"{}\",\"auth\":\"manual\",\"confirmed\":\"1\",\"policyagreed\":\"0\",\"deleted\":{},\"suspended\":{},\"mnethostid\":\"1\",\"username\":{},\"password\":null,\"idnumber\":{},\"firstname\":{},\"lastname\":{},\"email\":{},\"emailstop\":\"0\",\"icq\":\"\",\"skype\":\"\",\"yahoo\":\"\",\"aim\":\"\",\"msn\":\"\",\"phone1\":\"\",\"phone2\":\"\",\"institution\":\"\",\"department\":\"\",\"address\":\"\",\"city\":\"Wellington\",\"country\":\"NZ\",\"lang\":\"en\",\"calendartype\":\"gregorian\",\"theme\":\"\",\"timezone\":\"99\",\"firstaccess\":\"1550000000\",\"lastaccess\":\"1550000100\",\"lastlogin\":\"0\",\"currentlogin\":\"1550000000\",\"lastip\":\"10.0.0.1\",\"url\":{},\"description\":{},\"descriptionformat\":\"1\",\"mailformat\":\"1\",\"maildigest\":\"0\",\"maildisplay\":\"2\",\"autosubscribe\":\"1\",\"trackforums\":\"0\",\"timecreated\":\"1550000000\",\"timemodified\":\"1550000050\",\"trustbitmask\":\"0\",\"imagealt\":null,\"lastnamephonetic\":null,\"firstnamephonetic\":null,\"middlename\":null,\"alternatename\":null,\"totarasync\":\"0\"",
        user.id,
        flag(user.deleted),
        flag(user.suspended),
        php_string(&user.username),
        php_string(&user.idnumber),
        php_string(&user.firstname),
        php_string(&user.lastname),
        php_string(&user.email),
        php_string(&format!("https://people.example.test/{}", user.username)),
        php_string("<p>Caf\u{e9}</p>"),
    );
    if !user.deleted {
        let fields = match &user.department {
            Some(value) => format!(
                "[{{\"shortname\":\"department\",\"datatype\":\"text\",\"data\":{}}},{{\"shortname\":\"shoesize\",\"datatype\":\"text\",\"data\":\"9\"}}]",
                php_string(value)
            ),
            None => "[]".to_owned(),
        };
        out.push_str(&format!(",\"profile_fields\":{fields},\"jobs\":null"));
    }
    out.push('}');
    out
}

/// How the scripted server answers `get_users`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Whole,
    /// Sends the headers (with the whole length) and half the body, then closes.
    HalfThenClose,
    /// Closes without answering (the server died).
    Close,
}

#[derive(Default)]
struct Script {
    users: Vec<ServerUser>,
    answer: Option<Answer>,
    services: Vec<String>,
}

/// The scripted Connect server: a raw HTTP/1.1 peer on 127.0.0.1 answering `sep.php`.
struct Server {
    port: u16,
    script: Arc<Mutex<Script>>,
}

impl Server {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let script = Arc::new(Mutex::new(Script::default()));
        let shared = Arc::clone(&script);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve_one(socket, Arc::clone(&shared)));
            }
        });
        Self { port, script }
    }

    fn set_users(&self, users: Vec<ServerUser>) {
        self.script.lock().unwrap().users = users;
    }

    fn answer(&self, answer: Answer) {
        self.script.lock().unwrap().answer = Some(answer);
    }

    fn services(&self) -> Vec<String> {
        self.script.lock().unwrap().services.clone()
    }
}

async fn serve_one(mut socket: tokio::net::TcpStream, script: Arc<Mutex<Script>>) {
    let mut data = Vec::new();
    let mut buffer = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buffer[..n]),
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while data.len() < head_end + length {
        match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buffer[..n]),
        }
    }
    let form: Vec<(String, String)> =
        url::form_urlencoded::parse(&data[head_end..head_end + length])
            .into_owned()
            .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let (body, answer) = {
        let mut script = script.lock().unwrap();
        let service = field("service").to_owned();
        script.services.push(service.clone());
        if field("serveridnumber") != SERVER_IDNUMBER || field("serversecret") != SERVER_SECRET {
            (
                r#"{"status":"error","message":"invalid server secret or idnumber"}"#.to_owned(),
                Answer::Whole,
            )
        } else {
            match service.as_str() {
                "get_api_version" => (
                    r#"{"status":"success","data":{"minapiversion":1,"maxapiversion":2}}"#
                        .to_owned(),
                    Answer::Whole,
                ),
                "update_api_version" => (
                    r#"{"status":"success","data":[]}"#.to_owned(),
                    Answer::Whole,
                ),
                "get_users" => {
                    let users: Vec<String> = script.users.iter().map(listed).collect();
                    (
                        format!(
                            r#"{{"status":"success","data":{{"users":[{}]}}}}"#,
                            users.join(",")
                        ),
                        script.answer.unwrap_or(Answer::Whole),
                    )
                }
                other => (
                    format!(
                        r#"{{"status":"error","message":"invalid server service name: {other}"}}"#
                    ),
                    Answer::Whole,
                ),
            }
        }
    };
    if answer == Answer::Close {
        return;
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let sent = match answer {
        Answer::HalfThenClose => &body.as_bytes()[..body.len() / 2],
        _ => body.as_bytes(),
    };
    let _ = socket.write_all(head.as_bytes()).await;
    let _ = socket.write_all(sent).await;
    let _ = socket.shutdown().await;
}

struct Client {
    host: TestHost,
    server: Server,
    scheduler: Scheduler,
}

async fn start(remove_user: &str, idp_extra: &str) -> Client {
    build_packages(&["gatehouse-connect"]);
    let server = Server::start().await;
    let config = CONFIG
        .replace("{server_port}", &server.port.to_string())
        .replace("{remove_user}", remove_user)
        .replace("{idp_extra}", idp_extra);
    let host = TestHost::start(&config).await;
    let scheduler = Scheduler::new(
        host.state.clone(),
        TaskSettings::from_config(&host.config()),
        "test",
    );
    // Registration: the client's new-server secret, then the server's sep_setup.php POST
    // (the plugin calls the scripted server's update_api_version back).
    let secret = gatehouse::connect::new_server(&host.state, "hq")
        .await
        .expect("new-server")
        .setup_secret;
    let server_url = format!("http://127.0.0.1:{}", server.port);
    let reply = host
        .browser("localhost")
        .post_form(
            "/auth/connect/sep_setup.php",
            &[
                ("setupsecret", secret.as_str()),
                ("serveridnumber", SERVER_IDNUMBER),
                ("serversecret", SERVER_SECRET),
                ("serverurl", server_url.as_str()),
                ("servername", "Head office"),
                ("clientidnumber", CLIENT_IDNUMBER),
                ("clientsecret", CLIENT_SECRET),
                ("minapiversion", "1"),
                ("maxapiversion", "2"),
            ],
        )
        .await;
    assert_eq!(
        reply.body, r#"{"status":"success","data":[]}"#,
        "registered"
    );
    Client {
        host,
        server,
        scheduler,
    }
}

impl Client {
    async fn run(&self, task: &str) -> RunReport {
        self.scheduler
            .run_now(task, Some("hq"), &quiet)
            .await
            .unwrap_or_else(|error| panic!("task {task}: {error}"))
    }

    /// Runs `users` and returns the counts part of its recorded summary.
    async fn sync(&self) -> String {
        let report = self.run("users").await;
        assert_eq!(report.run.outcome, TaskOutcome::Ok, "{report:?}");
        report
            .run
            .summary
            .split(" (")
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    async fn snapshot(&self) -> DirectorySnapshot {
        self.host
            .store
            .directory_snapshot()
            .await
            .expect("snapshot")
    }

    async fn session_for(&self, username: &str, server_user_id: i64) -> String {
        let user = self
            .host
            .store
            .user_by_username(username)
            .await
            .unwrap()
            .expect("the user exists");
        let now = self.host.state.now();
        let id_hash = format!("session-of-{server_user_id}");
        self.host
            .store
            .create_session(&Session {
                id_hash: id_hash.clone(),
                user_id: user.id,
                domain: "root".into(),
                idp_id: Some("hq".into()),
                subject: Some(server_user_id.to_string()),
                logout_state: Vec::new(),
                csrf_token: format!("csrf-{server_user_id}"),
                created_at: now,
                expires_at: now + 3_600,
            })
            .await
            .expect("session");
        id_hash
    }

    async fn has_session(&self, id_hash: &str) -> bool {
        self.host.store.session(id_hash, 0).await.unwrap().is_some()
    }
}

fn tc(id: i64) -> String {
    format!("tc_{id}_{SERVER_IDNUMBER}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_are_created_updated_suspended_and_deleted_as_the_server_and_settings_say() {
    let client = start("suspend", "").await;
    let handshake = client.run("handshake").await;
    assert_eq!(handshake.run.outcome, TaskOutcome::Ok, "{handshake:?}");
    client.server.set_users(vec![
        user(3, "Alice", "Sales/North"),
        user(4, "Bob", "Support"),
        user(5, "Carol", "Finance"),
    ]);
    assert_eq!(
        client.sync().await,
        "created 3, updated 0, suspended 0, deleted 0, unchanged 0"
    );
    let snapshot = client.snapshot().await;
    let alice = &snapshot.users[&tc(3)];
    assert_eq!(
        (
            alice.firstname.as_str(),
            alice.email.as_str(),
            alice.idnumber.as_str()
        ),
        ("Alice", "alice@example.test", "E3")
    );
    // `department` is a [[field]]; `shoesize` is not, so it is not copied.
    assert_eq!(
        alice.fields.get("department").map(String::as_str),
        Some("Sales/North")
    );
    assert_eq!(alice.fields.len(), 1);
    assert_eq!(
        alice.provenance.get("department").map(String::as_str),
        Some("hq")
    );
    let link = &snapshot.connect_links[&tc(3)];
    assert_eq!(
        (
            link.idp_id.as_str(),
            link.server_idnumber.as_str(),
            link.server_user_id
        ),
        ("hq", SERVER_IDNUMBER, 3)
    );
    let created = client
        .host
        .store
        .user_by_username(&tc(3))
        .await
        .unwrap()
        .expect("created");
    assert_eq!(created.auth_source, "idp:hq");

    assert_eq!(
        client.sync().await,
        "created 0, updated 0, suspended 0, deleted 0, unchanged 3",
        "a second run changes nothing"
    );
    assert_eq!(client.snapshot().await, snapshot);

    // Carol leaves the list (suspended in this mode), Bob is deleted on the server (deleted
    // whatever the setting), Alice moves department.
    let carol_session = client.session_for(&tc(5), 5).await;
    let alice_session = client.session_for(&tc(3), 3).await;
    let mut bob = user(4, "Bob", "Support");
    bob.deleted = true;
    client
        .server
        .set_users(vec![user(3, "Alice", "Marketing"), bob]);
    assert_eq!(
        client.sync().await,
        "created 0, updated 1, suspended 1, deleted 1, unchanged 0"
    );
    let after = client.snapshot().await;
    assert!(!after.users.contains_key(&tc(4)), "bob deleted");
    assert!(after.users[&tc(5)].suspended, "carol suspended");
    assert_eq!(
        after.users[&tc(3)]
            .fields
            .get("department")
            .map(String::as_str),
        Some("Marketing")
    );
    assert!(
        !client.has_session(&carol_session).await,
        "carol's session ended"
    );
    assert!(
        client.has_session(&alice_session).await,
        "alice's session kept"
    );

    // Carol comes back: unsuspended (suspension is copied in suspend mode).
    client.server.set_users(vec![
        user(3, "Alice", "Marketing"),
        user(5, "Carol", "Finance"),
    ]);
    assert_eq!(
        client.sync().await,
        "created 0, updated 1, suspended 0, deleted 0, unchanged 1"
    );
    assert!(!client.snapshot().await.users[&tc(5)].suspended);

    // `gatehouse connect servers`' view.
    let servers = gatehouse::connect::servers(&client.host.state)
        .await
        .expect("servers");
    assert_eq!(servers.len(), 1);
    let hq = &servers[0];
    assert_eq!((hq.idp.as_str(), hq.status), ("hq", "active"));
    let server = hq.server.as_ref().expect("registered");
    assert_eq!(
        (server.name.as_str(), server.api_version),
        ("Head office", 2)
    );
    assert_eq!(
        server.url,
        format!("http://127.0.0.1:{}", client.server.port)
    );
    let runs: Vec<(&str, Option<TaskOutcome>)> = hq
        .last_runs
        .iter()
        .map(|(task, run)| (*task, run.as_ref().map(|r| r.run.outcome)))
        .collect();
    assert_eq!(
        runs,
        [
            ("handshake", Some(TaskOutcome::Ok)),
            ("positions", None),
            ("organisations", None),
            ("users", Some(TaskOutcome::Ok)),
            ("user_collections", None),
            ("cleanup", None)
        ]
    );
    assert_eq!(
        client.server.services()[..2],
        [
            "update_api_version".to_owned(),
            "get_api_version".to_owned()
        ],
        "registration's call-back, then the handshake"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keep_leaves_a_dropped_user_and_delete_deletes_it_but_a_server_deletion_always_deletes() {
    for (mode, dropped_exists, dropped_suspended) in
        [("keep", true, false), ("delete", false, false)]
    {
        let client = start(mode, "").await;
        client.server.set_users(vec![
            user(3, "Alice", "Sales"),
            user(4, "Bob", "Support"),
            user(5, "Carol", "Finance"),
        ]);
        assert_eq!(
            client.sync().await,
            "created 3, updated 0, suspended 0, deleted 0, unchanged 0"
        );
        let mut carol = user(5, "Carol", "Finance");
        carol.deleted = true;
        client
            .server
            .set_users(vec![user(3, "Alice", "Sales"), carol]);
        let expected = if dropped_exists {
            "created 0, updated 0, suspended 0, deleted 1, unchanged 2"
        } else {
            "created 0, updated 0, suspended 0, deleted 2, unchanged 1"
        };
        assert_eq!(client.sync().await, expected, "{mode}");
        let after = client.snapshot().await;
        assert_eq!(after.users.contains_key(&tc(4)), dropped_exists, "{mode}");
        if let Some(bob) = after.users.get(&tc(4)) {
            assert_eq!(bob.suspended, dropped_suspended, "{mode}");
        }
        assert!(!after.users.contains_key(&tc(5)), "{mode}: carol deleted");
        assert!(after.users.contains_key(&tc(3)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_or_interrupted_get_users_leaves_the_directory_as_it_was() {
    let client = start("delete", "").await;
    client
        .server
        .set_users(vec![user(3, "Alice", "Sales"), user(4, "Bob", "Support")]);
    client.sync().await;
    let before = client.snapshot().await;
    // What a whole reply would do: delete Bob, add Dan, change Alice.
    client
        .server
        .set_users(vec![user(3, "Alicia", "Marketing"), user(6, "Dan", "Ops")]);
    for answer in [Answer::HalfThenClose, Answer::Close] {
        client.server.answer(answer);
        let report = client.run("users").await;
        assert_eq!(
            report.run.outcome,
            TaskOutcome::Failed,
            "{answer:?}: {report:?}"
        );
        assert!(report.run.error.is_some(), "{answer:?}");
        assert_eq!(
            client.snapshot().await,
            before,
            "{answer:?}: nothing written"
        );
    }
    client.server.answer(Answer::Whole);
    assert_eq!(
        client.sync().await,
        "created 1, updated 1, suspended 0, deleted 1, unchanged 0"
    );
}

fn generated(count: i64) -> Vec<ServerUser> {
    (1..=count)
        .map(|id| user(id, &format!("User{id}"), &format!("Dept/{}", id % 17)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_users_in_one_sync() {
    // Over the IdP's cap (here 1 MiB, the host's default for other IdPs): refused, nothing
    // written; a Connect IdP that sets none reads up to 64 MiB.
    let capped = start("suspend", "http_max_response_bytes = 1048576").await;
    capped.server.set_users(generated(10_000));
    let report = capped.run("users").await;
    assert_eq!(report.run.outcome, TaskOutcome::Failed, "{report:?}");
    let error = report.run.error.unwrap_or_default();
    assert!(error.contains("http_max_response_bytes"), "{error}");
    assert!(capped.snapshot().await.connect_links.is_empty());

    let client = start("suspend", "").await;
    client.server.set_users(generated(10_000));
    let started = Instant::now();
    assert_eq!(
        client.sync().await,
        "created 10000, updated 0, suspended 0, deleted 0, unchanged 0"
    );
    let first = started.elapsed();
    let snapshot = client.snapshot().await;
    assert_eq!(snapshot.connect_links.len(), 10_000);
    assert_eq!(
        snapshot.users[&tc(10_000)]
            .fields
            .get("department")
            .map(String::as_str),
        Some("Dept/4")
    );
    let started = Instant::now();
    assert_eq!(
        client.sync().await,
        "created 0, updated 0, suspended 0, deleted 0, unchanged 10000"
    );
    eprintln!(
        "10,000-user sync (debug build, SQLite, scripted server on loopback): first {first:?}, unchanged {:?}",
        started.elapsed()
    );
}

fn gatehouse(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(gatehouse_tests::plugin_dir().join("gatehouse"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run gatehouse")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_run_and_connect_servers_through_the_binary() {
    let client = start("suspend", "").await;
    client
        .server
        .set_users(vec![user(3, "Alice", "Sales"), user(4, "Bob", "Support")]);
    let config = client.host.config_path.clone();
    let ran = tokio::task::spawn_blocking(move || {
        gatehouse(&config, &["tasks", "run", "users", "--idp", "hq"])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&ran.stdout);
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert_eq!(ran.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("`users` of IdP `hq` ok in "), "{stdout}");
    assert!(
        stdout.contains(": created 2, updated 0, suspended 0, deleted 0, unchanged 0 (get_users: 2 users (0 deleted) from http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(
        !stderr.lines().any(|line| line.starts_with('[')),
        "no progress when stderr is not a terminal: {stderr}"
    );
    assert_eq!(client.snapshot().await.connect_links.len(), 2);

    let config = client.host.config_path.clone();
    let listed = tokio::task::spawn_blocking(move || {
        gatehouse(&config, &["connect", "servers", "--format", "json"])
    })
    .await
    .unwrap();
    assert_eq!(listed.status.code(), Some(0), "{listed:?}");
    let json: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("one JSON object");
    let hq = &json["servers"][0];
    assert_eq!(hq["idp"], "hq");
    assert_eq!(hq["status"], "active");
    assert_eq!(hq["server_name"], "Head office");
    assert_eq!(hq["api_version"], 2);
    assert_eq!(hq["server_idnumber"], SERVER_IDNUMBER);
    assert_eq!(hq["tasks"]["users"]["outcome"], "ok");
    assert_eq!(hq["tasks"]["handshake"], serde_json::Value::Null);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        !text.contains(SERVER_SECRET) && !text.contains(CLIENT_SECRET),
        "{text}"
    );

    let config = client.host.config_path.clone();
    let human = tokio::task::spawn_blocking(move || gatehouse(&config, &["connect", "servers"]))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.starts_with(&format!(
            "hq (domain root): Head office <http://127.0.0.1:{}>, API version 2, active",
            client.server.port
        )),
        "{text}"
    );
    assert!(text.contains("  users      ok "), "{text}");
    assert!(text.contains("  handshake  never run"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accounts_made_at_sign_in_before_any_sync_are_synced_too() {
    let client = start("suspend", "").await;
    // Connect sign-ins made these through the host's provisioning (no link yet); a local
    // account that merely has such a name is not this IdP's, and stays unlinked.
    client.host.create_idp_user(&tc(3), "hq").await;
    client.host.create_idp_user(&tc(4), "hq").await;
    client.host.create_user(&tc(5), false).await;
    let mut bob = user(4, "Bob", "Support");
    bob.deleted = true;
    client.server.set_users(vec![
        user(3, "Alice", "Sales"),
        bob,
        user(5, "Carol", "Finance"),
    ]);
    assert_eq!(
        client.sync().await,
        "created 0, updated 1, suspended 0, deleted 1, unchanged 0"
    );
    let after = client.snapshot().await;
    assert_eq!(after.users[&tc(3)].firstname, "Alice");
    assert_eq!(after.connect_links[&tc(3)].server_user_id, 3);
    assert!(!after.users.contains_key(&tc(4)), "deleted with the server");
    assert!(
        !after.connect_links.contains_key(&tc(5)),
        "a local account is not taken over"
    );
    assert_eq!(after.users[&tc(5)].firstname, "Test");
}
