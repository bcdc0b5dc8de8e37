//! Regression tests for the weaknesses found by attacking a running host, through the real
//! router and the real example plugin library: identity merging and account takeover,
//! sign-in integrity (browser bindings, CSRF, sessions bound to their domain, test sign-ins
//! that would refuse), and password throttling. Each test is named for the bug it pins.

use axum::http::StatusCode;
use gatehouse::store::{FieldProvenance, NewUser};
use gatehouse_tests::{Browser, EXAMPLE_CONFIG, TestHost};
use serde_json::json;

/// A host section and the example plugin; `rest` adds domains and IdPs.
fn config(rest: &str) -> String {
    format!(
        r#"
[host]
public_url = "http://localhost:8080"
database = "{{database}}"
plugin_dir = "{{plugin_dir}}"
dev_mode = true

[host.login_throttle]
max_failures_per_account = 3
max_failures_per_ip = 10
window_minutes = 15

[[plugin]]
id = "example"
library = "gatehouse_example"
{rest}"#
    )
}

/// An example IdP on `domain` asserting `subject` and `email`.
fn example_idp(id: &str, domain: &str, keys: &str, subject: &str, email: &str) -> String {
    format!(
        r#"
[[idp]]
id = "{id}"
domain = "{domain}"
plugin = "example"
{keys}

[idp.provisioning]
create_users = true
update_existing = false
lock_fields = false
fields = {{ firstname = "given_name", lastname = "family_name" }}

[idp.settings]
subject = "{subject}"
email = "{email}"
"#
    )
}

const ROOT_DOMAIN: &str = r#"
[[domain]]
name = "root"
hosts = ["localhost"]
"#;

async fn add_password_user(host: &TestHost, username: &str, branch: &str, admin: bool) -> i64 {
    host.create_password_user(username, branch, "correct horse", admin)
        .await
}

async fn signed_in_username(browser: &mut Browser) -> Option<String> {
    let me = browser.get("/me").await;
    (me.status == StatusCode::OK).then(|| me.json()["username"].as_str().unwrap_or("").to_owned())
}

// --- Account takeover and identity merging -----------------------------------------------

/// Regression: a user set `email` to the victim's address with `PATCH /me/profile`, and the
/// victim's first sign-in through an email-matching IdP landed in the attacker's account.
#[tokio::test]
async fn an_email_the_user_typed_never_matches_them_to_another_persons_sign_in() {
    let attacker_idp = example_idp(
        "staff",
        "root",
        "username_attribute = \"sub\"",
        "mallory",
        "mallory@evil.test",
    );
    let before = config(&format!("{ROOT_DOMAIN}{attacker_idp}"));
    let host = TestHost::start(&before).await;

    // The attacker signs in through the username-matching IdP and types the victim's email.
    let mut attacker = host.browser("localhost");
    let done = attacker.round_trip("/sso/staff/start").await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    let edit = attacker
        .send_json(
            "PATCH",
            "/me/profile",
            &json!({ "fields": { "email": "victim@example.test" } }),
        )
        .await;
    assert_eq!(edit.status, StatusCode::OK, "{edit:?}");
    let attacker_id = attacker.get("/me").await.json()["id"].clone();

    // Later, a partner site on the same branch gets an IdP that matches by email.
    let partner = format!(
        r#"
[[domain]]
name = "partner"
hosts = ["partner.test"]
branch = "root"
{}"#,
        example_idp(
            "partner",
            "partner",
            "username_attribute = \"email\"\nmatch_field = \"email\"",
            "victim-at-partner",
            "victim@example.test",
        )
    );
    // Matching by email needs email to be an admin's and IdPs' field from now on
    // (`match-field-editable`); the value typed earlier stays in the database.
    let email_admin_only = "\n[registration]\nuser_editable_core = [\"firstname\", \"lastname\"]\n";
    host.rewrite_config(&config(&format!(
        "{email_admin_only}{ROOT_DOMAIN}{attacker_idp}{partner}"
    )));
    let outcome = gatehouse::reload::reload(&host.state)
        .await
        .expect("reload");
    assert!(outcome.applied(), "{:?}", outcome.diagnostics());

    let mut victim = host.browser("partner.test");
    let done = victim.round_trip("/sso/partner/start").await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    let me = victim.get("/me").await.json();
    assert_ne!(
        me["id"], attacker_id,
        "the victim landed in the attacker's account"
    );
    assert_eq!(me["username"], "victim@example.test");
}

