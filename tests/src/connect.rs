//! Two Gatehouse processes joined by Totara Connect, for the end-to-end Connect tests: a
//! server (`[connect_server] enabled`, on `127.0.0.1`) and a client (the `connect` plugin as
//! IdP `hq`, on `localhost`, so that the two keep their cookies apart), registered the way an
//! admin does it (`gatehouse connect new-server` on the client, `gatehouse connect
//! add-client` on the server), with the server's directory imported from a file and the
//! client's tasks run by `gatehouse tasks run`. Test support, not a test.

use serde_json::Value;

use crate::{
    build_packages,
    served::{Seen, ServedProcess, WebClient},
};

/// The server: Connect server on, password sign-in, one `department` profile field.
pub const SERVER_CONFIG: &str = r#"
[host]
listen = "127.0.0.1:{port}"
public_url = "{origin}"
database = "{database}"
plugin_dir = "{plugin_dir}"
scheduler = false

[connect_server]
enabled = true

[[field]]
name = "department"

[[domain]]
name = "root"
hosts = ["127.0.0.1"]
"#;

/// The client: IdP `hq` of plugin `connect` on its root domain; `{idp_lines}`,
/// `{settings}` (more `[idp.settings]` lines) and `{server_origin}` are filled in by
/// [`ConnectPair::start`].
const CLIENT_CONFIG: &str = r#"
[host]
listen = "127.0.0.1:{port}"
public_url = "{origin}"
database = "{database}"
plugin_dir = "{plugin_dir}"
scheduler = false

[[plugin]]
id = "connect"
library = "gatehouse_connect"

[[field]]
name = "department"

[[domain]]
name = "root"
hosts = ["localhost"]

[[idp]]
id = "hq"
domain = "root"
plugin = "connect"
name = "Head office"
{idp_lines}
logout = { at_idp = true }

[idp.provisioning]
create_users = true
update_existing = true
fields = { email = "email", firstname = "firstname", lastname = "lastname" }

[idp.settings]
server_url = "{server_origin}"
{settings}
"#;

/// How the client's IdP is set up.
#[derive(Debug, Clone, Default)]
pub struct ClientSetup<'a> {
    /// More lines of the `[[idp]]` table, e.g. `behaviour = "redirect"\nredirect_confirmed =
    /// true`; empty for the defaults (a button).
    pub idp_lines: &'a str,
    /// More `[idp.settings]` lines, e.g. `remove_user = "delete"`.
    pub settings: &'a str,
}

/// The client's configuration template for `setup`, its server at `server_origin` (the
/// placeholders of [`crate::served::ServedProcess::start`] left for it to fill).
pub fn client_config(setup: &ClientSetup<'_>, server_origin: &str) -> String {
    CLIENT_CONFIG
        .replace("{server_origin}", server_origin)
        .replace("{idp_lines}", setup.idp_lines)
        .replace("{settings}", setup.settings)
}

/// A Connect server process and a Connect client process, registered with each other.
pub struct ConnectPair {
    pub server: ServedProcess,
    pub client: ServedProcess,
}

impl ConnectPair {
    /// Starts both processes, imports `directory` (the directory file's JSON) on the server,
    /// and registers the client with `add-client` options `options`.
    pub async fn start(setup: &ClientSetup<'_>, directory: &str, options: &[&str]) -> Self {
        build_packages(&["gatehouse", "gatehouse-connect"]);
        let server = ServedProcess::start("127.0.0.1", SERVER_CONFIG).await;
        let client_config = client_config(setup, &server.origin());
        let client = ServedProcess::start("localhost", &client_config).await;
        let pair = Self { server, client };
        pair.import(directory);
        pair.register(options);
        pair
    }

    /// `gatehouse directory import` of `directory` (JSON text) on the server.
    pub fn import(&self, directory: &str) {
        let file = self.server.dir().join("directory-import.json");
        std::fs::write(&file, directory).expect("write the directory file");
        self.server
            .cli_ok(&["directory", "import", file.to_str().expect("a UTF-8 path")]);
    }

    /// `gatehouse directory import` of `directory` (JSON text) on the client: local accounts
    /// (an administrator's import).
    pub fn import_on_client(&self, directory: &str) {
        let file = self.client.dir().join("client-directory-import.json");
        std::fs::write(&file, directory).expect("write the directory file");
        self.client
            .cli_ok(&["directory", "import", file.to_str().expect("a UTF-8 path")]);
    }

