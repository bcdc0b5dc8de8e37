//! The validated relying-party configuration every profile hands the core
//! ([`RpConfig`]), the shared defaults, and the checks that refuse bad settings with a
//! message naming the setting. Each plugin keeps its own settings type (the names the
//! admin writes); this module is not a settings schema.

use std::collections::BTreeMap;

use gatehouse_plugin_api::{InstanceConfig, PluginError, Secret};
use serde::Deserialize;
use url::{Host as UrlHost, Url};

/// Defaults shared by the three plugins' settings types (`#[serde(default = …)]`).
pub mod defaults {
    pub fn scopes() -> Vec<String> {
        vec!["openid".into(), "email".into(), "profile".into()]
    }
    pub fn clock_skew_seconds() -> u64 {
        60
    }
    pub fn max_token_age_seconds() -> u64 {
        600
    }
    pub fn discovery_ttl_seconds() -> u64 {
        3600
    }
    pub fn jwks_refresh_min_seconds() -> u64 {
        60
    }
}

/// Whether a sign-in also asks the provider's UserInfo endpoint (`use_userinfo`):
/// `"auto"` (the default: when the discovery document names a `userinfo_endpoint`,
/// since many providers, the npm oidc-provider among them, put the profile claims only
/// there), `true` (always; a provider without the endpoint is an error) or `false`
/// (never: the ID token's claims only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UseUserinfo {
    #[default]
    Auto,
    Always,
    Never,
}

impl UseUserinfo {
    /// The setting as an admin writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "\"auto\"",
            Self::Always => "true",
            Self::Never => "false",
        }
    }

    /// Whether to call UserInfo, given whether discovery advertises the endpoint.
    pub fn wanted(self, advertised: bool) -> bool {
        match self {
            Self::Auto => advertised,
            Self::Always => true,
            Self::Never => false,
        }
    }
}

