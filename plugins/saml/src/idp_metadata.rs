//! The IdP's metadata, read and checked once (inline at start-up, or each time a fetched
//! copy arrives): entity id, signing certificates, and the SSO and SLO endpoints. It
//! refuses what would let samael fail open (no signing certificate) and anything else
//! this plugin cannot use. It does not fetch or cache (`source` does).

use base64::Engine as _;
use openssl::x509::X509;
use roxmltree::{Document, Node};

use crate::settings::is_http_url;
use crate::xml::{self, BINDING_POST, BINDING_REDIRECT, NS_DSIG, NS_METADATA};

/// What the plugin needs from the IdP's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpConfig {
    pub entity_id: String,
    /// DER certificates whose keys may sign (several during a rotation).
    pub signing_certs: Vec<Vec<u8>>,
    /// The SingleSignOnService with the HTTP-Redirect binding.
    pub sso_redirect: String,
    pub slo_redirect: Option<Endpoint>,
    pub slo_post: Option<Endpoint>,
}

/// A SingleLogoutService: where requests go, and where responses go if elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub location: String,
    pub response_location: Option<String>,
}

impl Endpoint {
    /// Where a LogoutResponse goes.
    pub fn response_url(&self) -> &str {
        self.response_location.as_deref().unwrap_or(&self.location)
    }
}

/// The largest metadata document accepted (aggregates of many entities are refused
/// anyway; one IdP's metadata is a few KiB).
const MAX_METADATA_BYTES: usize = 1024 * 1024;

/// Reads and checks metadata XML; the error says what is wrong and how to fix it
/// (callers prefix the setting's name).
pub fn parse(xml: &str) -> Result<IdpConfig, String> {
    if xml.len() > MAX_METADATA_BYTES {
        return Err("the metadata is over 1 MiB: give the IdP's own EntityDescriptor".into());
    }
    let lower = xml.to_ascii_lowercase();
    if lower.contains("<!doctype") || lower.contains("<!entity") {
        return Err(
            "the metadata contains a DOCTYPE or entity declaration, which is refused: remove it (IdP metadata never needs one)"
                .into(),
        );
    }
    let document = Document::parse(xml).map_err(|e| {
        format!("the metadata is not well-formed XML ({e}): paste the IdP's metadata file as it is")
    })?;
    let root = document.root_element();
    if xml::is(root, NS_METADATA, "EntitiesDescriptor") {
        return Err("the metadata is an EntitiesDescriptor (several entities): give the IdP's own EntityDescriptor".into());
    }
    if !xml::is(root, NS_METADATA, "EntityDescriptor") {
        return Err(format!(
            "the root element is <{}>, not a SAML 2.0 <md:EntityDescriptor>: give the IdP's metadata",
            root.tag_name().name()
        ));
    }
    let entity_id = root.attribute("entityID").unwrap_or_default().trim();
    if entity_id.is_empty() {
        return Err(
            "the EntityDescriptor has no entityID: give the IdP's complete metadata".into(),
        );
    }
    let descriptors: Vec<Node<'_, '_>> = xml::children(root, NS_METADATA, "IDPSSODescriptor")
        .filter(|d| {
            d.attribute("protocolSupportEnumeration")
                .is_some_and(|p| p.split_whitespace().any(|p| p == xml::NS_PROTOCOL))
        })
        .collect();
    if descriptors.is_empty() {
        return Err("the EntityDescriptor is not a SAML 2.0 identity provider (no IDPSSODescriptor): is this the SP's metadata? Give the IdP's".into());
    }

    let mut signing_certs = Vec::new();
    let mut encryption_only = false;
    for descriptor in &descriptors {
        for key in xml::children(*descriptor, NS_METADATA, "KeyDescriptor") {
            let certs = certificates(key)?;
            match key.attribute("use") {
                None | Some("") | Some("signing") => signing_certs.extend(certs),
                Some("encryption") => encryption_only = encryption_only || !certs.is_empty(),
                Some(other) => {
                    return Err(format!(
                        "a KeyDescriptor has use=\"{other}\": only signing and encryption exist"
                    ));
                }
            }
        }
    }
    if signing_certs.is_empty() {
        return Err(if encryption_only {
            "the IdP's metadata has only an encryption key and no signing certificate, so no signature could be checked: add the IdP's signing certificate (<KeyDescriptor use=\"signing\">)".into()
        } else {
            "the IdP's metadata has no signing certificate, so no signature could be checked: add the IdP's signing certificate (<KeyDescriptor use=\"signing\">)".into()
        });
    }

    let mut sso_redirect = None;
    let mut slo_redirect = None;
    let mut slo_post = None;
    for descriptor in &descriptors {
        for service in xml::children(*descriptor, NS_METADATA, "SingleSignOnService") {
            let endpoint = endpoint(service, "SingleSignOnService")?;
            if service.attribute("Binding") == Some(BINDING_REDIRECT) && sso_redirect.is_none() {
                sso_redirect = Some(endpoint.location);
            }
        }
        for service in xml::children(*descriptor, NS_METADATA, "SingleLogoutService") {
            let endpoint = endpoint(service, "SingleLogoutService")?;
            match service.attribute("Binding") {
                Some(BINDING_REDIRECT) if slo_redirect.is_none() => slo_redirect = Some(endpoint),
                Some(BINDING_POST) if slo_post.is_none() => slo_post = Some(endpoint),
                _ => {}
            }
        }
    }
    let sso_redirect = sso_redirect.ok_or(
        "the IdP has no SingleSignOnService with the HTTP-Redirect binding, the only one this plugin sends AuthnRequests with: enable it at the IdP and export the metadata again",
    )?;
    Ok(IdpConfig {
        entity_id: entity_id.to_owned(),
        signing_certs,
        sso_redirect,
        slo_redirect,
        slo_post,
    })
}

fn endpoint(service: Node<'_, '_>, what: &str) -> Result<Endpoint, String> {
    let location = service.attribute("Location").unwrap_or_default();
    let response_location = service.attribute("ResponseLocation");
    for url in std::iter::once(location).chain(response_location) {
        if !is_http_url(url) {
            return Err(format!(
                "a {what} location {url:?} is not an http(s) URL: fix the IdP's metadata"
            ));
        }
    }
    Ok(Endpoint {
        location: location.to_owned(),
        response_location: response_location.map(str::to_owned),
    })
}

/// The X.509 certificates in a KeyDescriptor, as DER, each checked to parse.
fn certificates(key: Node<'_, '_>) -> Result<Vec<Vec<u8>>, String> {
    let mut certs = Vec::new();
    for node in key
        .descendants()
        .filter(|n| xml::is(*n, NS_DSIG, "X509Certificate"))
    {
        let text: String = xml::text(node).split_whitespace().collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|_| {
                "an X509Certificate is not base64: export the IdP's metadata again".to_owned()
            })?;
        X509::from_der(&der).map_err(|_| {
            "an X509Certificate is not a certificate: export the IdP's metadata again".to_owned()
        })?;
        certs.push(der);
    }
    Ok(certs)
}
