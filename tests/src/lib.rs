//! Support for Gatehouse's integration tests: builds the real plugin libraries,
//! starts a real host state on a real database, and drives the real router with a
//! browser-like cookie jar. It is test support, not a test.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode, header},
};
use gatehouse::{
    clock::{Clock, ManualClock, Randomness},
    config,
    site::Site,
    startup,
    state::AppState,
    store::Store,
    web,
};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

pub mod connect;
pub mod load;
pub mod oidc;
pub mod peer;
pub mod proxy;
pub mod saml;
pub mod served;

/// The plugin packages the tests load, built once per test run.
const PLUGIN_PACKAGES: [&str; 10] = [
    "gatehouse",
    "gatehouse-example",
    "gatehouse-oidc",
    "gatehouse-auth0",
    "gatehouse-google",
    "gatehouse-fixture-panicking",
    "gatehouse-fixture-future-api",
    "gatehouse-fixture-layout-mismatch",
    "gatehouse-fixture-no-root-module",
    "gatehouse-fixture-newer-minor",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// The directory holding the built plugin libraries (debug profile), building
/// them first: `cargo test` does not build cdylibs that nothing links.
pub fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        build_packages(&PLUGIN_PACKAGES);
        target_dir().join("debug")
    })
}

/// Builds workspace packages (debug profile) into the shared target directory, failing
/// the test if the build fails.
pub fn build_packages(packages: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace_root())
        .arg("build")
        .arg("--quiet");
    for package in packages {
        command.args(["-p", package]);
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("run cargo build for {packages:?}: {e}"));
    assert!(status.success(), "building {packages:?} failed");
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// The plugin built against the frozen plugin API 1.0 (`tests/fixtures/api-1.0`, a
/// workspace of its own), built once per test run with its own lock file.
pub fn api_1_0_plugin() -> &'static Path {
    static LIBRARY: OnceLock<PathBuf> = OnceLock::new();
    LIBRARY.get_or_init(|| frozen_api_plugin("1.0"))
}

/// The plugin built against the frozen plugin API 1.1 (`tests/fixtures/api-1.1`).
pub fn api_1_1_plugin() -> &'static Path {
    static LIBRARY: OnceLock<PathBuf> = OnceLock::new();
    LIBRARY.get_or_init(|| frozen_api_plugin("1.1"))
}

/// The plugin built against the frozen plugin API 1.2 (`tests/fixtures/api-1.2`).
pub fn api_1_2_plugin() -> &'static Path {
    static LIBRARY: OnceLock<PathBuf> = OnceLock::new();
    LIBRARY.get_or_init(|| frozen_api_plugin("1.2"))
}

/// Builds the fixture workspace `tests/fixtures/api-{version}` (with `--locked`) and
/// returns its plugin library.
fn frozen_api_plugin(version: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let fixture = workspace_root().join(format!("tests/fixtures/api-{version}"));
    let target = target_dir().join(format!("fixture-api-{version}"));
    let status = Command::new(cargo)
        .current_dir(&fixture)
        .args(["build", "--quiet", "--locked", "--target-dir"])
        .arg(&target)
        .status()
        .expect("run cargo build for a frozen plugin API fixture");
    assert!(
        status.success(),
        "building the plugin API {version} fixture failed"
    );
    target.join("debug").join(format!(
        "{}gatehouse_fixture_api_{}{}",
        std::env::consts::DLL_PREFIX,
        version.replace('.', "_"),
        std::env::consts::DLL_SUFFIX
    ))
}

