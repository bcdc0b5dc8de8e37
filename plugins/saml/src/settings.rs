//! The plugin's `[idp.settings]` (the contract in INTERFACES.md, "SAML IdP settings"), and
//! their validation into the SP's own configuration: entity id, URLs on every host of the
//! domain, and the optional key pair. The IdP's metadata is validated by `idp_metadata`.

use gatehouse_plugin_api::{InstanceConfig, PluginError, Secret};
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use serde::Deserialize;

use crate::idp_metadata::{self, IdpConfig};

/// `[idp.settings]` as written in `plugins.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The IdP's metadata XML (the host has already read `{ file }` / `{ env }`).
    #[serde(default)]
    pub idp_metadata: Option<String>,
    /// Or where to fetch it from, through the host.
    #[serde(default)]
    pub idp_metadata_url: Option<String>,
    #[serde(default)]
    pub sp_entity_id: Option<String>,
    #[serde(default)]
    pub sp_private_key: Option<Secret>,
    #[serde(default)]
    pub sp_certificate: Option<String>,
    #[serde(default = "yes")]
    pub want_assertions_signed: bool,
    #[serde(default)]
    pub allow_idp_initiated: bool,
    #[serde(default = "default_skew")]
    pub clock_skew_seconds: u32,
    #[serde(default)]
    pub name_id_format: Option<String>,
}

fn yes() -> bool {
    true
}
fn default_skew() -> u32 {
    180
}

/// The largest clock skew accepted: beyond it a stolen assertion lives too long.
const MAX_SKEW_SECONDS: u32 = 900;

/// The SP's key pair (signs requests, decrypts assertions).
pub struct SpKey {
    pub key: PKey<Private>,
    pub certificate: X509,
}

impl std::fmt::Debug for SpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpKey([redacted])")
    }
}

/// Where the IdP's metadata comes from.
#[derive(Debug)]
pub enum IdpSource {
    Inline(Box<IdpConfig>),
    Url(String),
}

/// The validated configuration of one SAML IdP instance.
#[derive(Debug)]
pub struct SpConfig {
    pub entity_id: String,
    /// `<base>/sso/<id>/callback` for every origin of the domain, primary first (empty
    /// without a placement).
    pub acs_urls: Vec<String>,
    /// `<base>/sso/<id>/logout` for every origin, primary first.
    pub slo_urls: Vec<String>,
    pub key: Option<SpKey>,
    pub want_assertions_signed: bool,
    pub allow_idp_initiated: bool,
    pub clock_skew_seconds: i64,
    pub name_id_format: Option<String>,
    pub idp: IdpSource,
}

impl SpConfig {
    /// Whether `url` is one of this SP's ACS URLs (any, without a placement: the host
    /// built the callback URL itself).
    pub fn is_acs_url(&self, url: &str) -> bool {
        self.acs_urls.is_empty() || self.acs_urls.iter().any(|acs| acs == url)
    }

