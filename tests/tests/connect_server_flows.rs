//! The Connect server role's flows between two Gatehouse hosts on loopback: a server
//! (`gatehouse serve` on 127.0.0.1) and a client (the `connect` plugin, in process on
//! `localhost`, so that its clock can be moved): `gatehouse connect add-client` with the
//! client's `new-server` secret, and every refusal leaving no client row (wrong, reused and
//! expired secrets, an unreachable client); single sign-on from the client's
//! `/sso/<idp>/start` through the server's `sso_request.php` and password login back to the
//! client, the `tc_` account created; a restricted client refusing a non-member; cancel;
//! logout at the client ending the server's session (`force_sso_logout`), logout at the
//! server and an IdP's sign-out at the server (an `end_sessions` action),
//! ending the client's session (`kill_sso_user`); and the keep-alive (§4.2) on the server's
//! clock, with the server in process and the client served.

use std::time::Duration;

use gatehouse_tests::{
    build_packages,
    connect::{SERVER_CONFIG, hidden_field, sso_finish_redirect},
    served::{Seen, ServedInProcess, ServedProcess, WebClient, free_port},
};

const CLIENT_CONFIG: &str = r#"
[host]
listen = "127.0.0.1:{port}"
public_url = "{origin}"
database = "{database}"
plugin_dir = "{plugin_dir}"

[[plugin]]
id = "connect"
library = "gatehouse_connect"

[[domain]]
name = "root"
hosts = ["localhost", "127.0.0.1"]

[[idp]]
id = "hq"
domain = "root"
plugin = "connect"
name = "Head office"
behaviour = "button"
username_attribute = "username"
logout = { at_idp = true }

[idp.provisioning]
create_users = true
update_existing = true
fields = { email = "email", firstname = "firstname", lastname = "lastname" }

[idp.settings]
server_url = "{server_origin}"
"#;

/// The server's directory: alice and bob with passwords; only alice is in AUD-1.
const DIRECTORY: &str = r#"{
  "users": [
    {"username": "alice", "email": "alice@example.test", "firstname": "Alice", "lastname": "Ng",
     "password": "alice-password-1"},
    {"username": "bob", "email": "bob@example.test", "firstname": "Bob", "lastname": "Lee",
     "password": "bob-password-1"}
  ],
  "audiences": [{"idnumber": "AUD-1", "name": "Staff", "members": ["alice"]}]
}"#;

struct Pair {
    server: ServedProcess,
    client: ServedInProcess,
}

async fn start_pair() -> Pair {
    build_packages(&["gatehouse", "gatehouse-connect"]);
    let server = ServedProcess::start("127.0.0.1", SERVER_CONFIG).await;
    let client = ServedInProcess::start(
        "localhost",
        &CLIENT_CONFIG.replace("{server_origin}", &server.origin()),
    )
    .await;
    let directory = server.dir().join("directory.json");
    std::fs::write(&directory, DIRECTORY).expect("write the directory file");
    server.cli_ok(&[
        "directory",
        "import",
        directory.to_str().expect("utf-8 path"),
    ]);
    Pair { server, client }
}

impl Pair {
    /// A setup secret from the client's "Connect to new server".
    async fn setup_secret(&self) -> String {
        gatehouse::connect::new_server(&self.client.host.state, "hq")
            .await
            .expect("new-server opens a registration")
            .setup_secret
    }

