//! The AuthnRequest that begins a sign-in (HTTP-Redirect binding, signed when the SP has
//! a key) and the state kept for the ACS: the request id, the ACS URL used and the issue
//! time. Ids carry 128 bits from the host's randomness, never samael's 32-bit ids; times
//! come from the host's clock.

use chrono::{DateTime, SecondsFormat, Utc};
use gatehouse_plugin_api::{Host, PluginError};
use serde::{Deserialize, Serialize};

use crate::bindings;
use crate::idp_metadata::IdpConfig;
use crate::refusal::Check;
use crate::settings::SpConfig;
use crate::xml::{BINDING_POST, NS_ASSERTION, NS_PROTOCOL, escape};

/// What `begin_login` remembers for `complete_login` (the host keeps it server-side).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingState {
    /// The AuthnRequest's ID: the response's InResponseTo must name it.
    pub request_id: String,
    /// The ACS URL the request named: Recipient and Destination must be it.
    pub acs_url: String,
    /// When the request was made (Unix seconds, host clock).
    pub issued_at: i64,
}

impl PendingState {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, PluginError> {
        serde_json::from_slice(bytes)
            .map_err(|_| Check::Malformed.refuse("the pending sign-in's state is unreadable"))
    }
}

/// A SAML ID: `_` and the hex of 16 random bytes (128 bits) from the host.
pub fn new_id(host: &Host<'_>) -> String {
    let bytes = host.random_bytes(16);
    let mut id = String::with_capacity(33);
    id.push('_');
    for byte in bytes {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

/// The host's time as a SAML instant (UTC, whole seconds).
pub fn instant(host: &Host<'_>) -> String {
    DateTime::<Utc>::from(host.now()).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The AuthnRequest XML.
pub fn request_xml(
    config: &SpConfig,
    idp: &IdpConfig,
    id: &str,
    issue_instant: &str,
    acs_url: &str,
) -> String {
    let name_id_policy = config
        .name_id_format
        .as_deref()
        .map(|format| {
            format!(
                "<samlp:NameIDPolicy Format=\"{}\" AllowCreate=\"true\"/>",
                escape(format)
            )
        })
        .unwrap_or_default();
    format!(
        "<samlp:AuthnRequest xmlns:samlp=\"{NS_PROTOCOL}\" xmlns:saml=\"{NS_ASSERTION}\" ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{issue_instant}\" Destination=\"{}\" AssertionConsumerServiceURL=\"{}\" ProtocolBinding=\"{BINDING_POST}\"><saml:Issuer>{}</saml:Issuer>{name_id_policy}</samlp:AuthnRequest>",
        escape(&idp.sso_redirect),
        escape(acs_url),
        escape(&config.entity_id),
    )
}

/// The redirect to the IdP and the state to keep.
pub fn begin(
    host: &Host<'_>,
    config: &SpConfig,
    idp: &IdpConfig,
    acs_url: &str,
    relay_state: &str,
) -> Result<(String, PendingState), PluginError> {
    if !config.is_acs_url(acs_url) {
        return Err(PluginError::internal(
            "the callback URL is not on any host of this IdP's domain",
        ));
    }
    let id = new_id(host);
    let xml = request_xml(config, idp, &id, &instant(host), acs_url);
    let url = bindings::redirect_url(
        &idp.sso_redirect,
        "SAMLRequest",
        &xml,
        Some(relay_state),
        config.key.as_ref(),
    )?;
    Ok((
        url,
        PendingState {
            request_id: id,
            acs_url: acs_url.to_owned(),
            issued_at: host.now_unix_seconds(),
        },
    ))
}
