//! The `Host` header, checked before any handler runs: it must be an RFC 3986 `authority`
//! without userinfo — a host name, an IPv4 address or a bracketed IPv6 address, with an
//! optional port from 1 to 65535 — or the request is refused with 400. It is not the
//! choice of domain (the site's host lookup does that on a header this layer let through)
//! and not `http_util::request_host`, which reads the header the handlers see.
//!
//! Handlers build callback and redirect URLs from the header, so anything that is not
//! exactly an authority (`[::1]@evil.example`, `localhost/x`, `a b`) must never reach them.

use axum::{
    extract::Request,
    http::{HeaderMap, StatusCode, Uri, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::pages;

/// The longest `Host` accepted: a DNS name is at most 253 characters, plus a port.
pub const MAX_HOST_LEN: usize = 260;

/// Why a `Host` header was refused. The header's text is deliberately not part of the
/// error: it is outside data and the error is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("the request has more than one Host header")]
    Repeated,
    #[error("the Host header is empty")]
    Empty,
    #[error("the Host header is longer than {MAX_HOST_LEN} bytes")]
    TooLong,
    #[error("the Host header contains whitespace, control or non-ASCII characters")]
    Unprintable,
    #[error("the Host header carries userinfo (`user@`)")]
    Userinfo,
    #[error("the Host header carries a path, query or fragment")]
    NotAnAuthority,
    #[error("the Host header's host is not a host name, IPv4 or bracketed IPv6 address")]
    BadHost,
    #[error("the Host header's port is not a number from 1 to 65535")]
    BadPort,
    #[error("the Host header and the request target name different authorities")]
    Mismatch,
}

/// A checked authority: the host as written (brackets kept for IPv6) and the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authority<'a> {
    pub host: &'a str,
    pub port: Option<u16>,
}

/// RFC 3986 `unreserved`. A `reg-name` may also hold sub-delims and percent-encoding, but
/// no DNS name (and so no configured host) does, and they would only reach handlers as text
/// to reflect into URLs.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn port(text: &str) -> Result<u16, HostError> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::BadPort);
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(HostError::BadPort),
        Ok(n) => Ok(n),
    }
}

/// Parses `text` as `host [ ":" port ]`, refusing everything else.
pub fn parse_authority(text: &str) -> Result<Authority<'_>, HostError> {
    if text.is_empty() {
        return Err(HostError::Empty);
    }
    if text.len() > MAX_HOST_LEN {
        return Err(HostError::TooLong);
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(HostError::Unprintable);
    }
    if text.contains('@') {
        return Err(HostError::Userinfo);
    }
    if text.contains(['/', '?', '#', '\\']) {
        return Err(HostError::NotAnAuthority);
    }
    let (host, rest) = if let Some(inner) = text.strip_prefix('[') {
        let (address, rest) = inner.split_once(']').ok_or(HostError::BadHost)?;
        // No zone identifiers and no IPvFuture: only a plain IPv6 address.
        address
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| HostError::BadHost)?;
        (&text[..address.len() + 2], rest)
    } else {
        let end = text.find(':').unwrap_or(text.len());
        let host = &text[..end];
        if host.is_empty() || !host.bytes().all(is_name_byte) {
            return Err(HostError::BadHost);
        }
        (host, &text[end..])
    };
    let port = match rest {
        "" => None,
        _ => Some(port(rest.strip_prefix(':').ok_or(HostError::BadHost)?)?),
    };
    Ok(Authority { host, port })
}

/// Checks the request's `Host` header (and, for an absolute-form request target, that it
/// names the same authority). A request without a `Host` passes: handlers then know no
/// domain for it, which is a refusal of its own.
pub fn check(headers: &HeaderMap, uri: &Uri) -> Result<(), HostError> {
    let mut values = headers.get_all(header::HOST).iter();
    let Some(value) = values.next() else {
        return Ok(());
    };
    if values.next().is_some() {
        return Err(HostError::Repeated);
    }
    let text = value.to_str().map_err(|_| HostError::Unprintable)?;
    let authority = parse_authority(text)?;
    if let Some(target) = uri.authority() {
        let target = parse_authority(target.as_str())?;
        if !target.host.eq_ignore_ascii_case(authority.host) || target.port != authority.port {
            return Err(HostError::Mismatch);
        }
    }
    Ok(())
}

