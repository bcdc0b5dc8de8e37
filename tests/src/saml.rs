//! The SAML test harness: starts real SAML identity providers written by others (npm
//! `samlify` and PyPI `pysaml2`, `tests/support/saml-idps`) on 127.0.0.1, hands them
//! Gatehouse's SP metadata, and drives sign-ins with no browser: the in-process
//! [`Browser`] gets the IdP's URL from `/sso/{idp}/start`, an IdP-side HTTP client
//! fetches it as a user and scrapes the auto-submitting form ([`AutoPost`]), and the
//! form is posted to the host's ACS as a cross-site POST (without the browser's cookies,
//! as a real browser sends it), then the browser follows the host's 303 to the same-site
//! finish step. [`attack`] turns a genuine response into an attack (`attacks.py`).
//!
//! Install the peers with `scripts/test-peers`.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Duration,
};

use axum::http::StatusCode;
use base64::Engine as _;
use serde_json::{Value, json};
use url::Url;

use crate::{Browser, Page, TestHost, build_packages, oidc::sets_session, peer::PeerProcess};

pub use crate::oidc::{HOST, start};

/// Per-request limit for the IdP-side client.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The line a peer prints when it listens.
const READY: &str = "GATEHOUSE_SAML_IDP_READY ";

/// `tests/support/saml-idps`.
pub fn support_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/saml-idps")
}

/// A test-only key or certificate in `tests/support/saml-idps/keys`.
pub fn key_file(name: &str) -> PathBuf {
    support_dir().join("keys").join(name)
}

const INSTALL: &str = "run scripts/test-peers (it needs Node.js 20+, Python 3.11+ with venv \
                       and `apt-get install xmlsec1`)";

/// The venv's Python, with pysaml2 and lxml installed.
fn python() -> PathBuf {
    let python = support_dir().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: {INSTALL}",
        python.display()
    );
    python
}

fn require_xmlsec1() {
    let found = Command::new("xmlsec1").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "the xmlsec1 command is missing: {INSTALL}"
    );
}

/// Runs each `async fn(Peer)` scenario named as one test per IdP (a module per scenario
/// with the tests `samlify` and `pysaml2`).
#[macro_export]
macro_rules! with_each_saml_idp {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn samlify() {
                super::$scenario($crate::saml::Peer::Samlify).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pysaml2() {
                super::$scenario($crate::saml::Peer::Pysaml2).await;
            }
        }
    )*};
}

/// The two independent IdPs the tests run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Samlify,
    Pysaml2,
}

impl Peer {
    pub const ALL: [Self; 2] = [Self::Samlify, Self::Pysaml2];

    pub fn name(self) -> &'static str {
        match self {
            Self::Samlify => "samlify",
            Self::Pysaml2 => "pysaml2",
        }
    }

    /// The IdP's own signing key (the tests hold it to re-sign edited content).
    pub fn key(self) -> PathBuf {
        key_file(&format!("{}-idp.key", self.name()))
    }

    pub fn cert(self) -> PathBuf {
        key_file(&format!("{}-idp.crt", self.name()))
    }

    fn command(self, config: &Path) -> Command {
        let mut command = match self {
            Self::Samlify => {
                let module = support_dir().join("node_modules/samlify");
                assert!(
                    module.is_dir(),
                    "{} is missing: {INSTALL}",
                    module.display()
                );
                let mut command = Command::new("node");
                command.arg(support_dir().join("samlify-idp.mjs"));
                command
            }
            Self::Pysaml2 => {
                require_xmlsec1();
                let mut command = Command::new(python());
                command.arg(support_dir().join("pysaml2_idp.py"));
                command
            }
        };
        command.arg(config).current_dir(support_dir());
        command
    }
}

/// The auto-submitting form an IdP answers with: where it posts, and what.
#[derive(Debug, Clone)]
pub struct AutoPost {
    pub action: String,
    pub saml_response: String,
    pub relay_state: Option<String>,
}

