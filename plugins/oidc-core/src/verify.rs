//! ID token verification (OpenID Connect Core §3.1.3.7) on the host's clock: the JOSE
//! header and algorithm allow-list, the signature against the provider's JWKS through
//! openidconnect's JWK types (RSA, RSA-PSS, P-256, Ed25519, HMAC with the client
//! secret), a rate-limited JWKS refresh for an unknown `kid`, and every claim check:
//! `iss` (through the profile), `aud` and `trusted_audiences`, `azp`, `exp`, `iat`,
//! `nbf`, `nonce`, `sub`, and the profile's own. Nonce replay is marked by the flow.
//!
//! Why not openidconnect's `IdTokenVerifier`: its claims type parses `iss` as a URL,
//! so it cannot even read a Google token whose `iss` is `accounts.google.com`, and it
//! leaves `azp`, `iat` and `nbf` to us anyway. The cryptography is still the library's.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use gatehouse_plugin_api::{Host, constant_time_eq};
use openidconnect::{
    JsonWebKey, JsonWebKeyAlgorithm, JsonWebKeyUse, JwsSigningAlgorithm,
    core::{CoreJsonWebKey, CoreJsonWebKeySet, CoreJwsSigningAlgorithm},
};
use serde_json::{Map, Value};

use crate::{
    error::OidcError,
    profile::{Claims, Profile},
    provider::{self, Metadata},
    settings::RpConfig,
};

/// An ID token that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedIdToken {
    /// The token as received (kept for `id_token_hint` at logout).
    pub raw: String,
    /// Its claims, as signed.
    pub claims: Claims,
    /// Its `sub`.
    pub subject: String,
}

/// Algorithms we accept at all; the provider's advertised list narrows them.
const ASYMMETRIC_ALGS: [CoreJwsSigningAlgorithm; 4] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// RS256, PS256, ES256 and EdDSA, intersected with the provider's
/// `id_token_signing_alg_values_supported`; HS256 too when a client secret is
/// configured and the provider advertises it. Never `none`.
pub fn allowed_algs(config: &RpConfig, metadata: &Metadata) -> Vec<CoreJwsSigningAlgorithm> {
    let advertised = metadata.id_token_signing_alg_values_supported();
    let mut allowed: Vec<CoreJwsSigningAlgorithm> = ASYMMETRIC_ALGS
        .iter()
        .filter(|alg| advertised.contains(alg))
        .cloned()
        .collect();
    if hmac_secret(config).is_some() && advertised.contains(&CoreJwsSigningAlgorithm::HmacSha256) {
        allowed.push(CoreJwsSigningAlgorithm::HmacSha256);
    }
    allowed
}

/// The secret HS256 tokens are keyed with: the client secret of a secret-based client.
fn hmac_secret(config: &RpConfig) -> Option<&str> {
    match config.client_auth {
        crate::ClientAuth::PrivateKeyJwt => None,
        _ => config
            .client_secret
            .as_ref()
            .map(|s| s.expose())
            .filter(|s| !s.is_empty()),
    }
}

fn alg_name(alg: &CoreJwsSigningAlgorithm) -> String {
    match serde_json::to_value(alg) {
        Ok(Value::String(name)) => name,
        _ => format!("{alg:?}"),
    }
}

/// The parts of a compact JWS.
struct Jws<'t> {
    signing_input: &'t str,
    header: Map<String, Value>,
    payload: &'t str,
    signature: Vec<u8>,
}

fn split(raw: &str) -> Result<Jws<'_>, OidcError> {
    let mut parts = raw.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(OidcError::invalid(
            "the ID token is not a signed JWT (three dot-separated parts); encrypted ID tokens are not supported",
        ));
    };
    let signing_input = &raw[..header.len() + 1 + payload.len()];
    let header = decode_json(header)
        .map_err(|problem| OidcError::invalid(format!("the ID token's header {problem}")))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| OidcError::BadSignature("the ID token's signature is not base64url".into()))?;
    Ok(Jws {
        signing_input,
        header,
        payload,
        signature,
    })
}

fn decode_json(part: &str) -> Result<Map<String, Value>, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| "is not base64url".to_owned())?;
    serde_json::from_slice(&bytes).map_err(|error| format!("is not a JSON object: {error}"))
}

