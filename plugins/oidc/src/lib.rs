//! The `oidc` plugin: any OpenID Connect provider found by its issuer's discovery
//! document. It is only a settings type and a manifest around `gatehouse-oidc-core`'s
//! relying party with the standard profile; all protocol logic lives in the core.

use std::collections::BTreeMap;

use gatehouse_oidc_core::{
    ClientAuth, RelyingParty, RpConfig, StandardProfile, UseUserinfo, defaults,
};
use gatehouse_plugin_api::{Capabilities, InstanceConfig, Manifest, Plugin, PluginError, Secret};
use serde::Deserialize;

/// The `oidc` plugin's `[idp.settings]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// The provider's issuer URL, exactly as its discovery document names it (https;
    /// plain http only on loopback addresses, for testing).
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub client_id: String,
    /// Required for `client_secret_basic` and `client_secret_post`.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    #[serde(default = "defaults::scopes")]
    pub scopes: Vec<String>,
    /// `client_secret_basic` (default), `client_secret_post` or `private_key_jwt`.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// For `private_key_jwt`: the client's PEM private key (RSA PKCS#1 or Ed25519 PKCS#8).
    #[serde(default)]
    pub private_key: Option<Secret>,
    /// For `private_key_jwt`: the `kid` the provider knows the key by, if it needs one.
    #[serde(default)]
    pub private_key_id: Option<String>,
    /// Fetch UserInfo and merge its claims into the attributes: `"auto"` (default: when
    /// discovery names the endpoint), `true` or `false`.
    #[serde(default)]
    pub use_userinfo: UseUserinfo,
    #[serde(default = "defaults::clock_skew_seconds")]
    pub clock_skew_seconds: u64,
    /// The oldest `iat` accepted.
    #[serde(default = "defaults::max_token_age_seconds")]
    pub max_token_age_seconds: u64,
    /// Audiences besides the client id that an ID token may also name.
    #[serde(default)]
    pub trusted_audiences: Vec<String>,
    /// How long the discovery document and the JWKS are cached.
    #[serde(default = "defaults::discovery_ttl_seconds")]
    pub discovery_ttl_seconds: u64,
    /// At most one JWKS refresh for an unknown `kid` per this many seconds (shared by
    /// every host on the same store); 0 removes the limit, for tests only.
    #[serde(default = "defaults::jwks_refresh_min_seconds")]
    pub jwks_refresh_min_seconds: u64,
    /// Extra authorization request parameters.
    #[serde(default)]
    pub extra_params: BTreeMap<String, String>,
    /// The `prompt` parameter (`login`, `consent`, `select_account`, `none`).
    #[serde(default)]
    pub prompt: Option<String>,
}

impl OidcSettings {
    fn into_config(self) -> RpConfig {
        let mut config = RpConfig::new(self.issuer, "issuer", self.client_id);
        config.client_secret = self.client_secret;
        config.client_auth = self.client_auth;
        config.private_key = self.private_key;
        config.private_key_id = self.private_key_id;
        config.scopes = self.scopes;
        config.use_userinfo = self.use_userinfo;
        config.clock_skew_seconds = self.clock_skew_seconds;
        config.max_token_age_seconds = self.max_token_age_seconds;
        config.trusted_audiences = self.trusted_audiences;
        config.discovery_ttl_seconds = self.discovery_ttl_seconds;
        config.jwks_refresh_min_seconds = self.jwks_refresh_min_seconds;
        config.extra_params = self.extra_params;
        config.prompt = self.prompt;
        config
    }
}

/// One configured OpenID Connect IdP.
#[derive(Debug)]
pub struct OidcIdp(RelyingParty<StandardProfile>);

impl Plugin for OidcIdp {
    fn manifest() -> Manifest {
        Manifest::new("oidc", "oidc", "OpenID Connect", env!("CARGO_PKG_VERSION"))
            .with_capabilities(Capabilities::LOGOUT)
            .with_attributes(&gatehouse_oidc_core::STANDARD_ATTRIBUTES)
            .with_state_parameter("state")
    }

    fn new(config: &InstanceConfig) -> Result<Self, PluginError> {
        let settings: OidcSettings = gatehouse_oidc_core::parse_settings(config)?;
        RelyingParty::new(settings.into_config(), StandardProfile).map(Self)
    }
}

gatehouse_oidc_core::delegate_to_relying_party!(OidcIdp, logout);

gatehouse_plugin_api::export_plugin!(OidcIdp);

#[cfg(test)]
mod tests {
    use gatehouse_oidc_core::testing::{
        CLIENT_ID, CLIENT_SECRET, Harness, SUBJECT, Signer, TestProvider,
    };
    use gatehouse_plugin_api::testkit::{FakeHost, conformance};
    use serde_json::{Value, json};

    use super::*;

    const ISSUER: &str = "https://idp.example.test";

