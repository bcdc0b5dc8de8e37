//! The request log: one span per request with its method, matched route (the route's
//! pattern, `/sso/{idp}/callback`, never the path as sent) and request id, and one event
//! when the response is ready with its status and latency. It never records the query
//! string (codes and state tokens travel there), the path's values, headers or cookies.
//! Not the log of what a request decided (`events`, written inside this span, and `error`).
//!
//! [`observe`], outside the span, gives each request its id (made by the host, or a trusted
//! proxy's well-formed `X-Request-Id`), echoes it as the response's `X-Request-Id`, and
//! counts the request in the metrics by method, route pattern and status.

use std::{net::SocketAddr, time::Duration};

use axum::{
    body::Body,
    extract::{ConnectInfo, MatchedPath, State},
    http::{HeaderValue, Method, Request, Response},
    middleware::Next,
};
use tower_http::{
    classify::{ServerErrorsAsFailures, SharedClassifier},
    trace::{MakeSpan, OnResponse, TraceLayer},
};
use tracing::Span;

use crate::{clock::Randomness, state::AppState};

/// The header a request id is read from (a trusted proxy's) and answered in.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest request id accepted from a proxy.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// The route label of a request no route matched (its path is the client's to choose).
const NO_ROUTE: &str = "(no route)";

/// One request's id, in the request's extensions (and so in its span).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// A fresh id: 128 bits from the host's randomness, as 32 lowercase hex.
fn fresh_request_id(random: &Randomness) -> String {
    random
        .bytes(16)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A proxy's id is kept only when it is 1 to [`MAX_REQUEST_ID_LEN`] characters of
/// `[A-Za-z0-9._:-]`: nothing that could break a log line or a header.
fn acceptable_request_id(value: &str) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The `X-Request-Id` of a request from one of `[host] trusted_proxies`, when acceptable;
/// anyone else's is ignored (a client does not choose the id its requests are logged by).
fn proxy_request_id(request: &Request<Body>, state: &AppState) -> Option<String> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()?
        .0
        .ip();
    let trusted = &state.settings().trusted_proxies;
    if !trusted.iter().any(|net| net.contains(&peer)) {
        return None;
    }
    let mut values = request.headers().get_all(REQUEST_ID_HEADER).iter();
    let value = values.next()?.to_str().ok()?;
    // Sent twice, it is nobody's id.
    (values.next().is_none() && acceptable_request_id(value)).then(|| value.to_owned())
}

/// The method as a metric label: the standard ones, else `other` (a client could send any
/// token as a method, and each would be a series of its own).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The middleware around the request span (see the module's doc).
pub async fn observe(
    State(state): State<AppState>,
    mut request: Request<Body>,
    next: Next,
) -> axum::response::Response {
    let started = state.clock().instant();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(NO_ROUTE, MatchedPath::as_str)
        .to_owned();
    let id = proxy_request_id(&request, &state).unwrap_or_else(|| fresh_request_id(state.random()));
    let header = HeaderValue::from_str(&id).ok();
    request.extensions_mut().insert(RequestId(id));
    let mut response = next.run(request).await;
    if let Some(header) = header {
        response.headers_mut().insert(REQUEST_ID_HEADER, header);
    }
    let took = state.clock().instant().saturating_duration_since(started);
    state
        .metrics()
        .http_request(method, &route, response.status().as_u16(), took);
    response
}

/// The tracing middleware every route runs in (see [`super::app`]).
pub type RequestTrace = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    RequestSpan,
    (),
    ResponseEvent,
    (),
    (),
    (),
>;

pub fn layer() -> RequestTrace {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_request(())
        .on_response(ResponseEvent)
        .on_body_chunk(())
        .on_eos(())
        // The response event carries the status of failures too, and `AppError` logs
        // their detail; a second event would say nothing new.
        .on_failure(())
}

/// `request{method=GET route=/sso/{idp}/callback request_id=…}`.
#[derive(Debug, Clone, Copy)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        // Without a matched route the path is the client's to choose; it is not logged.
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or(NO_ROUTE, MatchedPath::as_str);
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.0.as_str());
        tracing::info_span!("request", method = %request.method(), route, request_id)
    }
}

/// `status=200 latency_ms=3 "request served"`.
#[derive(Debug, Clone, Copy)]
pub struct ResponseEvent;

impl<B> OnResponse<B> for ResponseEvent {
    fn on_response(self, response: &Response<B>, latency: Duration, _span: &Span) {
        let status = response.status().as_u16();
        let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        tracing::info!(status, latency_ms, "request served");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::{Router, body::Body, routing::get};
    use tower::ServiceExt as _;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn requests_are_logged_by_route_without_query_or_cookies() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let router: Router = Router::new()
            .route("/sso/{idp}/callback", get(|| async { "ok" }))
            .layer(layer());
        let request = Request::builder()
            .uri("/sso/secret-idp/callback?code=SECRET-CODE&state=SECRET-STATE")
            .header("cookie", "gh_session=SECRET-COOKIE")
            .body(Body::empty())
            .expect("request");
        let response = router.oneshot(request).await.expect("response");
        assert_eq!(response.status(), 200);
        let log = String::from_utf8_lossy(&captured.0.lock().expect("log")).into_owned();
        assert!(log.contains("route=\"/sso/{idp}/callback\""), "{log}");
        assert!(log.contains("method=GET"), "{log}");
        assert!(log.contains("status=200"), "{log}");
        assert!(log.contains("latency_ms="), "{log}");
        assert!(!log.contains("SECRET"), "{log}");
        assert!(!log.contains("secret-idp"), "{log}");
    }
}
