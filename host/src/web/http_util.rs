//! Request plumbing shared by the handlers: cookies, CSRF tokens, the client's
//! address, the domain a request is for, and safe `return_to` values.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, HeaderValue, header, request::Parts},
};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::plugins::capabilities::secure_random;

pub const SESSION_COOKIE: &str = "gh_session";
pub const CSRF_COOKIE: &str = "gh_csrf";
pub const PENDING_COOKIE: &str = "gh_pending";
/// The redirect-loop breaker's count of recent automatic redirects.
pub const LOOP_COOKIE: &str = "gh_redirects";

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure over https.
pub fn set_cookie(
    name: &str,
    value: &str,
    max_age_seconds: Option<u64>,
    secure: bool,
) -> HeaderValue {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age_seconds {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    // Names and values are ours (base64url tokens), so this cannot fail.
    HeaderValue::from_str(&cookie)
        .unwrap_or_else(|_| HeaderValue::from_static("gh_invalid=; Max-Age=0"))
}

/// A `Set-Cookie` value that deletes cookie `name`.
pub fn clear_cookie(name: &str, secure: bool) -> HeaderValue {
    set_cookie(name, "", Some(0), secure)
}

/// 256 random bits, URL-safe.
pub fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secure_random(32))
}

/// What the database stores instead of a bearer token: its SHA-256, hex.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compares two tokens in constant time.
pub fn tokens_match(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    !a.is_empty() && a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A same-site path to go to after signing in, or `/`. Anything that could leave the
/// site (`https://…`, `//host`, `/\host`, control characters) becomes `/`.
pub fn safe_return_to(candidate: Option<&str>) -> String {
    let Some(path) = candidate else {
        return "/".into();
    };
    let acceptable = path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.chars().any(|c| c.is_control() || c.is_whitespace())
        && path.len() <= 2048;
    if acceptable {
        path.to_owned()
    } else {
        "/".into()
    }
}

/// The client's address as the socket saw it (`unknown` when driven without one).
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_owned(), |info| info.0.ip().to_string());
        Ok(Self(ip))
    }
}

/// The request's `Host` header, lower case.
pub fn request_host(headers: &HeaderMap) -> &str {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_site_return_to_values_become_root() {
        for hostile in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "evil",
            "/a\nb",
            "/ x",
        ] {
            assert_eq!(safe_return_to(Some(hostile)), "/", "{hostile:?}");
        }
        assert_eq!(safe_return_to(Some("/courses/7?tab=1")), "/courses/7?tab=1");
        assert_eq!(safe_return_to(None), "/");
    }

    #[test]
    fn cookies_are_found_among_several() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; gh_session=tok; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn token_comparison_needs_equal_non_empty_tokens() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
        assert!(!tokens_match("", ""));
    }
}
