//! The one error type of the web layer and its conversion to an HTTP response: the
//! user sees a plain sentence, the log gets the detail.

use std::time::Duration;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use gatehouse_plugin_api::{ErrorKind, PluginError};

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
}

impl AppError {
    pub fn new(status: StatusCode, public: impl Into<String>) -> Self {
        let public = public.into();
        Self {
            status,
            detail: public.clone(),
            public,
            retry_after: None,
        }
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
        response
    }
}

pub type AppResult<T> = Result<T, AppError>;
