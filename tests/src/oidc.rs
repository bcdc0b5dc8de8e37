//! The OIDC test harness: starts real OpenID providers (the npm `oidc-provider`,
//! and a hostile provider) as node processes on 127.0.0.1, walks their login and
//! consent pages with an IdP-side HTTP client that has its own cookie jar, and glues
//! that client to the host's in-process [`Browser`]: the browser goes to
//! `/sso/{idp}/start`, the IdP-side client follows the redirect to the provider and
//! signs in, and the browser takes the provider's redirect back to the callback.
//! The plugins' back-channel requests (discovery, token, JWKS, UserInfo) go from the
//! host's egress client over a real socket to the provider.
//!
//! The node peers live in `tests/support/oidc-provider` (`npm ci` there first).

use std::{path::PathBuf, process::Command, sync::Mutex, time::Duration};

use axum::http::StatusCode;
use serde_json::{Value, json};
use url::Url;

use crate::{Browser, Page, peer::PeerProcess};

/// The `Host` header the tests' browsers send; callbacks are on this host.
pub const HOST: &str = "localhost";
/// The post-logout redirect the host gives a provider for IdP instance `idp`: its
/// `/sso/{idp}/logout`, which goes on to the logout landing page.
pub fn logout_url(idp: &str) -> String {
    format!("http://{HOST}/sso/{idp}/logout")
}
/// Per-request limit for the IdP-side client.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The redirect URI the host gives a provider for IdP instance `idp`.
pub fn callback_url(idp: &str) -> String {
    format!("http://{HOST}/sso/{idp}/callback")
}

/// The directory of the node peers.
pub fn support_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/oidc-provider")
}

fn require_node_modules() {
    let dir = support_dir();
    for package in ["oidc-provider", "jose"] {
        assert!(
            dir.join("node_modules").join(package).is_dir(),
            "{} is missing: run npm ci in tests/support/oidc-provider \
             (cd {} && npm ci --no-audit --no-fund)",
            dir.join("node_modules").join(package).display(),
            dir.display()
        );
    }
}

/// A node process serving one provider script; killed when dropped.
struct NodePeer {
    process: PeerProcess,
    issuer: String,
    dir: tempfile::TempDir,
}

impl NodePeer {
    /// Starts `script` with `config` and waits for its ready line.
    fn start(script: &str, config: &Value, dir: tempfile::TempDir) -> Self {
        require_node_modules();
        let config_path = dir.path().join(format!("{script}.json"));
        std::fs::write(&config_path, config.to_string()).expect("write the provider config");
        let mut command = Command::new("node");
        command
            .arg(support_dir().join(script))
            .arg(&config_path)
            .current_dir(support_dir());
        let process = PeerProcess::start(
            command,
            "GATEHOUSE_OP_READY ",
            &dir.path().join(format!("{script}.stderr")),
            &format!("{script} (node; is Node.js installed?)"),
        );
        let ready: Value = serde_json::from_str(&process.ready).expect("ready line is JSON");
        let issuer = ready["issuer"].as_str().expect("issuer").to_owned();
        Self {
            process,
            issuer,
            dir,
        }
    }

    /// The provider's own log so far (stderr), for failure messages.
    fn stderr(&self) -> String {
        self.process.stderr()
    }
}

/// A client registered at a provider for the host's IdP instance `idp`.
pub fn client(idp: &str, client_id: &str, client_secret: &str, auth_method: &str) -> Value {
    json!({
        "client_id": client_id,
        "client_secret": client_secret,
        "redirect_uris": [callback_url(idp)],
        "post_logout_redirect_uris": [logout_url(idp)],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": auth_method,
    })
}

