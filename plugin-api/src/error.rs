//! The one error type that crosses the ABI: a kind the host maps to an HTTP status,
//! and a message for the admin log.

use std::fmt;

use abi_stable::{StableAbi, std_types::RString};

/// What went wrong, as a number that stays stable across plugin API versions.
///
/// It is an integer newtype rather than an enum so that later API versions can add
/// kinds without breaking older plugins; an unknown kind is treated as
/// [`ErrorKind::INTERNAL`].
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorKind(pub u8);

impl ErrorKind {
    /// The IdP instance's settings are wrong; the admin must fix `plugins.toml`.
    pub const INVALID_SETTINGS: Self = Self(1);
    /// The IdP (or the browser) sent something malformed or unexpected.
    pub const INVALID_RESPONSE: Self = Self(2);
    /// A signature did not verify.
    pub const BAD_SIGNATURE: Self = Self(3);
    /// A token, assertion or pending sign-in is past its lifetime.
    pub const EXPIRED: Self = Self(4);
    /// The IdP or a policy refused this user.
    pub const ACCESS_DENIED: Self = Self(5);
    /// The IdP could not be reached or answered with a server error.
    pub const IDP_UNAVAILABLE: Self = Self(6);
    /// A bug in the plugin (including a caught panic).
    pub const INTERNAL: Self = Self(7);
    /// The plugin does not offer the optional ability that was asked for.
    pub const UNSUPPORTED: Self = Self(8);

    /// A short stable name, used in logs and the audit trail.
    pub fn name(self) -> &'static str {
        match self {
            Self::INVALID_SETTINGS => "invalid-settings",
            Self::INVALID_RESPONSE => "invalid-response",
            Self::BAD_SIGNATURE => "bad-signature",
            Self::EXPIRED => "expired",
            Self::ACCESS_DENIED => "access-denied",
            Self::IDP_UNAVAILABLE => "idp-unavailable",
            Self::UNSUPPORTED => "unsupported",
            _ => "internal",
        }
    }
}

impl fmt::Debug for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error returned by a plugin call.
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq, Eq)]
pub struct PluginError {
    pub kind: ErrorKind,
    pub message: RString,
}

impl PluginError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: RString::from(message.into()),
        }
    }
    pub fn invalid_settings(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::INVALID_SETTINGS, message)
    }
    pub fn invalid_response(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::INVALID_RESPONSE, message)
    }
    pub fn bad_signature(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BAD_SIGNATURE, message)
    }
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::EXPIRED, message)
    }
    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ACCESS_DENIED, message)
    }
    pub fn idp_unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::IDP_UNAVAILABLE, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::INTERNAL, message)
    }
    pub fn unsupported(ability: &str) -> Self {
        Self::new(
            ErrorKind::UNSUPPORTED,
            format!("this plugin does not support {ability}"),
        )
    }
    pub fn message(&self) -> &str {
        self.message.as_str()
    }
}

impl fmt::Debug for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PluginError({:?}: {})", self.kind, self.message)
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

impl std::error::Error for PluginError {}

impl From<serde_json::Error> for PluginError {
    fn from(error: serde_json::Error) -> Self {
        Self::invalid_settings(error.to_string())
    }
}
