//! The provider's discovery document and signing keys: fetched through the host,
//! checked, and cached in the instance's key-value store (TTL
//! `discovery_ttl_seconds`), with a rate-limited JWKS refresh for unknown key ids.
//! It does not verify tokens (see `verify`).

use std::time::Duration;

use gatehouse_plugin_api::{Host, HttpRequest};
use openidconnect::{
    AdditionalProviderMetadata, ProviderMetadata,
    core::{
        CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
        CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
        CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType,
        CoreSubjectIdentifierType,
    },
};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::{
    error::OidcError,
    settings::{RpConfig, is_secure_url},
};

/// Discovery fields openidconnect's core metadata does not carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ExtraMetadata {
    /// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    /// RFC 9207: the provider puts `iss` on its authorization responses.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: Option<bool>,
}

impl AdditionalProviderMetadata for ExtraMetadata {}

/// A provider's discovery document, as openidconnect reads it.
pub type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

fn discovery_key(config: &RpConfig) -> String {
    format!("oidc:discovery:{}", config.issuer)
}
fn jwks_key(config: &RpConfig) -> String {
    format!("oidc:jwks:{}", config.issuer)
}
fn jwks_refresh_key(config: &RpConfig) -> String {
    format!("oidc:jwks-refresh:{}", config.issuer)
}

/// The discovery URL for an issuer: `{issuer without trailing /}/.well-known/openid-configuration`.
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// The provider's metadata, from the cache or fetched (and cached) when missing or expired.
pub fn metadata(host: &Host<'_>, config: &RpConfig) -> Result<Metadata, OidcError> {
    let key = discovery_key(config);
    if let Some(cached) = host.kv_get(&key)?
        && let Ok(metadata) = parse_metadata(config, &cached)
    {
        return Ok(metadata);
    }
    let url = discovery_url(&config.issuer);
    let body = get(host, &url, "discovery document")?;
    let metadata = parse_metadata(config, &body).map_err(|problem| {
        OidcError::invalid(format!("the discovery document at {url} {problem}"))
    })?;
    host.kv_put(
        &key,
        &body,
        Some(Duration::from_secs(config.discovery_ttl_seconds)),
    )?;
    Ok(metadata)
}

fn parse_metadata(config: &RpConfig, body: &[u8]) -> Result<Metadata, String> {
    let mut reader = serde_json::Deserializer::from_slice(body);
    let metadata: Metadata = serde_path_to_error::deserialize(&mut reader)
        .map_err(|error| format!("is not valid OpenID provider metadata: {error}"))?;
    if metadata.issuer().as_str() != config.issuer {
        return Err(format!(
            "names the issuer `{}`, but `{}` is configured as `{}`: they must be exactly equal, \
             including any trailing slash",
            metadata.issuer().as_str(),
            config.issuer_setting,
            config.issuer
        ));
    }
    let mut endpoints = vec![
        (
            "authorization_endpoint",
            metadata.authorization_endpoint().url(),
        ),
        ("jwks_uri", metadata.jwks_uri().url()),
    ];
    match metadata.token_endpoint() {
        Some(token) => endpoints.push(("token_endpoint", token.url())),
        None => return Err("has no token_endpoint, so the code flow cannot be used".into()),
    }
    if let Some(userinfo) = metadata.userinfo_endpoint() {
        endpoints.push(("userinfo_endpoint", userinfo.url()));
    }
    for (name, url) in endpoints {
        if !is_secure_url(url) {
            return Err(format!(
                "gives {name} = {url}, which is neither https nor a loopback address"
            ));
        }
    }
    if let Some(end_session) = &metadata.additional_metadata().end_session_endpoint {
        let secure = Url::parse(end_session).is_ok_and(|url| is_secure_url(&url));
        if !secure {
            return Err(format!(
                "gives end_session_endpoint = {end_session}, which is neither https nor a loopback address"
            ));
        }
    }
    Ok(metadata)
}

/// The provider's signing keys, from the cache or fetched (and cached) when missing.
pub fn jwks(
    host: &Host<'_>,
    config: &RpConfig,
    metadata: &Metadata,
) -> Result<CoreJsonWebKeySet, OidcError> {
    if let Some(cached) = host.kv_get(&jwks_key(config))?
        && let Ok(keys) = serde_json::from_slice::<CoreJsonWebKeySet>(&cached)
    {
        return Ok(keys);
    }
    fetch_jwks(host, config, metadata)
}

/// Fetches the key set again because a token names a key we do not have, unless another
/// refresh happened in the last `jwks_refresh_min_seconds` (on any host sharing the
/// store). `None` means the refresh was refused by the rate limit.
pub fn refresh_jwks(
    host: &Host<'_>,
    config: &RpConfig,
    metadata: &Metadata,
) -> Result<Option<CoreJsonWebKeySet>, OidcError> {
    let window = Duration::from_secs(config.jwks_refresh_min_seconds);
    if config.jwks_refresh_min_seconds > 0
        && !host.kv_put_if_absent(&jwks_refresh_key(config), b"1", Some(window))?
    {
        host.debug(
            "JWKS refresh skipped: another refresh happened within jwks_refresh_min_seconds",
        );
        return Ok(None);
    }
    host.info("the ID token names a key the cached JWKS lacks: fetching the JWKS again");
    fetch_jwks(host, config, metadata).map(Some)
}

fn fetch_jwks(
    host: &Host<'_>,
    config: &RpConfig,
    metadata: &Metadata,
) -> Result<CoreJsonWebKeySet, OidcError> {
    let url = metadata.jwks_uri().as_str();
    let body = get(host, url, "key set (JWKS)")?;
    let keys: CoreJsonWebKeySet = serde_json::from_slice(&body).map_err(|error| {
        OidcError::invalid(format!(
            "the key set (JWKS) at {url} is not a JWK set: {error}"
        ))
    })?;
    if keys.keys().is_empty() {
        return Err(OidcError::invalid(format!(
            "the key set (JWKS) at {url} holds no key Gatehouse can use"
        )));
    }
    host.kv_put(
        &jwks_key(config),
        &body,
        Some(Duration::from_secs(config.discovery_ttl_seconds)),
    )?;
    Ok(keys)
}

fn get(host: &Host<'_>, url: &str, what: &str) -> Result<Vec<u8>, OidcError> {
    let response = host.http(HttpRequest::get(url).with_header("accept", "application/json"))?;
    if !response.is_success() {
        let message = format!(
            "the provider's {what} at {url} answered HTTP {}",
            response.status
        );
        return Err(if response.status >= 500 {
            OidcError::Unavailable(message)
        } else {
            OidcError::InvalidResponse(message)
        });
    }
    Ok(response.body.into_vec())
}