/// Regression: an IdP username of `admin` signed in as the built-in administrator.
#[tokio::test]
async fn an_idp_user_called_admin_is_not_the_administrator_until_an_admin_links_them() {
    let idp = example_idp(
        "corp",
        "root",
        "username_attribute = \"sub\"",
        "admin",
        "someone@corp.test",
    );
    let host = TestHost::start(&config(&format!("{ROOT_DOMAIN}{idp}"))).await;
    let admin_id = add_password_user(&host, "admin", "root", true).await;

    let mut browser = host.browser("localhost");
    let refused = browser.round_trip("/sso/corp/start").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    assert!(
        refused.body.contains("not linked to this sign-in method")
            && refused.body.contains("contact the administrator"),
        "{}",
        refused.body
    );
    assert_eq!(signed_in_username(&mut browser).await, None);

    // The administrator links their own account to the IdP, deliberately.
    let mut admin = host.signed_in_browser("localhost", admin_id).await;
    let link = admin
        .send_json(
            "POST",
            &format!("/admin/users/{admin_id}/links"),
            &json!({ "idp": "corp" }),
        )
        .await;
    assert_eq!(link.status, StatusCode::OK, "{link:?}");
    assert_eq!(link.json()["linked_idps"], json!(["corp"]));

    let mut browser = host.browser("localhost");
    let done = browser.round_trip("/sso/corp/start").await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    assert_eq!(
        signed_in_username(&mut browser).await.as_deref(),
        Some("admin")
    );
}

/// Regression: the same holds for a plain local password account.
#[tokio::test]
async fn sso_does_not_sign_into_a_local_password_account_it_did_not_provision() {
    let idp = example_idp(
        "corp",
        "root",
        "username_attribute = \"sub\"",
        "grace",
        "grace@corp.test",
    );
    let host = TestHost::start(&config(&format!("{ROOT_DOMAIN}{idp}"))).await;
    add_password_user(&host, "grace", "root", false).await;
    let mut browser = host.browser("localhost");
    let refused = browser.round_trip("/sso/corp/start").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    assert_eq!(signed_in_username(&mut browser).await, None);
    let audit = host.store.recent_audit(1).await.expect("audit");
    assert_eq!(audit[0].outcome, "refused");
    assert!(audit[0].reason.contains("not linked"), "{:?}", audit[0]);
}

/// Regression: `"alice\u3000"` was signed into `alice` because the match value was trimmed.
#[tokio::test]
async fn an_identifier_with_trailing_unicode_space_is_refused_not_trimmed() {
    let idp = example_idp(
        "corp",
        "root",
        "username_attribute = \"sub\"",
        "alice\u{3000}",
        "alice@corp.test",
    );
    let host = TestHost::start(&config(&format!("{ROOT_DOMAIN}{idp}"))).await;
    let alice = NewUser {
        username: "alice".into(),
        branch: "root".into(),
        auth_source: "idp:corp".into(),
        ..NewUser::default()
    };
    let provenance = [FieldProvenance {
        field: "username".into(),
        idp_id: "corp".into(),
        set_at: 1,
    }];
    host.store
        .create_user(&alice, &provenance, 1)
        .await
        .expect("alice");
    let mut browser = host.browser("localhost");
    let refused = browser.round_trip("/sso/corp/start").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    assert!(
        refused.body.contains("spaces or control characters"),
        "{}",
        refused.body
    );
    assert_eq!(signed_in_username(&mut browser).await, None);
    assert_eq!(host.store.count_users().await.expect("count"), 1);
}

// --- Sign-in integrity ---------------------------------------------------------------------

/// Regression: `/sso/*/start` adopted any client-supplied `gh_pending` of 32+ characters as
/// the browser binding, so a value planted from a parent domain bound the sign-in.
#[tokio::test]
async fn a_planted_browser_binding_is_never_adopted() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let planted = "attacker-chosen-binding-value-0123456789abcdef".to_owned();
    let mut victim = host.browser("localhost");
    victim.cookies.insert("gh_pending".into(), planted.clone());
    let begun = victim.get("/sso/example/start").await;
    assert_eq!(begun.status, StatusCode::SEE_OTHER, "{begun:?}");
    let minted = victim.cookies.get("gh_pending").cloned();
    assert!(
        minted.as_ref().is_some_and(|m| *m != planted),
        "the host must set a binding of its own: {:?}",
        begun.set_cookies
    );
    // The attacker, who knows only the planted value, cannot complete this sign-in.
    let mut attacker = host.browser("localhost");
    attacker.cookies.insert("gh_pending".into(), planted);
    let done = attacker.follow(&begun).await;
    assert_eq!(done.status, StatusCode::BAD_REQUEST, "{done:?}");
    // A binding the host minted is kept, so two tabs can sign in at once.
    let again = victim.get("/sso/example/start").await;
    assert!(
        !again
            .set_cookies
            .iter()
            .any(|c| c.starts_with("gh_pending=")),
        "{:?}",
        again.set_cookies
    );
    assert_eq!(victim.follow(&again).await.status, StatusCode::SEE_OTHER);
}

