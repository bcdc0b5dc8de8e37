//! A local account's own password change (`GET`/`POST /me/password`) and the bootstrap
//! administrator's generated password, which must be changed before anything else: through
//! the real router on a real SQLite database.

use axum::http::StatusCode;
use gatehouse::{
    clock::{Clock, Randomness},
    passwords::{self, AdminBootstrap},
};
use gatehouse_tests::{Browser, EXAMPLE_CONFIG, Page, TestHost};

const OLD: &str = "correct horse battery";
const NEW: &str = "a much longer secret phrase";

fn session_cookie(page: &Page) -> Option<String> {
    page.set_cookies
        .iter()
        .find(|c| c.starts_with("gh_session=") && !c.contains("Max-Age=0"))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
}

/// The password page's CSRF token (it sets the cookie when the browser has none).
async fn page_csrf(browser: &mut Browser) -> String {
    let page = browser.get("/me/password").await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    page.hidden_field("csrf")
        .unwrap_or_else(|| panic!("no CSRF field: {}", page.body))
}

async fn change(browser: &mut Browser, current: &str, new: &str, confirm: &str) -> Page {
    let csrf = page_csrf(browser).await;
    browser
        .post_form(
            "/me/password",
            &[
                ("csrf", &csrf),
                ("current_password", current),
                ("new_password", new),
                ("confirm_password", confirm),
                ("return_to", "/"),
            ],
        )
        .await
}

async fn signed_in(host: &TestHost, username: &str, password: &str) -> Browser {
    let mut browser = host.browser("localhost");
    let page = browser.password_sign_in(username, password).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{page:?}");
    browser
}

async fn stored_hash(host: &TestHost, username: &str) -> String {
    host.store
        .user_by_username(username)
        .await
        .expect("store")
        .and_then(|u| u.password_hash)
        .expect("a password hash")
}

#[tokio::test]
async fn a_changed_password_replaces_the_old_one_and_ends_the_other_sessions() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let id = host.create_password_user("grace", "root", OLD, false).await;
    let mut here = signed_in(&host, "grace", OLD).await;
    let mut elsewhere = signed_in(&host, "grace", OLD).await;
    let mut third = host.signed_in_browser("localhost", id).await;
    let before = here.cookies.get("gh_session").cloned();

    let form = here.get("/me/password").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(
        form.body.contains("name=\"current_password\""),
        "{}",
        form.body
    );
    assert!(
        form.body.contains("at least 12 characters"),
        "{}",
        form.body
    );

    let changed = change(&mut here, OLD, NEW, NEW).await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{changed:?}");
    assert_eq!(changed.location.as_deref(), Some("/"));
    // This browser goes on under a new session id; every other session has ended.
    assert!(session_cookie(&changed).is_some());
    assert_ne!(here.cookies.get("gh_session").cloned(), before);
    assert_eq!(here.get("/me").await.status, StatusCode::OK);
    assert_eq!(elsewhere.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(third.get("/me").await.status, StatusCode::UNAUTHORIZED);
    let now = host.state.now();
    assert_eq!(host.store.count_user_sessions(id, now).await.unwrap(), 1);

    let mut fresh = host.browser("localhost");
    let old = fresh.password_sign_in("grace", OLD).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED, "the old password");
    let new = fresh.password_sign_in("grace", NEW).await;
    assert_eq!(new.status, StatusCode::SEE_OTHER, "the new password");

    let audit = host.store.recent_audit(10).await.expect("audit");
    let row = audit
        .iter()
        .find(|e| e.method == "password-change")
        .expect("an audit row");
    assert_eq!(
        (row.outcome.as_str(), row.user_id),
        ("success", Some(id)),
        "{row:?}"
    );
    let metrics = host.state.metrics().render(host.store.pool_status());
    assert!(
        metrics.contains(r#"gatehouse_account_changes_total{idp="",change="password_changed"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_wrong_current_password_is_refused_and_counts_toward_the_throttle() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    host.create_password_user("grace", "root", OLD, false).await;
    let before = stored_hash(&host, "grace").await;
    let mut browser = signed_in(&host, "grace", OLD).await;
    // EXAMPLE_CONFIG allows 3 failures per account and address.
    for _ in 0..3 {
        let wrong = change(&mut browser, "not the password", NEW, NEW).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{wrong:?}");
        assert!(wrong.body.contains("current password is not correct"));
    }
    let throttled = change(&mut browser, OLD, NEW, NEW).await;
    assert_eq!(
        throttled.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{throttled:?}"
    );
    assert!(throttled.headers.contains_key("retry-after"));
    // The same counters as the login form's: signing in is throttled too.
    let mut again = host.browser("localhost");
    let login = again.password_sign_in("grace", OLD).await;
    assert_eq!(login.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(stored_hash(&host, "grace").await, before, "nothing changed");
    let failures = host
        .store
        .recent_audit(20)
        .await
        .expect("audit")
        .into_iter()
        .filter(|e| e.method == "password-change" && e.outcome == "failure")
        .count();
    assert_eq!(failures, 3);
    let metrics = host.state.metrics().render(host.store.pool_status());
    assert!(
        metrics.contains(
            r#"gatehouse_account_changes_total{idp="",change="password_change_refused"} 3"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_change_without_the_csrf_token_is_refused() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    host.create_password_user("grace", "root", OLD, false).await;
    let before = stored_hash(&host, "grace").await;
    let mut browser = signed_in(&host, "grace", OLD).await;
    let _ = page_csrf(&mut browser).await;
    for csrf in [None, Some("forged.token")] {
        let mut fields = vec![
            ("current_password", OLD),
            ("new_password", NEW),
            ("confirm_password", NEW),
        ];
        if let Some(csrf) = csrf {
            fields.push(("csrf", csrf));
        }
        let refused = browser.post_form("/me/password", &fields).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    }
    assert_eq!(stored_hash(&host, "grace").await, before);
    assert_eq!(
        browser.get("/me").await.status,
        StatusCode::OK,
        "still signed in"
    );
}

#[tokio::test]
async fn new_passwords_the_policy_refuses_change_nothing_and_are_not_failures() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    host.create_password_user("margaret.hamilton", "root", OLD, false)
        .await;
    let before = stored_hash(&host, "margaret.hamilton").await;
    let mut browser = signed_in(&host, "margaret.hamilton", OLD).await;
    let cases = [
        ("eleven char", "eleven char", "at least 12 characters"),
        (
            "Margaret.Hamilton",
            "Margaret.Hamilton",
            "must not be the username",
        ),
        (NEW, "a different confirmation", "not the same"),
        (OLD, OLD, "different from the current one"),
    ];
    // More refusals than the throttle's 3 failures: none of them counts.
    for (new, confirm, said) in cases.iter().chain(cases.iter()) {
        let refused = change(&mut browser, OLD, new, confirm).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{new}: {refused:?}"
        );
        assert!(refused.body.contains(said), "{new}: {}", refused.body);
    }
    let too_long = "x".repeat(gatehouse::accounts::MAX_PASSWORD_BYTES + 1);
    let refused = change(&mut browser, OLD, &too_long, &too_long).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.body.contains("at most 1024 bytes"),
        "{}",
        refused.body
    );
    assert_eq!(stored_hash(&host, "margaret.hamilton").await, before);
    let accepted = change(&mut browser, OLD, NEW, NEW).await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{accepted:?}");
}

#[tokio::test]
async fn an_account_without_a_local_password_is_told_it_has_none() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let id = host.create_idp_user("ada", "example").await;
    let mut browser = host.signed_in_browser("localhost", id).await;
    let page = browser.get("/me/password").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("has no password here to change"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("current_password"), "no form");
    let csrf = page.hidden_field("csrf");
    assert!(csrf.is_none(), "no form, no token field");
    let token = browser.csrf().await;
    let refused = browser
        .post_form(
            "/me/password",
            &[
                ("csrf", &token),
                ("current_password", ""),
                ("new_password", NEW),
                ("confirm_password", NEW),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    assert!(refused.body.contains("has no password here to change"));
}

#[tokio::test]
async fn the_password_page_sends_a_signed_out_visitor_to_sign_in_first() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let mut browser = host.browser("localhost");
    let page = browser.get("/me/password").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.location.as_deref(),
        Some("/login?return_to=%2Fme%2Fpassword")
    );
}

