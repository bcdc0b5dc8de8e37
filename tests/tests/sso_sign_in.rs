//! A full SSO sign-in through the real example plugin library, and every way the
//! callback is refused without writing a user or a session.

use std::time::Duration;

use axum::http::StatusCode;
use gatehouse::{store::PendingStage, web::http_util::token_hash};
use gatehouse_tests::{Browser, EXAMPLE_CONFIG, Page, TestHost};

/// Starts a sign-in at the example IdP and returns the callback URL it redirects to.
async fn begin(browser: &mut Browser, return_to: &str) -> String {
    let start = browser
        .get(&format!("/sso/example/start?return_to={return_to}"))
        .await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{start:?}");
    let location = start.location.clone().expect("redirect");
    assert!(
        location.starts_with("http://localhost/sso/example/callback?state="),
        "{location}"
    );
    location
}

fn path_of(url: &str) -> String {
    url.strip_prefix("http://localhost")
        .unwrap_or(url)
        .to_owned()
}

async fn users(host: &TestHost) -> i64 {
    host.store.count_users().await.expect("count")
}

fn sets_session(page: &Page) -> bool {
    page.set_cookies
        .iter()
        .any(|c| c.starts_with("gh_session=") && !c.contains("Max-Age=0"))
}

#[tokio::test]
async fn a_full_sign_in_creates_the_user_and_a_session_and_logout_ends_it() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let mut browser = host.browser("localhost");

    let login = browser.get("/login").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(
        login.body.contains("Sign in with Example"),
        "{}",
        login.body
    );
    assert!(
        login
            .body
            .contains("href=\"/sso/example/start?return_to=%2F\""),
        "{}",
        login.body
    );

    let callback = begin(&mut browser, "%2Fcourses%2F7").await;
    let done = browser.get(&path_of(&callback)).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    assert_eq!(done.location.as_deref(), Some("/courses/7"));
    assert!(sets_session(&done));
    let cookie = done
        .set_cookies
        .iter()
        .find(|c| c.starts_with("gh_session="))
        .expect("session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );

    let me = browser.get("/me").await;
    assert_eq!(me.status, StatusCode::OK);
    let me = me.json();
    assert_eq!(me["username"], "ada@example.test");
    assert_eq!(me["firstname"], "Ada");
    assert_eq!(me["lastname"], "Lovelace");
    assert_eq!(me["auth_source"], "idp:example");
    assert_eq!(me["session"]["idp"], "example");

    // Provenance: every provisioned field records the IdP instance that set it.
    let user_id = me["id"].as_i64().expect("id");
    let provenance = host.store.provenance(user_id).await.expect("provenance");
    for field in ["username", "email", "firstname", "lastname"] {
        assert!(
            provenance
                .iter()
                .any(|p| p.field == field && p.idp_id == "example"),
            "{field}: {provenance:?}"
        );
    }
    // The IdP now has a successful sign-in on record.
    assert!(
        host.store
            .idp_last_success("example")
            .await
            .expect("history")
            .is_some()
    );

    // A second sign-in matches the same user rather than creating another.
    let mut second = host.browser("localhost");
    let callback = begin(&mut second, "%2F").await;
    assert_eq!(
        second.get(&path_of(&callback)).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(second.get("/me").await.json()["id"], user_id);
    assert_eq!(users(&host).await, 1);

    let csrf = browser.csrf().await;
    let out = browser.post_form("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location.as_deref(), Some("/logged-out"));
    assert_eq!(browser.get("/me").await.status, StatusCode::UNAUTHORIZED);
    let landing = browser.get("/logged-out").await;
    assert!(landing.body.contains("Sign in again"));
}

#[tokio::test]
async fn a_tampered_state_is_refused_and_writes_nothing() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let mut browser = host.browser("localhost");
    let callback = begin(&mut browser, "%2F").await;
    let tampered = callback.replacen("state=", "state=x", 1);
    let page = browser.get(&path_of(&tampered)).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(
        page.body.contains("not valid or has already been used"),
        "{}",
        page.body
    );
    assert!(!sets_session(&page));
    assert_eq!(users(&host).await, 0);
    let audit = host.store.recent_audit(5).await.expect("audit");
    assert_eq!(audit[0].outcome, "refused");
}

#[tokio::test]
async fn a_replayed_callback_is_refused() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let mut browser = host.browser("localhost");
    let callback = begin(&mut browser, "%2F").await;
    assert_eq!(
        browser.get(&path_of(&callback)).await.status,
        StatusCode::SEE_OTHER
    );

    let mut attacker = browser.clone();
    attacker.cookies.remove("gh_session");
    let replay = attacker.get(&path_of(&callback)).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert!(!sets_session(&replay));
    assert_eq!(attacker.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(users(&host).await, 1);
}

#[tokio::test]
async fn an_expired_pending_sign_in_is_refused() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let mut browser = host.browser("localhost");
    let callback = begin(&mut browser, "%2F").await;
    let token = callback
        .split("state=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .expect("state");
    let hash = token_hash(token);
    // A slow user: the host's clock passes the pending sign-in's lifetime.
    host.clock
        .advance(host.state.settings().pending_login_lifetime + Duration::from_secs(1));

    let page = browser.get(&path_of(&callback)).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("took too long"), "{}", page.body);
    assert!(!sets_session(&page));
    assert_eq!(users(&host).await, 0);
    assert!(
        host.store
            .take_pending(&hash, PendingStage::Begun)
            .await
            .expect("take")
            .is_none(),
        "an expired sign-in is used up"
    );
}