/// How to configure the real provider.
#[derive(Debug, Clone, Default)]
pub struct ProviderOptions {
    /// Issuer `http://127.0.0.1:PORT/`, as Auth0 writes its issuers.
    pub trailing_slash_issuer: bool,
    /// Put the scope's claims in the ID token (Auth0, Google) instead of only in
    /// UserInfo (oidc-provider's conformant default).
    pub claims_in_id_token: bool,
    /// Claims released with the `openid` scope, e.g. `org_id`, `hd`.
    pub extra_openid_claims: Vec<String>,
    /// Accept `prompt=select_account` (Google sends it).
    pub select_account_prompt: bool,
    /// Registered clients (see [`client`]).
    pub clients: Vec<Value>,
    /// Account id → claims (the account id is the `sub`).
    pub accounts: serde_json::Map<String, Value>,
}

/// The real OpenID provider (npm `oidc-provider`) on 127.0.0.1.
pub struct OidcProvider {
    peer: NodePeer,
    accounts: Mutex<serde_json::Map<String, Value>>,
}

impl OidcProvider {
    /// Starts a provider; blocks until it is listening.
    pub fn start(options: ProviderOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts_file = dir.path().join("accounts.json");
        write_atomically(&accounts_file, &Value::Object(options.accounts.clone()));
        let config = json!({
            "trailing_slash_issuer": options.trailing_slash_issuer,
            "claims_in_id_token": options.claims_in_id_token,
            "extra_openid_claims": options.extra_openid_claims,
            "select_account_prompt": options.select_account_prompt,
            "accounts_file": accounts_file,
            "clients": options.clients,
        });
        Self {
            peer: NodePeer::start("provider.mjs", &config, dir),
            accounts: Mutex::new(options.accounts),
        }
    }

    /// The issuer exactly as the provider states it (with its trailing slash, if any).
    pub fn issuer(&self) -> &str {
        &self.peer.issuer
    }

    /// Replaces an account's claims; the provider reads them on its next lookup.
    pub fn set_account(&self, id: &str, claims: Value) {
        let mut accounts = self.accounts.lock().expect("accounts lock");
        accounts.insert(id.to_owned(), claims);
        write_atomically(
            &self.peer.dir.path().join("accounts.json"),
            &Value::Object(accounts.clone()),
        );
    }

    /// The provider's stderr so far.
    pub fn log(&self) -> String {
        self.peer.stderr()
    }
}

fn write_atomically(path: &std::path::Path, value: &Value) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, value.to_string()).expect("write accounts");
    std::fs::rename(&temporary, path).expect("replace accounts");
}

/// The hostile provider: redirects straight back with a code and answers the
/// token request with an ID token crafted per its current mode.
pub struct HostileProvider {
    peer: NodePeer,
    http: reqwest::Client,
}

impl HostileProvider {
    /// Starts a hostile provider for `client_id` whose one account has `account`'s
    /// claims (`sub` included); blocks until it is listening.
    pub fn start(client_id: &str, client_secret: &str, account: Value) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = json!({
            "client_id": client_id,
            "client_secret": client_secret,
            "account": account,
        });
        Self {
            peer: NodePeer::start("hostile.mjs", &config, dir),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(REQUEST_TIMEOUT)
                .build()
                .expect("HTTP client"),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.peer.issuer
    }

    /// Chooses the attack for the following flows; `claims` override the account's.
    pub async fn set_mode(&self, mode: &str, claims: Value) {
        let response = self
            .http
            .post(format!("{}/__test/mode", self.issuer()))
            .json(&json!({ "mode": mode, "claims": claims }))
            .send()
            .await
            .expect("set the hostile mode");
        assert!(response.status().is_success(), "{response:?}");
    }

    /// Every authorization, token and UserInfo request seen so far.
    pub async fn requests(&self) -> Vec<Value> {
        self.http
            .get(format!("{}/__test/log", self.issuer()))
            .send()
            .await
            .expect("read the hostile log")
            .json()
            .await
            .expect("the hostile log is JSON")
    }

    /// The token requests seen so far.
    pub async fn token_requests(&self) -> Vec<Value> {
        self.requests()
            .await
            .into_iter()
            .filter(|r| r["endpoint"] == "token")
            .collect()
    }

