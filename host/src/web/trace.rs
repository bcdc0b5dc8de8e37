//! The request log: one span per request with its method and matched route (the route's
//! pattern, `/sso/{idp}/callback`, never the path as sent), and one event when the
//! response is ready with its status and latency. It never records the query string
//! (codes and state tokens travel there), the path's values, headers or cookies. Not the
//! log of what a request decided (refusals with their reasons stay where they happen,
//! `error` and the handlers).

use std::time::Duration;

use axum::{
    extract::MatchedPath,
    http::{Request, Response},
};
use tower_http::{
    classify::{ServerErrorsAsFailures, SharedClassifier},
    trace::{MakeSpan, OnResponse, TraceLayer},
};
use tracing::Span;

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

/// `request{method=GET route=/sso/{idp}/callback}`.
#[derive(Debug, Clone, Copy)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        // Without a matched route the path is the client's to choose; it is not logged.
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("(no route)", MatchedPath::as_str);
        tracing::info_span!("request", method = %request.method(), route)
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