#[tokio::test]
async fn a_callback_in_another_browser_is_refused() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let mut victim = host.browser("localhost");
    let callback = begin(&mut victim, "%2F").await;
    let mut other = host.browser("localhost");
    let page = other.get(&path_of(&callback)).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("another browser"), "{}", page.body);
    assert_eq!(users(&host).await, 0);
}

#[tokio::test]
async fn a_wrong_code_is_refused_by_the_plugin_and_audited() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let mut browser = host.browser("localhost");
    let callback = begin(&mut browser, "%2F").await;
    let forged = format!(
        "{}&code=forged",
        callback.split("&code=").next().expect("code")
    );
    let page = browser.get(&path_of(&forged)).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(!sets_session(&page));
    assert_eq!(users(&host).await, 0);
    let audit = host.store.recent_audit(1).await.expect("audit");
    assert_eq!(audit[0].outcome, "failure");
    assert!(audit[0].reason.contains("does not match"), "{:?}", audit[0]);
}

#[tokio::test]
async fn off_site_return_to_values_land_on_the_home_page() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    for hostile in [
        "https%3A%2F%2Fevil.example",
        "%2F%2Fevil.example",
        "%2F%5Cevil.example",
    ] {
        let mut browser = host.browser("localhost");
        let callback = begin(&mut browser, hostile).await;
        let done = browser.get(&path_of(&callback)).await;
        assert_eq!(done.location.as_deref(), Some("/"), "{hostile}");
    }
}

#[tokio::test]
async fn an_idp_of_another_domain_is_not_available() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let mut browser = host.browser("acme.test");
    let page = browser.get("/sso/example/start").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let mut stranger = host.browser("unknown.test");
    assert_eq!(stranger.get("/login").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_panicking_plugin_gets_an_error_page_and_the_host_keeps_serving() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let mut browser = host.browser("localhost");
    let page = browser.get("/sso/boom/start").await;
    assert_eq!(page.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(page.body.contains("failed unexpectedly"), "{}", page.body);
    // Still serving: health, and a real sign-in through another plugin.
    assert_eq!(browser.get("/healthz").await.json()["status"], "ok");
    let callback = begin(&mut browser, "%2F").await;
    assert_eq!(
        browser.get(&path_of(&callback)).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(browser.get("/me").await.status, StatusCode::OK);
}

#[tokio::test]
async fn starts_are_limited_per_address_per_minute() {
    // The default: 600 starts per address per minute.
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let mut heavy = host.browser("localhost").from_address("192.0.2.10");
    for i in 0..600 {
        let page = heavy.get("/sso/example/start").await;
        assert!(page.status.is_redirection(), "start {i}: {}", page.status);
    }
    let refused = heavy.get("/sso/example/start").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(
        refused.body.contains("Too many sign-ins"),
        "{}",
        refused.body
    );
    // Another address is not affected.
    let mut other = host.browser("localhost").from_address("198.51.100.20");
    assert!(
        other
            .get("/sso/example/start")
            .await
            .status
            .is_redirection()
    );
    // Once the time it named has passed (the minute is over), it may start again.
    host.clock.advance(Duration::from_secs(retry_after));
    assert!(
        heavy
            .get("/sso/example/start")
            .await
            .status
            .is_redirection()
    );
}