/// `true`, `false` or `"auto"`; anything else names the three.
impl<'de> Deserialize<'de> for UseUserinfo {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = UseUserinfo;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false or \"auto\"")
            }
            fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<UseUserinfo, E> {
                Ok(if value {
                    UseUserinfo::Always
                } else {
                    UseUserinfo::Never
                })
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<UseUserinfo, E> {
                match value {
                    "auto" => Ok(UseUserinfo::Auto),
                    "true" => Ok(UseUserinfo::Always),
                    "false" => Ok(UseUserinfo::Never),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// How the client authenticates at the token endpoint (`client_auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with the client id and secret (the default).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A JWT signed with the client's private key (`private_key`), RFC 7523.
    PrivateKeyJwt,
}

impl ClientAuth {
    pub fn name(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// Everything the core needs for one IdP instance, already checked by
/// [`RpConfig::validate`].
#[derive(Debug, Clone)]
pub struct RpConfig {
    /// The issuer exactly as the provider names itself (discovery's `issuer` must equal it).
    pub issuer: String,
    /// The setting the admin wrote the issuer in (`issuer`, `domain`, `issuer_url`), for messages.
    pub issuer_setting: &'static str,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub client_auth: ClientAuth,
    /// PEM private key for `private_key_jwt` (PKCS#1 RSA or PKCS#8 Ed25519).
    pub private_key: Option<Secret>,
    /// The `kid` to put in the client assertion's header, if the provider needs one.
    pub private_key_id: Option<String>,
    pub scopes: Vec<String>,
    pub use_userinfo: UseUserinfo,
    pub clock_skew_seconds: u64,
    pub max_token_age_seconds: u64,
    pub trusted_audiences: Vec<String>,
    pub discovery_ttl_seconds: u64,
    pub jwks_refresh_min_seconds: u64,
    pub extra_params: BTreeMap<String, String>,
    pub prompt: Option<String>,
}

impl RpConfig {
    /// A configuration with the shared defaults; the profile fills in the rest.
    pub fn new(issuer: String, issuer_setting: &'static str, client_id: String) -> Self {
        Self {
            issuer,
            issuer_setting,
            client_id,
            client_secret: None,
            client_auth: ClientAuth::default(),
            private_key: None,
            private_key_id: None,
            scopes: defaults::scopes(),
            use_userinfo: UseUserinfo::default(),
            clock_skew_seconds: defaults::clock_skew_seconds(),
            max_token_age_seconds: defaults::max_token_age_seconds(),
            trusted_audiences: Vec::new(),
            discovery_ttl_seconds: defaults::discovery_ttl_seconds(),
            jwks_refresh_min_seconds: defaults::jwks_refresh_min_seconds(),
            extra_params: BTreeMap::new(),
            prompt: None,
        }
    }

    /// Refuses settings the core cannot work with, naming the setting and the fix.
    pub fn validate(self) -> Result<Self, PluginError> {
        check_issuer(self.issuer_setting, &self.issuer)?;
        if self.client_id.trim().is_empty() {
            return Err(PluginError::invalid_settings(
                "`client_id` is required: set it to the client id registered at the provider",
            ));
        }
        if self.client_id.trim() != self.client_id {
            return Err(PluginError::invalid_settings(
                "`client_id` has leading or trailing spaces: remove them",
            ));
        }
        match self.client_auth {
            ClientAuth::ClientSecretBasic | ClientAuth::ClientSecretPost => {
                if self
                    .client_secret
                    .as_ref()
                    .is_none_or(|s| s.expose().is_empty())
                {
                    return Err(PluginError::invalid_settings(format!(
                        "`client_secret` is required with client_auth = \"{}\": set it to the \
                         secret the provider issued (e.g. client_secret = {{ env = \"IDP_SECRET\" }})",
                        self.client_auth.name()
                    )));
                }
            }
            ClientAuth::PrivateKeyJwt => {
                let Some(key) = &self.private_key else {
                    return Err(PluginError::invalid_settings(
                        "`private_key` is required with client_auth = \"private_key_jwt\": set it \
                         to the client's PEM private key (RSA PKCS#1 or Ed25519 PKCS#8), e.g. \
                         private_key = { file = \"/etc/gatehouse/oidc-key.pem\" }",
                    ));
                };
                crate::client_auth::AssertionKey::from_pem(key.expose(), None)
                    .map_err(PluginError::invalid_settings)?;
            }
        }
        check_scopes(&self.scopes)?;
        for (name, value) in [
            ("clock_skew_seconds", self.clock_skew_seconds),
            ("max_token_age_seconds", self.max_token_age_seconds),
            ("discovery_ttl_seconds", self.discovery_ttl_seconds),
            ("jwks_refresh_min_seconds", self.jwks_refresh_min_seconds),
        ] {
            if value > 7 * 24 * 3600 {
                return Err(PluginError::invalid_settings(format!(
                    "`{name}` = {value} is more than a week: use a number of seconds such as 60"
                )));
            }
        }
        if self.max_token_age_seconds == 0 {
            return Err(PluginError::invalid_settings(
                "`max_token_age_seconds` must be at least 1: it bounds how old an ID token may be (600 is usual)",
            ));
        }
        if self.discovery_ttl_seconds == 0 {
            return Err(PluginError::invalid_settings(
                "`discovery_ttl_seconds` must be at least 1: the discovery document is cached this long (3600 is usual)",
            ));
        }
        for audience in &self.trusted_audiences {
            if audience.trim().is_empty() {
                return Err(PluginError::invalid_settings(
                    "`trusted_audiences` has an empty entry: remove it",
                ));
            }
        }
        for (name, value) in &self.extra_params {
            if RESERVED_PARAMS.contains(&name.as_str()) {
                return Err(PluginError::invalid_settings(format!(
                    "`extra_params` may not set `{name}`: Gatehouse sets it itself{}",
                    if name == "prompt" {
                        "; use the `prompt` setting"
                    } else {
                        ""
                    }
                )));
            }
            if name.trim().is_empty() || value.contains(['\r', '\n']) {
                return Err(PluginError::invalid_settings(format!(
                    "`extra_params` entry {name:?} must have a non-empty name and a one-line value"
                )));
            }
        }
        if let Some(prompt) = &self.prompt
            && prompt.trim().is_empty()
        {
            return Err(PluginError::invalid_settings(
                "`prompt` is empty: remove it, or set it to e.g. \"login\" or \"select_account\"",
            ));
        }
        Ok(self)
    }
}

/// Authorization request parameters the core sets itself, which `extra_params` may not touch.
pub const RESERVED_PARAMS: [&str; 12] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "login_hint",
    "request",
    "request_uri",
];

/// An issuer must be an absolute `https` URL (plain `http` only on a loopback address,
/// for tests) with no query or fragment.
pub fn check_issuer(setting: &str, issuer: &str) -> Result<Url, PluginError> {
    if issuer.trim().is_empty() {
        return Err(PluginError::invalid_settings(format!(
            "`{setting}` is required: set it to the provider's issuer URL, e.g. https://login.example.com"
        )));
    }
    let url = Url::parse(issuer).map_err(|error| {
        PluginError::invalid_settings(format!(
            "`{setting}` = {issuer:?} is not a URL ({error}): use the provider's issuer, e.g. https://login.example.com"
        ))
    })?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(PluginError::invalid_settings(format!(
            "`{setting}` = {issuer:?} must not have a query or fragment: an issuer is a plain https URL"
        )));
    }
    if !is_secure_url(&url) {
        return Err(PluginError::invalid_settings(format!(
            "`{setting}` = {issuer:?} must use https (plain http is allowed only for loopback \
             addresses such as 127.0.0.1 or localhost, for testing)"
        )));
    }
    Ok(url)
}

/// `https`, or `http` to a loopback address (127.0.0.0/8, ::1, localhost).
pub fn is_secure_url(url: &Url) -> bool {
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => match url.host() {
            Some(UrlHost::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
            Some(UrlHost::Ipv4(ip)) => ip.is_loopback(),
            Some(UrlHost::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

/// Scopes must include `openid` and have no empty or space-containing entries.
pub fn check_scopes(scopes: &[String]) -> Result<(), PluginError> {
    if let Some(bad) = scopes
        .iter()
        .find(|s| s.is_empty() || s.contains(char::is_whitespace))
    {
        return Err(PluginError::invalid_settings(format!(
            "`scopes` has the entry {bad:?}: each scope must be one non-empty word, e.g. [\"openid\", \"email\"]"
        )));
    }
    if !scopes.iter().any(|s| s == "openid") {
        return Err(PluginError::invalid_settings(
            "`scopes` must include \"openid\": without it the provider does not answer with an ID token",
        ));
    }
    Ok(())
}

/// Deserialises an instance's settings, naming the offending setting in serde's message
/// (`client_auth: unknown variant …`).
pub fn parse_settings<T: serde::de::DeserializeOwned>(
    config: &InstanceConfig,
) -> Result<T, PluginError> {
    serde_path_to_error::deserialize(&config.settings).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let place = if path == "." {
            String::new()
        } else {
            format!("`{path}`: ")
        };
        PluginError::invalid_settings(format!(
            "[idp.settings] of `{}`: {place}{inner}",
            config.instance_id
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_http_is_allowed_and_public_http_is_not() {
        for good in [
            "https://idp.example.com",
            "http://127.0.0.1:3000",
            "http://127.9.9.9",
            "http://[::1]:8080/",
            "http://localhost:3000",
        ] {
            assert!(check_issuer("issuer", good).is_ok(), "{good}");
        }
        for bad in [
            "http://idp.example.com",
            "http://10.0.0.1",
            "ftp://idp.example.com",
            "https://idp.example.com/?x=1",
            "not a url",
            "",
        ] {
            let error = check_issuer("issuer", bad).expect_err(bad);
            assert!(error.message().contains("`issuer`"), "{}", error.message());
        }
    }

    #[test]
    fn scopes_need_openid_and_no_blank_entries() {
        assert!(check_scopes(&defaults::scopes()).is_ok());
        assert!(check_scopes(&["email".into()]).is_err());
        assert!(check_scopes(&["openid".into(), " ".into()]).is_err());
        assert!(check_scopes(&["openid".into(), "a b".into()]).is_err());
        assert!(check_scopes(&["openid".into(), String::new()]).is_err());
    }

    #[test]
    fn use_userinfo_reads_true_false_and_auto_and_names_them_otherwise() {
        let read = |value: serde_json::Value| serde_json::from_value::<UseUserinfo>(value);
        assert_eq!(
            read(serde_json::json!(true)).ok(),
            Some(UseUserinfo::Always)
        );
        assert_eq!(
            read(serde_json::json!(false)).ok(),
            Some(UseUserinfo::Never)
        );
        assert_eq!(
            read(serde_json::json!("auto")).ok(),
            Some(UseUserinfo::Auto)
        );
        for bad in [serde_json::json!("yes"), serde_json::json!(1)] {
            let error = read(bad).expect_err("refused").to_string();
            assert!(error.contains("true, false or \"auto\""), "{error}");
        }
        assert_eq!(UseUserinfo::default(), UseUserinfo::Auto);
        assert!(UseUserinfo::Auto.wanted(true) && !UseUserinfo::Auto.wanted(false));
        assert!(UseUserinfo::Always.wanted(false) && !UseUserinfo::Never.wanted(true));
    }
}
