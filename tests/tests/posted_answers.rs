//! Answers an IdP POSTs across sites (SAML's HTTP-POST binding to the ACS), through the
//! real example plugin with `answer_by_post`: validated at the callback without the
//! browser's binding cookie (a cross-site POST carries none), then finished at
//! `/sso/{idp}/finish` where the binding is checked; and unsolicited answers.

use std::time::Duration;

use axum::http::StatusCode;
use gatehouse_tests::{Browser, EXAMPLE_CONFIG, Page, TestHost};

fn config(extra_settings: &str) -> String {
    EXAMPLE_CONFIG.replace(
        "family_name = \"Lovelace\"\n",
        &format!("family_name = \"Lovelace\"\nanswer_by_post = true\n{extra_settings}\n"),
    )
}

/// Starts a sign-in in `browser` and returns the auto-submitting form's action and fields,
/// as the IdP's page would post them.
async fn begin(browser: &mut Browser) -> (String, String, String) {
    let page = browser.get("/sso/example/start?return_to=%2Fcourse").await;
    assert_eq!(page.status, StatusCode::OK, "an auto-POST page: {page:?}");
    let action = "/sso/example/callback".to_owned();
    assert!(
        page.body
            .contains("action=\"http://localhost/sso/example/callback\""),
        "{}",
        page.body
    );
    let state = page.hidden_field("state").expect("state field");
    let code = page.hidden_field("code").expect("code field");
    (action, state, code)
}

/// The IdP's page posting to the ACS: another site's POST, so no cookie of ours goes
/// with it (a browser with an empty jar).
async fn post_across_sites(host: &TestHost, action: &str, fields: &[(&str, &str)]) -> Page {
    host.browser("localhost").post_form(action, fields).await
}

fn finish_path(page: &Page) -> String {
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{page:?}");
    let location = page.location.clone().expect("a redirect");
    assert!(
        location.starts_with("/sso/example/finish?handle="),
        "{location}"
    );
    location
}

fn sets_session(page: &Page) -> bool {
    page.set_cookies
        .iter()
        .any(|c| c.starts_with("gh_session=") && !c.contains("Max-Age=0"))
}

async fn last_audit_reason(host: &TestHost) -> String {
    let rows = host.store.recent_audit(1).await.expect("audit");
    rows.first().map(|r| r.reason.clone()).unwrap_or_default()
}

#[tokio::test]
async fn a_posted_answer_is_validated_without_the_cookie_and_finished_where_it_is_sent() {
    let host = TestHost::start(&config("")).await;
    let mut browser = host.browser("localhost");
    let (action, state, code) = begin(&mut browser).await;

    let posted = post_across_sites(&host, &action, &[("state", &state), ("code", &code)]).await;
    assert!(!sets_session(&posted), "no session before the finish step");
    let finish = finish_path(&posted);

    let done = browser.get(&finish).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    assert_eq!(done.location.as_deref(), Some("/course"));
    assert!(sets_session(&done));
    assert_eq!(
        browser.get("/me").await.json()["username"],
        "ada@example.test"
    );

    // The handle is single use.
    let again = browser.get(&finish).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{again:?}");
    assert!(!sets_session(&again));
}

#[tokio::test]
async fn a_posted_answer_finished_in_another_browser_is_refused_after_validation() {
    let host = TestHost::start(&config("")).await;
    // The attacker starts a sign-in in their own browser and gets a genuine answer ...
    let mut attacker = host.browser("localhost");
    let (action, state, code) = begin(&mut attacker).await;
    // ... and makes the victim's browser post it (login CSRF): the victim's browser has a
    // binding of its own from a sign-in it began, or none.
    let mut victim = host.browser("localhost");
    let _ = begin(&mut victim).await;
    let posted = post_across_sites(&host, &action, &[("state", &state), ("code", &code)]).await;
    let finish = finish_path(&posted);
    let refused = victim.get(&finish).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{refused:?}");
    assert!(
        refused.body.contains("started in another browser"),
        "{}",
        refused.body
    );
    assert!(!sets_session(&refused));
    assert_eq!(host.store.count_users().await.expect("count"), 0);
    assert_eq!(
        last_audit_reason(&host).await,
        "callback arrived in a browser other than the one that started"
    );
    let mut stranger = host.browser("localhost");
    assert_eq!(
        stranger.get(&finish).await.status,
        StatusCode::BAD_REQUEST,
        "the refused handle was used up"
    );
}

