//! The `auth0` plugin: an Auth0 tenant through `gatehouse-oidc-core`. It adds only what
//! is Auth0's own: the issuer `https://{domain}/` (with its trailing slash), the
//! `connection` and `organization` authorization parameters, the `org_id` check, and
//! `/v2/logout` when the tenant does not advertise OIDC logout.

use gatehouse_oidc_core::{
    Claims, OidcError, Profile, RelyingParty, RpConfig, UseUserinfo, defaults,
};
use gatehouse_plugin_api::{Capabilities, InstanceConfig, Manifest, Plugin, PluginError, Secret};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

/// The `auth0` plugin's `[idp.settings]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth0Settings {
    /// The tenant's host name, e.g. `example.eu.auth0.com` (or a custom domain).
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// Send the user straight to this connection (`connection` parameter).
    #[serde(default)]
    pub connection: Option<String>,
    /// Sign in to this organization (`org_...` id, or its name); the ID token's
    /// `org_id` (or `org_name` for a name) must match it.
    #[serde(default)]
    pub organization: Option<String>,
    #[serde(default = "defaults::scopes")]
    pub scopes: Vec<String>,
    /// Fetch `/userinfo` and merge its claims: `"auto"` (default: when discovery names
    /// the endpoint, as Auth0's does), `true` or `false`.
    #[serde(default)]
    pub use_userinfo: UseUserinfo,
    #[serde(default = "defaults::clock_skew_seconds")]
    pub clock_skew_seconds: u64,
    #[serde(default = "defaults::max_token_age_seconds")]
    pub max_token_age_seconds: u64,
    /// For testing only: use this issuer instead of the real one (`https://{domain}/`).
    /// It is used exactly as written, trailing slash included.
    #[serde(default)]
    pub issuer_url: Option<String>,
}

/// What Auth0 adds to OpenID Connect.
#[derive(Debug)]
pub struct Auth0Profile {
    connection: Option<String>,
    organization: Option<String>,
}

impl Profile for Auth0Profile {
    fn authorization_params(&self) -> Vec<(String, String)> {
        let mut params = Vec::new();
        if let Some(connection) = &self.connection {
            params.push(("connection".to_owned(), connection.clone()));
        }
        if let Some(organization) = &self.organization {
            params.push(("organization".to_owned(), organization.clone()));
        }
        params
    }

    fn check_claims(&self, claims: &Claims) -> Result<(), OidcError> {
        let Some(expected) = &self.organization else {
            return Ok(());
        };
        let org_id = claims.get("org_id").and_then(Value::as_str);
        if org_id == Some(expected.as_str()) {
            return Ok(());
        }
        // An organization configured by name is asserted in `org_name` (lower case).
        if !expected.starts_with("org_")
            && claims
                .get("org_name")
                .and_then(Value::as_str)
                .is_some_and(|name| name.eq_ignore_ascii_case(expected))
        {
            return Ok(());
        }
        Err(OidcError::Denied(match org_id {
            Some(other) => format!(
                "the ID token is for the Auth0 organization `{other}`, not `{expected}` (setting `organization`)"
            ),
            None => format!(
                "the ID token names no Auth0 organization (org_id), but `organization` = `{expected}` is required"
            ),
        }))
    }

    fn fallback_logout_url(&self, config: &RpConfig, return_url: &str) -> Option<String> {
        let mut url = Url::parse(&format!(
            "{}/v2/logout",
            config.issuer.trim_end_matches('/')
        ))
        .ok()?;
        url.query_pairs_mut()
            .append_pair("client_id", &config.client_id);
        if !return_url.is_empty() {
            url.query_pairs_mut().append_pair("returnTo", return_url);
        }
        Some(url.to_string())
    }
}

/// `https://{domain}/`, refusing anything that is not a bare host name.
fn issuer_for_domain(domain: &str) -> Result<String, PluginError> {
    let bad = || {
        PluginError::invalid_settings(format!(
            "`domain` = {domain:?} must be the tenant's host name only, such as \
             example.eu.auth0.com (no https://, no path, no port)"
        ))
    };
    if domain.trim().is_empty() {
        return Err(PluginError::invalid_settings(
            "`domain` is required: set it to the Auth0 tenant's host name, e.g. example.eu.auth0.com",
        ));
    }
    if domain.contains(['/', ':', '@', '?', '#', ' ']) {
        return Err(bad());
    }
    let issuer = format!("https://{domain}/");
    let url = Url::parse(&issuer).map_err(|_| bad())?;
    if url.host_str() != Some(domain.to_ascii_lowercase().as_str()) {
        return Err(bad());
    }
    Ok(issuer)
}

/// One configured Auth0 tenant.
#[derive(Debug)]
pub struct Auth0Idp(RelyingParty<Auth0Profile>);