/// The middleware: a malformed `Host` is answered with 400 before routing.
pub async fn require_valid_host(request: Request, next: Next) -> Response {
    match check(request.headers(), request.uri()) {
        Ok(()) => next.run(request).await,
        Err(error) => {
            tracing::info!(%error, "refused a request with a malformed Host header");
            let status = StatusCode::BAD_REQUEST;
            (
                status,
                pages::error_page(
                    status,
                    "This address is not valid for this site. Check the address and try again.",
                ),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_are_accepted_with_their_parts() {
        for (text, host, port) in [
            ("localhost", "localhost", None),
            ("localhost:8080", "localhost", Some(8080)),
            ("127.0.0.1", "127.0.0.1", None),
            ("sso.example.com:1", "sso.example.com", Some(1)),
            ("[::1]", "[::1]", None),
            ("[::1]:8080", "[::1]", Some(8080)),
            ("[2001:db8::7]:65535", "[2001:db8::7]", Some(65535)),
            ("Acme.TEST", "Acme.TEST", None),
        ] {
            assert_eq!(
                parse_authority(text),
                Ok(Authority { host, port }),
                "{text:?}"
            );
        }
    }

    #[test]
    fn everything_else_is_refused_with_its_reason() {
        let long = "a".repeat(MAX_HOST_LEN + 1);
        for (text, why) in [
            ("", HostError::Empty),
            (long.as_str(), HostError::TooLong),
            ("a b", HostError::Unprintable),
            ("a\tb", HostError::Unprintable),
            ("caf\u{e9}.example", HostError::Unprintable),
            ("[::1]@evil.example", HostError::Userinfo),
            ("user@localhost", HostError::Userinfo),
            ("localhost/x", HostError::NotAnAuthority),
            ("localhost?x", HostError::NotAnAuthority),
            ("localhost#x", HostError::NotAnAuthority),
            ("localhost\\x", HostError::NotAnAuthority),
            ("localhost:99999", HostError::BadPort),
            ("localhost:0", HostError::BadPort),
            ("localhost:", HostError::BadPort),
            ("localhost:+80", HostError::BadPort),
            ("localhost:80:80", HostError::BadPort),
            ("localhost:080000", HostError::BadPort),
            (":80", HostError::BadHost),
            ("[::1", HostError::BadHost),
            ("[::1]x", HostError::BadHost),
            ("[fe80::1%25eth0]", HostError::BadHost),
            ("[v1.x]", HostError::BadHost),
            ("[127.0.0.1]", HostError::BadHost),
            ("evil!.example", HostError::BadHost),
            ("ex%41mple", HostError::BadHost),
        ] {
            assert_eq!(parse_authority(text), Err(why), "{text:?}");
        }
    }

    #[test]
    fn a_repeated_or_contradicted_host_is_refused() {
        let mut headers = HeaderMap::new();
        headers.append(header::HOST, "localhost".parse().unwrap());
        let origin_form: Uri = "/login".parse().unwrap();
        assert_eq!(check(&headers, &origin_form), Ok(()));
        let absolute: Uri = "http://evil.example/login".parse().unwrap();
        assert_eq!(check(&headers, &absolute), Err(HostError::Mismatch));
        let same: Uri = "http://LOCALHOST/login".parse().unwrap();
        assert_eq!(check(&headers, &same), Ok(()));
        headers.append(header::HOST, "evil.example".parse().unwrap());
        assert_eq!(check(&headers, &origin_form), Err(HostError::Repeated));
        assert_eq!(check(&HeaderMap::new(), &origin_form), Ok(()));
    }
}