impl AutoPost {
    /// The response's XML.
    pub fn xml(&self) -> String {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.saml_response)
            .expect("SAMLResponse is base64");
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The same form carrying another response.
    pub fn with_response(&self, saml_response: String) -> Self {
        Self {
            saml_response,
            ..self.clone()
        }
    }

    /// The form's fields, as the browser posts them.
    pub fn fields(&self) -> Vec<(&str, &str)> {
        let mut fields = vec![("SAMLResponse", self.saml_response.as_str())];
        if let Some(relay_state) = &self.relay_state {
            fields.push(("RelayState", relay_state.as_str()));
        }
        fields
    }

    /// The ACS path and query on the host (the action without its origin).
    pub fn path(&self) -> String {
        path_of(&self.action)
    }
}

/// A real SAML IdP on 127.0.0.1; killed when dropped.
pub struct SamlIdp {
    pub peer: Peer,
    process: PeerProcess,
    entity_id: String,
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl SamlIdp {
    /// Starts `peer` with `users` (email → attributes); blocks until it listens. The SP's
    /// metadata comes later ([`Self::set_sp_metadata`], [`connect`]).
    pub fn start(peer: Peer, users: &Value) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("idp.json");
        let config = json!({
            "port": 0,
            "key": peer.key(),
            "cert": peer.cert(),
            "users": users,
        });
        std::fs::write(&config_path, config.to_string()).expect("write the IdP's config");
        let process = PeerProcess::start(
            peer.command(&config_path),
            READY,
            &dir.path().join("idp.stderr"),
            &format!("the {} SAML IdP ({INSTALL})", peer.name()),
        );
        let ready: Value = serde_json::from_str(&process.ready).expect("ready line is JSON");
        let port = ready["port"].as_u64().expect("port");
        Self {
            peer,
            process,
            entity_id: ready["entity_id"].as_str().expect("entity_id").to_owned(),
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(REQUEST_TIMEOUT)
                .build()
                .expect("HTTP client"),
            _dir: dir,
        }
    }

    pub fn entity_id(&self) -> &str {
        &self.entity_id
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The IdP's stderr so far, for failure messages.
    pub fn stderr(&self) -> String {
        self.process.stderr()
    }

    /// The IdP's metadata XML.
    pub async fn metadata(&self) -> String {
        let response = self
            .http
            .get(format!("{}/metadata", self.base))
            .send()
            .await
            .expect("GET the IdP's metadata");
        assert!(response.status().is_success(), "{response:?}");
        response.text().await.expect("metadata")
    }

    /// Writes the IdP's metadata into `dir` and returns the file's path (for
    /// `idp_metadata = { file = … }`).
    pub async fn metadata_file(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("{}-idp-metadata.xml", self.peer.name()));
        std::fs::write(&path, self.metadata().await).expect("write the IdP's metadata");
        path
    }

    async fn control(&self, path: &str, body: String) -> reqwest::Response {
        let response = self
            .http
            .post(format!("{}/__test/{path}", self.base))
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /__test/{path}: {e}"));
        assert!(
            response.status().is_success(),
            "POST /__test/{path}: {response:?}; stderr:\n{}",
            self.stderr()
        );
        response
    }

    /// Gives the IdP the SP's metadata (its entity id, ACS, SLO and certificate).
    pub async fn set_sp_metadata(&self, xml: &str) {
        self.control("sp-metadata", xml.to_owned()).await;
    }

    /// Replaces the IdP's users (email → attributes).
    pub async fn set_users(&self, users: &Value) {
        self.control("users", users.to_string()).await;
    }

    /// Overrides the content or algorithms of the next responses (`sign_alg`,
    /// `digest_alg` (pysaml2), `sign_response`, `sign_assertion`, and for samlify
    /// `audience`, `recipient`, `destination`, `issuer`, `in_response_to`, `not_before`,
    /// `not_on_or_after` in seconds from now). An empty object restores the defaults.
    pub async fn configure(&self, overrides: &Value) {
        self.control("config", overrides.to_string()).await;
    }