/// Verifies the ID token `raw` for this sign-in (`nonce`), loading the provider's keys
/// through the cache and refreshing them once (rate-limited) if no key fits.
pub fn verify_id_token(
    host: &Host<'_>,
    config: &RpConfig,
    profile: &dyn Profile,
    metadata: &Metadata,
    raw: &str,
    nonce: &str,
) -> Result<VerifiedIdToken, OidcError> {
    let jws = split(raw)?;
    let alg = check_header(config, metadata, &jws.header)?;
    let kid = jws.header.get("kid").and_then(Value::as_str);
    if alg == CoreJwsSigningAlgorithm::HmacSha256 {
        let secret = hmac_secret(config).unwrap_or_default();
        let key = CoreJsonWebKey::new_symmetric(secret.as_bytes().to_vec());
        check_signature(&[&key], &alg, &jws)?;
    } else {
        let mut keys = provider::jwks(host, config, metadata)?;
        if candidates(&keys, kid, &alg).is_empty() {
            match provider::refresh_jwks(host, config, metadata)? {
                Some(fresh) => keys = fresh,
                None => return Err(no_key(kid, &alg, config, true)),
            }
        }
        let fitting = candidates(&keys, kid, &alg);
        if fitting.is_empty() {
            return Err(no_key(kid, &alg, config, false));
        }
        check_signature(&fitting, &alg, &jws)?;
    }

    let claims = decode_json(jws.payload)
        .map_err(|problem| OidcError::invalid(format!("the ID token's payload {problem}")))?;
    let subject = check_claims(host, config, profile, &claims, nonce)?;
    profile.check_claims(&claims)?;
    Ok(VerifiedIdToken {
        raw: raw.to_owned(),
        claims,
        subject,
    })
}

/// The header's algorithm, if it is allowed; refuses what we do not understand.
fn check_header(
    config: &RpConfig,
    metadata: &Metadata,
    header: &Map<String, Value>,
) -> Result<CoreJwsSigningAlgorithm, OidcError> {
    let name = match header.get("alg") {
        Some(Value::String(name)) => name.as_str(),
        _ => {
            return Err(OidcError::BadSignature(
                "the ID token's header has no `alg`".into(),
            ));
        }
    };
    if name == "none" {
        return Err(OidcError::BadSignature(
            "the ID token is unsigned (alg \"none\"); unsigned ID tokens are never accepted".into(),
        ));
    }
    let allowed = allowed_algs(config, metadata);
    let alg = serde_json::from_value::<CoreJwsSigningAlgorithm>(Value::String(name.to_owned()))
        .ok()
        .filter(|alg| allowed.contains(alg))
        .ok_or_else(|| {
            let names: Vec<String> = allowed.iter().map(alg_name).collect();
            OidcError::BadSignature(format!(
                "the ID token is signed with {name}, which is not allowed for this provider \
                 (allowed: {}); HS256 needs a configured client secret and the provider advertising it",
                if names.is_empty() {
                    "none: the provider advertises none of RS256, PS256, ES256, EdDSA".to_owned()
                } else {
                    names.join(", ")
                }
            ))
        })?;
    if let Some(typ) = header.get("typ") {
        let typ = typ.as_str().unwrap_or_default().to_ascii_lowercase();
        if !matches!(
            typ.as_str(),
            "jwt" | "application/jwt" | "jose" | "application/jose"
        ) {
            return Err(OidcError::invalid(format!(
                "the ID token's header has typ {typ:?}, not a JWT"
            )));
        }
    }
    if header.contains_key("cty") {
        return Err(OidcError::invalid(
            "the ID token's header has a content type (cty): nested tokens are not supported",
        ));
    }
    if header.contains_key("crit") {
        return Err(OidcError::invalid(
            "the ID token's header lists critical extensions (crit), which Gatehouse does not understand",
        ));
    }
    Ok(alg)
}

/// The provider's keys that could have signed with `alg` (and `kid`, when named).
/// `jku`, `x5u` and embedded `jwk` headers are never used.
fn candidates<'k>(
    keys: &'k CoreJsonWebKeySet,
    kid: Option<&str>,
    alg: &CoreJwsSigningAlgorithm,
) -> Vec<&'k CoreJsonWebKey> {
    keys.keys()
        .iter()
        .filter(|key| kid.is_none_or(|kid| key.key_id().is_some_and(|k| k.as_str() == kid)))
        .filter(|key| key.key_use().is_none_or(|u| u.allows_signature()))
        .filter(|key| alg.key_type().as_ref() == Some(key.key_type()))
        .filter(|key| match key.signing_alg() {
            JsonWebKeyAlgorithm::Unspecified => true,
            JsonWebKeyAlgorithm::Algorithm(key_alg) => key_alg == alg,
            JsonWebKeyAlgorithm::Unsupported => false,
        })
        .collect()
}