    /// Validates the instance's settings; every refusal names the setting and the fix.
    pub fn from_instance(config: &InstanceConfig) -> Result<Self, PluginError> {
        let settings: Settings = config.settings()?;
        // Without a placement (a host older than plugin API 1.2, or a caller of the 1.0
        // entry point) the SP knows no URLs of its own: the entity id must be given, ACS
        // URLs come from each sign-in's callback URL, and there is no metadata.
        let placement = config.placement.as_ref();
        let id = &config.instance_id;
        let invalid = |message: String| PluginError::invalid_settings(message);

        let idp = match (&settings.idp_metadata, &settings.idp_metadata_url) {
            (Some(xml), None) => IdpSource::Inline(Box::new(
                idp_metadata::parse(xml).map_err(|e| invalid(format!("`idp_metadata`: {e}")))?,
            )),
            (None, Some(url)) => {
                if !is_http_url(url) {
                    return Err(invalid(format!(
                        "`idp_metadata_url` = {url:?} is not an http(s) URL: give the IdP's metadata address, e.g. https://idp.example.com/metadata"
                    )));
                }
                IdpSource::Url(url.clone())
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "`idp_metadata` and `idp_metadata_url` are both set: keep one (the XML, or the address to fetch it from)".into(),
                ));
            }
            (None, None) => {
                return Err(invalid(
                    "`idp_metadata` or `idp_metadata_url` is required: set idp_metadata = { file = \"idp.xml\" } or idp_metadata_url = \"https://…\"".into(),
                ));
            }
        };

        let entity_id = match settings.sp_entity_id.as_deref() {
            None | Some("") => match placement {
                Some(placement) => {
                    format!("{}/sso/{id}/metadata", placement.primary_base_url())
                }
                None => {
                    config.require_placement()?;
                    String::new()
                }
            },
            Some(entity_id) if entity_id.trim() != entity_id || entity_id.len() > 1024 => {
                return Err(invalid(format!(
                    "`sp_entity_id` = {entity_id:?} has surrounding whitespace or is over 1024 characters: write the exact entity id"
                )));
            }
            Some(entity_id) => entity_id.to_owned(),
        };

        let key = match (&settings.sp_private_key, &settings.sp_certificate) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "`sp_private_key` is set without `sp_certificate`: add the certificate (PEM) that goes with the key".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "`sp_certificate` is set without `sp_private_key`: add the key (PEM), or remove the certificate".into(),
                ));
            }
            (Some(key), Some(certificate)) => Some(parse_key_pair(key, certificate)?),
        };

        if settings.clock_skew_seconds > MAX_SKEW_SECONDS {
            return Err(invalid(format!(
                "`clock_skew_seconds` = {} is over {MAX_SKEW_SECONDS}: synchronise the clocks (NTP) and keep the skew small (default 180)",
                settings.clock_skew_seconds
            )));
        }
        let name_id_format = match settings.name_id_format {
            Some(format) if format.is_empty() => None,
            Some(format) if !format.starts_with("urn:") => {
                return Err(invalid(format!(
                    "`name_id_format` = {format:?} is not a NameID format URN: e.g. urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress, or leave it out"
                )));
            }
            other => other,
        };

        Ok(Self {
            entity_id,
            acs_urls: placement
                .map(|p| p.urls(&format!("/sso/{id}/callback")))
                .unwrap_or_default(),
            slo_urls: placement
                .map(|p| p.urls(&format!("/sso/{id}/logout")))
                .unwrap_or_default(),
            key,
            want_assertions_signed: settings.want_assertions_signed,
            allow_idp_initiated: settings.allow_idp_initiated,
            clock_skew_seconds: i64::from(settings.clock_skew_seconds),
            name_id_format,
            idp,
        })
    }
}

fn parse_key_pair(key: &Secret, certificate: &str) -> Result<SpKey, PluginError> {
    let key = PKey::private_key_from_pem(key.expose().as_bytes()).map_err(|_| {
        PluginError::invalid_settings(
            "`sp_private_key` is not a PEM private key: give the key file (-----BEGIN PRIVATE KEY-----)",
        )
    })?;
    if key.rsa().is_err() {
        return Err(PluginError::invalid_settings(
            "`sp_private_key` is not an RSA key: SAML IdPs expect RSA (openssl req -x509 -newkey rsa:2048 …)",
        ));
    }
    let certificate = X509::from_pem(certificate.as_bytes()).map_err(|_| {
        PluginError::invalid_settings(
            "`sp_certificate` is not a PEM certificate: give the certificate file (-----BEGIN CERTIFICATE-----)",
        )
    })?;
    let matches = certificate
        .public_key()
        .is_ok_and(|public| public.public_eq(&key));
    if !matches {
        return Err(PluginError::invalid_settings(
            "`sp_certificate` does not belong to `sp_private_key`: give the certificate made from that key",
        ));
    }
    Ok(SpKey { key, certificate })
}

/// An absolute http(s) URL with a host.
pub fn is_http_url(url: &str) -> bool {
    url::Url::parse(url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}
