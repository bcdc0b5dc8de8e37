//! Browser hardening headers on every response: framing refused, a Content-Security-Policy
//! the pages satisfy (inline style and script allowed only by their SHA-256), no referrer,
//! no MIME sniffing, no caching, and HSTS when the public URL is https. It is not where
//! pages are written (`pages`, which sets its own policy where a page needs more) nor the
//! cookies' attributes (`http_util`).

use std::sync::LazyLock;

use axum::{
    Router,
    http::{HeaderName, HeaderValue, header},
};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use tower_http::set_header::SetResponseHeaderLayer;

use super::pages;

/// A year: the usual HSTS lifetime. No `includeSubDomains`: Gatehouse does not know what
/// else runs under its domains.
const HSTS: &str = "max-age=31536000";

/// A CSP source expression allowing exactly the inline element whose text is `text`.
pub fn csp_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The policy of a page: nothing by default, the pages' one inline style, `script` (an
/// inline script's text) if any, forms posting to `form_action` (CSP source expressions),
/// no `<base>`, and no framing.
pub fn content_security_policy(script: Option<&str>, form_action: &str) -> String {
    let script_src = script
        .map(|text| format!("; script-src {}", csp_hash(text)))
        .unwrap_or_default();
    format!(
        "default-src 'none'; style-src {}{script_src}; form-action {form_action}; base-uri 'none'; frame-ancestors 'none'",
        csp_hash(pages::STYLE)
    )
}

/// The policy of every response that sets none of its own: no script, forms to this
/// origin only.
pub static DEFAULT_CSP: LazyLock<String> =
    LazyLock::new(|| content_security_policy(None, "'self'"));

fn overriding(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
}

/// Wraps `router` so that every response, including refusals made by outer layers it
/// wraps, carries the hardening headers. `https`: the public URL is https (HSTS).
pub fn harden(router: Router, https: bool) -> Router {
    // Built from constants of ours; `from_str` refuses only control characters.
    let csp = HeaderValue::from_str(&DEFAULT_CSP)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
    let router = router
        // A page with its own policy (the POST form to an IdP) keeps it.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            csp,
        ))
        .layer(overriding(header::X_FRAME_OPTIONS, "DENY"))
        .layer(overriding(header::REFERRER_POLICY, "no-referrer"))
        .layer(overriding(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // Every route is a sign-in step, a session or an admin answer; none is static.
        .layer(overriding(header::CACHE_CONTROL, "no-store"));
    if https {
        router.layer(overriding(header::STRICT_TRANSPORT_SECURITY, HSTS))
    } else {
        router
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_csp_sha256_sources() {
        // `printf %s 'alert(1)' | openssl dgst -sha256 -binary | base64`
        assert_eq!(
            csp_hash("alert(1)"),
            "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='"
        );
    }

    #[test]
    fn the_default_policy_allows_no_script_and_no_framing() {
        let csp = DEFAULT_CSP.as_str();
        assert!(csp.starts_with("default-src 'none';"), "{csp}");
        assert!(!csp.contains("script-src"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("base-uri 'none'"), "{csp}");
        assert!(csp.contains("form-action 'self'"), "{csp}");
    }
}