    fn good() -> Value {
        json!({ "issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET })
    }

    fn build(settings: Value) -> Result<OidcIdp, PluginError> {
        OidcIdp::new(&InstanceConfig::new("okta", settings))
    }

    fn with(edit: impl FnOnce(&mut Value)) -> Value {
        let mut settings = good();
        edit(&mut settings);
        settings
    }

    #[test]
    fn passes_the_conformance_check() {
        let fake = FakeHost::new();
        TestProvider::new(ISSUER).expect_discovery(&fake);
        conformance::check_with::<OidcIdp>(
            &conformance::Case {
                good_settings: good(),
                bad_settings: vec![
                    (
                        with(|s| s["issuer"] = json!("http://idp.example.test")),
                        "issuer",
                    ),
                    (with(|s| s["client_id"] = json!("")), "client_id"),
                    (with(|s| s["scopes"] = json!(["email"])), "scopes"),
                    (with(|s| s["colour"] = json!("blue")), "colour"),
                ],
            },
            &fake,
        );
    }

    #[test]
    fn bad_settings_are_refused_naming_the_setting() {
        let cases: Vec<(Value, &str)> = vec![
            (
                with(|s| s["issuer"] = json!("http://idp.example.test")),
                "`issuer`",
            ),
            (
                with(|s| s["issuer"] = json!("http://10.1.2.3:8080")),
                "https",
            ),
            (
                with(|s| {
                    s.as_object_mut()
                        .map(|s| s.remove("client_id"))
                        .map(drop)
                        .unwrap_or(())
                }),
                "`client_id`",
            ),
            (
                with(|s| {
                    s.as_object_mut()
                        .map(|s| s.remove("client_secret"))
                        .map(drop)
                        .unwrap_or(())
                }),
                "`client_secret`",
            ),
            (
                with(|s| s["scopes"] = json!(["profile", "email"])),
                "`scopes`",
            ),
            (with(|s| s["scopes"] = json!(["openid", " "])), "`scopes`"),
            (
                with(|s| s["client_auth"] = json!("client_secret_jwt")),
                "client_auth",
            ),
            (
                with(|s| s["client_auth"] = json!("private_key_jwt")),
                "`private_key`",
            ),
            (
                with(|s| s["extra_params"] = json!({ "state": "x" })),
                "`extra_params`",
            ),
            (with(|s| s["unknown_key"] = json!(1)), "unknown_key"),
            (
                with(|s| s["use_userinfo"] = json!("yes")),
                "`use_userinfo`: invalid value: string \"yes\", expected true, false or \"auto\"",
            ),
            (
                with(|s| s["max_token_age_seconds"] = json!(-5)),
                "max_token_age_seconds",
            ),
        ];
        gatehouse_oidc_core::testing::assert_settings_refused::<OidcIdp>("okta", &cases);
    }

    #[test]
    fn userinfo_is_used_by_default_when_advertised_and_not_when_switched_off() {
        let provider = TestProvider::new(ISSUER);
        let answer = json!({ "sub": SUBJECT, "department": "R&D" });
        for (setting, asked) in [
            (None, true),
            (Some(json!("auto")), true),
            (Some(json!(false)), false),
        ] {
            let idp = build(with(|s| {
                if let Some(value) = setting.clone() {
                    s["use_userinfo"] = value;
                }
            }))
            .expect("valid");
            let h = Harness::new(idp, ISSUER, Some(provider.discovery_with_userinfo()));
            let identity = h
                .sign_in_with_userinfo(asked.then_some(&answer))
                .expect("signs in");
            let department = asked.then_some("R&D");
            assert_eq!(identity.attribute("department"), department, "{setting:?}");
            assert_eq!(identity.attribute("email"), Some("ada@example.test"));
        }
    }

    #[test]
    fn loopback_http_issuers_are_accepted_for_testing() {
        build(with(|s| s["issuer"] = json!("http://127.0.0.1:3000"))).expect("loopback");
        build(with(|s| s["issuer"] = json!("http://localhost:3000"))).expect("localhost");
        build(with(|s| s["issuer"] = json!("http://[::1]:3000"))).expect("::1");
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let idp = build(good()).expect("valid");
        assert!(!format!("{idp:?}").contains(CLIENT_SECRET));
    }

    #[test]
    fn signs_in_through_the_plugin_with_prompt_and_extra_params() {
        let idp = build(with(|s| {
            s["prompt"] = json!("login");
            s["extra_params"] = json!({ "acr_values": "mfa" });
        }))
        .expect("valid");
        let h = Harness::new(idp, ISSUER, None);
        let login = h.begin();
        assert_eq!(login.param("prompt").as_deref(), Some("login"));
        assert_eq!(login.param("acr_values").as_deref(), Some("mfa"));
        let token = h.provider.sign(Signer::RsaA, &h.claims(&login));
        let identity = h
            .complete(&login, &token, &[("iss", ISSUER)])
            .expect("signs in");
        assert_eq!(identity.subject.as_str(), SUBJECT);
        assert_eq!(identity.attribute("email_verified"), Some("true"));
        assert!(
            OidcIdp::manifest()
                .capabilities
                .contains(Capabilities::LOGOUT)
        );
    }
}