    /// Follows the authorization redirect: the provider answers at once with the
    /// callback URL (code, state, iss).
    pub async fn authorize(&self, authorize_url: &Url) -> String {
        let response = self
            .http
            .get(authorize_url.clone())
            .send()
            .await
            .expect("authorization request");
        assert_eq!(
            response.status(),
            reqwest::StatusCode::SEE_OTHER,
            "hostile authorize: {response:?}; stderr: {}",
            self.peer.stderr()
        );
        location(&response).expect("authorization redirect")
    }
}

fn location(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The user's agent at the provider: its own cookie jar (the provider's session),
/// following redirects by hand and filling in the interaction pages.
pub struct IdpAgent {
    http: reqwest::Client,
    /// The interaction prompts answered, in order (`login`, `consent`, …).
    pub prompts: Vec<String>,
}

impl Default for IdpAgent {
    fn default() -> Self {
        Self::new()
    }
}

impl IdpAgent {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .cookie_store(true)
                .timeout(REQUEST_TIMEOUT)
                .build()
                .expect("HTTP client"),
            prompts: Vec::new(),
        }
    }

    /// Follows the authorization request through the provider's login (as
    /// `account`) and consent pages; returns the URL the provider sends the browser
    /// back to (on the host).
    pub async fn authorize(&mut self, authorize_url: &Url, account: &str) -> String {
        let mut response = self.get(authorize_url.clone()).await;
        for _ in 0..16 {
            let url = response.url().clone();
            let status = response.status();
            if status.is_redirection() {
                let next = url
                    .join(&location(&response).expect("redirect has a Location"))
                    .expect("Location is a URL");
                if next.host_str() == Some(HOST) {
                    return next.to_string();
                }
                response = self.get(next).await;
                continue;
            }
            let body = response.text().await.expect("provider page");
            let prompt = attribute(&body, "data-prompt").unwrap_or_else(|| {
                panic!("the provider answered {status} at {url} with no interaction: {body}")
            });
            self.prompts.push(prompt);
            let submit = url.join(&format!("{}/submit", url.path())).expect("url");
            response = self
                .http
                .post(submit)
                .form(&[("login", account)])
                .send()
                .await
                .expect("interaction submit");
        }
        panic!("the provider's interaction did not finish in 16 steps");
    }

    /// Follows the host's logout redirect to the provider's end-session endpoint,
    /// confirms signing out there, and returns where the provider sends the browser.
    pub async fn end_session(&mut self, end_session_url: &str) -> String {
        let url = Url::parse(end_session_url).expect("end-session URL");
        let page = self.get(url.clone()).await;
        assert_eq!(page.status(), reqwest::StatusCode::OK, "{page:?}");
        let body = page.text().await.expect("logout page");
        let action = attribute(&body, "action").expect("logout form action");
        let xsrf = field_value(&body, "xsrf").expect("logout form xsrf");
        let confirm = url.join(&action).expect("action URL");
        let done = self
            .http
            .post(confirm)
            .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")])
            .send()
            .await
            .expect("confirm logout");
        assert!(done.status().is_redirection(), "{done:?}");
        location(&done).expect("post-logout redirect")
    }

    /// Asks the provider to authorize again: `true` when it signs the user in
    /// without a login page (the provider still has a session).
    pub async fn has_session(&mut self, authorize_url: &Url) -> bool {
        let response = self.get(authorize_url.clone()).await;
        let next = response
            .url()
            .join(&location(&response).unwrap_or_default());
        let next = next.expect("Location");
        if next.host_str() == Some(HOST) {
            return true;
        }
        let body = self.get(next).await.text().await.expect("page");
        attribute(&body, "data-prompt").as_deref() != Some("login")
    }

    async fn get(&self, url: Url) -> reqwest::Response {
        self.http
            .get(url.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }
}

