//! The HTTP edge through the real router: a `Host` header that is not exactly an authority
//! is refused with 400 before any handler runs, and every response carries the browser
//! hardening headers, with a Content-Security-Policy the served page satisfies.

use axum::{
    body::Body,
    http::{HeaderMap, Request, StatusCode, header},
};
use gatehouse::web::headers::csp_hash;
use gatehouse_tests::{EXAMPLE_CONFIG, TestHost};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

/// The example configuration, with the root domain also served on `[::1]`.
fn config_with_ipv6() -> String {
    EXAMPLE_CONFIG.replace(
        "hosts = [\"localhost\", \"127.0.0.1\"]",
        "hosts = [\"localhost\", \"127.0.0.1\", \"[::1]\"]",
    )
}

async fn get(host: &TestHost, host_header: &str, path: &str) -> (StatusCode, HeaderMap, String) {
    let request = Request::builder()
        .uri(path)
        .header(header::HOST, host_header)
        .body(Body::empty())
        .expect("request");
    let response = host.router.clone().oneshot(request).await.expect("answer");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

#[tokio::test]
async fn a_host_that_is_not_an_authority_is_refused_before_any_handler() {
    let host = TestHost::start(&config_with_ipv6()).await;
    for hostile in [
        "[::1]@evil.example",
        "user@localhost",
        "localhost:99999",
        "localhost:0",
        "localhost:",
        "localhost/x",
        "localhost?x=1",
        "localhost#x",
        "a b",
        "[::1",
        "[fe80::1%eth0]",
        "",
    ] {
        for path in ["/login", "/sso/example/start", "/healthz"] {
            let (status, headers, body) = get(&host, hostile, path).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{hostile:?} {path}: {body}"
            );
            assert!(
                headers.get(header::LOCATION).is_none(),
                "{hostile:?} {path}"
            );
            assert!(!body.contains("evil"), "{hostile:?} {path}: {body}");
            assert_eq!(
                headers[header::X_FRAME_OPTIONS],
                "DENY",
                "refusals are hardened too"
            );
        }
    }
}

#[tokio::test]
async fn hosts_that_are_authorities_are_served() {
    let host = TestHost::start(&config_with_ipv6()).await;
    for fine in [
        "localhost",
        "localhost:8080",
        "[::1]",
        "[::1]:8080",
        "127.0.0.1",
        "LOCALHOST",
    ] {
        let (status, _, body) = get(&host, fine, "/login").await;
        assert_eq!(status, StatusCode::OK, "{fine:?}: {body}");
        assert!(body.contains("Sign in"), "{fine:?}");
    }
    // The example IdP sends the browser straight back to the callback on its own host.
    let (status, headers, _) = get(&host, "[::1]:8080", "/sso/example/start").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = headers[header::LOCATION].to_str().expect("ASCII");
    assert!(
        location.starts_with("http://[::1]:8080/sso/example/callback?"),
        "{location}"
    );
}

#[tokio::test]
async fn every_response_carries_the_hardening_headers() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    for path in [
        "/login",
        "/me",
        "/logged-out",
        "/healthz",
        "/sso/example/start",
        "/nope",
    ] {
        let (_, headers, _) = get(&host, "localhost", path).await;
        for (name, value) in [
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-store"),
        ] {
            assert_eq!(
                headers.get(&name).map(|v| v.to_str().unwrap()),
                Some(value),
                "{path} {name}"
            );
        }
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(
            headers.get(header::STRICT_TRANSPORT_SECURITY).is_none(),
            "no HSTS over http: {path}"
        );
    }
}

#[tokio::test]
async fn the_login_page_satisfies_its_policy() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let (status, headers, body) = get(&host, "localhost", "/login").await;
    assert_eq!(status, StatusCode::OK);
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    let style_start = body.find("<style>").expect("inline style") + "<style>".len();
    let style_end = body[style_start..].find("</style>").expect("style ends") + style_start;
    assert!(
        csp.contains(&format!(
            "style-src {}",
            csp_hash(&body[style_start..style_end])
        )),
        "the served style's hash is allowed: {csp}"
    );
    assert!(!body.contains("<script"), "no script to allow: {body}");
    assert!(!body.contains(" style="), "no style attributes: {body}");
    assert!(
        body.contains("action=\"/login\"") && csp.contains("form-action 'self'"),
        "{csp}"
    );
}