impl Plugin for Auth0Idp {
    fn manifest() -> Manifest {
        let mut attributes = gatehouse_oidc_core::STANDARD_ATTRIBUTES.to_vec();
        attributes.extend(["org_id", "org_name"]);
        Manifest::new("auth0", "auth0", "Auth0", env!("CARGO_PKG_VERSION"))
            .with_capabilities(Capabilities::LOGOUT)
            .with_attributes(&attributes)
            .with_state_parameter("state")
    }

    fn new(config: &InstanceConfig) -> Result<Self, PluginError> {
        let settings: Auth0Settings = gatehouse_oidc_core::parse_settings(config)?;
        let (issuer, setting) = match settings.issuer_url {
            Some(issuer_url) => (issuer_url, "issuer_url"),
            None => (issuer_for_domain(&settings.domain)?, "domain"),
        };
        for (name, value) in [
            ("connection", &settings.connection),
            ("organization", &settings.organization),
        ] {
            if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
                return Err(PluginError::invalid_settings(format!(
                    "`{name}` is empty: remove it or set it to the Auth0 {name} to use"
                )));
            }
        }
        let mut rp = RpConfig::new(issuer, setting, settings.client_id);
        rp.client_secret = settings.client_secret;
        rp.scopes = settings.scopes;
        rp.use_userinfo = settings.use_userinfo;
        rp.clock_skew_seconds = settings.clock_skew_seconds;
        rp.max_token_age_seconds = settings.max_token_age_seconds;
        let profile = Auth0Profile {
            connection: settings.connection,
            organization: settings.organization,
        };
        RelyingParty::new(rp, profile).map(Self)
    }
}

gatehouse_oidc_core::delegate_to_relying_party!(Auth0Idp, logout);

gatehouse_plugin_api::export_plugin!(Auth0Idp);

#[cfg(test)]
mod tests {
    use gatehouse_oidc_core::testing::{
        CLIENT_ID, CLIENT_SECRET, Harness, SUBJECT, Signer, TestProvider, refused,
    };
    use gatehouse_plugin_api::{
        ErrorKind,
        testkit::{FakeHost, conformance},
    };
    use serde_json::json;

    use gatehouse_plugin_api::{BeginRequest, IdentityProvider, LoginStep, LogoutRequest};

    use super::*;

    const DOMAIN: &str = "example.eu.auth0.com";
    const ISSUER: &str = "https://example.eu.auth0.com/";

    fn settings(edit: impl FnOnce(&mut Value)) -> Value {
        let mut settings =
            json!({ "domain": DOMAIN, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET });
        edit(&mut settings);
        settings
    }

    fn build(settings: Value) -> Result<Auth0Idp, PluginError> {
        Auth0Idp::new(&InstanceConfig::new("auth0", settings))
    }

    fn harness(edit: impl FnOnce(&mut Value), discovery: Option<Value>) -> Harness<Auth0Idp> {
        Harness::new(build(settings(edit)).expect("valid"), ISSUER, discovery)
    }

    fn logout(h: &Harness<Auth0Idp>) -> Option<LoginStep> {
        h.fake
            .call(|host| {
                h.idp.logout(
                    host,
                    &LogoutRequest {
                        subject: SUBJECT.into(),
                        logout_state: Default::default(),
                        return_url: "https://gatehouse.test/logged-out".into(),
                    },
                )
            })
            .expect("logout")
    }

    #[test]
    fn passes_the_conformance_check() {
        let fake = FakeHost::new();
        TestProvider::new(ISSUER).expect_discovery(&fake);
        conformance::check_with::<Auth0Idp>(
            &conformance::Case {
                good_settings: settings(|_| {}),
                bad_settings: vec![
                    (
                        settings(|s| s["domain"] = json!("https://example.auth0.com")),
                        "domain",
                    ),
                    (settings(|s| s["client_id"] = json!("")), "client_id"),
                    (settings(|s| s["scopes"] = json!(["email"])), "scopes"),
                    (settings(|s| s["tenant"] = json!("x")), "tenant"),
                ],
            },
            &fake,
        );
    }

    #[test]
    fn userinfo_is_used_by_default_as_auth0_advertises_it() {
        let doc = TestProvider::new(ISSUER).discovery_with_userinfo();
        let h = harness(|_| {}, Some(doc.clone()));
        let identity = h
            .sign_in_with_userinfo(Some(&json!({ "sub": SUBJECT, "nickname": "ada" })))
            .expect("signs in");
        assert_eq!(identity.attribute("nickname"), Some("ada"));
        let h = harness(|s| s["use_userinfo"] = json!(false), Some(doc));
        h.sign_in_with_userinfo(None).expect("signs in without");
    }