    /// Every message the IdP received or sent, in order.
    pub async fn log(&self) -> Vec<Value> {
        self.http
            .get(format!("{}/__test/log", self.base))
            .send()
            .await
            .expect("read the IdP's log")
            .json()
            .await
            .expect("the IdP's log is JSON")
    }

    /// The log's entries of one kind (`authn_request`, `logout_request`,
    /// `logout_response`, `idp_logout_request`, `error`).
    pub async fn logged(&self, kind: &str) -> Vec<Value> {
        self.log()
            .await
            .into_iter()
            .filter(|entry| entry["kind"] == kind)
            .collect()
    }

    /// Fetches the IdP URL the host redirected to, as `user`, and scrapes the
    /// auto-submitting form it answers with.
    pub async fn sso(&self, url: &Url, user: &str) -> AutoPost {
        assert!(
            url.as_str().starts_with(&format!("{}/sso?", self.base)),
            "the host sent the browser to {url}, not to this IdP's SSO endpoint {}/sso",
            self.base
        );
        let mut url = url.clone();
        url.query_pairs_mut().append_pair("as", user);
        let response = self.get(url.as_str()).await;
        let status = response.status();
        let body = response.text().await.expect("the IdP's page");
        assert_eq!(
            status,
            reqwest::StatusCode::OK,
            "the {} IdP refused the AuthnRequest: {body}\nstderr:\n{}",
            self.peer.name(),
            self.stderr()
        );
        scrape_auto_post(&body).unwrap_or_else(|| panic!("no auto-POST form in: {body}"))
    }

    /// A GET at the IdP (no redirects followed), e.g. the SLO URL the host sent the
    /// browser to.
    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.http
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    /// A GET at the IdP that must answer `expected` (the IdP's answer and log in the
    /// failure message otherwise).
    pub async fn visit(&self, url: &str, expected: reqwest::StatusCode) -> reqwest::Response {
        let response = self.get(url).await;
        if response.status() != expected {
            let status = response.status();
            panic!(
                "the {} IdP answered {status} to {url}, not {expected}: {:?}\nstderr:\n{}",
                self.peer.name(),
                response.text().await,
                self.stderr()
            );
        }
        response
    }

    /// Makes the IdP begin a logout of `user` (and `session_index`): returns the signed
    /// LogoutRequest's ID and the URL (the SP's SLO) it sends the browser to.
    pub async fn begin_logout(&self, user: &str, session_index: Option<&str>) -> (String, String) {
        let answer: Value = self
            .control(
                "logout",
                json!({ "as": user, "session_index": session_index }).to_string(),
            )
            .await
            .json()
            .await
            .expect("JSON");
        (
            answer["id"].as_str().expect("id").to_owned(),
            answer["url"].as_str().expect("url").to_owned(),
        )
    }
}

/// The path and query of an absolute URL on the host (for the in-process browser, which
/// sends its own `Host`).
pub fn path_of(url: &str) -> String {
    let parsed = Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    match parsed.query() {
        Some(query) => format!("{}?{query}", parsed.path()),
        None => parsed.path().to_owned(),
    }
}

/// The `entityID` of a metadata document.
pub fn entity_id_of(metadata: &str) -> String {
    let marker = "entityID=\"";
    let start = metadata
        .find(marker)
        .unwrap_or_else(|| panic!("no entityID in {metadata}"))
        + marker.len();
    let end = metadata[start..].find('"').expect("entityID ends") + start;
    metadata[start..end].to_owned()
}

fn html_unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of `attribute="…"` inside `tag` (one HTML start tag).
fn tag_attribute(tag: &str, attribute: &str) -> Option<String> {
    let marker = format!(" {attribute}=\"");
    let start = tag.find(&marker)? + marker.len();
    let end = tag[start..].find('"')? + start;
    Some(html_unescape(&tag[start..end]))
}

