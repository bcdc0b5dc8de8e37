//! ID token verification (OpenID Connect Core §3.1.3.7) on the host's clock: the JOSE
//! header and algorithm allow-list, the signature (through `jose`, on keys parsed once
//! per key-set fetch and kept in the instance's `ProviderCache`: RSA PKCS#1 v1.5 and
//! PSS, P-256, P-384, Ed25519, HMAC with the client secret), a re-read of the shared
//! key set then a rate-limited JWKS refresh for an unknown `kid`, and every claim
//! check: `iss` (through the profile), `aud` and `trusted_audiences`, `azp`, `exp`,
//! `iat`, `nbf`, `nonce`, `sub`, and the profile's own. Nonce replay is marked by the flow.
//! A signed UserInfo answer goes through the same header and signature checks
//! ([`verify_signed_userinfo`]), with only its `iss` and `aud` checked besides.
//!
//! Why not openidconnect's `IdTokenVerifier`: its claims type parses `iss` as a URL,
//! so it cannot even read a Google token whose `iss` is `accounts.google.com`, and it
//! leaves `azp`, `iat` and `nbf` to us anyway.

use gatehouse_plugin_api::{Host, constant_time_eq};
use openidconnect::core::CoreJwsSigningAlgorithm;
use serde_json::{Map, Value};