    /// "Connect to new server" on the client, then "Add client" on the server with its
    /// URL and setup secret.
    pub fn register(&self, options: &[&str]) {
        let opened: Value = serde_json::from_str(&self.client.cli_ok(&[
            "connect",
            "new-server",
            "--idp",
            "hq",
            "--format",
            "json",
        ]))
        .expect("new-server prints JSON");
        let url = opened["client_url"].as_str().expect("client_url");
        let secret = opened["setup_secret"].as_str().expect("setup_secret");
        let mut args = vec![
            "connect",
            "add-client",
            "--name",
            "Learning",
            "--url",
            url,
            "--setup-secret",
            secret,
        ];
        args.extend_from_slice(options);
        self.server.cli_ok(&args);
    }

    /// Runs the client's task `name` of IdP `hq` now; its standard output.
    pub fn run_client_task(&self, name: &str) -> String {
        self.client.cli_ok(&["tasks", "run", name, "--idp", "hq"])
    }

    /// The client's directory, as `gatehouse directory export` prints it.
    pub fn client_directory(&self) -> Value {
        serde_json::from_str(&self.client.cli_ok(&["directory", "export"]))
            .expect("directory export prints JSON")
    }

    /// From the client's `/sso/hq/start` through the server's password login, following
    /// every redirect after it: the responses from the login's answer on, the last one last.
    pub async fn sign_in(&self, browser: &WebClient, username: &str, password: &str) -> Vec<Seen> {
        let start = browser
            .visit(&self.client.url("/sso/hq/start?return_to=/"))
            .await;
        let login = start.last().expect("a page");
        assert!(
            login.url.starts_with(&self.server.url("/login")),
            "the browser was not sent to the server's login: {:?}",
            start.iter().map(|s| (&s.url, s.status)).collect::<Vec<_>>()
        );
        self.password_login(browser, login, username, password)
            .await
    }

    /// Posts the server's login form `login` (a page the browser is on) and follows the
    /// redirects after it.
    pub async fn password_login(
        &self,
        browser: &WebClient,
        login: &Seen,
        username: &str,
        password: &str,
    ) -> Vec<Seen> {
        let csrf = hidden_field(&login.body, "csrf").expect("the login form's CSRF token");
        let return_to = hidden_field(&login.body, "return_to").unwrap_or_default();
        let posted = browser
            .post_form(
                &self.server.url("/login?nosso=1"),
                &[
                    ("csrf", csrf.as_str()),
                    ("username", username),
                    ("password", password),
                    ("return_to", return_to.as_str()),
                ],
            )
            .await;
        assert_eq!(posted.status, 303, "the password login: {}", posted.body);
        browser.follow(posted).await
    }
}

/// The user signed in on a host, by its `/me` (`None` when signed out).
pub async fn signed_in_user(browser: &WebClient, host: &ServedProcess) -> Option<String> {
    let me = browser.get(&host.url("/me")).await;
    if me.status == 401 {
        return None;
    }
    assert_eq!(me.status, 200, "GET /me: {}", me.body);
    let me: Value = serde_json::from_str(&me.body).expect("/me is JSON");
    me["username"].as_str().map(str::to_owned)
}

/// The redirect in `chain` to the client's `sso_finish.php`, if any.
pub fn sso_finish_redirect(chain: &[Seen]) -> Option<&Seen> {
    chain.iter().find(|s| {
        s.location
            .as_deref()
            .is_some_and(|l| l.contains("/auth/connect/sso_finish.php"))
    })
}

/// The value of hidden field `name` in an HTML page, unescaped.
pub fn hidden_field(body: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker)? + marker.len();
    let end = body[start..].find('"')? + start;
    let raw = &body[start..end];
    Some(
        raw.replace("&quot;", "\"")
            .replace("&#x27;", "'")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// Signs the browser out of `host` (`POST /logout` with the CSRF token `/me` hands out),
/// following the redirects after it.
pub async fn sign_out(browser: &WebClient, host: &ServedProcess) -> Vec<Seen> {
    let me = browser.get(&host.url("/me")).await;
    assert_eq!(me.status, 200, "signed in before signing out: {}", me.body);
    let me: Value = serde_json::from_str(&me.body).expect("/me is JSON");
    let csrf = me["csrf_token"].as_str().expect("/me's csrf_token");
    let posted = browser
        .post_form(&host.url("/logout"), &[("csrf", csrf)])
        .await;
    assert!(
        posted.is_redirect(),
        "POST /logout: {} {}",
        posted.status,
        posted.body
    );
    browser.follow(posted).await
}
