//! Request plumbing shared by the handlers: cookies, CSRF tokens, the client's
//! address, the domain a request is for, safe `return_to` values and `Retry-After`.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, HeaderValue, header, request::Parts},
    response::Response,
};
use sha2::{Digest, Sha256};

use crate::state::AppState;

pub const SESSION_COOKIE: &str = "gh_session";
pub const CSRF_COOKIE: &str = "gh_csrf";
pub const PENDING_COOKIE: &str = "gh_pending";
/// The redirect-loop breaker's count of recent automatic redirects.
pub const LOOP_COOKIE: &str = "gh_redirects";

/// The name cookie `name` has on the wire: over https it carries the `__Host-` prefix, which
/// browsers accept only from this very host (Secure, `Path=/`, no `Domain`), so a sibling
/// or parent domain cannot plant it.
pub fn wire_name(name: &str, secure: bool) -> std::borrow::Cow<'_, str> {
    if secure {
        format!("__Host-{name}").into()
    } else {
        name.into()
    }
}

/// The value of cookie `name` (its [`wire_name`]), if the request carries it exactly once.
/// A name sent twice is ambiguous (one of them was planted from another domain) and counts
/// as absent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str, secure: bool) -> Option<&'a str> {
    let name = wire_name(name, secure);
    let mut values = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(key, _)| *key == name)
        .map(|(_, value)| value);
    let value = values.next()?;
    (values.next().is_none() && !value.is_empty()).then_some(value)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/; over https also Secure and the
/// `__Host-` prefix.
pub fn set_cookie(
    name: &str,
    value: &str,
    max_age_seconds: Option<u64>,
    secure: bool,
) -> HeaderValue {
    let mut cookie = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax",
        wire_name(name, secure)
    );
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
/// Asks the client to wait `wait` (whole seconds) before trying again.
pub fn set_retry_after(response: &mut Response, wait: std::time::Duration) {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs()));
}

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

/// The client's address: the connecting peer's, or, when the peer is one of `[host]
/// trusted_proxies`, the nearest address in its `Forwarded` (or `X-Forwarded-For`) chain that
/// is not itself a trusted proxy. Forwarding headers from anyone else are ignored: a client
/// could write anything there. `unknown` when driven without a socket.
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(peer) = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip())
        else {
            return Ok(Self("unknown".to_owned()));
        };
        let client = client_address(peer, &parts.headers, &state.settings().trusted_proxies);
        Ok(Self(client.to_string()))
    }
}

/// The client address of a request from `peer` (see [`ClientIp`]).
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let chain = forwarded_chain(headers).or_else(|| x_forwarded_for_chain(headers));
    let Some(chain) = chain else {
        return peer;
    };
    // Each proxy appends the address it saw, so the trustworthy end is the right one: walk
    // left past our own proxies to the first address they vouch for.
    chain
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or_else(|| chain.first())
        .copied()
        .unwrap_or(peer)
}

/// The `for=` addresses of every `Forwarded` header (RFC 7239), in order; `None` when there
/// is none or any entry is not an address (an obfuscated or unknown hop breaks the chain).
fn forwarded_chain(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let mut chain = Vec::new();
    for value in headers.get_all(header::FORWARDED) {
        for element in value.to_str().ok()?.split(',') {
            let node = element.split(';').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                key.eq_ignore_ascii_case("for").then_some(value)
            })?;
            chain.push(parse_node(node.trim().trim_matches('"'))?);
        }
    }
    (!chain.is_empty()).then_some(chain)
}

/// The addresses of every `X-Forwarded-For` header, in order.
fn x_forwarded_for_chain(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let mut chain = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        for item in value.to_str().ok()?.split(',') {
            chain.push(parse_node(item.trim())?);
        }
    }
    (!chain.is_empty()).then_some(chain)
}

/// `192.0.2.1`, `192.0.2.1:8080`, `[2001:db8::1]`, `[2001:db8::1]:8080` or `2001:db8::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(socket) = node.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    node.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// The request's `Host` header, lower case.
pub fn request_host(headers: &HeaderMap) -> &str {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
}

/// `application/x-www-form-urlencoded` bytes (a body or a query string) as name/value
/// pairs, read leniently: what an IdP or peer sent is the plugin's to judge.
pub fn decode_pairs(encoded: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(encoded)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

/// Name/value pairs as the plugin ABI carries them.
pub fn abi_pairs(pairs: Vec<(String, String)>) -> Vec<gatehouse_plugin_api::Pair> {
    pairs
        .into_iter()
        .map(|(name, value)| gatehouse_plugin_api::Pair::new(name, value))
        .collect()
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
        assert_eq!(cookie(&headers, SESSION_COOKIE, false), Some("tok"));
        assert_eq!(cookie(&headers, "missing", false), None);
        assert_eq!(
            cookie(&headers, SESSION_COOKIE, true),
            None,
            "over https only the __Host- cookie counts"
        );
    }

    #[test]
    fn a_cookie_sent_twice_is_ambiguous_and_ignored() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("gh_pending=mine; gh_pending=planted"),
        );
        assert_eq!(cookie(&headers, PENDING_COOKIE, false), None);
    }

    #[test]
    fn https_cookies_carry_the_host_prefix() {
        let set = set_cookie(SESSION_COOKIE, "tok", Some(60), true);
        let set = set.to_str().expect("ascii");
        assert!(set.starts_with("__Host-gh_session=tok; Path=/;"), "{set}");
        assert!(set.contains("; Secure") && !set.contains("Domain"), "{set}");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("__Host-gh_session=tok"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE, true), Some("tok"));
    }

    fn forwarded(name: &'static str, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.append(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let proxies: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().expect("cidr")];
        let proxy: IpAddr = "10.1.2.3".parse().expect("ip");
        let stranger: IpAddr = "198.51.100.7".parse().expect("ip");
        let xff = forwarded("x-forwarded-for", "203.0.113.9, 10.9.9.9");
        assert_eq!(
            client_address(proxy, &xff, &proxies).to_string(),
            "203.0.113.9"
        );
        assert_eq!(
            client_address(stranger, &xff, &proxies),
            stranger,
            "a client that is not a proxy cannot choose its address"
        );
        assert_eq!(
            client_address(proxy, &xff, &[]),
            proxy,
            "no proxies trusted"
        );
        // A spoofed left-most entry is passed over: the proxy's own hop is what counts.
        let spoofed = forwarded("x-forwarded-for", "1.1.1.1, 203.0.113.9");
        assert_eq!(
            client_address(proxy, &spoofed, &proxies).to_string(),
            "203.0.113.9"
        );
        let rfc7239 = forwarded(
            "forwarded",
            "for=192.0.2.60;proto=https, for=\"[2001:db8:cafe::17]:4711\"",
        );
        assert_eq!(
            client_address(proxy, &rfc7239, &proxies).to_string(),
            "2001:db8:cafe::17"
        );
        let garbage = forwarded("x-forwarded-for", "not-an-address");
        assert_eq!(client_address(proxy, &garbage, &proxies), proxy);
        assert_eq!(client_address(proxy, &HeaderMap::new(), &proxies), proxy);
    }

    #[test]
    fn token_comparison_needs_equal_non_empty_tokens() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
        assert!(!tokens_match("", ""));
    }
}
