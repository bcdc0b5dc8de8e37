//! Attacks on the `oidc` plugin and the host's callback, each refused with no
//! session and no user written. Flow-level attacks (state, browser binding, code
//! replay, the callback's `iss`, `return_to`) run against the real provider (npm
//! `oidc-provider`); token-level attacks a real provider will not perform run
//! against the hostile provider (`tests/support/oidc-provider/hostile.mjs`), which
//! crafts the ID token per mode. Every hostile test first proves the attack reached
//! the token endpoint with a correct client and PKCE (so the refusal is the
//! token's), then that the same provider in its honest mode does sign in — so none
//! of these can pass because the flow was broken somewhere else.

use axum::http::StatusCode;
use gatehouse_tests::{
    Browser, Page, TestHost,
    oidc::{
        self, HOST, HostileProvider, IdpAgent, OidcProvider, ProviderOptions, local_path, param,
        sets_session, sign_in, start,
    },
};
use serde_json::{Value, json};

const CLIENT_ID: &str = "gatehouse-oidc";
const CLIENT_SECRET: &str = "gatehouse-oidc-secret-0123456789-0123456789";

fn idp_config(issuer: &str, settings: &str) -> String {
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
update_existing = true
fields = {{ firstname = "given_name", lastname = "family_name", email = "email" }}

[idp.settings]
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
{settings}
"#
    ))
}

async fn users(host: &TestHost) -> i64 {
    host.store.count_users().await.expect("count users")
}

