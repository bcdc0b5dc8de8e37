//! Auth0- and Google-shaped sign-ins through the `auth0` and `google` plugins
//! against the real npm `oidc-provider`, configured to issue those shapes: Auth0's
//! trailing-slash issuer and `org_id` claim for an organization, Google's
//! `prompt=select_account` and `hd` claim checked against the allowed Workspace
//! domains; and the host's refusal to create or match a user by an email the
//! provider says is not verified.

use axum::http::StatusCode;
use gatehouse::store::NewUser;
use gatehouse_tests::{
    Browser, Page, TestHost,
    oidc::{self, HOST, IdpAgent, OidcProvider, ProviderOptions, param, sets_session, sign_in},
};
use serde_json::{Value, json};

const CLIENT_SECRET: &str = "gatehouse-test-secret-0123456789-0123456789";

fn provider(
    idp: &str,
    client_id: &str,
    options: ProviderOptions,
    account: (&str, Value),
) -> OidcProvider {
    let mut accounts = serde_json::Map::new();
    accounts.insert(account.0.into(), account.1);
    OidcProvider::start(ProviderOptions {
        claims_in_id_token: true,
        clients: vec![oidc::client(
            idp,
            client_id,
            CLIENT_SECRET,
            "client_secret_basic",
        )],
        accounts,
        ..options
    })
}

async fn users(host: &TestHost) -> i64 {
    host.store.count_users().await.expect("count users")
}