#[tokio::test]
async fn hsts_is_sent_when_the_public_url_is_https() {
    let host = TestHost::start(&EXAMPLE_CONFIG.replace(
        "public_url = \"http://localhost:8080\"",
        "public_url = \"https://localhost\"",
    ))
    .await;
    let (_, headers, _) = get(&host, "localhost", "/login").await;
    assert_eq!(
        headers[header::STRICT_TRANSPORT_SECURITY],
        "max-age=31536000"
    );
}

// --- One error path ------------------------------------------------------------------------

fn is_html(page: &gatehouse_tests::Page) -> bool {
    page.headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

fn is_json(page: &gatehouse_tests::Page) -> bool {
    page.headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// A malformed JSON body to a JSON route is our 400, as JSON with a message, never axum's
/// plain text (or its 422 for a body of the wrong shape).
#[tokio::test]
async fn a_malformed_json_body_gets_a_json_400_with_a_message() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let id = host.create_user("grace", false).await;
    let mut grace = host.signed_in_browser("localhost", id).await;
    let csrf = grace.csrf().await;
    for (body, what) in [
        (r#"{"fields": {"firstname": "#, "syntax error"),
        (r#"{"fields": ["not", "a", "map"]}"#, "wrong shape"),
        (r#"{"fields": {}, "surprise": 1}"#, "unknown member"),
    ] {
        let request = Request::builder()
            .method("PATCH")
            .uri("/me/profile")
            .header(header::HOST, "localhost")
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-csrf-token", &csrf)
            .header(
                header::COOKIE,
                format!("gh_session={}; gh_csrf={csrf}", grace.cookies["gh_session"]),
            )
            .body(Body::from(body))
            .expect("request");
        let page = grace.send(request).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{what}: {page:?}");
        assert!(is_json(&page), "{what}: {page:?}");
        let json = page.json();
        assert_eq!(json["code"], "invalid_body", "{what}: {json}");
        let message = json["error"].as_str().unwrap_or_default();
        assert!(message.contains("body"), "{what}: {message}");
    }
    // A user id that is not a number is a JSON 400 too, after the admin check.
    let mut admin = host.admin_browser("localhost").await;
    let page = admin.get("/admin/users/not-a-number/links").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{page:?}");
    assert_eq!(page.json()["code"], "invalid_path");
}

/// A malformed form to a page is our HTML 400 (the error page), not axum's plain text.
#[tokio::test]
async fn a_malformed_form_to_a_page_gets_an_html_400() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let mut browser = host.browser("localhost");
    let csrf = browser.csrf().await;
    let page = browser
        .post_form(
            "/login",
            &[
                ("csrf", &csrf),
                ("username", "grace"),
                ("username", "ada"),
                ("password", "x"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{page:?}");
    assert!(is_html(&page), "{page:?}");
    assert!(page.body.contains("<h1>Bad Request</h1>"), "{}", page.body);
    assert!(page.body.contains("form"), "{}", page.body);
    assert!(host.store.recent_audit(1).await.expect("audit").is_empty());
}

/// The JSON routes answer refusals in JSON (`{"error": message, "code": …}`, the shape `/me`
/// always had); pages and unknown paths answer with the HTML error page.
#[tokio::test]
async fn json_routes_refuse_in_json_and_pages_in_html() {
    let host = TestHost::start(EXAMPLE_CONFIG).await;
    let mut anonymous = host.browser("localhost");
    let me = anonymous.get("/me").await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert!(is_json(&me), "{me:?}");
    assert_eq!(me.json()["code"], "unauthorized");
    assert!(me.json()["error"].is_string(), "{}", me.body);

    let page = anonymous.get("/admin/test-login/example").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(is_html(&page), "{page:?}");

    let unknown = anonymous.get("/no/such/page").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(is_html(&unknown), "{unknown:?}");

    let mut stranger = host.browser("unknown.test");
    let elsewhere = stranger.get("/login").await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND, "{elsewhere:?}");
    assert!(is_html(&elsewhere));
}