/// A refused callback: an error status that is a refusal (not a crash), no session
/// cookie, `/me` still 401, and the user count unchanged.
async fn assert_refused(host: &TestHost, browser: &mut Browser, page: &Page, users_before: i64) {
    assert!(
        matches!(
            page.status,
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ),
        "expected a refusal, got {page:?}; audit: {:?}",
        host.store.recent_audit(1).await
    );
    assert!(!sets_session(page), "{page:?}");
    assert!(page.location.is_none(), "{page:?}");
    assert_eq!(browser.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(users(host).await, users_before, "no user may be written");
}

/// The last audit row: a failure reported by the plugin, or a refusal by the host.
async fn last_audit(host: &TestHost) -> (String, String) {
    let audit = host.store.recent_audit(1).await.expect("audit");
    let row = audit.first().expect("an audit row");
    (row.outcome.clone(), row.reason.clone())
}

// ---------------------------------------------------------------------------
// Token-level attacks, through the hostile provider.

fn mallory() -> Value {
    json!({
        "sub": "mallory",
        "email": "mallory@example.test",
        "email_verified": true,
        "given_name": "Mallory",
        "family_name": "Mayhem",
    })
}

struct Rig {
    op: HostileProvider,
    host: TestHost,
}

async fn rig(settings: &str) -> Rig {
    let op = HostileProvider::start(CLIENT_ID, CLIENT_SECRET, mallory());
    let host = TestHost::start(&idp_config(op.issuer(), settings)).await;
    Rig { op, host }
}

impl Rig {
    /// One sign-in in a fresh browser; returns the browser and the callback's answer.
    async fn attempt(&self) -> (Browser, Page) {
        let mut browser = self.host.browser(HOST);
        let authorize = start(&mut browser, "corp", "%2F").await;
        let callback = self.op.authorize(&authorize).await;
        let done = browser.get(&local_path(&callback)).await;
        (browser, done)
    }

    /// Runs one flow in `mode` and checks it is refused by the plugin, for a reason
    /// that mentions `because` (case-insensitive), after a correct token request;
    /// then checks the honest mode signs in.
    async fn refuses(&self, mode: &str, because: &str) -> String {
        let before = users(&self.host).await;
        let tokens_before = self.op.token_requests().await.len();
        self.op.set_mode(mode, json!({})).await;
        let (mut browser, done) = self.attempt().await;
        assert_refused(&self.host, &mut browser, &done, before).await;
        let (outcome, reason) = last_audit(&self.host).await;
        assert_eq!(outcome, "failure", "{mode}: the plugin refused: {reason}");
        eprintln!("{mode}: refused: {reason}");
        assert!(
            reason.to_lowercase().contains(&because.to_lowercase()),
            "{mode}: refused, but not because of `{because}`: {reason}"
        );

        // The attack got as far as the token endpoint, with the right client
        // authentication and PKCE verifier: the token is what was refused.
        let tokens = self.op.token_requests().await;
        assert_eq!(tokens.len(), tokens_before + 1, "{mode}: {tokens:?}");
        let token = tokens.last().expect("token request");
        assert_eq!(token["client_auth_ok"], true, "{token}");
        assert_eq!(token["pkce_ok"], true, "{token}");
        assert_eq!(token["mode"], mode, "{token}");

        // Control: the same provider, honest, signs the user in.
        self.op.set_mode("valid", json!({})).await;
        let (mut browser, done) = self.attempt().await;
        assert_eq!(
            done.status,
            StatusCode::SEE_OTHER,
            "{mode}: the honest flow must sign in: {done:?}; audit {:?}",
            last_audit(&self.host).await
        );
        assert_eq!(browser.get("/me").await.json()["username"], "mallory");
        reason
    }
}

async fn refused_by_the_plugin(mode: &str, because: &str) -> String {
    rig("").await.refuses(mode, because).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_honest_hostile_provider_signs_in_with_pkce_and_client_authentication() {
    let rig = rig("").await;
    let (mut browser, done) = rig.attempt().await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    assert!(sets_session(&done));
    assert_eq!(browser.get("/me").await.json()["username"], "mallory");
    let log = rig.op.requests().await;
    let authorize = log
        .iter()
        .find(|r| r["endpoint"] == "authorize")
        .expect("authorize");
    assert_eq!(authorize["code_challenge_method"], "S256");
    let token = log
        .iter()
        .find(|r| r["endpoint"] == "token")
        .expect("token");
    assert_eq!(token["client_auth"], "client_secret_basic");
    assert_eq!(token["pkce_ok"], true);
    assert_eq!(token["redirect_uri_ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_post_is_the_method_sent_when_configured() {
    let rig = rig("client_auth = \"client_secret_post\"").await;
    let (_, done) = rig.attempt().await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    let tokens = rig.op.token_requests().await;
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_eq!(tokens[0]["client_auth"], "client_secret_post");
    assert_eq!(tokens[0]["client_auth_ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_with_a_wrong_nonce_is_refused() {
    refused_by_the_plugin("wrong-nonce", "nonce").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_without_a_nonce_is_refused() {
    refused_by_the_plugin("no-nonce", "nonce").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_id_token_with_an_earlier_sign_ins_nonce_is_refused() {
    let rig = rig("").await;
    // An honest sign-in first: its ID token (nonce and all) is what gets replayed.
    let (_, done) = rig.attempt().await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    assert_eq!(users(&rig.host).await, 1);
    rig.refuses("replay-id-token", "nonce").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_alg_none_id_token_is_refused() {
    refused_by_the_plugin("alg-none", "none").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rs256_id_token_with_a_corrupted_signature_is_refused() {
    refused_by_the_plugin("bad-signature", "signature").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_signed_by_a_key_not_in_the_jwks_is_refused() {
    refused_by_the_plugin("wrong-key", "signature").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hs256_id_token_keyed_with_the_rsa_public_key_is_refused() {
    let rig = rig("").await;
    // The public key as PEM text, and as DER bytes.
    rig.refuses("hs256-public-pem", "HS256").await;
    rig.refuses("hs256-public-der", "HS256").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_from_another_issuer_is_refused() {
    refused_by_the_plugin("wrong-iss", "issued by").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_for_another_audience_is_refused() {
    refused_by_the_plugin("wrong-aud", "audience").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_with_an_extra_untrusted_audience_is_refused() {
    refused_by_the_plugin("extra-aud", "untrusted-client").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extra_audience_listed_in_trusted_audiences_is_accepted() {
    // Control for the test above: the refusal is about trust, not the array shape.
    let rig = rig("trusted_audiences = [\"untrusted-client\"]").await;
    rig.op.set_mode("extra-aud", json!({})).await;
    let (mut browser, done) = rig.attempt().await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    assert_eq!(browser.get("/me").await.json()["username"], "mallory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_authorized_for_another_client_by_azp_is_refused() {
    let rig = rig("").await;
    // aud = [us, other], azp = other; and aud = us, azp = other.
    rig.refuses("azp-other", "another-client").await;
    rig.refuses("azp-other-single-aud", "azp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_id_token_is_refused() {
    refused_by_the_plugin("expired", "expired").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_issued_long_ago_is_refused() {
    refused_by_the_plugin("iat-past", "issued").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_issued_in_the_future_is_refused() {
    refused_by_the_plugin("iat-future", "future").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_without_a_subject_is_refused() {
    refused_by_the_plugin("missing-sub", "sub").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_userinfo_subject_other_than_the_id_tokens_is_refused() {
    // Default settings: UserInfo is asked because discovery advertises it.
    let rig = rig("").await;
    rig.refuses("userinfo-other-sub", "userinfo").await;
    let userinfo = rig
        .op
        .requests()
        .await
        .into_iter()
        .filter(|r| r["endpoint"] == "userinfo")
        .count();
    assert!(userinfo >= 2, "the plugin asked UserInfo in both flows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_whose_iss_names_another_provider_is_refused() {
    let rig = rig("").await;
    let before = users(&rig.host).await;
    rig.op.set_mode("callback-iss-other", json!({})).await;
    let (mut browser, done) = rig.attempt().await;
    assert_refused(&rig.host, &mut browser, &done, before).await;
    let (outcome, reason) = last_audit(&rig.host).await;
    assert_eq!(outcome, "failure");
    assert!(reason.contains("iss"), "{reason}");
    // Refused before any code was redeemed at the (wrong) token endpoint.
    assert!(rig.op.token_requests().await.is_empty());
    // Control: the honest callback `iss` signs in.
    rig.op.set_mode("valid", json!({})).await;
    let (_, done) = rig.attempt().await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
}

// ---------------------------------------------------------------------------
// Flow-level attacks, against the real provider.

fn real_provider() -> OidcProvider {
    let mut accounts = serde_json::Map::new();
    accounts.insert(
        "alice".into(),
        json!({
            "email": "alice@example.test",
            "email_verified": true,
            "given_name": "Alice",
            "family_name": "Liddell",
        }),
    );
    OidcProvider::start(ProviderOptions {
        claims_in_id_token: true,
        clients: vec![oidc::client(
            "corp",
            CLIENT_ID,
            CLIENT_SECRET,
            "client_secret_basic",
        )],
        accounts,
        ..ProviderOptions::default()
    })
}

/// Starts a sign-in in `browser` and walks the real provider; returns the callback
/// URL (on the host) without delivering it.
async fn callback_from_provider(browser: &mut Browser, agent: &mut IdpAgent) -> String {
    let authorize = start(browser, "corp", "%2F").await;
    agent.authorize(&authorize, "alice").await
}

/// `url` with query parameter `name` removed, or replaced by `value`.
fn with_param(url: &str, name: &str, value: Option<&str>) -> String {
    let mut parsed = url::Url::parse(url).expect("URL");
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut query = parsed.query_pairs_mut();
        query.clear();
        for (k, v) in &pairs {
            if k == name {
                if let Some(value) = value {
                    query.append_pair(k, value);
                }
            } else {
                query.append_pair(k, v);
            }
        }
    }
    parsed.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_without_state_is_refused() {
    let op = real_provider();
    let host = TestHost::start(&idp_config(op.issuer(), "")).await;
    let mut browser = host.browser(HOST);
    let mut agent = IdpAgent::new();
    let callback = callback_from_provider(&mut browser, &mut agent).await;
    let page = browser
        .get(&local_path(&with_param(&callback, "state", None)))
        .await;
    assert_refused(&host, &mut browser, &page, 0).await;
    assert_eq!(last_audit(&host).await.0, "refused");
    // Control: the untouched callback still works (nothing else was wrong).
    let done = browser.get(&local_path(&callback)).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_with_a_mismatched_state_is_refused() {
    let op = real_provider();
    let host = TestHost::start(&idp_config(op.issuer(), "")).await;
    let mut browser = host.browser(HOST);
    let mut agent = IdpAgent::new();
    let callback = callback_from_provider(&mut browser, &mut agent).await;
    let state = url::Url::parse(&callback)
        .ok()
        .and_then(|u| param(&u, "state"))
        .expect("state");
    let forged = with_param(&callback, "state", Some(&format!("{state}x")));
    let page = browser.get(&local_path(&forged)).await;
    assert_refused(&host, &mut browser, &page, 0).await;
    let done = browser.get(&local_path(&callback)).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_state_is_refused() {
    let op = real_provider();
    let host = TestHost::start(&idp_config(op.issuer(), "")).await;
    let mut browser = host.browser(HOST);
    let mut agent = IdpAgent::new();
    let callback = callback_from_provider(&mut browser, &mut agent).await;
    let done = browser.get(&local_path(&callback)).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    assert_eq!(users(&host).await, 1);

    // The same callback again, in the same browser without its session.
    let mut replayer = browser.clone();
    replayer.cookies.remove("gh_session");
    let page = replayer.get(&local_path(&callback)).await;
    assert_refused(&host, &mut replayer, &page, 1).await;
    assert_eq!(last_audit(&host).await.0, "refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_redeemed_once_is_refused_when_replayed_in_a_new_sign_in() {
    let op = real_provider();
    let host = TestHost::start(&idp_config(op.issuer(), "")).await;
    let mut browser = host.browser(HOST);
    let mut agent = IdpAgent::new();
    let first = callback_from_provider(&mut browser, &mut agent).await;
    assert_eq!(
        browser.get(&local_path(&first)).await.status,
        StatusCode::SEE_OTHER
    );
    let used_code = url::Url::parse(&first)
        .ok()
        .and_then(|u| param(&u, "code"))
        .expect("code");

    // A new sign-in (fresh state) whose callback carries the used code.
    let mut attacker = host.browser(HOST);
    let second = callback_from_provider(&mut attacker, &mut agent).await;
    let replayed = with_param(&second, "code", Some(&used_code));
    let page = attacker.get(&local_path(&replayed)).await;
    assert!(
        page.status.is_client_error() || page.status == StatusCode::BAD_GATEWAY,
        "{page:?}"
    );
    assert!(!sets_session(&page));
    assert_eq!(attacker.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(users(&host).await, 1);
    let (outcome, reason) = last_audit(&host).await;
    assert_eq!(outcome, "failure");
    eprintln!("replayed code: refused: {reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_in_another_browser_than_the_one_that_started_is_refused() {
    let op = real_provider();
    let host = TestHost::start(&idp_config(op.issuer(), "")).await;
    let mut victim = host.browser(HOST);
    let mut agent = IdpAgent::new();
    let callback = callback_from_provider(&mut victim, &mut agent).await;
    let mut other = host.browser(HOST);
    let page = other.get(&local_path(&callback)).await;
    assert_refused(&host, &mut other, &page, 0).await;
    assert!(page.body.contains("another browser"), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_iss_parameter_of_another_provider_is_refused_with_the_real_provider() {
    let op = real_provider();
    let host = TestHost::start(&idp_config(op.issuer(), "")).await;
    let mut browser = host.browser(HOST);
    let mut agent = IdpAgent::new();
    let callback = callback_from_provider(&mut browser, &mut agent).await;
    let mixed_up = with_param(&callback, "iss", Some("http://127.0.0.1:1/other-provider"));
    let page = browser.get(&local_path(&mixed_up)).await;
    assert_refused(&host, &mut browser, &page, 0).await;
    let (outcome, reason) = last_audit(&host).await;
    assert_eq!(outcome, "failure");
    assert!(reason.contains("iss"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_site_return_to_values_are_not_where_the_sign_in_lands() {
    let op = real_provider();
    let host = TestHost::start(&idp_config(op.issuer(), "")).await;
    let mut agent = IdpAgent::new();
    for hostile in [
        "https%3A%2F%2Fevil.example",
        "%2F%2Fevil.example",
        "%2F%5Cevil.example",
        "https:evil.example",
        "%2F%2F%2Fevil.example",
    ] {
        let mut browser = host.browser(HOST);
        let done = sign_in(&mut browser, &mut agent, "corp", hostile, "alice")
            .await
            .done;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{hostile}: {done:?}");
        assert_eq!(done.location.as_deref(), Some("/"), "{hostile}");
        assert!(sets_session(&done));
    }
    // Control: a same-site path is honoured.
    let mut browser = host.browser(HOST);
    let done = sign_in(&mut browser, &mut agent, "corp", "%2Fcourses%2F7", "alice")
        .await
        .done;
    assert_eq!(done.location.as_deref(), Some("/courses/7"));
}
