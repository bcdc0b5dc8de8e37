//! The login decision through the real router and the real example plugin: the external
//! URL, `?nosso=1`, the automatic redirect, the login page, and the redirect-loop breaker.

use axum::http::StatusCode;
use gatehouse_tests::TestHost;

/// A root domain with one example IdP; `{domain}` and `{idp}` are extra keys.
fn config(domain_extra: &str, behaviour: &str) -> String {
    format!(
        r#"
[host]
public_url = "http://localhost:8080"
database = "{{database}}"
plugin_dir = "{{plugin_dir}}"
dev_mode = true

[[plugin]]
id = "example"
library = "gatehouse_example"

[[domain]]
name = "root"
hosts = ["localhost"]
{domain_extra}

[[idp]]
id = "example"
domain = "root"
plugin = "example"
name = "Sign in with Example"
behaviour = "{behaviour}"
username_attribute = "email"
"#
    )
}

#[tokio::test]
async fn an_automatic_redirect_sends_visitors_straight_to_the_idp() {
    let host = TestHost::start_with_history(&config("", "redirect"), &["example"]).await;
    let mut browser = host.browser("localhost");
    let page = browser.get("/login?return_to=%2Fcourses").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{page:?}");
    assert_eq!(
        page.location.as_deref(),
        Some("/sso/example/start?return_to=%2Fcourses")
    );
}

#[tokio::test]
async fn nosso_shows_the_form_even_where_a_redirect_is_set() {
    let host = TestHost::start_with_history(&config("", "redirect"), &["example"]).await;
    let mut browser = host.browser("localhost");
    let page = browser.get("/login?nosso=1").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("name=\"password\""), "{}", page.body);
}

#[tokio::test]
async fn a_force_external_url_wins_over_everything() {
    let extra = r#"force_external_sso_url = "https://sso.example.test/start""#;
    let host = TestHost::start_with_history(&config(extra, "redirect"), &["example"]).await;
    let mut browser = host.browser("localhost");
    for path in ["/login", "/login?nosso=1"] {
        let page = browser.get(path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(
            page.location.as_deref(),
            Some("https://sso.example.test/start"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_login_page_hides_the_form_when_asked_and_shows_the_buttons() {
    let host = TestHost::start(&config(r#"login_form = "hidden""#, "button")).await;
    let mut browser = host.browser("localhost");
    let page = browser.get("/login").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("name=\"password\""), "{}", page.body);
    assert!(page.body.contains("Sign in with Example"), "{}", page.body);
}

#[tokio::test]
async fn a_browser_bounced_to_the_idp_too_often_gets_the_login_page_with_an_explanation() {
    let host = TestHost::start_with_history(
        &config(r#"login_form = "hidden""#, "redirect"),
        &["example"],
    )
    .await;
    let mut browser = host.browser("localhost");
    for round in 1..=3 {
        let page = browser.get("/login").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "redirect {round}");
        assert!(browser.cookies.contains_key("gh_redirects"));
    }
    let page = browser.get("/login").await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "the fourth visit is not redirected"
    );
    assert!(
        page.body
            .contains("did not complete, so we stopped redirecting you"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("name=\"password\""),
        "a stuck person is offered the form"
    );
    assert!(
        page.body.contains("/sso/example/start"),
        "and can still try the IdP"
    );

    // Another browser is not affected.
    let mut fresh = host.browser("localhost");
    assert_eq!(fresh.get("/login").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_completed_sign_in_clears_the_loop_count() {
    let host = TestHost::start_with_history(&config("", "redirect"), &["example"]).await;
    // The IdP does not create users; the example identity already has an account.
    host.create_idp_user("example.user@example.test", "example")
        .await;
    let mut browser = host.browser("localhost");
    for _ in 0..3 {
        assert_eq!(browser.get("/login").await.status, StatusCode::SEE_OTHER);
    }
    let done = browser.round_trip("/sso/example/start?return_to=%2F").await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    assert!(
        !browser.cookies.contains_key("gh_redirects"),
        "the count is cleared: {:?}",
        done.set_cookies
    );
}
