//! The SAML 2.0 service-provider plugin (`saml`, protocol `saml`), on samael with its
//! xmlsec feature, with every fail-open default of samael closed: IdP metadata without a
//! signing certificate is refused, signatures are checked in samael's strictest reduce
//! mode with an algorithm allow-list after a strict pre-parse of our own, every time
//! check runs on the host's clock, request ids carry 128 random bits from the host, and
//! assertions go through a replay cache in the host's store.
//!
//! Modules: `settings` (the `[idp.settings]` contract), `idp_metadata` (the IdP's
//! metadata), `source` (inline or fetched metadata), `online` (the online check of plugin
//! API 1.3), `metadata` (the SP's metadata),
//! `authn` (AuthnRequest and pending state), `bindings` (redirect/POST encodings and
//! redirect signatures), `prescan` (the strict pre-parse), `signature` (samael's
//! verification and decryption), `response` (the ACS checks), `logout` (single logout),
//! `refusal` (the named checks). This file only wires them to the plugin API.

mod authn;
mod bindings;
mod idp_metadata;
mod logout;
mod metadata;
mod online;
mod prescan;
pub mod refusal;
mod response;
mod settings;
mod signature;
mod source;
mod xml;

use std::time::Duration;

use gatehouse_plugin_api::{
    Attribute, BeginRequest, Begun, CallbackRequest, Capabilities, Document, Host, Identity,
    IdentityProvider, InboundReply, InboundRequest, InstanceConfig, LoginStep, LogoutRequest,
    Manifest, OnlineReport, Plugin, PluginError, RouteDecl,
};
use sha2::{Digest, Sha256};

use crate::authn::PendingState;
use crate::refusal::Check;
use crate::response::{Expected, Verified};
use crate::settings::SpConfig;
use crate::source::Source;

pub use crate::logout::{decode_state as decode_logout_state, encode_state as encode_logout_state};

/// The attributes every sign-in supplies besides the IdP's own (which are free-form).
pub const ATTRIBUTES: [&str; 3] = ["NameID", "NameIDFormat", "SessionIndex"];
/// The scheduled tasks: fetching `idp_metadata_url` again.
pub const TASKS: [&str; 1] = ["refresh_metadata"];
/// The inbound route for single logout, `/sso/{idp}/logout`.
pub const LOGOUT_ROUTE: &str = "logout";

/// One configured SAML IdP.
pub struct SamlSp {
    config: SpConfig,
    source: Source,
}

impl Plugin for SamlSp {
    fn manifest() -> Manifest {
        Manifest::new("saml", "saml", "SAML 2.0", env!("CARGO_PKG_VERSION"))
            .with_capabilities(Capabilities::LOGOUT | Capabilities::METADATA | Capabilities::TASKS)
            .with_attributes(&ATTRIBUTES)
            .with_tasks(&TASKS)
            .with_state_parameter("RelayState")
    }

    fn routes() -> Vec<RouteDecl> {
        // A POST-binding message is at most 256 KiB of base64, form-encoded.
        vec![RouteDecl::below_idp(LOGOUT_ROUTE, &["GET", "POST"]).with_max_body_bytes(1024 * 1024)]
    }

    fn new(config: &InstanceConfig) -> Result<Self, PluginError> {
        let config = SpConfig::from_instance(config)?;
        let source = Source::new(&config.idp);
        Ok(Self { config, source })
    }
}

impl IdentityProvider for SamlSp {
    fn begin_login(&self, host: &Host<'_>, request: &BeginRequest) -> Result<Begun, PluginError> {
        let idp = self.source.get(host)?;
        let (url, state) = authn::begin(
            host,
            &self.config,
            &idp,
            request.callback_url.as_str(),
            request.state_token.as_str(),
        )?;
        Ok(Begun {
            step: LoginStep::redirect(url),
            state: state.encode().into(),
        })
    }

    fn complete_login(
        &self,
        host: &Host<'_>,
        request: &CallbackRequest,
    ) -> Result<Identity, PluginError> {
        let encoded = request
            .param("SAMLResponse")
            .ok_or_else(|| Check::Malformed.refuse("the callback carries no SAMLResponse"))?;
        let pending = if request.state.is_empty() {
            if !self.config.allow_idp_initiated {
                return Err(Check::Unsolicited.refuse(
                    "an IdP-initiated (unsolicited) response is refused: allow_idp_initiated = false",
                ));
            }
            None
        } else {
            Some(PendingState::decode(&request.state)?)
        };
        let acs_url = match &pending {
            Some(pending) => pending.acs_url.clone(),
            None => request.callback_url.to_string(),
        };
        if !self.config.is_acs_url(&acs_url) {
            return Err(
                Check::Recipient.refuse("the callback URL is not one of this SP's ACS URLs")
            );
        }
        let idp = self.source.get(host)?;
        let now_millis = i64::try_from(
            host.now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis(),
        )
        .unwrap_or(i64::MAX);
        let verified = response::verify(
            encoded,
            &Expected {
                config: &self.config,
                idp: &idp,
                request_id: pending.as_ref().map(|p| p.request_id.as_str()),
                acs_url: &acs_url,
                now_millis,
                requested_at_millis: pending.as_ref().map(|p| p.issued_at.saturating_mul(1000)),
            },
        )?;
        remember_assertion(host, &verified, now_millis)?;
        Ok(identity(host, verified))
    }

