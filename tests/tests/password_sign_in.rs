//! Password sign-in: right and wrong passwords, throttling, CSRF, and a new session
//! id at every sign-in.

use axum::http::StatusCode;
use gatehouse_tests::{EXAMPLE_CONFIG, TestHost};

async fn host_with_user(password: &str) -> TestHost {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    host.create_password_user("grace", "root", password, false)
        .await;
    host
}

fn session_cookie(page: &gatehouse_tests::Page) -> Option<String> {
    page.set_cookies
        .iter()
        .find(|c| c.starts_with("gh_session=") && !c.contains("Max-Age=0"))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn the_right_password_signs_in_and_the_wrong_one_does_not() {
    let host = host_with_user("correct horse").await;
    let mut browser = host.browser("localhost");

    let wrong = browser.password_sign_in("grace", "battery staple").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("username or password is not correct"));
    assert!(session_cookie(&wrong).is_none());
    assert_eq!(browser.get("/me").await.status, StatusCode::UNAUTHORIZED);

    let unknown = browser.password_sign_in("nobody", "whatever").await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);

    let right = browser.password_sign_in("grace", "correct horse").await;
    assert_eq!(right.status, StatusCode::SEE_OTHER);
    assert!(session_cookie(&right).is_some());
    let me = browser.get("/me").await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["username"], "grace");

    let audit = host.store.recent_audit(3).await.expect("audit");
    let outcomes: Vec<&str> = audit.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(outcomes, ["success", "failure", "failure"]);
    assert_eq!(audit[2].reason, "wrong password");
}

#[tokio::test]
async fn repeated_failures_throttle_the_account_even_for_the_right_password() {
    let host = host_with_user("correct horse").await;
    let mut browser = host.browser("localhost");
    for _ in 0..3 {
        assert_eq!(
            browser.password_sign_in("grace", "wrong").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let throttled = browser.password_sign_in("grace", "correct horse").await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.body.contains("Too many failed sign-in attempts"));
    assert!(session_cookie(&throttled).is_none());
    // Another account from the same address is not locked by grace's failures.
    let other = browser.password_sign_in("someone-else", "x").await;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn repeated_failures_from_one_address_throttle_every_account() {
    let host = host_with_user("correct horse").await;
    let mut browser = host.browser("localhost");
    // The per-IP limit is 10; spread the failures over accounts so no account limit hits.
    for n in 0..10 {
        let page = browser.password_sign_in(&format!("user{n}"), "x").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    let throttled = browser.password_sign_in("grace", "correct horse").await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused() {
    let host = host_with_user("correct horse").await;
    let mut browser = host.browser("localhost");
    let _ = browser.csrf().await;
    let missing = browser
        .post_form(
            "/login",
            &[("username", "grace"), ("password", "correct horse")],
        )
        .await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    let wrong = browser
        .post_form(
            "/login",
            &[
                ("csrf", "0123456789abcdef0123456789abcdef0123"),
                ("username", "grace"),
                ("password", "correct horse"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert!(session_cookie(&wrong).is_none());
    // A browser without the cookie cannot forge it either.
    let mut fresh = host.browser("localhost");
    let forged = fresh
        .post_form(
            "/login",
            &[
                ("csrf", "anything"),
                ("username", "grace"),
                ("password", "correct horse"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // Logout needs it too.
    assert_eq!(
        browser.post_form("/logout", &[]).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn signing_in_issues_a_new_session_id_and_ends_the_old_one() {
    let host = host_with_user("correct horse").await;
    let mut browser = host.browser("localhost");
    let first = session_cookie(&browser.password_sign_in("grace", "correct horse").await)
        .expect("first session");
    let old_browser = browser.clone();
    let second = session_cookie(&browser.password_sign_in("grace", "correct horse").await)
        .expect("second session");
    assert_ne!(first, second, "the session id must change at sign-in");
    assert_eq!(browser.get("/me").await.status, StatusCode::OK);
    let mut old = old_browser;
    assert_eq!(
        old.get("/me").await.status,
        StatusCode::UNAUTHORIZED,
        "the old session id must be dead"
    );
}

#[tokio::test]
async fn a_session_id_planted_before_sign_in_is_never_used() {
    let host = host_with_user("correct horse").await;
    let mut browser = host.browser("localhost");
    browser
        .cookies
        .insert("gh_session".into(), "attacker-chosen-value".into());
    let page = browser.password_sign_in("grace", "correct horse").await;
    let issued = session_cookie(&page).expect("session");
    assert_ne!(issued, "gh_session=attacker-chosen-value");
}

#[tokio::test]
async fn a_full_hashing_queue_answers_busy_and_counts_no_failure() {
    let host = host_with_user("correct horse").await;
    let mut browser = host.browser("localhost");
    let held = host.state.passwords().hold_all_slots();
    // More busy answers than the throttle allows failures (3 per account and address):
    // none of them is counted as one.
    for _ in 0..5 {
        let busy = browser.password_sign_in("grace", "correct horse").await;
        assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            busy.headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
        assert!(busy.body.contains("try again in a moment"), "{}", busy.body);
        assert!(session_cookie(&busy).is_none());
    }
    let audit = host.store.recent_audit(1).await.expect("audit");
    assert_eq!(
        (audit[0].outcome.as_str(), audit[0].reason.as_str()),
        ("refused", "password hashing busy")
    );
    drop(held);
    let right = browser.password_sign_in("grace", "correct horse").await;
    assert_eq!(right.status, StatusCode::SEE_OTHER);
    assert!(session_cookie(&right).is_some());
}

#[tokio::test]
async fn new_hashes_take_the_configured_cost_and_older_hashes_still_sign_in() {
    let config = EXAMPLE_CONFIG.replace(
        "[host.login_throttle]",
        "[host.passwords]\nmemory_kib = 2048\niterations = 3\nparallelism = 2\n\n[host.login_throttle]",
    );
    let host = TestHost::start(&config).await;
    let fresh = host
        .state
        .passwords()
        .hash("correct horse", host.state.random())
        .await
        .expect("hash");
    assert!(
        fresh.starts_with("$argon2id$v=19$m=2048,t=3,p=2$"),
        "{fresh}"
    );
    // The fixture's hash has the default cost (m=19456, t=2, p=1): checked with it.
    host.create_password_user("grace", "root", "correct horse", false)
        .await;
    let stored = host
        .store
        .user_by_username("grace")
        .await
        .expect("store")
        .and_then(|u| u.password_hash)
        .expect("a password hash");
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored}"
    );
    let mut browser = host.browser("localhost");
    let wrong = browser.password_sign_in("grace", "battery staple").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let right = browser.password_sign_in("grace", "correct horse").await;
    assert_eq!(right.status, StatusCode::SEE_OTHER);
}
