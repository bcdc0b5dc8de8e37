//! Sign-in with the `oidc` plugin against a real OpenID provider (the certified npm
//! `oidc-provider`, started on 127.0.0.1 by the test), driven over HTTP with no
//! browser: the host's login page, `/sso/{idp}/start`, the provider's login and
//! consent pages, the callback, the session and `/me`; user creation, matching and
//! updating; and logout at the provider.

use axum::http::StatusCode;
use base64::Engine as _;
use gatehouse_tests::{
    TestHost,
    oidc::{
        self, HOST, IdpAgent, OidcProvider, ProviderOptions, callback_url, local_path, param,
        sets_session, sign_in,
    },
};
use serde_json::{Value, json};

const CLIENT_ID: &str = "gatehouse-oidc";
const CLIENT_SECRET: &str = "gatehouse-oidc-secret-0123456789-0123456789";

fn alice() -> Value {
    json!({
        "email": "alice@example.test",
        "email_verified": true,
        "given_name": "Alice",
        "family_name": "Liddell",
        "name": "Alice Liddell",
        "preferred_username": "alice",
    })
}

fn provider(auth_method: &str, claims_in_id_token: bool) -> OidcProvider {
    let mut accounts = serde_json::Map::new();
    accounts.insert("alice".into(), alice());
    OidcProvider::start(ProviderOptions {
        claims_in_id_token,
        clients: vec![oidc::client("corp", CLIENT_ID, CLIENT_SECRET, auth_method)],
        accounts,
        ..ProviderOptions::default()
    })
}

/// The host configuration for IdP `corp` at `op`, with extra `[idp]` keys, extra
/// provisioning keys and extra settings.
fn config(op: &OidcProvider, idp_keys: &str, update_existing: bool, settings: &str) -> String {
    oidc::host_config(&format!(
        r#"
[[idp]]
id = "corp"
domain = "root"
plugin = "oidc"
name = "Sign in with Corp"
username_attribute = "sub"
{idp_keys}

[idp.provisioning]
create_users = true
update_existing = {update_existing}
lock_fields = true
fields = {{ firstname = "given_name", lastname = "family_name", email = "email" }}

[idp.settings]
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
{settings}
"#,
        issuer = op.issuer()
    ))
}