#[tokio::test]
async fn handles_and_state_tokens_are_not_interchangeable() {
    let host = TestHost::start(&config("")).await;
    let mut browser = host.browser("localhost");
    let (action, state, code) = begin(&mut browser).await;
    // A begun sign-in's state token is no finish handle (and is not used up by trying).
    let as_handle = browser
        .get(&format!("/sso/example/finish?handle={state}"))
        .await;
    assert_eq!(as_handle.status, StatusCode::BAD_REQUEST, "{as_handle:?}");
    let posted = post_across_sites(&host, &action, &[("state", &state), ("code", &code)]).await;
    let finish = finish_path(&posted);
    let handle = finish.trim_start_matches("/sso/example/finish?handle=");
    // An answered sign-in's handle is no state token.
    let as_state = post_across_sites(&host, &action, &[("state", handle), ("code", &code)]).await;
    assert_eq!(as_state.status, StatusCode::BAD_REQUEST, "{as_state:?}");
    assert!(
        sets_session(&browser.get(&finish).await),
        "the handle still works"
    );
}

#[tokio::test]
async fn a_refused_posted_answer_writes_nothing_and_an_expired_handle_is_refused() {
    let host = TestHost::start(&config("")).await;
    let mut browser = host.browser("localhost");
    let (action, state, _) = begin(&mut browser).await;
    let wrong = post_across_sites(&host, &action, &[("state", &state), ("code", "forged")]).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{wrong:?}");
    assert!(
        wrong.location.is_none(),
        "no finish step for a refused answer"
    );
    assert!(last_audit_reason(&host).await.contains("does not match"));

    let (action, state, code) = begin(&mut browser).await;
    let posted = post_across_sites(&host, &action, &[("state", &state), ("code", &code)]).await;
    let finish = finish_path(&posted);
    host.clock.advance(Duration::from_secs(61));
    let late = browser.get(&finish).await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST, "{late:?}");
    assert!(late.body.contains("took too long"), "{}", late.body);
    assert_eq!(host.store.count_users().await.expect("count"), 0);
}

#[tokio::test]
async fn a_posted_answer_over_the_inbound_cap_is_refused_before_the_plugin() {
    let host = TestHost::start(&config("")).await;
    let mut browser = host.browser("localhost");
    let (action, state, code) = begin(&mut browser).await;
    let big = "x".repeat(300 * 1024);
    let page = post_across_sites(
        &host,
        &action,
        &[("state", &state), ("code", &code), ("padding", &big)],
    )
    .await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE, "{page:?}");
    let reason = last_audit_reason(&host).await;
    assert!(reason.starts_with("too-large: "), "audited: {reason}");
    // Nothing was taken: the honest answer still signs in.
    let posted = post_across_sites(&host, &action, &[("state", &state), ("code", &code)]).await;
    assert!(sets_session(&browser.get(&finish_path(&posted)).await));
}

#[tokio::test]
async fn an_unsolicited_answer_is_refused_unless_the_plugin_accepts_it() {
    let off = TestHost::start(&config("inbound_secret = \"s3cret\"")).await;
    let page = post_across_sites(&off, "/sso/example/callback", &[("code", "s3cret")]).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{page:?}");
    assert!(last_audit_reason(&off).await.contains("unsolicited"));
    assert_eq!(off.store.count_users().await.expect("count"), 0);

    let on = TestHost::start(&config(
        "inbound_secret = \"s3cret\"\nallow_unsolicited = true",
    ))
    .await;
    let wrong = post_across_sites(&on, "/sso/example/callback", &[("code", "guess")]).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{wrong:?}");
    let mut browser = on.browser("localhost");
    let posted = browser
        .post_form("/sso/example/callback", &[("code", "s3cret")])
        .await;
    let done = browser.get(&finish_path(&posted)).await;
    assert_eq!(
        done.location.as_deref(),
        Some("/"),
        "unsolicited lands on /"
    );
    assert!(sets_session(&done));
}