/// A refused callback: a client error, no session cookie, `/me` still 401, the user
/// count unchanged, and an audit row whose reason mentions `because`
/// (case-insensitive).
async fn assert_refused(
    host: &TestHost,
    browser: &mut Browser,
    page: &Page,
    users_before: i64,
    because: &str,
) {
    let audit = host.store.recent_audit(1).await.expect("audit");
    let reason = audit.first().map(|a| a.reason.clone()).unwrap_or_default();
    eprintln!("refused: {reason}");
    assert!(
        reason.to_lowercase().contains(&because.to_lowercase()),
        "refused, but not because of `{because}`: {reason}"
    );
    assert!(
        page.status.is_client_error(),
        "expected a refusal, got {page:?}; audit: {:?}",
        host.store.recent_audit(1).await
    );
    assert!(!sets_session(page), "{page:?}");
    assert_eq!(browser.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(users(host).await, users_before, "no user may be written");
}

// ---------------------------------------------------------------------------
// Auth0

fn auth0_account(org_id: &str) -> Value {
    json!({
        "email": "bob@acme.test",
        "email_verified": true,
        "given_name": "Bob",
        "family_name": "Builder",
        "name": "Bob Builder",
        "org_id": org_id,
    })
}

fn auth0_provider(org_id: &str) -> OidcProvider {
    provider(
        "acme",
        "auth0-client",
        ProviderOptions {
            trailing_slash_issuer: true,
            extra_openid_claims: vec!["org_id".into()],
            ..ProviderOptions::default()
        },
        ("auth0|bob", auth0_account(org_id)),
    )
}

fn auth0_config(op: &OidcProvider) -> String {
    assert!(op.issuer().ends_with('/'), "Auth0 issuers end with a slash");
    oidc::host_config(&format!(
        r#"
[[field]]
name = "organisation"

[[idp]]
id = "acme"
domain = "root"
plugin = "auth0"
name = "Sign in with Acme (Auth0)"
username_attribute = "sub"

[idp.provisioning]
create_users = true
update_existing = true
fields = {{ firstname = "given_name", lastname = "family_name", email = "email", organisation = "org_id" }}

[idp.settings]
domain = "acme-test.eu.auth0.com"
issuer_url = "{issuer}"
client_id = "auth0-client"
client_secret = "{CLIENT_SECRET}"
connection = "Username-Password-Authentication"
organization = "org_acme"
"#,
        issuer = op.issuer()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth0_sign_in_with_a_trailing_slash_issuer_and_the_organization_creates_the_user() {
    let op = auth0_provider("org_acme");
    let host = TestHost::start(&auth0_config(&op)).await;
    let mut browser = host.browser(HOST);
    let mut agent = IdpAgent::new();
    let signed = sign_in(&mut browser, &mut agent, "acme", "%2F", "auth0|bob").await;

    let auth = &signed.authorize_url;
    assert_eq!(param(auth, "organization").as_deref(), Some("org_acme"));
    assert_eq!(
        param(auth, "connection").as_deref(),
        Some("Username-Password-Authentication")
    );
    assert_eq!(
        param(auth, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(agent.prompts, ["login", "consent"]);
    assert_eq!(
        signed.done.status,
        StatusCode::SEE_OTHER,
        "{:?}\n{}",
        signed.done,
        op.log()
    );
    assert!(sets_session(&signed.done));

    let me = browser.get("/me").await.json();
    assert_eq!(me["username"], "auth0|bob");
    assert_eq!(me["email"], "bob@acme.test");
    assert_eq!(me["firstname"], "Bob");
    assert_eq!(me["lastname"], "Builder");
    assert_eq!(me["additional"]["organisation"], "org_acme");
    assert_eq!(users(&host).await, 1);

    // A second sign-in matches the same user.
    let mut second = host.browser(HOST);
    let again = sign_in(&mut second, &mut agent, "acme", "%2F", "auth0|bob").await;
    assert_eq!(again.done.status, StatusCode::SEE_OTHER, "{:?}", again.done);
    assert_eq!(second.get("/me").await.json()["id"], me["id"]);
    assert_eq!(users(&host).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth0_refuses_an_id_token_of_another_organization() {
    let op = auth0_provider("org_evil");
    let host = TestHost::start(&auth0_config(&op)).await;
    let mut browser = host.browser(HOST);
    let mut agent = IdpAgent::new();
    let done = sign_in(&mut browser, &mut agent, "acme", "%2F", "auth0|bob")
        .await
        .done;
    assert_refused(&host, &mut browser, &done, 0, "org_evil").await;

    // Control: the right organization signs in through the same provider.
    op.set_account("auth0|bob", auth0_account("org_acme"));
    let mut browser = host.browser(HOST);
    let done = sign_in(&mut browser, &mut agent, "acme", "%2F", "auth0|bob")
        .await
        .done;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
}

// ---------------------------------------------------------------------------
// Google

fn google_account(email: &str, email_verified: bool, hd: Option<&str>) -> Value {
    let mut account = json!({
        "email": email,
        "email_verified": email_verified,
        "given_name": "Carol",
        "family_name": "Danvers",
        "name": "Carol Danvers",
    });
    if let Some(hd) = hd {
        account["hd"] = json!(hd);
    }
    account
}

fn google_provider(account: Value) -> OidcProvider {
    provider(
        "google",
        "google-client.apps.googleusercontent.com",
        ProviderOptions {
            extra_openid_claims: vec!["hd".into()],
            select_account_prompt: true,
            ..ProviderOptions::default()
        },
        ("109876543210", account),
    )
}

/// A Google IdP; `identity` is its `username_attribute`/`match_field` lines.
fn google_config(op: &OidcProvider, identity: &str, settings: &str) -> String {
    oidc::host_config(&format!(
        r#"
[[field]]
name = "workspace"

[[idp]]
id = "google"
domain = "root"
plugin = "google"
name = "Sign in with Google"
{identity}

[idp.provisioning]
create_users = true
update_existing = true
fields = {{ firstname = "given_name", lastname = "family_name", email = "email", workspace = "hd" }}

[idp.settings]
issuer_url = "{issuer}"
client_id = "google-client.apps.googleusercontent.com"
client_secret = "{CLIENT_SECRET}"
{settings}
"#,
        issuer = op.issuer()
    ))
}

const BY_SUB: &str = "username_attribute = \"sub\"";
const ALLOW_EXAMPLE: &str = "allowed_domains = [\"example.test\"]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_sign_in_in_an_allowed_workspace_domain_creates_the_user() {
    let op = google_provider(google_account(
        "carol@example.test",
        true,
        Some("example.test"),
    ));
    let host = TestHost::start(&google_config(&op, BY_SUB, ALLOW_EXAMPLE)).await;
    let mut browser = host.browser(HOST);
    let mut agent = IdpAgent::new();
    let signed = sign_in(
        &mut browser,
        &mut agent,
        "google",
        "%2Fhome",
        "109876543210",
    )
    .await;

    let auth = &signed.authorize_url;
    assert_eq!(param(auth, "prompt").as_deref(), Some("select_account"));
    assert_eq!(
        param(auth, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(agent.prompts, ["select_account", "consent"]);
    assert_eq!(
        signed.done.status,
        StatusCode::SEE_OTHER,
        "{:?}\n{}",
        signed.done,
        op.log()
    );
    assert_eq!(signed.done.location.as_deref(), Some("/home"));

    let me = browser.get("/me").await.json();
    assert_eq!(me["username"], "109876543210");
    assert_eq!(me["email"], "carol@example.test");
    assert_eq!(me["firstname"], "Carol");
    assert_eq!(me["additional"]["workspace"], "example.test");
    assert_eq!(users(&host).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_refuses_an_hd_outside_the_allowed_workspace_domains() {
    let op = google_provider(google_account("carol@evil.test", true, Some("evil.test")));
    let host = TestHost::start(&google_config(&op, BY_SUB, ALLOW_EXAMPLE)).await;
    let mut agent = IdpAgent::new();
    let mut browser = host.browser(HOST);
    let done = sign_in(&mut browser, &mut agent, "google", "%2F", "109876543210")
        .await
        .done;
    assert_refused(&host, &mut browser, &done, 0, "evil.test").await;

    // A consumer account (no `hd`) is not in any Workspace domain either.
    op.set_account(
        "109876543210",
        google_account("carol@example.test", true, None),
    );
    let mut browser = host.browser(HOST);
    let done = sign_in(&mut browser, &mut agent, "google", "%2F", "109876543210")
        .await
        .done;
    assert_refused(&host, &mut browser, &done, 0, "hd").await;

    // Control: the allowed domain signs in through the same provider.
    op.set_account(
        "109876543210",
        google_account("carol@example.test", true, Some("example.test")),
    );
    let mut browser = host.browser(HOST);
    let done = sign_in(&mut browser, &mut agent, "google", "%2F", "109876543210")
        .await
        .done;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
}

/// With `username_attribute = "email"`, an email the provider says is unverified
/// neither creates a user nor matches an existing one by email; the refusal's
/// reason mentions `because`.
async fn unverified_email_neither_creates_nor_matches(
    plugin_config: &str,
    op: &OidcProvider,
    because: &str,
) {
    let host = TestHost::start(plugin_config).await;
    let idp = if plugin_config.contains("plugin = \"google\"") {
        "google"
    } else {
        "corp"
    };
    let account = "109876543210";
    let mut agent = IdpAgent::new();

    // Nobody has this email yet: no user is created from an unverified email.
    let mut browser = host.browser(HOST);
    let done = sign_in(&mut browser, &mut agent, idp, "%2F", account)
        .await
        .done;
    assert_refused(&host, &mut browser, &done, 0, because).await;

    // A platform user owns this email: the unverified email must not sign in as her.
    let now = host.state.now();
    let victim = host
        .store
        .create_user(
            &NewUser {
                username: "victim".into(),
                email: "victim@example.test".into(),
                firstname: "Vic".into(),
                lastname: "Tim".into(),
                branch: "root".into(),
                // Provisioned earlier by another IdP, which vouched for her email: only
                // such a value may match (never one the account's own user typed).
                auth_source: "idp:earlier".into(),
                ..NewUser::default()
            },
            &[gatehouse::store::FieldProvenance {
                field: "email".into(),
                idp_id: "earlier".into(),
                set_at: now,
            }],
            now,
        )
        .await
        .expect("create the victim");
    let mut browser = host.browser(HOST);
    let done = sign_in(&mut browser, &mut agent, idp, "%2F", account)
        .await
        .done;
    assert_refused(&host, &mut browser, &done, 1, because).await;
    let stored = host
        .store
        .user_by_id(victim)
        .await
        .expect("read")
        .expect("victim");
    assert_eq!(stored.firstname, "Vic", "the victim was not updated");

    // Control: once the provider has verified the email, it matches her.
    op.set_account(
        account,
        google_account("victim@example.test", true, Some("example.test")),
    );
    let mut browser = host.browser(HOST);
    let done = sign_in(&mut browser, &mut agent, idp, "%2F", account)
        .await
        .done;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    assert_eq!(browser.get("/me").await.json()["id"], victim);
    assert_eq!(users(&host).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_email_that_is_not_verified_neither_creates_nor_matches_a_user_by_email() {
    let op = google_provider(google_account(
        "victim@example.test",
        false,
        Some("example.test"),
    ));
    let config = google_config(
        &op,
        "username_attribute = \"email\"\nmatch_field = \"email\"",
        // Matching by email needs email to be an administrator's field (match-field-editable).
        &format!(
            "{ALLOW_EXAMPLE}\n[registration]\nuser_editable_core = [\"firstname\", \"lastname\"]"
        ),
    );
    // The google plugin withholds an unverified email altogether, so the host finds
    // no `email` to identify the user by.
    unverified_email_neither_creates_nor_matches(&config, &op, "email").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_email_that_is_not_verified_neither_creates_nor_matches_a_user_by_email() {
    let op = provider(
        "corp",
        "gatehouse-oidc",
        ProviderOptions::default(),
        (
            "109876543210",
            google_account("victim@example.test", false, None),
        ),
    );
    let config = corp_by_email_config(&op, "");
    // The oidc plugin passes the email on with `email_verified = "false"`, and the
    // host's rule refuses to create or match by it.
    unverified_email_neither_creates_nor_matches(&config, &op, "not verified").await;
}

/// An OIDC IdP `corp` on `op` that identifies and matches users by email, creating them;
/// `idp_keys` adds `[[idp]]` keys.
fn corp_by_email_config(op: &OidcProvider, idp_keys: &str) -> String {
    oidc::host_config(&format!(
        r#"
[[idp]]
id = "corp"
domain = "root"
plugin = "oidc"
name = "Sign in with Corp"
username_attribute = "email"
match_field = "email"
{idp_keys}

[idp.provisioning]
create_users = true
update_existing = false
fields = {{ firstname = "given_name", lastname = "family_name", email = "email" }}

[idp.settings]
issuer = "{issuer}"
client_id = "gatehouse-oidc"
client_secret = "{CLIENT_SECRET}"

[registration]
user_editable_core = ["firstname", "lastname"]
"#,
        issuer = op.issuer()
    ))
}

/// Regression (nOAuth: Entra sends no `email_verified`): an ID token without the claim
/// identifies nobody by email, unless the admin vouches for the IdP with `trust_email`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_email_without_email_verified_identifies_nobody_unless_trusted() {
    let mut account = google_account("nina@example.test", true, None);
    account
        .as_object_mut()
        .expect("an object")
        .remove("email_verified");
    let op = provider(
        "corp",
        "gatehouse-oidc",
        ProviderOptions::default(),
        ("109876543210", account),
    );
    let host = TestHost::start(&corp_by_email_config(&op, "trust_email = false")).await;
    let mut agent = IdpAgent::new();
    let mut browser = host.browser(HOST);
    let done = sign_in(&mut browser, &mut agent, "corp", "%2F", "109876543210")
        .await
        .done;
    assert_refused(&host, &mut browser, &done, 0, "not verified").await;

    let trusting = TestHost::start(&corp_by_email_config(&op, "trust_email = true")).await;
    let mut browser = trusting.browser(HOST);
    let done = sign_in(&mut browser, &mut agent, "corp", "%2F", "109876543210")
        .await
        .done;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    assert_eq!(
        browser.get("/me").await.json()["username"],
        "nina@example.test"
    );
}