    #[test]
    fn bad_settings_are_refused_naming_the_setting() {
        let cases: Vec<(Value, &str)> = vec![
            (settings(|s| s["domain"] = json!("")), "`domain`"),
            (
                settings(|s| s["domain"] = json!("example.auth0.com/path")),
                "`domain`",
            ),
            (
                settings(|s| s["domain"] = json!("example.auth0.com:8443")),
                "`domain`",
            ),
            (
                settings(|s| s["client_secret"] = json!("")),
                "`client_secret`",
            ),
            (
                settings(|s| s["organization"] = json!(" ")),
                "`organization`",
            ),
            (
                settings(|s| s["issuer_url"] = json!("http://auth0.example.test/")),
                "`issuer_url`",
            ),
            (settings(|s| s["prompt"] = json!("login")), "prompt"),
        ];
        gatehouse_oidc_core::testing::assert_settings_refused::<Auth0Idp>("auth0", &cases);
    }

    #[test]
    fn the_issuer_keeps_its_trailing_slash_and_discovery_is_found_under_it() {
        let fake = FakeHost::new();
        let idp = build(settings(|_| {})).expect("valid");
        // Fetched at https://example.eu.auth0.com/.well-known/openid-configuration, and
        // a document naming the issuer without its slash is refused.
        let provider = TestProvider::new(ISSUER);
        let mut doc = provider.discovery();
        doc["issuer"] = json!("https://example.eu.auth0.com");
        provider.expect_discovery_doc(&fake, &doc);
        let error = fake
            .call(|host| {
                idp.begin_login(
                    host,
                    &BeginRequest {
                        callback_url: "https://gatehouse.test/cb".into(),
                        state_token: "t".into(),
                        login_hint: None.into(),
                    },
                )
            })
            .expect_err("issuer mismatch");
        assert!(
            error.message().contains("trailing slash"),
            "{}",
            error.message()
        );
        fake.assert_script_done();
    }

    #[test]
    fn connection_and_organization_are_sent_and_org_id_is_checked() {
        let h = harness(
            |s| {
                s["connection"] = json!("google-oauth2");
                s["organization"] = json!("org_abc123");
            },
            None,
        );
        let login = h.begin();
        assert_eq!(login.param("connection").as_deref(), Some("google-oauth2"));
        assert_eq!(login.param("organization").as_deref(), Some("org_abc123"));
        assert_eq!(
            login.param("code_challenge_method").as_deref(),
            Some("S256")
        );
        let mut claims = h.claims(&login);
        claims["org_id"] = json!("org_abc123");
        let token = h.provider.sign(Signer::RsaA, &claims);
        let identity = h
            .complete(&login, &token, &[("iss", ISSUER)])
            .expect("signs in");
        assert_eq!(identity.attribute("org_id"), Some("org_abc123"));
    }

    #[test]
    fn a_token_for_another_organization_is_refused() {
        let h = harness(|s| s["organization"] = json!("org_abc123"), None);
        refused(
            h.sign_in(Signer::RsaA, |c| c["org_id"] = json!("org_evil")),
            ErrorKind::ACCESS_DENIED,
            "`org_evil`, not `org_abc123`",
        );
        let h = harness(|s| s["organization"] = json!("org_abc123"), None);
        refused(
            h.sign_in(Signer::RsaA, |_| {}),
            ErrorKind::ACCESS_DENIED,
            "names no Auth0 organization",
        );
    }

    #[test]
    fn an_organization_configured_by_name_matches_org_name() {
        let h = harness(|s| s["organization"] = json!("acme"), None);
        h.sign_in(Signer::RsaA, |c| {
            c["org_id"] = json!("org_abc123");
            c["org_name"] = json!("acme");
        })
        .expect("org_name matches");
    }

    #[test]
    fn without_organization_any_org_id_is_fine() {
        let h = harness(|_| {}, None);
        h.sign_in(Signer::RsaA, |c| c["org_id"] = json!("org_whatever"))
            .expect("no organization policy");
    }

    #[test]
    fn logout_uses_end_session_when_advertised() {
        let h = harness(|_| {}, None);
        let step = logout(&h).expect("a redirect");
        assert!(
            step.url
                .starts_with("https://example.eu.auth0.com/session/end?"),
            "{}",
            step.url
        );
    }

    #[test]
    fn logout_falls_back_to_v2_logout() {
        let mut doc = TestProvider::new(ISSUER).discovery();
        doc.as_object_mut()
            .map(|d| d.remove("end_session_endpoint"));
        let h = harness(|_| {}, Some(doc));
        let step = logout(&h).expect("a redirect");
        assert_eq!(
            step.url.as_str(),
            "https://example.eu.auth0.com/v2/logout?client_id=gatehouse-client&returnTo=https%3A%2F%2Fgatehouse.test%2Flogged-out"
        );
    }

    #[test]
    fn issuer_url_replaces_the_tenant_for_tests() {
        let issuer = "http://127.0.0.1:3000/";
        let idp = build(settings(|s| s["issuer_url"] = json!(issuer))).expect("valid");
        let h = Harness::new(idp, issuer, None);
        let login = h.begin();
        assert!(
            login
                .url
                .as_str()
                .starts_with("http://127.0.0.1:3000/auth?")
        );
        let token = h.provider.sign(Signer::RsaA, &h.claims(&login));
        h.complete(&login, &token, &[("iss", issuer)])
            .expect("signs in");
    }
}