/// The form's action and its `SAMLResponse` and `RelayState` inputs.
pub fn scrape_auto_post(html: &str) -> Option<AutoPost> {
    let form_start = html.find("<form")?;
    let form_tag = &html[form_start..form_start + html[form_start..].find('>')?];
    let action = tag_attribute(form_tag, "action")?;
    let mut saml_response = None;
    let mut relay_state = None;
    for piece in html.split("<input").skip(1) {
        let tag = &piece[..piece.find('>').unwrap_or(piece.len())];
        let tag = format!(" {tag}");
        match tag_attribute(&tag, "name").as_deref() {
            Some("SAMLResponse") => saml_response = tag_attribute(&tag, "value"),
            Some("RelayState") => relay_state = tag_attribute(&tag, "value"),
            _ => {}
        }
    }
    Some(AutoPost {
        action,
        saml_response: saml_response?,
        relay_state,
    })
}

// ---------------------------------------------------------------------------
// The host side.

/// Builds the SAML plugin library once per test run (apart from the other plugins, so a
/// SAML build problem fails the SAML tests only).
pub fn build_saml_plugin() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| build_packages(&["gatehouse-saml"]));
}

/// The host of the second domain (`acme`), for cross-tenant tests.
pub const ACME_HOST: &str = "acme.test";

/// A host configuration: public URL `http://localhost` (so the SP's URLs are the ones the
/// browser uses), the root domain on [`HOST`] and `acme` on [`ACME_HOST`], the `saml`
/// plugin, then `idps` (`[[idp]]` tables, see [`idp`]), with generous time limits for a
/// loaded machine.
pub fn host_config(idps: &str) -> String {
    build_saml_plugin();
    format!(
        r#"
[host]
public_url = "http://{HOST}"
database = "{{database}}"
plugin_dir = "{{plugin_dir}}"
http_timeout_seconds = 30
plugin_call_timeout_seconds = 60

[[domain]]
name = "root"
hosts = ["{HOST}"]

[[domain]]
name = "acme"
hosts = ["{ACME_HOST}"]
branch = "acme"

[[plugin]]
id = "saml"
library = "gatehouse_saml"

{idps}"#
    )
}

/// What an `[[idp]]` of the SAML tests says.
#[derive(Debug, Clone)]
pub struct IdpConfig<'a> {
    pub id: &'a str,
    pub domain: &'a str,
    /// The IdP's metadata file (see [`SamlIdp::metadata_file`]).
    pub metadata: &'a Path,
    pub update_existing: bool,
    /// Extra `[[idp]]` keys (`logout = { at_idp = true }`, …).
    pub idp_keys: &'a str,
    /// Extra `[idp.settings]` keys.
    pub settings: &'a str,
}

impl<'a> IdpConfig<'a> {
    pub fn new(id: &'a str, metadata: &'a Path) -> Self {
        Self {
            id,
            domain: "root",
            metadata,
            update_existing: true,
            idp_keys: "",
            settings: "",
        }
    }
}

/// One `[[idp]]` table: the `saml` plugin with the IdP's metadata, the SP's test key,
/// NameID as the username, creation with `firstname = "givenName"`, `lastname = "sn"`,
/// `email = "mail"` (samlify sends these names; pysaml2 sends the OIDs with these as
/// FriendlyName) and locked fields.
pub fn idp(config: &IdpConfig<'_>) -> String {
    format!(
        r#"
[[idp]]
id = "{id}"
domain = "{domain}"
plugin = "saml"
name = "Sign in with {id}"
username_attribute = "NameID"
{idp_keys}

[idp.provisioning]
create_users = true
update_existing = {update_existing}
lock_fields = true
fields = {{ firstname = "givenName", lastname = "sn", email = "mail" }}

[idp.settings]
idp_metadata = {{ file = "{metadata}" }}
sp_private_key = {{ file = "{sp_key}" }}
sp_certificate = {{ file = "{sp_cert}" }}
{settings}
"#,
        id = config.id,
        domain = config.domain,
        idp_keys = config.idp_keys,
        update_existing = config.update_existing,
        metadata = config.metadata.display(),
        sp_key = key_file("sp.key").display(),
        sp_cert = key_file("sp.crt").display(),
        settings = config.settings,
    )
}

