//! Why a sign-in was refused, as the core's own error type, and its mapping to the
//! plugin API's [`PluginError`] kinds at the edge. Not a place for recovery logic.

use gatehouse_plugin_api::{ErrorKind, PluginError};

/// A refused or failed OpenID Connect step. Every message says plainly why, for the
/// admin log; the host shows users a plain version chosen by the kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// The provider could not be reached or answered with a server error.
    #[error("{0}")]
    Unavailable(String),
    /// The provider (or the browser) sent something malformed or unexpected.
    #[error("{0}")]
    InvalidResponse(String),
    /// The ID token's signature, algorithm or key is not acceptable.
    #[error("{0}")]
    BadSignature(String),
    /// The ID token is outside its validity window.
    #[error("{0}")]
    Expired(String),
    /// The provider or a policy (organisation, Workspace domain) refused this user.
    #[error("{0}")]
    Denied(String),
    /// An error the host reported (HTTP failure, store failure), passed through.
    #[error("{}", .0.message())]
    Host(PluginError),
    /// A bug on our side.
    #[error("{0}")]
    Internal(String),
}

impl OidcError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidResponse(message.into())
    }
}

impl From<PluginError> for OidcError {
    fn from(error: PluginError) -> Self {
        Self::Host(error)
    }
}

impl From<OidcError> for PluginError {
    fn from(error: OidcError) -> Self {
        let kind = match &error {
            OidcError::Unavailable(_) => ErrorKind::IDP_UNAVAILABLE,
            OidcError::InvalidResponse(_) => ErrorKind::INVALID_RESPONSE,
            OidcError::BadSignature(_) => ErrorKind::BAD_SIGNATURE,
            OidcError::Expired(_) => ErrorKind::EXPIRED,
            OidcError::Denied(_) => ErrorKind::ACCESS_DENIED,
            OidcError::Host(inner) => return inner.clone(),
            OidcError::Internal(_) => ErrorKind::INTERNAL,
        };
        PluginError::new(kind, error.to_string())
    }
}
