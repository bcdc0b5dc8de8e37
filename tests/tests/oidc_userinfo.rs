//! The `oidc` plugin's defaults against the real npm `oidc-provider` in its conformant
//! default, whose ID tokens carry `sub` and no profile claims (those come only from
//! UserInfo): with default settings the first sign-in gets the email and names from
//! UserInfo (plain JSON, or a verified JWT for a client registered for signed UserInfo);
//! with `use_userinfo = false` it is refused, and the admin log line (the host's
//! own subscriber, captured) names the IdP, the claim names received and the settings that
//! would help, and no claim value.

use std::sync::{Arc, Mutex, OnceLock};

use axum::http::StatusCode;
use gatehouse::{config::LogFormat, logging};
use gatehouse_tests::{
    TestHost,
    oidc::{self, HOST, IdpAgent, OidcProvider, ProviderOptions, sets_session, sign_in},
};
use serde_json::json;

const CLIENT_SECRET: &str = "gatehouse-userinfo-secret-0123456789-0123456789";

/// Everything the host logged in this test binary, through the subscriber `serve` uses.
fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        let writer = move || Captured(Arc::clone(&sink));
        let subscriber = logging::subscriber(
            LogFormat::Human,
            tracing_subscriber::EnvFilter::new("info"),
            false,
            writer,
        );
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        buffer
    })
    .clone()
}

struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_lines() -> Vec<String> {
    let bytes = captured_log()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The provider in its default (claims only from UserInfo), with a client for IdP `idp`.
fn provider(idp: &str) -> OidcProvider {
    provider_with(idp, |_| {})
}

/// [`provider`] with the client's registration edited.
fn provider_with(idp: &str, edit: impl FnOnce(&mut serde_json::Value)) -> OidcProvider {
    let mut client = oidc::client(idp, idp, CLIENT_SECRET, "client_secret_basic");
    edit(&mut client);
    let mut accounts = serde_json::Map::new();
    accounts.insert(
        "alice".into(),
        json!({
            "email": "alice@example.test",
            "email_verified": true,
            "given_name": "Alice",
            "family_name": "Liddell",
            "name": "Alice Liddell",
        }),
    );
    OidcProvider::start(ProviderOptions {
        claims_in_id_token: false,
        clients: vec![client],
        accounts,
        ..ProviderOptions::default()
    })
}

/// IdP `idp` identifying users by `email` and mapping the names, with `settings` added
/// to the plugin's defaults.
fn config(op: &OidcProvider, idp: &str, settings: &str) -> String {
    oidc::host_config(&format!(
        r#"
[registration]
require_names = true

[[idp]]
id = "{idp}"
domain = "root"
plugin = "oidc"
name = "Sign in with Corp"
username_attribute = "email"

[idp.provisioning]
create_users = true
fields = {{ firstname = "given_name", lastname = "family_name", email = "email" }}

[idp.settings]
issuer = "{issuer}"
client_id = "{idp}"
client_secret = "{CLIENT_SECRET}"
{settings}
"#,
        issuer = op.issuer()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_settings_take_the_email_and_names_from_userinfo() {
    captured_log();
    let op = provider("corp");
    let host = TestHost::start(&config(&op, "corp", "")).await;
    let mut browser = host.browser(HOST);
    let mut agent = IdpAgent::new();
    let done = sign_in(&mut browser, &mut agent, "corp", "%2F", "alice")
        .await
        .done;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}\n{}", op.log());
    assert!(sets_session(&done));
    let me = browser.get("/me").await.json();
    assert_eq!(me["username"], "alice@example.test");
    assert_eq!(me["email"], "alice@example.test");
    assert_eq!(me["firstname"], "Alice");
    assert_eq!(me["lastname"], "Liddell");
    assert_eq!(host.store.count_users().await.expect("count"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_userinfo_answer_is_verified_and_used() {
    captured_log();
    // The client is registered for RS256-signed UserInfo: the provider answers
    // `application/jwt`, signed with the key of its ID tokens.
    let op = provider_with("corp-signed", |client| {
        client["userinfo_signed_response_alg"] = json!("RS256");
    });
    let host = TestHost::start(&config(&op, "corp-signed", "")).await;
    let mut browser = host.browser(HOST);
    let mut agent = IdpAgent::new();
    let done = sign_in(&mut browser, &mut agent, "corp-signed", "%2F", "alice")
        .await
        .done;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}\n{}", op.log());
    let me = browser.get("/me").await.json();
    assert_eq!(me["email"], "alice@example.test");
    assert_eq!(me["lastname"], "Liddell");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_userinfo_the_refusal_is_plain_and_the_log_line_says_what_arrived_and_what_helps() {
    captured_log();
    let op = provider("corp-no-userinfo");
    let host = TestHost::start(&config(&op, "corp-no-userinfo", "use_userinfo = false")).await;
    let mut browser = host.browser(HOST);
    let mut agent = IdpAgent::new();
    let done = sign_in(&mut browser, &mut agent, "corp-no-userinfo", "%2F", "alice")
        .await
        .done;
    assert_eq!(done.status, StatusCode::FORBIDDEN, "{done:?}");
    assert!(!sets_session(&done));
    assert_eq!(host.store.count_users().await.expect("count"), 0);
    // The person signing in reads the plain reason, no settings.
    assert!(done.body.contains("did not send `email`"), "{}", done.body);
    assert!(!done.body.contains("use_userinfo"), "{}", done.body);

    let lines = log_lines();
    let line = lines
        .iter()
        .find(|line| {
            line.contains("did not send an attribute") && line.contains("corp-no-userinfo")
        })
        .unwrap_or_else(|| panic!("no refusal line in the log:\n{}", lines.join("\n")));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("missing=[\"email\"]"), "{line}");
    // The ID token's claim names, `sub` among them, and not a profile claim.
    assert!(line.contains("\"sub\""), "{line}");
    assert!(line.contains("\"iss\""), "{line}");
    assert!(!line.contains("\"given_name\""), "{line}");
    for help in ["`username_attribute`", "`scopes`", "`use_userinfo`"] {
        assert!(line.contains(help), "{help}: {line}");
    }
    // Names only: no value of any claim (the subject, the issuer, the audience).
    for value in ["alice", "Alice", "Liddell", "example.test", op.issuer()] {
        assert!(!line.contains(value), "{value:?} leaked: {line}");
    }
    assert!(!line.contains("127.0.0.1"), "{line}");
}