/// The host's SP metadata for `idp`, as `GET /sso/{idp}/metadata` serves it on `host`.
pub async fn sp_metadata(test_host: &TestHost, host: &str, idp: &str) -> String {
    let mut browser = test_host.browser(host);
    let page = browser.get(&format!("/sso/{idp}/metadata")).await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "GET /sso/{idp}/metadata on {host}: {page:?}"
    );
    assert!(page.body.contains("EntityDescriptor"), "{}", page.body);
    page.body
}

/// Hands the IdP the host's SP metadata for `idp` on `host`; returns the SP's entity id.
pub async fn connect(test_host: &TestHost, saml_idp: &SamlIdp, host: &str, idp: &str) -> String {
    let metadata = sp_metadata(test_host, host, idp).await;
    saml_idp.set_sp_metadata(&metadata).await;
    entity_id_of(&metadata)
}

/// Posts the IdP's form to the host's ACS as the browser's cross-site POST: a real browser
/// sends no `SameSite=Lax` cookie with it, so none is sent here.
pub async fn post_to_acs(browser: &Browser, form: &AutoPost) -> Page {
    let mut cross_site = browser.clone();
    cross_site.cookies.clear();
    cross_site.post_form(&form.path(), &form.fields()).await
}

/// The host's answer to the ACS POST, and, when it sent the browser to the same-site
/// finish step, the answer to that.
#[derive(Debug)]
pub struct Posted {
    pub acs: Page,
    pub finish: Option<Page>,
}

impl Posted {
    /// The page the browser ends on: the finish step's answer, or the ACS's own.
    pub fn last(&self) -> &Page {
        self.finish.as_ref().unwrap_or(&self.acs)
    }
}

/// Posts `form` to the ACS (cross-site) and follows a 303 to `/sso/{idp}/finish` in
/// `browser` (same-site, with its cookies).
pub async fn post_and_finish(browser: &mut Browser, form: &AutoPost) -> Posted {
    let acs = post_to_acs(browser, form).await;
    let finish = match (&acs.status, &acs.location) {
        (&StatusCode::SEE_OTHER, Some(location)) if location.contains("/finish?") => {
            Some(browser.follow(&acs).await)
        }
        _ => None,
    };
    Posted { acs, finish }
}

/// A genuine response to this browser's own request: `/sso/{idp}/start` in `browser`,
/// then the IdP's SSO endpoint as `user`.
pub async fn genuine_response(
    browser: &mut Browser,
    saml_idp: &SamlIdp,
    idp: &str,
    user: &str,
) -> AutoPost {
    let url = start(browser, idp, "%2F").await;
    saml_idp.sso(&url, user).await
}

/// One whole sign-in as far as the host's last answer.
pub struct SignIn {
    /// Where `/sso/{idp}/start` sent the browser.
    pub idp_url: Url,
    pub form: AutoPost,
    pub posted: Posted,
}

/// The whole sign-in: the login page's button, `/sso/{idp}/start`, the IdP as `user`,
/// the ACS and the finish step.
pub async fn sign_in(
    browser: &mut Browser,
    saml_idp: &SamlIdp,
    idp: &str,
    return_to: &str,
    user: &str,
) -> SignIn {
    let login = browser.get("/login").await;
    assert!(
        login.body.contains(&format!("href=\"/sso/{idp}/start")),
        "the login page has no button for `{idp}`: {login:?}"
    );
    let idp_url = start(browser, idp, return_to).await;
    let form = saml_idp.sso(&idp_url, user).await;
    let posted = post_and_finish(browser, &form).await;
    SignIn {
        idp_url,
        form,
        posted,
    }
}

/// Asserts a sign-in ended signed in, landing on `return_to`.
pub fn assert_signed_in(posted: &Posted, return_to: &str) {
    assert_eq!(
        posted.acs.status,
        StatusCode::SEE_OTHER,
        "the ACS refused a genuine response: {:?}",
        posted.acs
    );
    let done = posted.finish.as_ref().unwrap_or_else(|| {
        panic!("the ACS did not send the browser to the finish step: {posted:?}")
    });
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    assert_eq!(done.location.as_deref(), Some(return_to), "{done:?}");
    assert!(sets_session(done), "{done:?}");
}

