//! The SP's own metadata document (`GET /sso/{idp}/metadata`): entity id, ACS and SLO
//! endpoints on every host of the domain, and the SP certificate when there is one.
//! Written by hand in the order the OASIS metadata schema requires; it needs nothing
//! from the IdP, so it is served before the IdP side is set up.

use base64::Engine as _;
use gatehouse_plugin_api::{Document, PluginError};

use crate::settings::SpConfig;
use crate::xml::{BINDING_POST, BINDING_REDIRECT, NS_DSIG, NS_METADATA, NS_PROTOCOL, escape};

pub const CONTENT_TYPE: &str = "application/samlmetadata+xml";

/// The SP metadata of `config`.
pub fn document(config: &SpConfig) -> Result<Document, PluginError> {
    let mut xml = String::with_capacity(4096);
    xml.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&format!(
        "<md:EntityDescriptor xmlns:md=\"{NS_METADATA}\" xmlns:ds=\"{NS_DSIG}\" entityID=\"{}\">\n",
        escape(&config.entity_id)
    ));
    xml.push_str(&format!(
        "  <md:SPSSODescriptor protocolSupportEnumeration=\"{NS_PROTOCOL}\" AuthnRequestsSigned=\"{}\" WantAssertionsSigned=\"{}\">\n",
        config.key.is_some(),
        config.want_assertions_signed
    ));
    if let Some(key) = &config.key {
        let der = key
            .certificate
            .to_der()
            .map_err(|e| PluginError::internal(format!("the SP certificate: {e}")))?;
        let cert = base64::engine::general_purpose::STANDARD.encode(der);
        for key_use in ["signing", "encryption"] {
            xml.push_str(&format!(
                "    <md:KeyDescriptor use=\"{key_use}\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>\n"
            ));
        }
    }
    for slo in &config.slo_urls {
        for binding in [BINDING_REDIRECT, BINDING_POST] {
            xml.push_str(&format!(
                "    <md:SingleLogoutService Binding=\"{binding}\" Location=\"{}\"/>\n",
                escape(slo)
            ));
        }
    }
    if let Some(format) = &config.name_id_format {
        xml.push_str(&format!(
            "    <md:NameIDFormat>{}</md:NameIDFormat>\n",
            escape(format)
        ));
    }
    for (index, acs) in config.acs_urls.iter().enumerate() {
        xml.push_str(&format!(
            "    <md:AssertionConsumerService Binding=\"{BINDING_POST}\" Location=\"{}\" index=\"{index}\"{}/>\n",
            escape(acs),
            if index == 0 { " isDefault=\"true\"" } else { "" }
        ));
    }
    xml.push_str("  </md:SPSSODescriptor>\n</md:EntityDescriptor>\n");
    Ok(Document {
        content_type: CONTENT_TYPE.into(),
        body: xml.into(),
    })
}