    fn logout(
        &self,
        host: &Host<'_>,
        request: &LogoutRequest,
    ) -> Result<Option<LoginStep>, PluginError> {
        let idp = self.source.get(host)?;
        logout::begin(
            host,
            &self.config,
            &idp,
            request.subject.as_str(),
            &request.logout_state,
        )
    }

    fn metadata(&self, _host: &Host<'_>) -> Result<Document, PluginError> {
        if self.config.acs_urls.is_empty() {
            return Err(PluginError::internal(
                "SP metadata needs the domain's URLs: this host is older than plugin API 1.2",
            ));
        }
        metadata::document(&self.config)
    }

    fn run_task(&self, host: &Host<'_>, task: &str) -> Result<serde_json::Value, PluginError> {
        if task != "refresh_metadata" {
            return Err(PluginError::unsupported(&format!(
                "the scheduled task `{task}`"
            )));
        }
        let summary = match self.source.refresh(host)? {
            Some(idp) => format!(
                "fetched the metadata of {} ({} signing certificate(s))",
                idp.entity_id,
                idp.signing_certs.len()
            ),
            None => "the IdP metadata is inline: nothing to fetch".to_owned(),
        };
        Ok(serde_json::json!({ "summary": summary }))
    }

    fn handle_inbound(
        &self,
        host: &Host<'_>,
        request: &InboundRequest,
    ) -> Result<InboundReply, PluginError> {
        if request.route.as_str() != LOGOUT_ROUTE {
            return Ok(InboundReply::new(
                404,
                "text/plain; charset=utf-8",
                "Not found.",
            ));
        }
        let idp = self.source.get(host)?;
        Ok(logout::handle(host, &self.config, &idp, request))
    }

    /// (API 1.3) The IdP metadata fetched (or the inline copy) and its certificates' expiry.
    fn check_online(&self, host: &Host<'_>) -> Result<OnlineReport, PluginError> {
        Ok(online::check(host, &self.source))
    }
}

/// Puts the assertion in the replay cache (shared by every host on one database) until it
/// could no longer be accepted; a second use is refused.
fn remember_assertion(
    host: &Host<'_>,
    verified: &Verified,
    now_millis: i64,
) -> Result<(), PluginError> {
    let digest = Sha256::digest(format!("{}\n{}", verified.issuer, verified.assertion_id));
    let key = format!("replay:{}", logout::hex(&digest));
    let seconds = (verified.replay_until_millis - now_millis)
        .max(1000)
        .div_euclid(1000)
        + 1;
    let ttl = Duration::from_secs(u64::try_from(seconds).unwrap_or(1));
    if host.kv_put_if_absent(&key, b"1", Some(ttl))? {
        Ok(())
    } else {
        Err(Check::Replay.refuse("this assertion was already used"))
    }
}

/// The identity: NameID as subject; NameID, NameIDFormat, SessionIndex and every
/// attribute under its Name and its FriendlyName, multi-valued attributes kept whole.
fn identity(host: &Host<'_>, verified: Verified) -> Identity {
    let mut attributes: Vec<Attribute> = Vec::new();
    let mut add = |name: &str, values: &[String]| match attributes
        .iter_mut()
        .find(|a| a.name.as_str() == name)
    {
        Some(existing) => existing
            .values
            .extend(values.iter().map(|v| v.as_str().into())),
        None => attributes.push(Attribute {
            name: name.into(),
            values: values.iter().map(|v| v.as_str().into()).collect(),
        }),
    };
    add("NameID", std::slice::from_ref(&verified.name_id));
    if let Some(format) = &verified.name_id_format {
        add("NameIDFormat", std::slice::from_ref(format));
    }
    if let Some(index) = &verified.session_index {
        add("SessionIndex", std::slice::from_ref(index));
    }
    for (name, friendly, values) in &verified.attributes {
        for alias in std::iter::once(name).chain(friendly.iter().filter(|f| *f != name)) {
            if ATTRIBUTES.contains(&alias.as_str()) {
                // The IdP may not pass an attribute off as the NameID.
                host.warn("an IdP attribute named like a reserved attribute (NameID, NameIDFormat, SessionIndex) was ignored");
                continue;
            }
            add(alias, values);
        }
    }
    let logout_state = logout::encode_state(
        verified.name_id_format.as_deref(),
        &verified.name_id,
        verified.session_index.as_deref(),
    );
    Identity {
        subject: verified.name_id.as_str().into(),
        attributes: attributes.into(),
        logout_state: logout_state.into(),
    }
}

gatehouse_plugin_api::export_plugin!(SamlSp);