// ---------------------------------------------------------------------------
// Attacks.

/// Runs `attacks.py MODE ARGS…` on a genuine base64 response; returns the attack (base64).
pub fn attack(mode: &str, genuine: &str, args: &[&str]) -> String {
    require_xmlsec1();
    let mut child = Command::new(python())
        .arg(support_dir().join("attacks.py"))
        .arg(mode)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run attacks.py");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(genuine.as_bytes())
            .expect("write the response");
    }
    let output = child.wait_with_output().expect("attacks.py ends");
    assert!(
        output.status.success(),
        "attacks.py {mode} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("base64 output")
}

/// The genuine response with `fields` changed (`audience`, `recipient`, `destination`,
/// `issuer`, `in_response_to`, `not_before`, `not_on_or_after`, `nameid`) and signed again
/// with the IdP's own key: a genuine signature over content the SP must refuse.
pub fn resigned_by_idp(peer: Peer, genuine: &str, fields: &[(&str, &str)]) -> String {
    let key = peer.key();
    let cert = peer.cert();
    let sets: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut args = vec![
        "--idp-key".to_owned(),
        key.display().to_string(),
        "--idp-cert".to_owned(),
        cert.display().to_string(),
    ];
    for set in &sets {
        args.push("--set".into());
        args.push(set.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    attack("resign-idp", genuine, &args)
}

/// An ISO 8601 UTC timestamp (`2026-01-01T00:00:00Z`) of unix time `seconds`.
pub fn iso8601(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .unwrap_or_else(|| panic!("no date for unix time {seconds}"))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Every user row, in id order (to compare before and after a refusal).
pub async fn users_snapshot(host: &TestHost) -> Vec<gatehouse::store::User> {
    let count = host.store.count_users().await.expect("count users");
    let mut users = Vec::new();
    let mut id = 1;
    while i64::try_from(users.len()).expect("small") < count && id < count + 1000 {
        if let Some(user) = host.store.user_by_id(id).await.expect("read user") {
            users.push(user);
        }
        id += 1;
    }
    users
}

/// Asserts `posted` was refused with nothing written: an error page (no redirect, no
/// session cookie) that shows no XML, `/me` still 401, and every user row as it was.
pub async fn assert_refused_with_nothing_written(
    host: &TestHost,
    browser: &mut Browser,
    posted: &Posted,
    users_before: &[gatehouse::store::User],
) {
    let page = posted.last();
    assert!(
        page.status.is_client_error(),
        "expected a refusal, got {} {:?} (ACS: {} {:?}); audit: {:?}",
        page.status,
        page.location,
        posted.acs.status,
        posted.acs.location,
        host.store.recent_audit(2).await
    );
    assert!(!sets_session(&posted.acs), "{posted:?}");
    assert!(!sets_session(page), "{posted:?}");
    assert!(page.location.is_none(), "{page:?}");
    for xml in [
        "<saml",
        "&lt;saml",
        "urn:oasis",
        "Assertion",
        "<?xml",
        "SAMLResponse",
    ] {
        assert!(
            !page.body.contains(xml),
            "the refusal page shows XML ({xml}): {}",
            page.body
        );
    }
    assert_eq!(
        browser.get("/me").await.status,
        StatusCode::UNAUTHORIZED,
        "a refused sign-in left a session"
    );
    assert_eq!(
        users_snapshot(host).await,
        users_before,
        "a refused sign-in wrote a user"
    );
}

/// [`assert_refused_with_nothing_written`], and the last audit row is a failure or
/// refusal whose reason names one of `because` (case-insensitive). Returns that reason.
pub async fn assert_refused(
    host: &TestHost,
    browser: &mut Browser,
    posted: &Posted,
    users_before: &[gatehouse::store::User],
    because: &[&str],
) -> String {
    assert_refused_with_nothing_written(host, browser, posted, users_before).await;
    let audit = host.store.recent_audit(1).await.expect("audit");
    let row = audit.first().expect("an audit row for the refusal");
    assert!(
        row.outcome == "failure" || row.outcome == "refused",
        "the last audit row is not the refusal: {row:?}"
    );
    let reason = row.reason.to_lowercase();
    assert!(
        because
            .iter()
            .any(|word| reason.contains(&word.to_lowercase())),
        "refused, but the audit row names none of {because:?}: {row:?}"
    );
    row.reason.clone()
}

// ---------------------------------------------------------------------------
// A host with one SAML IdP.

/// The IdP's one user: NameID `alice@example.test`, `givenName`, `sn`, `mail`.
pub const ALICE: &str = "alice@example.test";

/// Alice's attributes with `sn` set to `lastname`.
pub fn alice(lastname: &str) -> Value {
    json!({ ALICE: { "givenName": "Alice", "sn": lastname, "mail": ALICE } })
}

/// A real IdP and a host whose IdP `corp` (root domain) trusts it, connected both ways
/// (the host reads the IdP's metadata file, the IdP has the host's SP metadata).
pub struct Rig {
    pub idp: SamlIdp,
    pub host: TestHost,
    /// The host's SP entity id for `corp`, from its metadata.
    pub sp_entity_id: String,
    /// The IdP's metadata file the configuration names.
    pub metadata: PathBuf,
    _dir: tempfile::TempDir,
}

/// How a [`Rig`]'s IdP `corp` is configured beyond [`idp`]'s defaults.
#[derive(Debug, Clone, Default)]
pub struct RigOptions<'a> {
    /// Leave users alone on later sign-ins (`update_existing = false`).
    pub keep_existing: bool,
    pub idp_keys: &'a str,
    pub settings: &'a str,
}

impl Rig {
    pub async fn start(peer: Peer, options: RigOptions<'_>) -> Self {
        let saml_idp = SamlIdp::start(peer, &alice("Liddell"));
        let dir = tempfile::tempdir().expect("temp dir");
        let metadata = saml_idp.metadata_file(dir.path()).await;
        let mut config = IdpConfig::new("corp", &metadata);
        config.update_existing = !options.keep_existing;
        config.idp_keys = options.idp_keys;
        config.settings = options.settings;
        let host = TestHost::start(&host_config(&idp(&config))).await;
        let sp_entity_id = connect(&host, &saml_idp, HOST, "corp").await;
        Self {
            idp: saml_idp,
            host,
            sp_entity_id,
            metadata,
            _dir: dir,
        }
    }

    /// A new browser on [`HOST`].
    pub fn browser(&self) -> Browser {
        self.host.browser(HOST)
    }

    /// A whole sign-in as `user` in `browser`, which must end signed in on `/`.
    pub async fn honest_sign_in(&self, browser: &mut Browser, user: &str) {
        let done = sign_in(browser, &self.idp, "corp", "%2F", user).await;
        assert_signed_in(&done.posted, "/");
        assert_eq!(browser.get("/me").await.json()["username"], user);
    }
}

/// The unix time of an ISO 8601 UTC timestamp as SAML writes them
/// (`2026-01-01T00:00:00Z`, fractions of a second ignored).
pub fn unix_of(iso: &str) -> i64 {
    let seconds = iso.get(..19).unwrap_or(iso);
    chrono::NaiveDateTime::parse_from_str(seconds, "%Y-%m-%dT%H:%M:%S")
        .unwrap_or_else(|e| panic!("not an ISO 8601 timestamp: {iso}: {e}"))
        .and_utc()
        .timestamp()
}

/// The earliest `NotOnOrAfter` in a response's XML, as unix time.
pub fn earliest_not_on_or_after(xml: &str) -> i64 {
    xml.split("NotOnOrAfter=\"")
        .skip(1)
        .map(|rest| unix_of(&rest[..rest.find('"').expect("attribute ends")]))
        .min()
        .unwrap_or_else(|| panic!("no NotOnOrAfter in {xml}"))
}
