//! The provider's discovery document and signing keys: fetched through the host,
//! checked, parsed once, and kept in two places: in memory, per relying-party
//! instance ([`ProviderCache`]), and in the instance's key-value store, the copy
//! shared by every host on the database (both for `discovery_ttl_seconds` from the
//! fetch), with a rate-limited JWKS refresh for unknown key ids. It does not verify
//! tokens (see `verify` and `jose`).

use std::{
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use gatehouse_plugin_api::{Host, HttpRequest};
use openidconnect::{
    AdditionalProviderMetadata, ProviderMetadata,
    core::{
        CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
        CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
        CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
    },
};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::{
    error::OidcError,
    jose::KeySet,
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

/// The kv copy's format: `gatehouse-cache:1 {fetched_at}\n{body as fetched}`, so a host
/// that reads another's copy knows when it expires. A bare body (from an older
/// version) counts as fetched at the time it is read.
const STAMP: &[u8] = b"gatehouse-cache:1 ";

fn stamped(fetched_at: i64, body: &[u8]) -> Vec<u8> {
    let mut value = STAMP.to_vec();
    value.extend_from_slice(fetched_at.to_string().as_bytes());
    value.push(b'\n');
    value.extend_from_slice(body);
    value
}

fn unstamped(value: &[u8], now: i64) -> (i64, &[u8]) {
    let Some(rest) = value.strip_prefix(STAMP) else {
        return (now, value);
    };
    let Some(newline) = rest.iter().position(|b| *b == b'\n') else {
        return (now, value);
    };
    match std::str::from_utf8(&rest[..newline]).map(str::parse::<i64>) {
        Ok(Ok(fetched_at)) => (fetched_at, &rest[newline + 1..]),
        _ => (now, value),
    }
}

fn ttl_seconds(config: &RpConfig) -> i64 {
    i64::try_from(config.discovery_ttl_seconds).unwrap_or(i64::MAX)
}

/// One parsed copy in memory and when it was fetched (host clock, Unix seconds).
struct Entry<T> {
    value: Arc<T>,
    fetched_at: i64,
    expires_at: i64,
}

/// The parsed discovery document and key set of one relying-party instance (one
/// IdP), kept until `discovery_ttl_seconds` after their fetch by the host's clock.
/// A warm sign-in reads neither the key-value store nor the provider. Instances are
/// called concurrently: readers share the lock, and no lock is held across a host call
/// (two concurrent misses may both read or fetch; the last one kept wins).
#[derive(Default)]
pub struct ProviderCache {
    discovery: RwLock<Option<Entry<Metadata>>>,
    keys: RwLock<Option<Entry<KeySet>>>,
}

impl std::fmt::Debug for ProviderCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderCache").finish_non_exhaustive()
    }
}

fn fresh<T>(slot: &RwLock<Option<Entry<T>>>, now: i64) -> Option<Arc<T>> {
    let entry = slot.read().unwrap_or_else(PoisonError::into_inner);
    entry
        .as_ref()
        .filter(|entry| now < entry.expires_at)
        .map(|entry| Arc::clone(&entry.value))
}

fn fetched_at<T>(slot: &RwLock<Option<Entry<T>>>) -> Option<i64> {
    let entry = slot.read().unwrap_or_else(PoisonError::into_inner);
    entry.as_ref().map(|entry| entry.fetched_at)
}

fn keep<T>(slot: &RwLock<Option<Entry<T>>>, value: T, fetched_at: i64, ttl: i64) -> Arc<T> {
    let value = Arc::new(value);
    let mut entry = slot.write().unwrap_or_else(PoisonError::into_inner);
    // A concurrent caller may have kept a newer copy meanwhile: keep the newest.
    if entry
        .as_ref()
        .is_none_or(|old| old.fetched_at <= fetched_at)
    {
        *entry = Some(Entry {
            value: Arc::clone(&value),
            fetched_at,
            expires_at: fetched_at.saturating_add(ttl),
        });
    }
    value
}

impl ProviderCache {
    /// The provider's metadata: from memory, else from the shared store (parsed once
    /// and kept), else fetched (and written to both).
    pub fn metadata(&self, host: &Host<'_>, config: &RpConfig) -> Result<Arc<Metadata>, OidcError> {
        let now = host.now_unix_seconds();
        if let Some(metadata) = fresh(&self.discovery, now) {
            return Ok(metadata);
        }
        let (fetched_at, metadata) = match stored_metadata(host, config, now)? {
            Some(stored) => stored,
            None => fetch_metadata(host, config)?,
        };
        Ok(keep(
            &self.discovery,
            metadata,
            fetched_at,
            ttl_seconds(config),
        ))
    }

    /// The provider's parsed signing keys, the same way as [`metadata`](Self::metadata).
    pub fn keys(
        &self,
        host: &Host<'_>,
        config: &RpConfig,
        metadata: &Metadata,
    ) -> Result<Arc<KeySet>, OidcError> {
        let now = host.now_unix_seconds();
        if let Some(keys) = fresh(&self.keys, now) {
            return Ok(keys);
        }
        let (fetched_at, keys) = match stored_jwks(host, config, now)? {
            Some(stored) => stored,
            None => fetch_jwks(host, config, metadata)?,
        };
        Ok(keep(&self.keys, keys, fetched_at, ttl_seconds(config)))
    }