    /// `gatehouse connect add-client` on the server for the client, with `extra` options.
    fn add_client(&self, secret: &str, extra: &[&str]) -> std::process::Output {
        let url = self.client.origin();
        let mut args = vec![
            "connect",
            "add-client",
            "--name",
            "Learning",
            "--url",
            &url,
            "--setup-secret",
            secret,
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        self.server.cli(&args)
    }

    async fn client_rows(&self) -> usize {
        let store = self.server.store().await;
        let rows = store.connect_clients().await.expect("clients").len();
        store.close().await;
        rows
    }
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts a refused registration: exit 1, the reason on stderr, no client row.
async fn assert_refused(pair: &Pair, output: &std::process::Output, reason: &str) {
    assert!(!output.status.success(), "registered: {output:?}");
    assert!(
        stderr(output).contains(reason),
        "expected {reason:?} in: {}",
        stderr(output)
    );
    assert_eq!(
        pair.client_rows().await,
        0,
        "a refused registration left a row"
    );
}

/// From the client's sign-in button through the server's password login: the responses up
/// to the server's answer to the login (a redirect), and the client the browser ends on.
async fn sign_in_through_server(
    pair: &Pair,
    browser: &WebClient,
    username: &str,
    password: &str,
) -> Vec<Seen> {
    let start = browser
        .visit(&pair.client.url("/sso/hq/start?return_to=/"))
        .await;
    let login = start.last().expect("a page");
    assert!(
        login.url.starts_with(&pair.server.url("/login")),
        "the visitor was not sent to the server's login: {:?}",
        start.iter().map(|s| (&s.url, s.status)).collect::<Vec<_>>()
    );
    let csrf = hidden_field(&login.body, "csrf").expect("the login form's CSRF token");
    let return_to = hidden_field(&login.body, "return_to").expect("the login's return_to");
    assert!(
        return_to.starts_with("/totara/connect/sso_request.php?"),
        "{return_to}"
    );
    let posted = browser
        .post_form(
            &pair.server.url("/login"),
            &[
                ("csrf", csrf.as_str()),
                ("username", username),
                ("password", password),
                ("return_to", return_to.as_str()),
            ],
        )
        .await;
    assert_eq!(posted.status, 303, "password login: {}", posted.body);
    browser.follow(posted).await
}

fn finish_result(chain: &[Seen]) -> Option<String> {
    sso_finish_redirect(chain).and_then(|s| s.location_param("result"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registration_single_sign_on_restriction_cancel_and_logout() {
    let pair = start_pair().await;

    // Refusals, each leaving no client row.
    let wrong = "0123456789abcdef0123456789abcdef01234567";
    let _open = pair.setup_secret().await;
    let output = pair.add_client(wrong, &[]);
    assert_refused(&pair, &output, "the client refused: invalid setup secret").await;

    let expired = pair.setup_secret().await;
    pair.client
        .host
        .clock
        .advance(Duration::from_secs(24 * 3600 + 1));
    let output = pair.add_client(&expired, &[]);
    assert_refused(&pair, &output, "the client refused: invalid setup secret").await;

    let unreachable = pair.server.cli(&[
        "connect",
        "add-client",
        "--name",
        "Nowhere",
        "--url",
        &format!("http://127.0.0.1:{}", free_port()),
        "--setup-secret",
        wrong,
    ]);
    assert_refused(&pair, &unreachable, "the client could not be reached").await;

    let unknown_audience =
        pair.add_client(&pair.setup_secret().await, &["--restrict-audience", "NOPE"]);
    assert_refused(
        &pair,
        &unknown_audience,
        "--restrict-audience NOPE: there is no audience with that idnumber",
    )
    .await;

    // Registration with the secret from new-server, restricted to AUD-1.
    let secret = pair.setup_secret().await;
    let output = pair.add_client(&secret, &["--restrict-audience", "AUD-1"]);
    assert!(
        output.status.success(),
        "add-client failed: {}",
        stderr(&output)
    );
    let registered: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("JSON output");
    assert_eq!(registered["url"], pair.client.origin());
    assert_eq!(registered["api_version"], 2, "{registered}");
    assert_eq!(registered["client_type"], "totaralms", "{registered}");
    assert_eq!(registered["restrict_audience"], "AUD-1", "{registered}");
    assert_eq!(registered["status"], "active", "{registered}");
    assert_eq!(pair.client_rows().await, 1);

    // The same secret a second time, for the client's other host name (so that the
    // server's duplicate-URL check does not stop it first): the client refuses, no row.
    let other_url = pair.client.origin().replace("localhost", "127.0.0.1");
    let reused = pair.server.cli(&[
        "connect",
        "add-client",
        "--name",
        "Learning again",
        "--url",
        &other_url,
        "--setup-secret",
        &secret,
    ]);
    assert!(!reused.status.success(), "registered twice: {reused:?}");
    assert!(
        stderr(&reused).contains("the client refused: invalid setup secret"),
        "{}",
        stderr(&reused)
    );
    assert_eq!(
        pair.client_rows().await,
        1,
        "a refused registration left a row"
    );

    // Single sign-on: alice (a member of AUD-1) through the server's login, back signed in.
    let alice_browser = WebClient::new();
    let chain = sign_in_through_server(&pair, &alice_browser, "alice", "alice-password-1").await;
    assert_eq!(
        finish_result(&chain).as_deref(),
        Some("success"),
        "{chain:#?}"
    );
    let me = alice_browser.get(&pair.client.url("/me")).await;
    assert_eq!(me.status, 200, "not signed in at the client: {chain:#?}");
    let me: serde_json::Value = serde_json::from_str(&me.body).expect("/me JSON");
    let server_store = pair.server.store().await;
    let idnumber = server_store
        .connect_server_idnumber("ffffffffffffffffffffffffffffffffffffffff")
        .await
        .expect("server idnumber");
    let alice = server_store
        .user_by_username("alice")
        .await
        .expect("user")
        .expect("alice");
    assert_eq!(
        me["username"],
        format!("tc_{}_{idnumber}", alice.id),
        "{me}"
    );

    // bob is not in AUD-1: the server sends him back with result=error, not signed in.
    let bob_browser = WebClient::new();
    let chain = sign_in_through_server(&pair, &bob_browser, "bob", "bob-password-1").await;
    assert_eq!(
        finish_result(&chain).as_deref(),
        Some("error"),
        "{chain:#?}"
    );
    assert_eq!(bob_browser.get(&pair.client.url("/me")).await.status, 401);

    // Cancel: the confirmation's POST (with the CSRF token) returns result=cancel.
    let cancel_browser = WebClient::new();
    let start = cancel_browser
        .get(&pair.client.url("/sso/hq/start?return_to=/"))
        .await;
    let request_url = start.location.clone().expect("to the server");
    let confirm = cancel_browser
        .get(&format!("{request_url}&action=cancel"))
        .await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    let field = |name| hidden_field(&confirm.body, name).expect(name);
    let cancelled = cancel_browser
        .post_form(
            &pair.server.url("/totara/connect/sso_request.php"),
            &[
                ("clientidnumber", field("clientidnumber").as_str()),
                ("requesttoken", field("requesttoken").as_str()),
                ("action", "cancel"),
                ("csrf", field("csrf").as_str()),
            ],
        )
        .await;
    assert_eq!(cancelled.status, 303, "{}", cancelled.body);
    assert_eq!(
        cancelled.location_param("result").as_deref(),
        Some("cancel")
    );
    let without_csrf = cancel_browser
        .post_form(
            &pair.server.url("/totara/connect/sso_request.php"),
            &[
                ("clientidnumber", field("clientidnumber").as_str()),
                ("requesttoken", field("requesttoken").as_str()),
                ("action", "cancel"),
            ],
        )
        .await;
    assert_eq!(without_csrf.status, 403);
    cancel_browser.follow(cancelled).await;
    assert_eq!(
        cancel_browser.get(&pair.client.url("/me")).await.status,
        401
    );

    // An unknown client: the raw identifier, 404.
    let unknown = cancel_browser
        .get(
            &pair
                .server
                .url("/totara/connect/sso_request.php?clientidnumber=nope&requesttoken=abc"),
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert!(
        unknown
            .body
            .contains("totara_connect/invalidclientidnumber")
    );

    // Logout at the client (force_sso_logout) ends that browser's server session, not the
    // other browser's.
    let second = WebClient::new();
    let chain = sign_in_through_server(&pair, &second, "alice", "alice-password-1").await;
    assert_eq!(
        finish_result(&chain).as_deref(),
        Some("success"),
        "{chain:#?}"
    );
    assert_eq!(second.get(&pair.server.url("/me")).await.status, 200);
    let home = second.get(&pair.client.url("/")).await;
    let csrf = hidden_field(&home.body, "csrf").expect("the client's logout CSRF token");
    let out = second
        .post_form(&pair.client.url("/logout"), &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(out.status, 303, "{}", out.body);
    assert_eq!(second.get(&pair.client.url("/me")).await.status, 401);
    assert_eq!(
        second.get(&pair.server.url("/me")).await.status,
        401,
        "the server session outlived the client's logout"
    );
    assert_eq!(alice_browser.get(&pair.server.url("/me")).await.status, 200);
    assert_eq!(alice_browser.get(&pair.client.url("/me")).await.status, 200);

    // Logout at the server ends alice's session at the client (kill_sso_user).
    let home = alice_browser.get(&pair.server.url("/")).await;
    let csrf = hidden_field(&home.body, "csrf").expect("the home page's logout CSRF token");
    let out = alice_browser
        .post_form(&pair.server.url("/logout"), &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(out.status, 303);
    let mut status = 0;
    for _ in 0..100 {
        status = alice_browser.get(&pair.client.url("/me")).await.status;
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status, 401,
        "the client session outlived the server's logout"
    );
    server_store.close().await;
}

/// `gatehouse <args> --config <config>` against an in-process host's configuration.
fn cli(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(gatehouse_tests::plugin_dir().join("gatehouse"))
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run the gatehouse command")
}

fn ok(output: std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The keep-alive (§4.2) on the server's clock: the server in process (its clock moves), the
/// client a `gatehouse serve` process. While the client reports alice's SSO session active,
/// her server session outlives its lifetime (on a request and in the cleanup sweep); once the
/// client has no session for her, the sweep ends it and its Connect SSO sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_a_client_still_uses_does_not_expire() {
    build_packages(&["gatehouse", "gatehouse-connect"]);
    let server = ServedInProcess::start("127.0.0.1", SERVER_CONFIG).await;
    let client = ServedProcess::start(
        "localhost",
        &CLIENT_CONFIG.replace("{server_origin}", &server.origin()),
    )
    .await;
    let config = server.host.config_path.clone();
    let directory = server.host.dir().join("directory.json");
    std::fs::write(&directory, DIRECTORY).expect("write the directory file");
    ok(cli(
        &config,
        &[
            "directory",
            "import",
            directory.to_str().expect("utf-8 path"),
        ],
    ));
    let opened: serde_json::Value = serde_json::from_str(&client.cli_ok(&[
        "connect",
        "new-server",
        "--idp",
        "hq",
        "--format",
        "json",
    ]))
    .expect("new-server JSON");
    ok(cli(
        &config,
        &[
            "connect",
            "add-client",
            "--name",
            "Learning",
            "--url",
            &client.origin(),
            "--setup-secret",
            opened["setup_secret"].as_str().expect("secret"),
        ],
    ));

    // alice signs in to the client through the server.
    let browser = WebClient::new();
    let start = browser
        .visit(&client.url("/sso/hq/start?return_to=/"))
        .await;
    let login = start.last().expect("the server's login");
    let field = |name| hidden_field(&login.body, name).expect(name);
    let posted = browser
        .post_form(
            &server.url("/login"),
            &[
                ("csrf", field("csrf").as_str()),
                ("username", "alice"),
                ("password", "alice-password-1"),
                ("return_to", field("return_to").as_str()),
            ],
        )
        .await;
    let chain = browser.follow(posted).await;
    assert_eq!(
        finish_result(&chain).as_deref(),
        Some("success"),
        "{chain:#?}"
    );
    assert_eq!(browser.get(&client.url("/me")).await.status, 200);

    let lifetime = Duration::from_secs(480 * 60 + 60);
    let store = &server.host.store;
    // A request with the expired session: the client says active, the session goes on.
    server.host.clock.advance(lifetime);
    assert_eq!(
        browser.get(&server.url("/me")).await.status,
        200,
        "the server session expired although the client uses it"
    );
    // The sweep: kept likewise.
    server.host.clock.advance(lifetime);
    let now = server.host.state.now();
    let keys = store
        .expired_sessions_with_connect_sso(now, 10)
        .await
        .expect("expired sessions");
    assert_eq!(
        keys.len(),
        1,
        "alice's session has expired on the server's clock"
    );
    let kept = gatehouse::connect_server::keep_alive::before_sweep(&server.host.state, now)
        .await
        .expect("sweep");
    assert_eq!((kept.kept, kept.ended), (1, 0));
    assert!(store.session(&keys[0], now).await.expect("read").is_some());

    // The client no longer has a session for alice: the next sweep ends hers here.
    let client_store = client.store().await;
    let alice = store
        .user_by_username("alice")
        .await
        .expect("user")
        .expect("alice");
    let ended_at_client = client_store
        .delete_idp_sessions("hq", Some(&alice.id.to_string()), None)
        .await
        .expect("end the client session");
    assert_eq!(ended_at_client, 1);
    client_store.close().await;
    server.host.clock.advance(lifetime);
    let now = server.host.state.now();
    let swept = gatehouse::connect_server::keep_alive::before_sweep(&server.host.state, now)
        .await
        .expect("sweep");
    assert_eq!((swept.kept, swept.ended), (0, 1));
    assert!(
        store
            .session_even_if_expired(&keys[0])
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .connect_sso_sessions_of_session(&keys[0])
            .await
            .expect("read")
            .is_empty()
    );
    assert_eq!(browser.get(&server.url("/me")).await.status, 401);
}

/// A server whose users sign in at an IdP (the example plugin), which can sign a subject
/// out (`POST /sso/example/notify`).
const SERVER_WITH_IDP_CONFIG: &str = r#"
[host]
listen = "127.0.0.1:{port}"
public_url = "{origin}"
database = "{database}"
plugin_dir = "{plugin_dir}"
dev_mode = true

[connect_server]
enabled = true

[[plugin]]
id = "example"
library = "gatehouse_example"

[[domain]]
name = "root"
hosts = ["127.0.0.1"]

[[idp]]
id = "example"
domain = "root"
plugin = "example"
name = "Sign in with Example"
username_attribute = "email"

[idp.provisioning]
create_users = true
update_existing = true
fields = { firstname = "given_name", lastname = "family_name", email = "email" }

[idp.settings]
subject = "ada"
email = "ada@example.test"
given_name = "Ada"
family_name = "Lovelace"
inbound_secret = "notify-secret"
"#;

/// An IdP signing its subject out at the server (an `end_sessions` action) ends the Connect
/// client's session too: the actions path propagates like POST /logout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idp_logout_at_the_server_ends_the_client_session() {
    build_packages(&["gatehouse", "gatehouse-connect", "gatehouse-example"]);
    let server = ServedProcess::start("127.0.0.1", SERVER_WITH_IDP_CONFIG).await;
    let client = ServedInProcess::start(
        "localhost",
        &CLIENT_CONFIG.replace("{server_origin}", &server.origin()),
    )
    .await;
    let secret = gatehouse::connect::new_server(&client.host.state, "hq")
        .await
        .expect("new-server")
        .setup_secret;
    server.cli_ok(&[
        "connect",
        "add-client",
        "--name",
        "Learning",
        "--url",
        &client.origin(),
        "--setup-secret",
        &secret,
    ]);

    // Ada signs in to the client through the server's IdP button.
    let browser = WebClient::new();
    let start = browser
        .visit(&client.url("/sso/hq/start?return_to=/"))
        .await;
    let login = start.last().expect("the server's login");
    let return_to = hidden_field(&login.body, "return_to").expect("return_to");
    let button: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", &return_to)
        .finish();
    let chain = browser
        .visit(&server.url(&format!("/sso/example/start?{button}")))
        .await;
    assert_eq!(
        finish_result(&chain).as_deref(),
        Some("success"),
        "{chain:#?}"
    );
    assert_eq!(browser.get(&client.url("/me")).await.status, 200);

    // The IdP signs ada out at the server.
    let notified = WebClient::new()
        .post_form(
            &server.url("/sso/example/notify"),
            &[("secret", "notify-secret"), ("subject", "ada")],
        )
        .await;
    assert!(notified.status < 300, "notify: {notified:?}");
    assert_eq!(browser.get(&server.url("/me")).await.status, 401);
    let mut status = 0;
    for _ in 0..100 {
        status = browser.get(&client.url("/me")).await.status;
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status, 401,
        "the client session outlived the IdP's logout at the server"
    );
}

/// A server in process, without a socket: bad input at `sso_request.php` needs no client.
const IN_PROCESS_SERVER: &str = r#"
[host]
public_url = "http://127.0.0.1:8080"
database = "{database}"
plugin_dir = "{plugin_dir}"

[connect_server]
enabled = {enabled}

[[domain]]
name = "root"
hosts = ["127.0.0.1"]
"#;

/// A client row straight in the store, at a URL nothing listens on.
async fn stored_client(host: &gatehouse_tests::TestHost) -> (i64, String) {
    let idnumber = "c".repeat(40);
    let id = host
        .store
        .insert_connect_client(
            &gatehouse::store::NewConnectClient {
                client_idnumber: idnumber.clone(),
                client_secret: "d".repeat(40),
                server_secret: "e".repeat(40),
                client_url: format!("http://127.0.0.1:{}", free_port()),
                client_name: "Nowhere".into(),
                client_comment: String::new(),
                options: Default::default(),
            },
            1,
        )
        .await
        .expect("client");
    (id, idnumber)
}

/// Every bad request at `sso_request.php` gets its documented answer and writes no SSO
/// session: the role off, a missing parameter, an unknown or deleted client (the raw
/// identifiers, 404), a visitor not signed in (to the login, and back), a malformed or
/// unconfirmed request token (back to the client with `result=error`, audited), and a cancel
/// POST without the CSRF token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_at_sso_request_get_their_answers_and_write_nothing() {
    use gatehouse_tests::TestHost;
    let off = TestHost::start(&IN_PROCESS_SERVER.replace("{enabled}", "false")).await;
    let page = off
        .browser("127.0.0.1")
        .get("/totara/connect/sso_request.php?clientidnumber=abc&requesttoken=def")
        .await;
    assert_eq!(page.status.as_u16(), 404);
    assert!(
        page.body.contains("totara_connect/errorservernotenabled"),
        "{}",
        page.body
    );

    let host = TestHost::start(&IN_PROCESS_SERVER.replace("{enabled}", "true")).await;
    let (id, idnumber) = stored_client(&host).await;
    let path = |token: &str| {
        format!("/totara/connect/sso_request.php?clientidnumber={idnumber}&requesttoken={token}")
    };
    let mut visitor = host.browser("127.0.0.1");
    let missing = visitor
        .get(&format!(
            "/totara/connect/sso_request.php?clientidnumber={idnumber}"
        ))
        .await;
    assert_eq!(missing.status.as_u16(), 400);
    assert!(
        missing
            .body
            .contains("A required parameter (requesttoken) was missing")
    );
    let unknown = visitor
        .get("/totara/connect/sso_request.php?clientidnumber=nobody&requesttoken=abc")
        .await;
    assert_eq!(unknown.status.as_u16(), 404);
    assert!(
        unknown
            .body
            .contains("totara_connect/invalidclientidnumber")
    );

    // Not signed in: to the login, which returns here.
    let token = "a".repeat(40);
    let away = visitor.get(&path(&token)).await;
    assert_eq!(away.status.as_u16(), 303);
    let login = away.location.clone().expect("to the login");
    assert!(login.starts_with("/login?return_to="), "{login}");
    let back: String =
        url::form_urlencoded::parse(login.split_once('?').expect("query").1.as_bytes())
            .find(|(k, _)| k == "return_to")
            .map(|(_, v)| v.into_owned())
            .expect("return_to");
    assert_eq!(back, path(&token));

    // Signed in: a token that is not 40 lowercase hex, and one the (absent) client cannot
    // confirm, both go back with result=error and leave no SSO session.
    let user = host.create_user("ada", false).await;
    let mut ada = host.signed_in_browser("127.0.0.1", user).await;
    let session_key = gatehouse::web::http_util::token_hash(&ada.cookies["gh_session"].clone());
    for presented in ["A".repeat(40), token.clone()] {
        let answer = ada.get(&path(&presented)).await;
        assert_eq!(answer.status.as_u16(), 303, "{}", answer.body);
        let location = answer.location.expect("to the client");
        assert!(
            location.contains("/auth/connect/sso_finish.php?"),
            "{location}"
        );
        assert!(location.ends_with("&result=error"), "{location}");
        assert!(!location.contains("ssotoken"), "{location}");
    }
    assert!(
        host.store
            .connect_sso_sessions_of_session(&session_key)
            .await
            .expect("read")
            .is_empty()
    );
    let audited = host.store.recent_audit(10).await.expect("audit");
    assert_eq!(
        audited
            .iter()
            .filter(|e| e.method == "connect-sso" && e.outcome == "refused")
            .count(),
        2,
        "{audited:#?}"
    );

    // Cancel: the confirmation, and its POST without the CSRF token refused.
    let confirm = ada.get(&format!("{}&action=cancel", path(&token))).await;
    assert_eq!(confirm.status.as_u16(), 200);
    assert!(confirm.hidden_field("csrf").is_some());
    let forged = ada
        .post_form(
            "/totara/connect/sso_request.php",
            &[
                ("clientidnumber", idnumber.as_str()),
                ("requesttoken", token.as_str()),
                ("action", "cancel"),
                ("csrf", "forged"),
            ],
        )
        .await;
    assert_eq!(forged.status.as_u16(), 403);

    // A deleted client is unknown here.
    host.store
        .mark_connect_client_deleted(id, 2)
        .await
        .expect("delete");
    let deleted = ada.get(&path(&token)).await;
    assert_eq!(deleted.status.as_u16(), 404);
    assert!(
        deleted
            .body
            .contains("totara_connect/invalidclientidnumber")
    );
}

/// `add-client`'s own checks, before anything is written or sent: the role off, an empty
/// name, a URL that is not a site, this server's own URL, an active client's URL, a setup
/// secret that is not one, and each kind of linked record that does not exist, named by its
/// option.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_client_refuses_bad_options_before_writing_anything() {
    use gatehouse::connect_server::registration::{AddClient, add_client};
    use gatehouse_tests::TestHost;
    let good = AddClient {
        name: "Learning".into(),
        url: format!("http://localhost:{}", free_port()),
        setup_secret: "f".repeat(40),
        ..AddClient::default()
    };
    let off = TestHost::start(&IN_PROCESS_SERVER.replace("{enabled}", "false")).await;
    let refused = add_client(&off.state, &good, "hq")
        .await
        .expect_err("the role is off");
    assert!(
        refused.to_string().contains("[connect_server]"),
        "{refused}"
    );

    let host = TestHost::start(&IN_PROCESS_SERVER.replace("{enabled}", "true")).await;
    stored_client(&host).await;
    let active_url = host.store.connect_clients().await.expect("clients")[0]
        .client_url
        .clone();
    let cases: Vec<(AddClient, String)> = vec![
        (
            AddClient {
                name: " ".into(),
                ..good.clone()
            },
            "--name must not be empty".into(),
        ),
        (
            AddClient {
                url: "ftp://learn.test".into(),
                ..good.clone()
            },
            "only http and https URLs are allowed".into(),
        ),
        (
            AddClient {
                url: "http://127.0.0.1:8080/".into(),
                ..good.clone()
            },
            "is this server's own URL".into(),
        ),
        (
            AddClient {
                url: format!("{active_url}/"),
                ..good.clone()
            },
            "already belongs to the active client `Nowhere`".into(),
        ),
        (
            AddClient {
                setup_secret: "not-a-secret".into(),
                ..good.clone()
            },
            "--setup-secret is not a setup secret".into(),
        ),
        (
            AddClient {
                restrict_audience: Some("AUD-X".into()),
                ..good.clone()
            },
            "--restrict-audience AUD-X: there is no audience with that idnumber".into(),
        ),
        (
            AddClient {
                audiences: vec!["AUD-Y".into()],
                ..good.clone()
            },
            "--audience AUD-Y: there is no audience with that idnumber".into(),
        ),
        (
            AddClient {
                courses: vec!["C-1".into()],
                ..good.clone()
            },
            "--course C-1: there is no course with that shortname".into(),
        ),
        (
            AddClient {
                position_frameworks: vec!["PF-1".into()],
                ..good.clone()
            },
            "--position-framework PF-1: there is no position framework with that idnumber".into(),
        ),
        (
            AddClient {
                organisation_frameworks: vec!["OF-1".into()],
                ..good.clone()
            },
            "--organisation-framework OF-1: there is no organisation framework with that idnumber"
                .into(),
        ),
    ];
    for (request, expected) in cases {
        let refused = add_client(&host.state, &request, "hq")
            .await
            .expect_err("refused");
        assert!(
            refused.to_string().contains(&expected),
            "expected {expected:?}, got {refused}"
        );
        assert_eq!(
            host.store.connect_clients().await.expect("clients").len(),
            1,
            "{expected}: a row was written"
        );
    }
}

/// Regression: keep-alive extended the stored session, but the browser dropped the cookie at
/// its Max-Age (the original lifetime), so the user looked signed out at the server anyway.
/// On a Connect server the session cookie lasts the browser session; elsewhere it keeps its
/// Max-Age.
#[tokio::test]
async fn a_connect_servers_session_cookie_outlives_the_session_lifetime_for_keep_alive() {
    for (enabled, expect_max_age) in [("true", false), ("false", true)] {
        let host =
            gatehouse_tests::TestHost::start(&IN_PROCESS_SERVER.replace("{enabled}", enabled))
                .await;
        host.create_password_user("ada", "root", "ada-password-1", false)
            .await;
        let mut browser = host.browser("127.0.0.1");
        let signed_in = browser.password_sign_in("ada", "ada-password-1").await;
        assert_eq!(signed_in.status.as_u16(), 303, "{}", signed_in.body);
        let session_cookie = signed_in
            .set_cookies
            .iter()
            .find(|c| c.starts_with("gh_session="))
            .expect("the session cookie");
        assert_eq!(
            session_cookie.contains("Max-Age="),
            expect_max_age,
            "connect_server enabled = {enabled}: {session_cookie}"
        );
    }
}
