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
