//! The routes plugins serve besides start and callback, through the real example plugin
//! library: metadata, the logout return, an inbound request below the IdP's mount and at a
//! fixed protocol path (with the host carrying out the actions in the reply), the body cap
//! and method checks, and a sign-in finished at a fixed path.

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use gatehouse_tests::{Browser, EXAMPLE_CONFIG, Page, TestHost};

const SECRET: &str = "peer-secret";

/// The example IdP with inbound requests enabled (and `extra` settings appended).
fn config(extra: &str) -> String {
    EXAMPLE_CONFIG.replace(
        "subject = \"ada\"\n",
        &format!("subject = \"ada\"\ninbound_secret = \"{SECRET}\"\n{extra}"),
    )
}

/// A browser signed in through the example IdP as its subject `ada`.
async fn signed_in_ada(host: &TestHost) -> Browser {
    let mut ada = host.browser("localhost");
    let done = ada.round_trip("/sso/example/start").await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    assert_eq!(ada.get("/me").await.status, StatusCode::OK);
    ada
}

/// A form POST from a peer that has no cookies.
async fn peer_post(host: &TestHost, uri: &str, fields: &[(&str, &str)]) -> Page {
    host.browser("localhost").post_form(uri, fields).await
}

async fn idp_logouts(host: &TestHost) -> usize {
    host.store
        .recent_audit(50)
        .await
        .expect("audit")
        .iter()
        .filter(|e| e.method == "idp-logout")
        .count()
}

#[tokio::test]
async fn metadata_is_served_by_plugins_that_publish_it_and_a_clear_404_otherwise() {
    let host = TestHost::start(&config("")).await;
    let mut browser = host.browser("localhost");
    let page = browser.get("/sso/example/metadata").await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert_eq!(
        page.headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    assert_eq!(page.json()["plugin"], "example");

    // The panicking fixture declares no metadata.
    let none = browser.get("/sso/boom/metadata").await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    assert!(none.body.contains("publishes no metadata"), "{}", none.body);
}

#[tokio::test]
async fn metadata_is_served_while_the_idp_is_hidden() {
    let hidden = config("").replace(
        "name = \"Sign in with Example\"\n",
        "name = \"Sign in with Example\"\nbehaviour = \"hidden\"\n",
    );
    let host = TestHost::start(&hidden).await;
    let mut browser = host.browser("localhost");
    assert_eq!(
        browser.get("/sso/example/start").await.status,
        StatusCode::NOT_FOUND,
        "hidden: no sign-in"
    );
    assert_eq!(
        browser.get("/sso/example/metadata").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_logout_return_goes_on_to_the_landing_page_and_404s_without_the_ability() {
    let host = TestHost::start(&config("")).await;
    let mut browser = host.browser("localhost");
    let back = browser.get("/sso/example/logout").await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{back:?}");
    assert_eq!(back.location.as_deref(), Some("/logged-out"));
    let none = browser.get("/sso/boom/logout").await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_idp_initiated_logout_ends_the_subjects_sessions_only_with_the_secret() {
    let host = TestHost::start(&config("")).await;
    let mut ada = signed_in_ada(&host).await;

    let forged = peer_post(
        &host,
        "/sso/example/notify",
        &[("secret", "guess"), ("subject", "ada")],
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{forged:?}");
    assert_eq!(
        ada.get("/me").await.status,
        StatusCode::OK,
        "still signed in"
    );
    assert_eq!(idp_logouts(&host).await, 0);

    let other = peer_post(
        &host,
        "/sso/example/notify",
        &[("secret", SECRET), ("subject", "grace")],
    )
    .await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(
        ada.get("/me").await.status,
        StatusCode::OK,
        "another subject"
    );

    let notified = peer_post(
        &host,
        "/sso/example/notify",
        &[("secret", SECRET), ("subject", "ada")],
    )
    .await;
    assert_eq!(notified.status, StatusCode::OK, "{notified:?}");
    assert_eq!(notified.json()["status"], "success");
    assert_eq!(ada.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(idp_logouts(&host).await, 2, "one audit row per action");
}

#[tokio::test]
async fn a_peer_at_a_fixed_path_asks_about_and_ends_sessions_on_its_domain_only() {
    let host = TestHost::start(&config("")).await;
    let mut ada = signed_in_ada(&host).await;
    assert_eq!(ask(&host, "is_active").await["data"]["active"], true);

    // acme.test is another domain: the example IdP does not serve it.
    let elsewhere = host
        .browser("acme.test")
        .post_form(
            "/example/sep.php",
            &[("secret", SECRET), ("service", "kill"), ("subject", "ada")],
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);
    assert_eq!(ada.get("/me").await.status, StatusCode::OK);

    ask(&host, "kill").await;
    assert_eq!(ada.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(ask(&host, "is_active").await["data"]["active"], false);
}

/// A peer's call of `service` about `ada` at the example's fixed path.
async fn ask(host: &TestHost, service: &str) -> serde_json::Value {
    let page = peer_post(
        host,
        "/example/sep.php",
        &[("secret", SECRET), ("service", service), ("subject", "ada")],
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    page.json()
}

#[tokio::test]
async fn inbound_routes_enforce_their_methods_and_body_cap() {
    let host = TestHost::start(&config("")).await;
    let mut ada = signed_in_ada(&host).await;

    let get = host.browser("localhost").get("/sso/example/notify").await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        get.headers.get(header::ALLOW).map(|v| v.as_bytes()),
        Some(&b"POST"[..])
    );

    // The example declares 4096 bytes; one more is refused before the plugin sees it.
    let padding = "x".repeat(4096);
    let body = format!("secret={SECRET}&subject=ada&padding={padding}");
    assert!(body.len() > 4096);
    let request = Request::builder()
        .method("POST")
        .uri("/sso/example/notify")
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .expect("request");
    let too_large = host.browser("localhost").send(request).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(ada.get("/me").await.status, StatusCode::OK, "nothing done");

    let unknown = host.browser("localhost").get("/sso/example/nothing").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_sign_in_finishes_at_a_fixed_path_exactly_as_at_the_callback() {
    let host = TestHost::start(&config("finish_at_fixed_path = true\n")).await;
    let mut browser = host.browser("localhost");
    let start = browser.get("/sso/example/start?return_to=%2Fcourses").await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{start:?}");
    let location = start.location.clone().expect("redirect");
    assert!(
        location.starts_with("http://localhost/example/sso_finish.php?state="),
        "{location}"
    );
    // Another browser cannot finish it: the same binding check as the callback.
    let stolen = host.browser("localhost").follow(&start).await;
    assert_eq!(stolen.status, StatusCode::BAD_REQUEST, "{stolen:?}");

    let mut again = host.browser("localhost");
    let start = again.get("/sso/example/start?return_to=%2Fcourses").await;
    let done = again.follow(&start).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    assert_eq!(done.location.as_deref(), Some("/courses"));
    assert_eq!(
        again.get("/me").await.json()["username"],
        "ada@example.test"
    );
    // Used once.
    assert_eq!(again.follow(&start).await.status, StatusCode::BAD_REQUEST);
}