/// Accepts the signature if one of the fitting keys verifies it (several fit only when
/// the token names no `kid`; all of them are the provider's own).
fn check_signature(
    keys: &[&CoreJsonWebKey],
    alg: &CoreJwsSigningAlgorithm,
    jws: &Jws<'_>,
) -> Result<(), OidcError> {
    let mut last = None;
    for key in keys {
        match key.verify_signature(alg, jws.signing_input.as_bytes(), &jws.signature) {
            Ok(()) => return Ok(()),
            Err(error) => last = Some(error),
        }
    }
    Err(OidcError::BadSignature(format!(
        "the ID token's signature does not verify ({} with the provider's key{}): {}",
        alg_name(alg),
        if keys.len() > 1 { "s" } else { "" },
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}

fn no_key(
    kid: Option<&str>,
    alg: &CoreJwsSigningAlgorithm,
    config: &RpConfig,
    rate_limited: bool,
) -> OidcError {
    let which = match kid {
        Some(kid) => format!("the key `{kid}`"),
        None => format!("an {} key (no `kid`)", alg_name(alg)),
    };
    OidcError::BadSignature(if rate_limited {
        format!(
            "the ID token is signed with {which}, which the provider's key set (JWKS) does not \
             hold; the key set was fetched again less than jwks_refresh_min_seconds = {} s ago, \
             so it was not fetched again",
            config.jwks_refresh_min_seconds
        )
    } else {
        format!(
            "the ID token is signed with {which}, which the provider's key set (JWKS) does not \
             hold, even after fetching it again"
        )
    })
}

/// A NumericDate claim (seconds since the epoch; fractions are cut).
fn numeric_date(claims: &Claims, name: &str) -> Result<Option<i64>, OidcError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_i64()
            .or_else(|| value.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| OidcError::invalid(format!("the ID token's `{name}` is not a number"))),
    }
}

/// Every claim check of OpenID Connect Core; returns the subject.
fn check_claims(
    host: &Host<'_>,
    config: &RpConfig,
    profile: &dyn Profile,
    claims: &Claims,
    nonce: &str,
) -> Result<String, OidcError> {
    match claims.get("iss") {
        Some(Value::String(iss)) if profile.accepts_issuer(config, iss) => {}
        Some(Value::String(iss)) => {
            return Err(OidcError::invalid(format!(
                "the ID token was issued by `{iss}`, not by the configured issuer `{}`",
                config.issuer
            )));
        }
        _ => return Err(OidcError::invalid("the ID token has no `iss` (issuer)")),
    }

    let subject = match claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
        _ => return Err(OidcError::invalid("the ID token has no `sub` (subject)")),
    };

    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => return Err(OidcError::invalid("the ID token has no `aud` (audience)")),
    };
    if !audiences.contains(&config.client_id.as_str()) {
        return Err(OidcError::invalid(format!(
            "the ID token is not meant for this client: its audience is {} and does not include `{}`",
            audiences
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", "),
            config.client_id
        )));
    }
    if let Some(untrusted) = audiences
        .iter()
        .find(|a| **a != config.client_id && !config.trusted_audiences.iter().any(|t| t == *a))
    {
        return Err(OidcError::invalid(format!(
            "the ID token is also meant for `{untrusted}`, which is not a trusted audience (add it \
             to `trusted_audiences` if it should be)"
        )));
    }
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == &config.client_id => {}
        Some(Value::String(azp)) => {
            return Err(OidcError::invalid(format!(
                "the ID token's authorized party (azp) is `{azp}`, another client than `{}`",
                config.client_id
            )));
        }
        Some(_) => return Err(OidcError::invalid("the ID token's `azp` is not a string")),
        None if audiences.len() > 1 => {
            return Err(OidcError::invalid(
                "the ID token has several audiences but no authorized party (azp) naming this client",
            ));
        }
        None => {}
    }

    let now = host.now_unix_seconds();
    let skew = i64::try_from(config.clock_skew_seconds).unwrap_or(i64::MAX);
    let max_age = i64::try_from(config.max_token_age_seconds).unwrap_or(i64::MAX);
    let exp = numeric_date(claims, "exp")?
        .ok_or_else(|| OidcError::invalid("the ID token has no `exp` (expiry)"))?;
    if now.saturating_sub(skew) >= exp {
        return Err(OidcError::Expired(format!(
            "the ID token expired at {exp} (Unix time); now is {now} (clock_skew_seconds = {skew})"
        )));
    }
    let iat = numeric_date(claims, "iat")?
        .ok_or_else(|| OidcError::invalid("the ID token has no `iat` (issue time)"))?;
    if iat > now.saturating_add(skew) {
        return Err(OidcError::Expired(format!(
            "the ID token was issued at {iat} (Unix time), {} s in the future (now {now}; \
             clock_skew_seconds = {skew})",
            iat - now
        )));
    }
    if now.saturating_sub(iat) > max_age {
        return Err(OidcError::Expired(format!(
            "the ID token was issued at {iat} (Unix time), {} s ago, more than \
             max_token_age_seconds = {max_age}",
            now - iat
        )));
    }
    if let Some(nbf) = numeric_date(claims, "nbf")?
        && nbf > now.saturating_add(skew)
    {
        return Err(OidcError::Expired(format!(
            "the ID token is not valid before {nbf} (Unix time); now is {now}"
        )));
    }

    match claims.get("nonce") {
        Some(Value::String(found)) if constant_time_eq(found.as_bytes(), nonce.as_bytes()) => {}
        Some(_) => {
            return Err(OidcError::invalid(
                "the ID token's nonce does not belong to this sign-in: it may be a token from \
                 another sign-in",
            ));
        }
        None => {
            return Err(OidcError::invalid(
                "the ID token has no nonce, but this sign-in sent one",
            ));
        }
    }
    Ok(subject)
}
