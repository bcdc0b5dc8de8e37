//! The one error type of the web layer and its one path to an HTTP response: the user
//! sees a plain sentence (an HTML page, or JSON on the JSON routes), the log gets the
//! detail. It is not where requests are logged (`trace`) nor where bodies are parsed
//! (`extract`, whose rejections arrive here).
//!
//! An [`AppError`] always renders as the HTML error page and carries its [`ErrorBody`] in
//! the response's extensions; [`json_errors`], layered on the JSON routes only, re-renders
//! that body as `{"error": message, "code": code, …}`. So a handler, an extractor or a
//! rejection never has to know which kind of route it serves.

use std::time::Duration;

use axum::{
    Json,
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use gatehouse_plugin_api::{ErrorKind, PluginError};
use serde_json::{Map, Value};

use crate::plugins::CallError;

use super::pages;

#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    /// Shown to the user.
    pub public: String,
    /// Logged, never shown.
    pub detail: String,
    /// Sent as `Retry-After` (seconds), for refusals that pass with time.
    pub retry_after: Option<u64>,
    /// A stable machine-readable name for JSON clients; by default named after the status.
    pub code: &'static str,
    /// More members of the JSON body (e.g. the refused fields of a profile edit).
    pub extra: Map<String, Value>,
}

/// What a JSON client is told about an error: the public sentence, the code and any
/// extra members. Kept in the response's extensions for [`json_errors`].
#[derive(Debug, Clone)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
    pub extra: Map<String, Value>,
}

impl ErrorBody {
    /// `{"error": message, "code": code, …extra}`. `error` stays the sentence because
    /// that is the shape JSON clients already read (`/me`, profile edits).
    pub fn to_json(&self) -> Value {
        let mut body = self.extra.clone();
        body.insert("error".into(), Value::String(self.message.clone()));
        body.insert("code".into(), Value::String(self.code.to_owned()));
        Value::Object(body)
    }
}

/// The default code of a status.
fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        StatusCode::BAD_GATEWAY => "bad_gateway",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::GATEWAY_TIMEOUT => "timeout",
        status if status.is_server_error() => "internal",
        _ => "error",
    }
}

impl AppError {
    pub fn new(status: StatusCode, public: impl Into<String>) -> Self {
        let public = public.into();
        Self {
            status,
            detail: public.clone(),
            public,
            retry_after: None,
            code: code_for(status),
            extra: Map::new(),
        }
    }
    /// Names the error for JSON clients (instead of the status's default code).
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }
    /// Adds a member to the JSON body.
    pub fn with_json(mut self, name: &str, value: Value) -> Self {
        self.extra.insert(name.to_owned(), value);
        self
    }
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
    /// Asks the client to wait `after` (rounded up to whole seconds, at least one).
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        self.retry_after = Some(seconds.max(1));
        self
    }
    pub fn bad_request(public: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, public)
    }
    pub fn not_found(public: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, public)
    }
    pub fn forbidden(public: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, public)
    }
    pub fn unauthorized(public: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, public)
    }
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong on our side. Please try again later.",
        )
        .with_detail(detail.to_string())
    }
}

/// The HTTP status for each kind of plugin error; the only place this is decided.
pub fn status_for(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::INVALID_RESPONSE | ErrorKind::BAD_SIGNATURE | ErrorKind::EXPIRED => {
            StatusCode::BAD_REQUEST
        }
        ErrorKind::ACCESS_DENIED => StatusCode::FORBIDDEN,
        ErrorKind::IDP_UNAVAILABLE => StatusCode::BAD_GATEWAY,
        ErrorKind::UNSUPPORTED => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn public_message(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::INVALID_RESPONSE => "The identity provider's answer could not be accepted.",
        ErrorKind::BAD_SIGNATURE => "The identity provider's answer was not signed correctly.",
        ErrorKind::EXPIRED => {
            "The sign-in took too long or its answer has expired. Please try again."
        }
        ErrorKind::ACCESS_DENIED => "The identity provider did not allow this sign-in.",
        ErrorKind::IDP_UNAVAILABLE => {
            "The identity provider could not be reached. Please try again later."
        }
        ErrorKind::UNSUPPORTED => "This sign-in method does not offer that.",
        ErrorKind::INVALID_SETTINGS => {
            "This sign-in method is misconfigured. Please tell an administrator."
        }
        _ => "The sign-in method failed unexpectedly. Please try again later.",
    }
}

impl From<PluginError> for AppError {
    fn from(error: PluginError) -> Self {
        Self::new(status_for(error.kind), public_message(error.kind)).with_detail(error.to_string())
    }
}

impl From<CallError> for AppError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Plugin(error) => error.into(),
            CallError::TimedOut(_) => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "The sign-in method took too long to answer. Please try again.",
            )
            .with_detail(error.to_string()),
            CallError::Aborted(_) => Self::internal(error),
            CallError::Busy(ref busy) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "This sign-in method is busy; please try again in a moment.",
            )
            .with_retry_after(busy.retry_after)
            .with_detail(error.to_string()),
        }
    }
}

impl From<gatehouse_store::StoreError> for AppError {
    fn from(error: gatehouse_store::StoreError) -> Self {
        Self::internal(format!("database: {error}"))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if self.retry_after.is_some() {
            // Shedding load on purpose (a busy or failing IdP): expected under a flood, so
            // not an error each time; the breaker logs its own transitions.
            tracing::warn!(status = %self.status, detail = %self.detail, "request refused for now");
        } else if self.status.is_server_error() {
            tracing::error!(status = %self.status, detail = %self.detail, "request failed");
        } else {
            tracing::info!(status = %self.status, detail = %self.detail, "request refused");
        }
        let mut response =
            (self.status, pages::error_page(self.status, &self.public)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(ErrorBody {
            code: self.code,
            message: self.public,
            extra: self.extra,
        });
        response
    }
}

/// Middleware of the JSON routes: an error response (one that carries an [`ErrorBody`],
/// whether a handler, an extractor or a rejection made it) is sent as JSON with the same
/// status and headers (`Retry-After`, cookies) instead of the HTML page.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let Some(body) = response.extensions_mut().remove::<ErrorBody>() else {
        return response;
    };
    let (parts, _html) = response.into_parts();
    let mut json = (parts.status, Json(body.to_json())).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            json.headers_mut().append(name, value.clone());
        }
    }
    json
}

pub type AppResult<T> = Result<T, AppError>;