/// The first `name="…"` attribute value in `html`.
fn attribute(html: &str, name: &str) -> Option<String> {
    let marker = format!("{name}=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].replace("&amp;", "&"))
}

/// The value of the input named `name` in `html`.
fn field_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// The path and query of a URL on the host, for the in-process browser.
pub fn local_path(url: &str) -> String {
    url.strip_prefix(&format!("http://{HOST}"))
        .unwrap_or(url)
        .to_owned()
}

/// Whether a response starts a session.
pub fn sets_session(page: &Page) -> bool {
    page.set_cookies
        .iter()
        .any(|c| c.starts_with("gh_session=") && !c.contains("Max-Age=0"))
}

/// `/sso/{idp}/start` in `browser`; returns the provider's authorization URL.
/// `return_to` is sent as given (percent-encode it first).
pub async fn start(browser: &mut Browser, idp: &str, return_to: &str) -> Url {
    let page = browser
        .get(&format!("/sso/{idp}/start?return_to={return_to}"))
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "start: {page:?}");
    let location = page.location.expect("start redirects");
    Url::parse(&location).unwrap_or_else(|e| panic!("{location}: {e}"))
}

/// A query parameter of `url`.
pub fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// One sign-in through a real provider, as far as the host's answer to the callback.
pub struct SignIn {
    /// Where `/sso/{idp}/start` sent the browser.
    pub authorize_url: Url,
    /// Where the provider sent the browser back.
    pub callback_url: String,
    /// The host's answer to the callback.
    pub done: Page,
}

/// The whole sign-in: `/login` shows the IdP's button, `/sso/{idp}/start`, the
/// provider's login and consent as `account`, and the callback in `browser`.
pub async fn sign_in(
    browser: &mut Browser,
    agent: &mut IdpAgent,
    idp: &str,
    return_to: &str,
    account: &str,
) -> SignIn {
    let login = browser.get("/login").await;
    assert_eq!(login.status, StatusCode::OK, "{login:?}");
    assert!(
        login.body.contains(&format!("href=\"/sso/{idp}/start")),
        "the login page has no button for `{idp}`: {}",
        login.body
    );
    let authorize_url = start(browser, idp, return_to).await;
    let callback_url = agent.authorize(&authorize_url, account).await;
    assert!(
        callback_url.starts_with(&callback_url_prefix(idp)),
        "{callback_url}"
    );
    let done = browser.get(&local_path(&callback_url)).await;
    SignIn {
        authorize_url,
        callback_url,
        done,
    }
}

fn callback_url_prefix(idp: &str) -> String {
    format!("{}?", callback_url(idp))
}

/// The first part of a host configuration: the root domain on [`HOST`], with
/// generous time limits for a loaded machine. Placeholders are filled in by
/// [`crate::TestHost::start`].
pub const HOST_CONFIG: &str = r#"
[host]
public_url = "http://localhost:8080"
database = "{database}"
plugin_dir = "{plugin_dir}"
http_timeout_seconds = 30
plugin_call_timeout_seconds = 60

[[domain]]
name = "root"
hosts = ["localhost"]
"#;

/// The OIDC plugins: id and library.
const PLUGINS: [(&str, &str); 3] = [
    ("oidc", "gatehouse_oidc"),
    ("auth0", "gatehouse_auth0"),
    ("google", "gatehouse_google"),
];

/// A host configuration: [`HOST_CONFIG`], a `[[plugin]]` for each OIDC plugin that
/// `idps` uses, then `idps` (`[[idp]]` and `[[field]]` tables).
pub fn host_config(idps: &str) -> String {
    let mut text = HOST_CONFIG.to_owned();
    for (id, library) in PLUGINS {
        if idps.contains(&format!("plugin = \"{id}\"")) {
            text.push_str(&format!(
                "\n[[plugin]]\nid = \"{id}\"\nlibrary = \"{library}\"\n"
            ));
        }
    }
    text.push('\n');
    text.push_str(idps);
    text
}
