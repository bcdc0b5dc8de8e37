//! The online check of plugin API 1.3 (`gatehouse check --online`), one for the three OIDC
//! plugins: the discovery document fetched and checked as a sign-in reads it (the issuer
//! exactly equal, a token endpoint, every endpoint https or loopback), then the key set
//! (JWKS) it names, fetched and parsed with at least one usable key. Everything goes through
//! the host's HTTP (its egress policy, time limits and size caps). It is not a sign-in:
//! nothing is cached in the instance or written to the store.

use gatehouse_plugin_api::{ErrorKind, Host, OnlineFinding, OnlineReport};

use crate::{
    error::OidcError,
    jose::KeySet,
    provider::{discovery_url, get, parse_metadata},
    settings::RpConfig,
};

/// What the provider of `config` answers, as findings: none when a sign-in could start and
/// its ID token be verified.
pub fn check(host: &Host<'_>, config: &RpConfig) -> OnlineReport {
    let mut report = OnlineReport::new();
    let setting = config.issuer_setting;
    let url = discovery_url(&config.issuer);
    let discovered = get(host, &url, "discovery document").and_then(|body| {
        parse_metadata(config, &body).map_err(|problem| {
            OidcError::invalid(format!("the discovery document at {url} {problem}"))
        })
    });
    let metadata = match discovered {
        Ok(metadata) => metadata,
        Err(error) => {
            let help = if reached(&error) {
                format!(
                    "`{setting}` must be the provider's issuer exactly: Gatehouse reads the \
                     discovery document at {url}, and its `issuer` must equal `{setting}`"
                )
            } else {
                format!(
                    "check that `{setting}` is the provider's issuer URL and that this host can \
                     reach {url} (DNS, firewall, proxy)"
                )
            };
            report.push(
                OnlineFinding::error(fetching("discovery document", &error))
                    .with_help(help)
                    .with_setting(setting),
            );
            return report;
        }
    };
    let token = metadata
        .token_endpoint()
        .map_or_else(String::new, |token| token.as_str().to_owned());
    report.checked(format!(
        "discovery document at {url} (issuer `{}`, token endpoint {token})",
        metadata.issuer().as_str()
    ));

    let jwks_url = metadata.jwks_uri().as_str();
    let keys = get(host, jwks_url, "key set (JWKS)").and_then(|body| {
        KeySet::from_json(&body).map_err(|problem| {
            OidcError::invalid(format!("the key set (JWKS) at {jwks_url} {problem}"))
        })
    });
    match keys {
        Ok(keys) => report.checked(format!(
            "key set (JWKS) at {jwks_url}: {} usable signing key(s)",
            keys.keys().len()
        )),
        Err(error) => report.push(
            OnlineFinding::error(fetching("key set (JWKS)", &error)).with_help(
                "ID tokens are verified with the keys at the discovery document's jwks_uri; the \
             provider must publish at least one RSA, EC P-256/P-384 or Ed25519 signing key there \
             that this host can fetch",
            ),
        ),
    }
    report
}

/// The error's message, saying what was being fetched when the host's HTTP failed (its
/// message names only the request); the core's own messages already say.
fn fetching(what: &str, error: &OidcError) -> String {
    match error {
        OidcError::Host(_) => format!("the provider's {what} could not be fetched: {error}"),
        _ => error.to_string(),
    }
}

/// Whether the provider answered at all (a malformed or refused answer), as opposed to not
/// being reachable (no connection, a timeout, a server error, the egress policy).
fn reached(error: &OidcError) -> bool {
    match error {
        OidcError::InvalidResponse(_) => true,
        OidcError::Host(inner) => inner.kind == ErrorKind::INVALID_RESPONSE,
        _ => false,
    }
}