async fn bootstrap(host: &TestHost, given: Option<&str>) -> AdminBootstrap {
    passwords::ensure_admin(
        host.state.passwords(),
        &host.store,
        given,
        "root",
        &Clock::system(),
        &Randomness::system(),
    )
    .await
    .expect("bootstrap")
}

#[tokio::test]
async fn a_generated_bootstrap_password_must_be_changed_before_anything_else() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let AdminBootstrap::CreatedWithPassword(generated) = bootstrap(&host, None).await else {
        panic!("the admin is created with a generated password");
    };
    let mut browser = host.browser("localhost");
    let signed = browser.password_sign_in("admin", &generated).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{signed:?}");
    assert_eq!(signed.location.as_deref(), Some("/me/password"));

    // Pages redirect to the password page (and come back afterwards); JSON routes say 403.
    for path in ["/", "/login", "/admin/test-login/example", "/admin/status"] {
        let page = browser.get(path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}: {page:?}");
        let location = page.location.unwrap_or_default();
        assert!(location.starts_with("/me/password"), "{path}: {location}");
    }
    for path in ["/me", "/me/profile", "/admin/users/1/links"] {
        let refused = browser.get(path).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}: {refused:?}");
        assert_eq!(refused.json()["code"], "password_change_required", "{path}");
    }
    let page = browser.get("/me/password").await;
    assert!(
        page.body.contains("Please choose your own"),
        "{}",
        page.body
    );
    assert!(!page.body.contains(">Cancel<"), "no way around it");

    let changed = change(&mut browser, &generated, NEW, NEW).await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{changed:?}");
    let me = browser.get("/me").await;
    assert_eq!(me.status, StatusCode::OK, "{me:?}");
    let admin = host
        .store
        .user_by_username("admin")
        .await
        .unwrap()
        .expect("admin");
    assert!(!admin.must_change_password);
    assert_eq!(
        browser.get("/admin/users/1/links").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn someone_who_must_change_their_password_may_still_sign_out() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let AdminBootstrap::CreatedWithPassword(generated) = bootstrap(&host, None).await else {
        panic!("generated");
    };
    let mut browser = host.browser("localhost");
    browser.password_sign_in("admin", &generated).await;
    let csrf = page_csrf(&mut browser).await;
    let out = browser.post_form("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location.as_deref(), Some("/logged-out"));
    assert_eq!(browser.get("/me").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_operator_chosen_bootstrap_password_need_not_be_changed() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let made = bootstrap(&host, Some("chosen by the operator")).await;
    assert_eq!(made, AdminBootstrap::CreatedWithGivenPassword);
    let mut browser = host.browser("localhost");
    let signed = browser
        .password_sign_in("admin", "chosen by the operator")
        .await;
    assert_eq!(signed.location.as_deref(), Some("/"));
    assert_eq!(browser.get("/me").await.status, StatusCode::OK);
    // The variable on a database that has accounts is ignored (the command says so).
    assert_eq!(
        bootstrap(&host, Some("another")).await,
        AdminBootstrap::Existing
    );
    let mut other = host.browser("localhost");
    let refused = other.password_sign_in("admin", "another").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
}
