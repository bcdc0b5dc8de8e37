//! The named checks a SAML message can fail, and the one way a refusal becomes a
//! [`PluginError`]: its message starts with the check's name (`audience: …`) so the host's
//! log and audit row say which check failed. Details never carry the message's contents
//! (NameID, attribute values): the host logs them.

use gatehouse_plugin_api::PluginError;

/// A check on an incoming SAML message (a Response at the ACS, a logout message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    TooLarge,
    Malformed,
    Doctype,
    AssertionCount,
    Algorithm,
    Transform,
    Signature,
    Status,
    Issuer,
    Audience,
    Recipient,
    Destination,
    InResponseTo,
    Expired,
    NotYetValid,
    Replay,
    Unsolicited,
    NameId,
    SubjectConfirmation,
    Decryption,
}

impl Check {
    /// The name that starts the refusal's message.
    pub fn name(self) -> &'static str {
        match self {
            Self::TooLarge => "too-large",
            Self::Malformed => "malformed",
            Self::Doctype => "doctype",
            Self::AssertionCount => "assertion-count",
            Self::Algorithm => "algorithm",
            Self::Transform => "transform",
            Self::Signature => "signature",
            Self::Status => "status",
            Self::Issuer => "issuer",
            Self::Audience => "audience",
            Self::Recipient => "recipient",
            Self::Destination => "destination",
            Self::InResponseTo => "in-response-to",
            Self::Expired => "expired",
            Self::NotYetValid => "not-yet-valid",
            Self::Replay => "replay",
            Self::Unsolicited => "unsolicited",
            Self::NameId => "name-id",
            Self::SubjectConfirmation => "subject-confirmation",
            Self::Decryption => "decryption",
        }
    }

    /// A refusal of this check. `detail` must not contain the message's contents.
    pub fn refuse(self, detail: impl std::fmt::Display) -> PluginError {
        let message = format!("{}: {detail}", self.name());
        match self {
            Self::Signature | Self::Algorithm | Self::Transform => {
                PluginError::bad_signature(message)
            }
            Self::Expired => PluginError::expired(message),
            Self::Status => PluginError::access_denied(message),
            _ => PluginError::invalid_response(message),
        }
    }
}

/// A refusal of an incoming message before it is turned into an error or a 400 reply.
pub type Refusal = PluginError;