async fn users(host: &TestHost) -> i64 {
    host.store.count_users().await.expect("count users")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_sign_in_creates_the_user_and_the_second_matches_the_same_user() {
    let op = provider("client_secret_basic", false);
    // Default settings: the profile claims come from UserInfo, which discovery advertises.
    let host = TestHost::start(&config(&op, "", true, "")).await;
    let mut browser = host.browser(HOST);
    let mut agent = IdpAgent::new();

    let first = sign_in(&mut browser, &mut agent, "corp", "%2Fcourses%2F7", "alice").await;

    // The authorization request is a code flow with state, nonce and PKCE S256, to
    // the registered redirect URI.
    let auth = &first.authorize_url;
    assert!(auth.as_str().starts_with(op.issuer()), "{auth}");
    assert_eq!(param(auth, "response_type").as_deref(), Some("code"));
    assert_eq!(param(auth, "client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(
        param(auth, "redirect_uri").as_deref(),
        Some(callback_url("corp").as_str())
    );
    let scope = param(auth, "scope").expect("scope");
    for wanted in ["openid", "email", "profile"] {
        assert!(scope.split(' ').any(|s| s == wanted), "{scope}");
    }
    assert_eq!(
        param(auth, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(param(auth, "code_challenge").map(|c| c.len()), Some(43));
    assert!(
        param(auth, "state").is_some_and(|s| s.len() >= 32),
        "{auth}"
    );
    assert!(
        param(auth, "nonce").is_some_and(|n| n.len() >= 16),
        "{auth}"
    );
    // The provider really asked for a login and a consent.
    assert_eq!(agent.prompts, ["login", "consent"]);
    // oidc-provider answers with RFC 9207's `iss`.
    assert!(
        first.callback_url.contains("&iss="),
        "{}",
        first.callback_url
    );

    let done = &first.done;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}\n{}", op.log());
    assert_eq!(done.location.as_deref(), Some("/courses/7"));
    assert!(sets_session(done));

    let me = browser.get("/me").await;
    assert_eq!(me.status, StatusCode::OK);
    let me = me.json();
    assert_eq!(me["username"], "alice");
    assert_eq!(me["email"], "alice@example.test");
    assert_eq!(me["firstname"], "Alice");
    assert_eq!(me["lastname"], "Liddell");
    assert_eq!(me["auth_source"], "idp:corp");
    assert_eq!(me["session"]["idp"], "corp");
    let user_id = me["id"].as_i64().expect("id");

    // In the database: one user, its fields provisioned by `corp`.
    assert_eq!(users(&host).await, 1);
    let stored = host
        .store
        .user_by_id(user_id)
        .await
        .expect("read user")
        .expect("user stored");
    assert_eq!(stored.username, "alice");
    assert_eq!(stored.email, "alice@example.test");
    assert_eq!(
        (stored.firstname.as_str(), stored.lastname.as_str()),
        ("Alice", "Liddell")
    );
    let provenance = host.store.provenance(user_id).await.expect("provenance");
    for field in ["username", "email", "firstname", "lastname"] {
        assert!(
            provenance
                .iter()
                .any(|p| p.field == field && p.idp_id == "corp"),
            "{field}: {provenance:?}"
        );
    }

    // A second sign-in in a fresh browser: the provider still has its session and
    // grant (no pages), and the host matches the same user.
    let mut second = host.browser(HOST);
    agent.prompts.clear();
    let again = sign_in(&mut second, &mut agent, "corp", "%2F", "alice").await;
    assert!(agent.prompts.is_empty(), "{:?}", agent.prompts);
    assert_eq!(again.done.status, StatusCode::SEE_OTHER, "{:?}", again.done);
    assert_eq!(again.done.location.as_deref(), Some("/"));
    assert_eq!(second.get("/me").await.json()["id"], user_id);
    assert_eq!(users(&host).await, 1);
    assert!(
        host.store
            .idp_last_success("corp")
            .await
            .expect("history")
            .is_some()
    );
}

/// Signs `alice` in once, changes her claims at the provider, signs in again, and
/// returns the user as `/me` shows it after each sign-in.
async fn sign_in_change_claims_sign_in(update_existing: bool) -> (Value, Value, i64) {
    let op = provider("client_secret_basic", false);
    let host = TestHost::start(&config(&op, "", update_existing, "")).await;
    let mut agent = IdpAgent::new();

    let mut browser = host.browser(HOST);
    let first = sign_in(&mut browser, &mut agent, "corp", "%2F", "alice").await;
    assert_eq!(first.done.status, StatusCode::SEE_OTHER, "{:?}", first.done);
    let before = browser.get("/me").await.json();

    op.set_account(
        "alice",
        json!({
            "email": "alice.hargreaves@example.test",
            "email_verified": true,
            "given_name": "Alice",
            "family_name": "Hargreaves",
            "name": "Alice Hargreaves",
        }),
    );
    let mut browser = host.browser(HOST);
    let second = sign_in(&mut browser, &mut agent, "corp", "%2F", "alice").await;
    assert_eq!(
        second.done.status,
        StatusCode::SEE_OTHER,
        "{:?}",
        second.done
    );
    let after = browser.get("/me").await.json();
    (before, after, users(&host).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_claims_update_the_matched_user_when_update_existing_is_on() {
    let (before, after, count) = sign_in_change_claims_sign_in(true).await;
    assert_eq!(count, 1);
    assert_eq!(after["id"], before["id"], "the same user, matched by sub");
    assert_eq!(before["lastname"], "Liddell");
    assert_eq!(after["lastname"], "Hargreaves");
    assert_eq!(after["email"], "alice.hargreaves@example.test");
    assert_eq!(after["firstname"], "Alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_claims_leave_the_matched_user_alone_when_update_existing_is_off() {
    let (before, after, count) = sign_in_change_claims_sign_in(false).await;
    assert_eq!(count, 1);
    assert_eq!(after["id"], before["id"], "the same user, matched by sub");
    assert_eq!(after["lastname"], "Liddell");
    assert_eq!(after["email"], "alice@example.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_post_with_claims_in_the_id_token_signs_in_without_userinfo() {
    // The client is registered for client_secret_post (oidc-provider accepts either
    // secret method; the hostile suite checks which one the plugin sends), and the
    // provider puts the profile claims in the ID token.
    let op = provider("client_secret_post", true);
    let host = TestHost::start(&config(
        &op,
        "",
        true,
        "client_auth = \"client_secret_post\"\nuse_userinfo = false",
    ))
    .await;
    let mut browser = host.browser(HOST);
    let mut agent = IdpAgent::new();
    let done = sign_in(&mut browser, &mut agent, "corp", "%2F", "alice")
        .await
        .done;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}\n{}", op.log());
    let me = browser.get("/me").await.json();
    assert_eq!(me["username"], "alice");
    assert_eq!(me["email"], "alice@example.test");
    assert_eq!(me["lastname"], "Liddell");
    assert_eq!(users(&host).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_secret_is_refused_by_the_provider_and_signs_nobody_in() {
    // Control for the tests above: the provider really authenticates the client at
    // its token endpoint, so a plugin with the wrong secret gets no tokens.
    let op = provider("client_secret_basic", true);
    let wrong = config(&op, "", true, "").replace(CLIENT_SECRET, "not-the-secret-0123456789");
    let host = TestHost::start(&wrong).await;
    let mut browser = host.browser(HOST);
    let mut agent = IdpAgent::new();
    let done = sign_in(&mut browser, &mut agent, "corp", "%2F", "alice")
        .await
        .done;
    assert!(
        done.status.is_client_error() || done.status.is_server_error(),
        "{done:?}"
    );
    assert!(!sets_session(&done));
    assert_eq!(browser.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(users(&host).await, 0);
    let audit = host.store.recent_audit(1).await.expect("audit");
    assert_eq!(audit[0].outcome, "failure", "{:?}", audit[0]);
}

fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_at_the_idp_ends_the_provider_session_and_comes_back_to_the_host() {
    let op = provider("client_secret_basic", false);
    let host = TestHost::start(&config(&op, "logout = { at_idp = true }", true, "")).await;
    let mut browser = host.browser(HOST);
    let mut agent = IdpAgent::new();
    let first = sign_in(&mut browser, &mut agent, "corp", "%2F", "alice").await;
    assert_eq!(first.done.status, StatusCode::SEE_OTHER, "{:?}", first.done);
    assert!(agent.has_session(&first.authorize_url).await);

    let csrf = browser.csrf().await;
    let out = browser.post_form("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{out:?}");
    // Signed out of the host at once.
    assert_eq!(browser.get("/me").await.status, StatusCode::UNAUTHORIZED);

    // Sent to the provider's end-session endpoint with the ID token and the way back.
    let end_session = out.location.clone().expect("redirect to the provider");
    let url = url::Url::parse(&end_session).expect("absolute URL");
    assert!(
        end_session.starts_with(&format!(
            "{}/session/end",
            op.issuer().trim_end_matches('/')
        )),
        "{end_session}"
    );
    assert_eq!(
        param(&url, "post_logout_redirect_uri"),
        Some(oidc::logout_url("corp"))
    );
    let hint = param(&url, "id_token_hint").expect("id_token_hint");
    let claims = jwt_claims(&hint);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], CLIENT_ID);
    assert_eq!(claims["iss"], op.issuer());

    // Confirm at the provider, which sends the browser back to the host.
    let back = agent.end_session(&end_session).await;
    assert!(back.starts_with(&oidc::logout_url("corp")), "{back}");
    let returned = browser.get(&local_path(&back)).await;
    assert_eq!(returned.status, StatusCode::SEE_OTHER, "{returned:?}");
    assert_eq!(returned.location.as_deref(), Some("/logged-out"));
    let landing = browser.follow(&returned).await;
    assert_eq!(landing.status, StatusCode::OK, "{landing:?}");
    assert!(landing.body.contains("Sign in again"), "{}", landing.body);

    // The provider's session is gone: signing in asks for a login again.
    assert!(!agent.has_session(&first.authorize_url).await);
    assert_eq!(users(&host).await, 1);
}