use crate::{
    error::OidcError,
    jose::{self, Alg, CompactJws, Jwk, JwsError},
    profile::{Claims, Profile},
    provider::{Metadata, ProviderCache},
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

/// The algorithm openidconnect read from the discovery document, if we verify it
/// (matched directly: this runs on every verification).
fn advertised(alg: &CoreJwsSigningAlgorithm) -> Option<Alg> {
    Some(match alg {
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256 => Alg::Rs256,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384 => Alg::Rs384,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512 => Alg::Rs512,
        CoreJwsSigningAlgorithm::RsaSsaPssSha256 => Alg::Ps256,
        CoreJwsSigningAlgorithm::RsaSsaPssSha384 => Alg::Ps384,
        CoreJwsSigningAlgorithm::RsaSsaPssSha512 => Alg::Ps512,
        CoreJwsSigningAlgorithm::EcdsaP256Sha256 => Alg::Es256,
        CoreJwsSigningAlgorithm::EcdsaP384Sha384 => Alg::Es384,
        CoreJwsSigningAlgorithm::EdDsa => Alg::EdDsa,
        CoreJwsSigningAlgorithm::HmacSha256 => Alg::Hs256,
        _ => return None,
    })
}

/// RS256/384/512, PS256/384/512, ES256, ES384 and EdDSA, intersected with the
/// provider's `id_token_signing_alg_values_supported`; HS256 too when a client secret
/// is configured and the provider advertises it. Never `none`.
pub fn allowed_algs(config: &RpConfig, metadata: &Metadata) -> Vec<Alg> {
    allowed_of(config, metadata.id_token_signing_alg_values_supported())
}

/// [`allowed_algs`] for a signed UserInfo answer: against the provider's
/// `userinfo_signing_alg_values_supported`, else its ID token algorithms.
pub fn allowed_userinfo_algs(config: &RpConfig, metadata: &Metadata) -> Vec<Alg> {
    match metadata.userinfo_signing_alg_values_supported() {
        Some(algs) => allowed_of(config, algs),
        None => allowed_algs(config, metadata),
    }
}

fn allowed_of(config: &RpConfig, advertised_algs: &[CoreJwsSigningAlgorithm]) -> Vec<Alg> {
    let advertised: Vec<Alg> = advertised_algs.iter().filter_map(advertised).collect();
    // Every algorithm `jose` verifies but HS256, which has its own condition below.
    let mut allowed: Vec<Alg> = Alg::ALL
        .into_iter()
        .filter(|alg| *alg != Alg::Hs256 && advertised.contains(alg))
        .collect();
    if hmac_secret(config).is_some() && advertised.contains(&Alg::Hs256) {
        allowed.push(Alg::Hs256);
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

/// What is being verified, for messages: "the ID token" or "the signed UserInfo answer".
#[derive(Debug, Clone, Copy)]
struct What(&'static str);

const ID_TOKEN: What = What("the ID token");
const USERINFO: What = What("the signed UserInfo answer");

fn split(raw: &str, what: What) -> Result<CompactJws<'_>, OidcError> {
    let what = what.0;
    CompactJws::parse(raw).map_err(|error| match error {
        JwsError::NotThreeParts => OidcError::invalid(format!(
            "{what} is not a signed JWT (three dot-separated parts); encrypted ones are not supported"
        )),
        JwsError::Header(problem) => OidcError::invalid(format!("{what}'s header {problem}")),
        JwsError::Signature => {
            OidcError::BadSignature(format!("{what}'s signature is not base64url"))
        }
    })
}

/// Verifies the ID token `raw` for this sign-in (`nonce`), with the provider's keys
/// from `cache`: when no key fits, the shared store's copy is read again (another host
/// may have refreshed it), then the key set is fetched once (rate-limited).
pub fn verify_id_token(
    host: &Host<'_>,
    config: &RpConfig,
    profile: &dyn Profile,
    cache: &ProviderCache,
    metadata: &Metadata,
    raw: &str,
    nonce: &str,
) -> Result<VerifiedIdToken, OidcError> {
    let jws = split(raw, ID_TOKEN)?;
    let alg = check_header(&allowed_algs(config, metadata), &jws.header, ID_TOKEN)?;
    verify_signature(host, config, cache, metadata, &jws, alg, ID_TOKEN)?;

    let claims = jose::decode_json(jws.payload)
        .map_err(|problem| OidcError::invalid(format!("the ID token's payload {problem}")))?;
    let subject = check_claims(host, config, profile, &claims, nonce)?;
    profile.check_claims(&claims)?;
    Ok(VerifiedIdToken {
        raw: raw.to_owned(),
        claims,
        subject,
    })
}

/// Checks `jws`'s signature with `alg` and the provider's keys from `cache`: when no key
/// fits, the shared store's copy is read again (another host may have refreshed it), then
/// the key set is fetched once (rate-limited). HS256 uses the client secret.
fn verify_signature(
    host: &Host<'_>,
    config: &RpConfig,
    cache: &ProviderCache,
    metadata: &Metadata,
    jws: &CompactJws<'_>,
    alg: Alg,
    what: What,
) -> Result<(), OidcError> {
    let kid = jws.header.get("kid").and_then(Value::as_str);
    if alg == Alg::Hs256 {
        let secret = hmac_secret(config).unwrap_or_default();
        if !jose::verify_hs256(
            secret.as_bytes(),
            jws.signing_input.as_bytes(),
            &jws.signature,
        ) {
            return Err(bad_signature(alg, 1, what));
        }
    } else {
        let mut keys = cache.keys(host, config, metadata)?;
        if keys.candidates(kid, alg).next().is_none() {
            keys = match cache.reread_keys(host, config)? {
                Some(shared) if shared.candidates(kid, alg).next().is_some() => shared,
                _ => match cache.refresh_keys(host, config, metadata)? {
                    Some(fresh) => fresh,
                    None => return Err(no_key(kid, alg, config, true, what)),
                },
            };
        }
        let fitting: Vec<&Jwk> = keys.candidates(kid, alg).collect();
        if fitting.is_empty() {
            return Err(no_key(kid, alg, config, false, what));
        }
        // Several keys fit only when the token names no `kid`; all are the provider's.
        let message = jws.signing_input.as_bytes();
        if !fitting
            .iter()
            .any(|key| key.verify(alg, message, &jws.signature))
        {
            return Err(bad_signature(alg, fitting.len(), what));
        }
    }

    Ok(())
}

/// Verifies a signed UserInfo answer (OpenID Connect Core §5.3.2, `application/jwt`): the
/// same algorithm rules and keys as an ID token (against the provider's
/// `userinfo_signing_alg_values_supported` when it names them), and its `iss` and `aud`,
/// when present, must name the provider and this client. Its claims, for the caller's
/// `sub` check.
pub fn verify_signed_userinfo(
    host: &Host<'_>,
    config: &RpConfig,
    profile: &dyn Profile,
    cache: &ProviderCache,
    metadata: &Metadata,
    raw: &str,
) -> Result<Claims, OidcError> {
    let jws = split(raw, USERINFO)?;
    let alg = check_header(
        &allowed_userinfo_algs(config, metadata),
        &jws.header,
        USERINFO,
    )?;
    verify_signature(host, config, cache, metadata, &jws, alg, USERINFO)?;
    let claims = jose::decode_json(jws.payload).map_err(|problem| {
        OidcError::invalid(format!("the signed UserInfo answer's payload {problem}"))
    })?;
    match claims.get("iss") {
        None => {}
        Some(Value::String(iss)) if profile.accepts_issuer(config, iss) => {}
        Some(iss) => {
            return Err(OidcError::invalid(format!(
                "the signed UserInfo answer was issued by {iss}, not by the configured issuer `{}`",
                config.issuer
            )));
        }
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        None => vec![config.client_id.as_str()],
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(_) => Vec::new(),
    };
    if !audiences.contains(&config.client_id.as_str()) {
        return Err(OidcError::invalid(format!(
            "the signed UserInfo answer is not meant for this client `{}`",
            config.client_id
        )));
    }
    Ok(claims)
}

fn bad_signature(alg: Alg, keys: usize, what: What) -> OidcError {
    OidcError::BadSignature(format!(
        "{}'s signature does not verify ({} with the provider's key{})",
        what.0,
        alg.name(),
        if keys > 1 { "s" } else { "" },
    ))
}

/// The header's algorithm, if it is allowed; refuses what we do not understand.
fn check_header(
    allowed: &[Alg],
    header: &Map<String, Value>,
    what: What,
) -> Result<Alg, OidcError> {
    let what = what.0;
    let name = match header.get("alg") {
        Some(Value::String(name)) => name.as_str(),
        _ => {
            return Err(OidcError::BadSignature(format!(
                "{what}'s header has no `alg`"
            )));
        }
    };
    if name == "none" {
        return Err(OidcError::BadSignature(format!(
            "{what} is unsigned (alg \"none\"); unsigned tokens are never accepted"
        )));
    }
    let alg = Alg::from_name(name)
        .filter(|alg| allowed.contains(alg))
        .ok_or_else(|| {
            let names: Vec<&str> = allowed.iter().map(|alg| alg.name()).collect();
            OidcError::BadSignature(format!(
                "{what} is signed with {name}, which is not allowed for this provider \
                 (allowed: {}); HS256 needs a configured client secret and the provider advertising it",
                if names.is_empty() {
                    "none: the provider advertises none of RS256, RS384, RS512, PS256, PS384, \
                     PS512, ES256, ES384, EdDSA"
                        .to_owned()
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
                "{what}'s header has typ {typ:?}, not a JWT"
            )));
        }
    }
    if header.contains_key("cty") {
        return Err(OidcError::invalid(format!(
            "{what}'s header has a content type (cty): nested tokens are not supported"
        )));
    }
    if header.contains_key("crit") {
        return Err(OidcError::invalid(format!(
            "{what}'s header lists critical extensions (crit), which Gatehouse does not understand"
        )));
    }
    Ok(alg)
}

fn no_key(
    kid: Option<&str>,
    alg: Alg,
    config: &RpConfig,
    rate_limited: bool,
    what: What,
) -> OidcError {
    let what = what.0;
    let which = match kid {
        Some(kid) => format!("the key `{kid}`"),
        None => format!("an {} key (no `kid`)", alg.name()),
    };
    OidcError::BadSignature(if rate_limited {
        format!(
            "{what} is signed with {which}, which the provider's key set (JWKS) does not \
             hold; the key set was fetched again less than jwks_refresh_min_seconds = {} s ago, \
             so it was not fetched again",
            config.jwks_refresh_min_seconds
        )
    } else {
        format!(
            "{what} is signed with {which}, which the provider's key set (JWKS) does not \
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
