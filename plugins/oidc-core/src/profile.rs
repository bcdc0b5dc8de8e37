//! [`Profile`]: what makes one provider family different (which `iss` values count,
//! extra authorization parameters, extra claim checks, attribute adjustments, the
//! logout URL when discovery has none). A profile holds no protocol logic of its own;
//! the core calls it at fixed points.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::{error::OidcError, settings::RpConfig};

/// The verified ID token claims (or the merged ID token and UserInfo claims).
pub type Claims = Map<String, Value>;

/// Flattened attributes by name, as the host receives them.
pub type Attributes = BTreeMap<String, String>;

/// The hooks a plugin plugs into the core. Every method has the plain OpenID Connect
/// behaviour as its default.
pub trait Profile: Send + Sync + 'static {
    /// Whether `iss` (from an ID token or a callback's RFC 9207 parameter) names this
    /// provider. Compared exactly; the default accepts only the configured issuer.
    fn accepts_issuer(&self, config: &RpConfig, iss: &str) -> bool {
        iss == config.issuer
    }

    /// Authorization request parameters this provider needs (`connection`, `hd`, …).
    fn authorization_params(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Checks beyond OpenID Connect Core on the verified ID token claims; an `Err`
    /// refuses the sign-in.
    fn check_claims(&self, _claims: &Claims) -> Result<(), OidcError> {
        Ok(())
    }

    /// Last adjustments to the attributes the host receives.
    fn adjust_attributes(&self, _attributes: &mut Attributes) {}

    /// Where to send the browser to sign out when discovery names no
    /// `end_session_endpoint`; `None`: nothing to do at the provider.
    fn fallback_logout_url(&self, _config: &RpConfig, _return_url: &str) -> Option<String> {
        None
    }
}

/// Plain OpenID Connect: every hook at its default.
#[derive(Debug, Clone, Copy, Default)]
pub struct StandardProfile;

impl Profile for StandardProfile {}