/// Regression: any CSRF cookie the browser chose was accepted if the form repeated it.
#[tokio::test]
async fn a_csrf_token_the_host_did_not_mint_is_refused() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    add_password_user(&host, "grace", "root", false).await;
    let mut browser = host.browser("localhost");
    let chosen = "browser-chosen-csrf-token-0123456789";
    browser.cookies.insert("gh_csrf".into(), chosen.into());
    let page = browser
        .post_form(
            "/login",
            &[
                ("csrf", chosen),
                ("username", "grace"),
                ("password", "correct horse"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{page:?}");
    assert_eq!(signed_in_username(&mut browser).await, None);
}

/// Regression: a session made on an EE domain was accepted on the root host.
#[tokio::test]
async fn a_session_is_valid_only_on_the_domain_it_was_made_on() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let user = host.create_user("ee-learner", false).await;
    let mut browser = host.signed_in_browser("acme.test", user).await;
    assert_eq!(browser.get("/me").await.status, StatusCode::OK);
    browser.host = "localhost".into();
    assert_eq!(browser.get("/me").await.status, StatusCode::UNAUTHORIZED);
    let admin = host.create_user("ee-admin", true).await;
    let mut admin = host.signed_in_browser("acme.test", admin).await;
    admin.host = "localhost".into();
    let page = admin.get("/admin/test-login/example").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{page:?}");
}

/// Regression: `POST /login` signed in by password where the domain offers no form.
#[tokio::test]
async fn password_sign_in_is_refused_where_the_domain_offers_no_form() {
    let rest = r#"
[[domain]]
name = "root"
hosts = ["localhost"]

[[domain]]
name = "forced"
hosts = ["forced.test"]
branch = "root"
force_external_sso_url = "https://sso.example.test/"

[[domain]]
name = "buttons"
hosts = ["buttons.test"]
branch = "root"
login_form = "hidden"
"#;
    let idp = example_idp(
        "corp",
        "buttons",
        "username_attribute = \"sub\"",
        "x",
        "x@corp.test",
    );
    let host = TestHost::start(&config(&format!("{rest}{idp}"))).await;
    add_password_user(&host, "grace", "root", false).await;

    for site in ["forced.test", "buttons.test"] {
        // A form token from a page that has a form, replayed where none is offered.
        let mut browser = host.browser("localhost");
        let csrf = browser.csrf().await;
        browser.host = site.into();
        let page = browser
            .post_form(
                "/login",
                &[
                    ("csrf", &csrf),
                    ("username", "grace"),
                    ("password", "correct horse"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{site}: {page:?}");
        assert_eq!(signed_in_username(&mut browser).await, None, "{site}");
    }
    // `?nosso=1` shows the hidden form, and the form it shows posts with it.
    let mut browser = host.browser("buttons.test");
    let form = browser.get("/login?nosso=1").await;
    assert!(
        form.body.contains("action=\"/login?nosso=1\""),
        "{}",
        form.body
    );
    let csrf = form.hidden_field("csrf").expect("csrf field");
    let page = browser
        .post_form(
            "/login?nosso=1",
            &[
                ("csrf", &csrf),
                ("username", "grace"),
                ("password", "correct horse"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{page:?}");
}

/// Regression: a local account signed in by password on any domain.
#[tokio::test]
async fn a_local_account_signs_in_by_password_only_on_its_branchs_domain() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    add_password_user(&host, "root-admin", "root", true).await;
    let mut elsewhere = host.browser("acme.test");
    let page = elsewhere
        .password_sign_in("root-admin", "correct horse")
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{page:?}");
    assert!(
        page.body.contains("does not sign in on this site"),
        "{}",
        page.body
    );
    assert_eq!(signed_in_username(&mut elsewhere).await, None);
    let mut home = host.browser("localhost");
    let page = home.password_sign_in("root-admin", "correct horse").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{page:?}");
}

/// Regression: a test sign-in whose plan refuses counted as a success for
/// `untested-redirect`.
#[tokio::test]
async fn a_test_sign_in_that_would_refuse_does_not_prove_the_idp() {
    let idp = r#"
[[idp]]
id = "corp"
domain = "root"
plugin = "example"
behaviour = "hidden"
username_attribute = "sub"

[idp.provisioning]
create_users = false

[idp.settings]
subject = "nobody-here"
"#;
    let host = TestHost::start(&config(&format!("{ROOT_DOMAIN}{idp}"))).await;
    let mut admin = host.admin_browser("localhost").await;
    let page = admin.round_trip("/admin/test-login/corp").await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert!(page.body.contains("would refuse"), "{}", page.body);
    assert_eq!(
        host.store.idp_last_success("corp").await.expect("history"),
        None
    );
}

// --- Denial of service ---------------------------------------------------------------------

/// Regression: 40 parallel wrong passwords were all checked, because the failure count was
/// read before hashing and written after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_get_no_more_checks_than_the_limit() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    add_password_user(&host, "grace", "root", false).await;
    let mut attacker = host.browser("localhost").from_address("198.51.100.9");
    let csrf = attacker.csrf().await;
    let mut guesses = tokio::task::JoinSet::new();
    for n in 0..40 {
        let mut browser = attacker.clone();
        let csrf = csrf.clone();
        guesses.spawn(async move {
            let guess = format!("guess {n}");
            browser
                .post_form(
                    "/login",
                    &[("csrf", &csrf), ("username", "grace"), ("password", &guess)],
                )
                .await
                .status
        });
    }
    let mut checked = 0;
    let mut throttled = 0;
    while let Some(status) = guesses.join_next().await {
        match status.expect("task") {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => throttled += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        (checked, throttled),
        (3, 37),
        "max_failures_per_account = 3"
    );
}

/// Regression: five failures from one address locked the owner out from every address.
#[tokio::test]
async fn failures_from_one_address_do_not_lock_the_owner_out_from_another() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    add_password_user(&host, "grace", "root", false).await;
    let mut attacker = host.browser("localhost").from_address("198.51.100.9");
    for _ in 0..3 {
        let page = attacker.password_sign_in("grace", "wrong").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    let page = attacker.password_sign_in("grace", "correct horse").await;
    assert_eq!(
        page.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the attacking address is throttled, even with the right password"
    );
    let mut owner = host.browser("localhost").from_address("203.0.113.20");
    let page = owner.password_sign_in("grace", "correct horse").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{page:?}");
    let audit = host.store.recent_audit(1).await.expect("audit");
    assert_eq!(
        (audit[0].outcome.as_str(), audit[0].ip.as_str()),
        ("success", "203.0.113.20")
    );
}

/// Forwarding headers name the client only when the peer is a trusted proxy.
#[tokio::test]
async fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
    let template = EXAMPLE_CONFIG.replace(
        "dev_mode = true",
        "dev_mode = true\ntrusted_proxies = [\"10.0.0.0/8\"]",
    );
    let host = TestHost::start(&template).await;
    for (peer, expected) in [("10.0.0.2", "192.0.2.77"), ("198.51.100.9", "198.51.100.9")] {
        let mut browser = host.browser("localhost").from_address(peer);
        let csrf = browser.csrf().await;
        let request = axum::http::Request::builder()
            .method("POST")
            .uri("/login")
            .header("host", "localhost")
            .header("cookie", format!("gh_csrf={csrf}"))
            .header("x-forwarded-for", "192.0.2.77")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(format!(
                "csrf={csrf}&username=nobody&password=x"
            )))
            .expect("request");
        let page = browser.send(request).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{page:?}");
        let audit = host.store.recent_audit(1).await.expect("audit");
        assert_eq!(audit[0].ip, expected, "peer {peer}");
    }
}

// --- Browser hardening ---------------------------------------------------------------------

/// Regression: over https, cookies had no `__Host-` prefix, so a sibling domain could plant
/// them; an unprefixed cookie is not read there.
#[tokio::test]
async fn https_cookies_carry_the_host_prefix_and_unprefixed_ones_are_ignored() {
    let template = EXAMPLE_CONFIG.replace("http://localhost:8080", "https://localhost");
    let host = TestHost::start(&template).await;
    let mut browser = host.browser("localhost");
    let done = browser.round_trip("/sso/example/start").await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    assert!(
        done.set_cookies
            .iter()
            .any(|c| c.starts_with("__Host-gh_session=") && c.contains("; Secure")),
        "{:?}",
        done.set_cookies
    );
    assert_eq!(browser.get("/me").await.status, StatusCode::OK);
    let session = browser
        .cookies
        .remove("__Host-gh_session")
        .expect("session");
    browser.cookies.insert("gh_session".into(), session);
    assert_eq!(browser.get("/me").await.status, StatusCode::UNAUTHORIZED);
}