    /// For a token naming a key this instance lacks: the shared store's key set, if it
    /// is another fetch than the one in memory (another host may have refreshed it).
    pub fn reread_keys(
        &self,
        host: &Host<'_>,
        config: &RpConfig,
    ) -> Result<Option<Arc<KeySet>>, OidcError> {
        let now = host.now_unix_seconds();
        let Some(value) = host.kv_get(&jwks_key(config))? else {
            return Ok(None);
        };
        let (stored_at, body) = unstamped(&value, now);
        // Nothing new: the copy this instance holds, or an older one.
        if fetched_at(&self.keys).is_some_and(|ours| ours >= stored_at)
            || stored_at.saturating_add(ttl_seconds(config)) <= now
        {
            return Ok(None);
        }
        Ok(KeySet::from_json(body)
            .ok()
            .map(|keys| keep(&self.keys, keys, stored_at, ttl_seconds(config))))
    }

    /// Fetches the key set again because a token names a key nobody has, unless
    /// another refresh happened in the last `jwks_refresh_min_seconds` (on any host
    /// sharing the store). `None` means the rate limit refused it.
    pub fn refresh_keys(
        &self,
        host: &Host<'_>,
        config: &RpConfig,
        metadata: &Metadata,
    ) -> Result<Option<Arc<KeySet>>, OidcError> {
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
        let (fetched_at, keys) = fetch_jwks(host, config, metadata)?;
        Ok(Some(keep(
            &self.keys,
            keys,
            fetched_at,
            ttl_seconds(config),
        )))
    }
}

/// The provider's metadata from the shared store (no memory cache), fetched (and
/// stored) when missing or expired: what a test uses to warm the store.
pub fn metadata(host: &Host<'_>, config: &RpConfig) -> Result<Metadata, OidcError> {
    let now = host.now_unix_seconds();
    match stored_metadata(host, config, now)? {
        Some((_, metadata)) => Ok(metadata),
        None => fetch_metadata(host, config).map(|(_, metadata)| metadata),
    }
}

/// The shared store's discovery document, if it holds a live, valid one.
fn stored_metadata(
    host: &Host<'_>,
    config: &RpConfig,
    now: i64,
) -> Result<Option<(i64, Metadata)>, OidcError> {
    let Some(value) = host.kv_get(&discovery_key(config))? else {
        return Ok(None);
    };
    let (fetched_at, body) = unstamped(&value, now);
    if fetched_at.saturating_add(ttl_seconds(config)) <= now {
        return Ok(None);
    }
    Ok(parse_metadata(config, body)
        .ok()
        .map(|metadata| (fetched_at, metadata)))
}

fn fetch_metadata(host: &Host<'_>, config: &RpConfig) -> Result<(i64, Metadata), OidcError> {
    let url = discovery_url(&config.issuer);
    let body = get(host, &url, "discovery document")?;
    let metadata = parse_metadata(config, &body).map_err(|problem| {
        OidcError::invalid(format!("the discovery document at {url} {problem}"))
    })?;
    let fetched_at = host.now_unix_seconds();
    host.kv_put(
        &discovery_key(config),
        &stamped(fetched_at, &body),
        Some(Duration::from_secs(config.discovery_ttl_seconds)),
    )?;
    Ok((fetched_at, metadata))
}

pub(crate) fn parse_metadata(config: &RpConfig, body: &[u8]) -> Result<Metadata, String> {
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

/// The provider's signing keys from the shared store (no memory cache), fetched (and
/// stored) when missing: what a test uses to warm the store.
pub fn jwks(host: &Host<'_>, config: &RpConfig, metadata: &Metadata) -> Result<KeySet, OidcError> {
    let now = host.now_unix_seconds();
    match stored_jwks(host, config, now)? {
        Some((_, keys)) => Ok(keys),
        None => fetch_jwks(host, config, metadata).map(|(_, keys)| keys),
    }
}

/// The shared store's key set, if it holds a live, usable one.
fn stored_jwks(
    host: &Host<'_>,
    config: &RpConfig,
    now: i64,
) -> Result<Option<(i64, KeySet)>, OidcError> {
    let Some(value) = host.kv_get(&jwks_key(config))? else {
        return Ok(None);
    };
    let (fetched_at, body) = unstamped(&value, now);
    if fetched_at.saturating_add(ttl_seconds(config)) <= now {
        return Ok(None);
    }
    Ok(KeySet::from_json(body).ok().map(|keys| (fetched_at, keys)))
}

fn fetch_jwks(
    host: &Host<'_>,
    config: &RpConfig,
    metadata: &Metadata,
) -> Result<(i64, KeySet), OidcError> {
    let url = metadata.jwks_uri().as_str();
    let body = get(host, url, "key set (JWKS)")?;
    let keys = KeySet::from_json(&body)
        .map_err(|problem| OidcError::invalid(format!("the key set (JWKS) at {url} {problem}")))?;
    let fetched_at = host.now_unix_seconds();
    host.kv_put(
        &jwks_key(config),
        &stamped(fetched_at, &body),
        Some(Duration::from_secs(config.discovery_ttl_seconds)),
    )?;
    Ok((fetched_at, keys))
}

pub(crate) fn get(host: &Host<'_>, url: &str, what: &str) -> Result<Vec<u8>, OidcError> {
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