/// The path of a built plugin library by its crate name.
pub fn library(name: &str) -> PathBuf {
    plugin_dir().join(format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

/// A configuration file's text with `{plugin_dir}` and `{database}` filled in.
pub fn config_text(template: &str, database: &str) -> String {
    template
        .replace("{plugin_dir}", &plugin_dir().display().to_string())
        .replace("{database}", database)
}

/// Parses configuration text, failing the test on any error diagnostic.
pub fn parse_config(text: &str) -> config::Config {
    parse_config_at(Path::new("plugins.toml"), text)
}

/// Like [`parse_config`], naming the file the text came from.
pub fn parse_config_at(path: &Path, text: &str) -> config::Config {
    let loaded = config::parse(path, text).expect("configuration parses");
    let errors: Vec<_> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == config::Severity::Error)
        .collect();
    assert!(errors.is_empty(), "configuration has errors: {errors:#?}");
    loaded.config.expect("configuration without errors")
}

/// The configuration most web tests use: one root domain with the example IdP.
pub const EXAMPLE_CONFIG: &str = r#"
[host]
public_url = "http://localhost:8080"
database = "{database}"
plugin_dir = "{plugin_dir}"
dev_mode = true

[host.login_throttle]
max_failures_per_account = 3
max_failures_per_ip = 10
window_minutes = 15

[[plugin]]
id = "example"
library = "gatehouse_example"

[[plugin]]
id = "panicking"
library = "gatehouse_fixture_panicking"

[[domain]]
name = "root"
hosts = ["localhost", "127.0.0.1"]

[[domain]]
name = "acme"
hosts = ["acme.test"]
branch = "acme"

[[idp]]
id = "example"
domain = "root"
plugin = "example"
name = "Sign in with Example"
username_attribute = "email"

[idp.provisioning]
create_users = true
update_existing = true
lock_fields = true
fields = { firstname = "given_name", lastname = "family_name", email = "email" }

[idp.settings]
subject = "ada"
email = "ada@example.test"
given_name = "Ada"
family_name = "Lovelace"

[[idp]]
id = "boom"
domain = "root"
plugin = "panicking"
name = "Panics"
behaviour = "button"
username_attribute = "email"
"#;

/// A running host state on a fresh database, and its router.
pub struct TestHost {
    pub state: AppState,
    pub router: Router,
    pub store: Store,
    /// The configuration file the host reads (and reloads).
    pub config_path: PathBuf,
    /// Moves the host's clock (which otherwise follows the system's): tests advance
    /// time instead of rewriting rows.
    pub clock: ManualClock,
    database: String,
    dir: tempfile::TempDir,
}

impl TestHost {
    /// Starts a host from a configuration template on a fresh SQLite file.
    pub async fn start(template: &str) -> Self {
        Self::start_with_history(template, &[]).await
    }

    /// Starts a host whose database already records a successful sign-in through each of
    /// `proven` (so automatic redirects to them pass `untested-redirect`).
    pub async fn start_with_history(template: &str, proven: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
        let config_path = dir.path().join("plugins.toml");
        let text = config_text(template, &database);
        std::fs::write(&config_path, &text).expect("write plugins.toml");
        let config = parse_config_at(&config_path, &text);
        let store = Store::connect(&database).await.expect("store connects");
        for idp in proven {
            store.record_idp_success(idp, 1).await.expect("history");
        }
        let history = startup::proven_idps(&store).await.expect("history");
        let site: Site = match startup::build_site(&config, &history) {
            Ok(site) => site,
            Err(problems) => panic!("the test host did not start: {problems:#?}"),
        };
        let (clock, hand) = Clock::system_advanceable();
        let state = startup::state(&config, site, store.clone(), clock, Randomness::system())
            .expect("state");
        let router = web::app(state.clone());
        Self {
            state,
            router,
            store,
            config_path,
            clock: hand,
            database,
            dir,
        }
    }

    /// A new browser on `host` (the `Host` header it sends).
    pub fn browser(&self, host: &str) -> Browser {
        Browser {
            router: self.router.clone(),
            host: host.to_owned(),
            cookies: BTreeMap::new(),
            peer: None,
        }
    }

    /// Rewrites the configuration file from `template` (for reload tests).
    pub fn rewrite_config(&self, template: &str) {
        std::fs::write(&self.config_path, config_text(template, &self.database))
            .expect("rewrite plugins.toml");
    }

    /// A scratch directory that lives as long as the host.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates a local user (no password) and returns its id.
    pub async fn create_user(&self, username: &str, is_admin: bool) -> i64 {
        let user = gatehouse::store::NewUser {
            username: username.into(),
            firstname: "Test".into(),
            lastname: "User".into(),
            branch: "root".into(),
            auth_source: "local".into(),
            is_admin,
            ..Default::default()
        };
        self.store
            .create_user(&user, &[], 1)
            .await
            .expect("create user")
    }

    /// Creates a local account of `branch` with `password` and returns its id.
    pub async fn create_password_user(
        &self,
        username: &str,
        branch: &str,
        password: &str,
        is_admin: bool,
    ) -> i64 {
        let user = gatehouse::store::NewUser {
            username: username.into(),
            email: format!("{username}@example.test"),
            firstname: "Local".into(),
            lastname: "User".into(),
            branch: branch.into(),
            auth_source: "local".into(),
            password_hash: Some(
                gatehouse::passwords::hash(password, self.state.random()).expect("hash"),
            ),
            is_admin,
            ..Default::default()
        };
        self.store
            .create_user(&user, &[], 1)
            .await
            .expect("create user")
    }

    /// Creates a user as IdP `idp` would have provisioned it (so SSO through `idp` may
    /// sign into it) and returns its id.
    pub async fn create_idp_user(&self, username: &str, idp: &str) -> i64 {
        let user = gatehouse::store::NewUser {
            username: username.into(),
            firstname: "Test".into(),
            lastname: "User".into(),
            branch: "root".into(),
            auth_source: format!("idp:{idp}"),
            ..Default::default()
        };
        self.store
            .create_user(&user, &[], 1)
            .await
            .expect("create user")
    }

    /// A browser on `host` already signed in as `user_id` (a session written straight to the
    /// store, so tests need not pay for argon2 in a debug build).
    pub async fn signed_in_browser(&self, host: &str, user_id: i64) -> Browser {
        let token = format!(
            "test-session-{user_id}-{}",
            self.store.count_users().await.unwrap_or(0)
        );
        let now = self.state.now();
        let domain = self
            .state
            .site()
            .domain_for_host(host)
            .map(|d| d.name().to_owned())
            .unwrap_or_else(|| panic!("no domain serves host {host}"));
        self.store
            .create_session(&gatehouse::store::Session {
                id_hash: gatehouse::web::http_util::token_hash(&token),
                user_id,
                domain,
                idp_id: None,
                subject: None,
                logout_state: Vec::new(),
                csrf_token: String::new(),
                created_at: now,
                expires_at: now + 3600,
            })
            .await
            .expect("create session");
        let mut browser = self.browser(host);
        browser.cookies.insert("gh_session".into(), token);
        browser
    }

    /// A browser on `host` signed in as a new administrator.
    pub async fn admin_browser(&self, host: &str) -> Browser {
        let id = self.create_user("test-admin", true).await;
        self.signed_in_browser(host, id).await
    }

    /// The configuration the host was started from, parsed again.
    pub fn config(&self) -> config::Config {
        let text = std::fs::read_to_string(&self.config_path).expect("read plugins.toml");
        parse_config_at(&self.config_path, &text)
    }

    /// A second host on the same database (its own store connection, plugin caller and
    /// state) and on the same clock, as when several hosts share one PostgreSQL.
    pub async fn another_host(&self) -> AppState {
        let config = self.config();
        let store = Store::connect(&self.database)
            .await
            .expect("store connects");
        let history = startup::proven_idps(&store).await.expect("history");
        let site = startup::build_site(&config, &history).expect("the second host starts");
        startup::state(
            &config,
            site,
            store,
            self.state.clock().clone(),
            Randomness::system(),
        )
        .expect("state")
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    /// The value of a hidden form field `name` on the page.
    pub fn hidden_field(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let end = self.body[start..].find('"')? + start;
        Some(self.body[start..end].to_owned())
    }
}

/// A browser: a cookie jar in front of the router. It never follows redirects.
#[derive(Clone)]
pub struct Browser {
    router: Router,
    pub host: String,
    pub cookies: BTreeMap<String, String>,
    /// The socket address requests come from (as `ConnectInfo`), if any.
    pub peer: Option<std::net::SocketAddr>,
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// This browser, connecting from `ip`.
    pub fn from_address(mut self, ip: &str) -> Self {
        let ip: std::net::IpAddr = ip.parse().expect("an IP address");
        self.peer = Some(std::net::SocketAddr::new(ip, 40_000));
        self
    }

    pub async fn send(&mut self, mut request: Request<Body>) -> Page {
        if let Some(peer) = self.peer {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
        }
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("router answers");
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let set_cookies: Vec<String> = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        for cookie in &set_cookies {
            let pair = cookie.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() || cookie.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        Page {
            status,
            location,
            set_cookies,
            headers: parts.headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    fn request(&self, method: &str, uri: &str) -> axum::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, &self.host)
            .header(header::COOKIE, self.cookie_header())
    }

    pub async fn get(&mut self, uri: &str) -> Page {
        let request = self
            .request("GET", uri)
            .body(Body::empty())
            .expect("request");
        self.send(request).await
    }

    pub async fn post_form(&mut self, uri: &str, fields: &[(&str, &str)]) -> Page {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let request = self
            .request("POST", uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("request");
        self.send(request).await
    }

    /// Follows a redirect whose target is on this host (absolute or relative).
    pub async fn follow(&mut self, page: &Page) -> Page {
        let location = page
            .location
            .as_deref()
            .unwrap_or_else(|| panic!("not a redirect: {page:?}"));
        let path = location
            .strip_prefix(&format!("http://{}", self.host))
            .unwrap_or(location);
        self.get(path).await
    }

    /// Runs a sign-in at an IdP whose plugin answers at once (the example plugin): GETs
    /// `start` (e.g. `/sso/example/start` or `/admin/test-login/example`), follows the
    /// redirect to the callback on this host and returns the callback's response.
    pub async fn round_trip(&mut self, start: &str) -> Page {
        let begun = self.get(start).await;
        assert_eq!(begun.status, StatusCode::SEE_OTHER, "{start}: {begun:?}");
        self.follow(&begun).await
    }

    /// Sends a JSON request with the browser's CSRF token in `X-CSRF-Token`.
    pub async fn send_json(&mut self, method: &str, uri: &str, body: &serde_json::Value) -> Page {
        let csrf = self.csrf().await;
        let request = self
            .request(method, uri)
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-csrf-token", csrf)
            .body(Body::from(body.to_string()))
            .expect("request");
        self.send(request).await
    }

    /// The browser's CSRF token (loading the login page sets it when missing).
    pub async fn csrf(&mut self) -> String {
        if let Some(token) = self.cookies.get("gh_csrf") {
            return token.clone();
        }
        let page = self.get("/login?nosso=1").await;
        if let Some(token) = page.hidden_field("csrf") {
            return token;
        }
        // Signed in, so the login page redirects: `/me` hands JSON clients the token.
        assert_eq!(
            page.status,
            StatusCode::SEE_OTHER,
            "no CSRF field: {page:?}"
        );
        let me = self.get("/me").await;
        me.json()["csrf_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no CSRF token from /me: {me:?}"))
            .to_owned()
    }

    /// Signs in with a password, returning the response to the POST.
    pub async fn password_sign_in(&mut self, username: &str, password: &str) -> Page {
        let csrf = self.csrf().await;
        self.post_form(
            "/login",
            &[
                ("csrf", &csrf),
                ("username", username),
                ("password", password),
                ("return_to", "/"),
            ],
        )
        .await
    }
}
