//! The egress policy end to end, through the real router and the real `gatehouse_oidc`
//! library: a provider on 127.0.0.1 (so loopback is exempt for it) whose discovery
//! document aims the token, JWKS or UserInfo endpoint at an internal address of
//! another category (`tests/support/oidc-provider/hostile.mjs`, egress modes). Each
//! sign-in must be refused, with an audit row naming the address and the rule, and
//! with nothing sent where that can be observed. Name-based cases (a public name
//! resolving to an internal address) are unit-tested with an injected resolver in
//! `host/src/plugins/{egress,capabilities}.rs`.

use axum::http::StatusCode;
use gatehouse_tests::{
    Page, TestHost,
    oidc::{self, HOST, HostileProvider, local_path, sets_session, start},
};
use serde_json::{Value, json};

const CLIENT_ID: &str = "gatehouse-egress";
const CLIENT_SECRET: &str = "gatehouse-egress-secret-0123456789-0123456789";

fn idp_config(issuer: &str) -> String {
    oidc::host_config(&format!(
        r#"
[[idp]]
id = "corp"
domain = "root"
plugin = "oidc"
name = "Sign in with Corp"
username_attribute = "sub"

[idp.provisioning]
create_users = true
fields = {{ firstname = "given_name", lastname = "family_name", email = "email" }}

[idp.settings]
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
use_userinfo = true
"#
    ))
}

/// A provider in `mode` (set before the host ever fetches its discovery document) and
/// a fresh host on it.
async fn rig(mode: &str) -> (HostileProvider, TestHost) {
    let op = HostileProvider::start(
        CLIENT_ID,
        CLIENT_SECRET,
        json!({
            "sub": "mallory",
            "email": "mallory@example.test",
            "given_name": "Mallory",
            "family_name": "Mayhem",
        }),
    );
    op.set_mode(mode, json!({})).await;
    let host = TestHost::start(&idp_config(op.issuer())).await;
    (op, host)
}

/// One sign-in: start, the provider's redirect back, the callback.
async fn attempt(op: &HostileProvider, host: &TestHost) -> Page {
    let mut browser = host.browser(HOST);
    let authorize = start(&mut browser, "corp", "%2F").await;
    let callback = op.authorize(&authorize).await;
    browser.get(&local_path(&callback)).await
}

/// Runs a sign-in in `mode` and checks it was refused by the egress policy for
/// `expected` ("10.0.0.5 is a private address"); returns the provider's request log.
async fn refused_by_egress(mode: &str, expected: &str) -> Vec<Value> {
    let (op, host) = rig(mode).await;
    let done = attempt(&op, &host).await;
    assert!(
        done.status.is_client_error() || done.status.is_server_error(),
        "{mode}: expected a refusal, got {done:?}"
    );
    assert!(!sets_session(&done), "{mode}: {done:?}");
    assert_eq!(host.store.count_users().await.expect("count"), 0);
    let audit = host.store.recent_audit(1).await.expect("audit");
    let row = audit.first().expect("the refusal is audited");
    eprintln!("{mode}: {} — {}", row.outcome, row.reason);
    assert_eq!(row.outcome, "failure", "{mode}: {}", row.reason);
    let rule =
        format!("refused by the egress policy: {expected}; the IdP's configured URLs are not");
    assert!(
        row.reason.contains(&rule),
        "{mode}: audit says `{}`",
        row.reason
    );
    op.requests().await
}

fn endpoint_requests<'a>(log: &'a [Value], endpoint: &str) -> Vec<&'a Value> {
    log.iter().filter(|r| r["endpoint"] == endpoint).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_on_the_metadata_address_is_refused() {
    let log = refused_by_egress(
        "token-link-local",
        "169.254.169.254 is a link-local address",
    )
    .await;
    assert!(endpoint_requests(&log, "token").is_empty(), "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_on_the_unspecified_address_gets_no_bytes() {
    // 0.0.0.0 would reach this very provider on Linux: had the host connected, the
    // provider would have logged the TLS handshake it cannot parse as HTTP.
    let log = refused_by_egress("token-unspecified", "0.0.0.0 is an unspecified address").await;
    assert!(endpoint_requests(&log, "not-http").is_empty(), "{log:?}");
    assert!(endpoint_requests(&log, "token").is_empty(), "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_uri_on_a_private_address_is_refused() {
    let log = refused_by_egress("jwks-private", "10.0.0.5 is a private address").await;
    // The flow got as far as the key set: the token request (to the provider itself,
    // on loopback, which its configured issuer exempts) was made and authenticated.
    let tokens = endpoint_requests(&log, "token");
    assert_eq!(tokens.len(), 1, "{log:?}");
    assert_eq!(tokens[0]["client_auth_ok"], true, "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_userinfo_endpoint_on_a_unique_local_address_is_refused() {
    let log = refused_by_egress("userinfo-unique-local", "fd00::1 is a unique-local address").await;
    assert_eq!(endpoint_requests(&log, "token").len(), 1, "{log:?}");
    assert!(endpoint_requests(&log, "userinfo").is_empty(), "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_on_loopback_may_use_loopback_endpoints() {
    // The control: the same provider and configuration, every endpoint on its own
    // 127.0.0.1 address, signs in.
    let (op, host) = rig("valid").await;
    let done = attempt(&op, &host).await;
    assert_eq!(
        done.status,
        StatusCode::SEE_OTHER,
        "{done:?}; audit {:?}",
        host.store.recent_audit(1).await
    );
    assert!(sets_session(&done));
    assert_eq!(endpoint_requests(&op.requests().await, "userinfo").len(), 1);
}
