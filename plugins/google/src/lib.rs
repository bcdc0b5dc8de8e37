//! The `google` plugin: Google accounts and Google Workspace through
//! `gatehouse-oidc-core`. It adds only what is Google's own: the fixed issuer (also
//! spelled `accounts.google.com` in tokens), `prompt=select_account`, Workspace
//! domains checked against the ID token's `hd` claim, and `email_verified` always
//! emitted as "true" or "false" so the host uses only verified addresses. Google has no end-session endpoint, so no IdP logout.

use gatehouse_oidc_core::{
    Attributes, Claims, OidcError, Profile, RelyingParty, RpConfig, UseUserinfo, defaults,
};
use gatehouse_plugin_api::{InstanceConfig, Manifest, Plugin, PluginError, Secret};
use serde::Deserialize;
use serde_json::Value;

/// Google's issuer.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";
/// The other spelling Google uses in ID tokens.
const GOOGLE_BARE_ISSUER: &str = "accounts.google.com";

/// The `google` plugin's `[idp.settings]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleSettings {
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// Google Workspace domains whose users may sign in (checked against the ID
    /// token's `hd` claim); empty: any Google account.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// Fetch Google's UserInfo and merge its claims: `false` (default: Google's ID token
    /// already carries `email`, `email_verified`, `hd` and, with the `profile` scope, the
    /// names and picture, so the extra round trip adds nothing), `true` or `"auto"`.
    #[serde(default = "no_userinfo")]
    pub use_userinfo: UseUserinfo,
    #[serde(default = "defaults::clock_skew_seconds")]
    pub clock_skew_seconds: u64,
    #[serde(default = "defaults::max_token_age_seconds")]
    pub max_token_age_seconds: u64,
    /// For testing only: use this issuer instead of the real one
    /// (`https://accounts.google.com`); `accounts.google.com` is then not accepted.
    #[serde(default)]
    pub issuer_url: Option<String>,
}

fn no_userinfo() -> UseUserinfo {
    UseUserinfo::Never
}

/// What Google adds to OpenID Connect.
#[derive(Debug)]
pub struct GoogleProfile {
    /// Lower-case Workspace domains; empty: any account.
    allowed_domains: Vec<String>,
    /// Whether `accounts.google.com` (no scheme) counts as the issuer.
    accept_bare_issuer: bool,
}

impl Profile for GoogleProfile {
    fn accepts_issuer(&self, config: &RpConfig, iss: &str) -> bool {
        iss == config.issuer || (self.accept_bare_issuer && iss == GOOGLE_BARE_ISSUER)
    }

    fn authorization_params(&self) -> Vec<(String, String)> {
        let mut params = vec![("prompt".to_owned(), "select_account".to_owned())];
        // A hint for Google's account chooser only; the `hd` claim is what is checked.
        if let [domain] = self.allowed_domains.as_slice() {
            params.push(("hd".to_owned(), domain.clone()));
        }
        params
    }

    fn check_claims(&self, claims: &Claims) -> Result<(), OidcError> {
        if self.allowed_domains.is_empty() {
            return Ok(());
        }
        let allowed = self.allowed_domains.join(", ");
        match claims.get("hd").and_then(Value::as_str) {
            Some(hd)
                if self
                    .allowed_domains
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(hd)) =>
            {
                Ok(())
            }
            Some(hd) => Err(OidcError::Denied(format!(
                "the Google account belongs to the Workspace domain `{hd}`, which is not in allowed_domains ({allowed})"
            ))),
            None => Err(OidcError::Denied(format!(
                "the Google account is not a Workspace account (the ID token has no `hd` claim), \
                 but allowed_domains ({allowed}) is set"
            ))),
        }
    }

    /// `email_verified` is always present and exactly "true" or "false", so the host
    /// never uses an address Google has not verified (it refuses to create or match
    /// users by an email whose `email_verified` is "false").
    fn adjust_attributes(&self, attributes: &mut Attributes) {
        let verified = attributes.get("email_verified").map(String::as_str) == Some("true");
        attributes.insert("email_verified".into(), verified.to_string());
    }
}

/// One configured Google sign-in.
#[derive(Debug)]
pub struct GoogleIdp(RelyingParty<GoogleProfile>);

impl Plugin for GoogleIdp {
    fn manifest() -> Manifest {
        let mut attributes = gatehouse_oidc_core::STANDARD_ATTRIBUTES.to_vec();
        attributes.push("hd");
        // Login only: Google offers no RP-initiated logout.
        Manifest::new("google", "google", "Google", env!("CARGO_PKG_VERSION"))
            .with_attributes(&attributes)
            .with_state_parameter("state")
    }

    fn new(config: &InstanceConfig) -> Result<Self, PluginError> {
        let settings: GoogleSettings = gatehouse_oidc_core::parse_settings(config)?;
        let mut allowed_domains = Vec::new();
        for domain in &settings.allowed_domains {
            let domain = domain.trim();
            if domain.is_empty() || domain.contains(['@', '/', ' ', ':']) || !domain.contains('.') {
                return Err(PluginError::invalid_settings(format!(
                    "`allowed_domains` has the entry {domain:?}: each entry must be a Workspace \
                     domain such as example.com"
                )));
            }
            allowed_domains.push(domain.to_ascii_lowercase());
        }
        let (issuer, setting, accept_bare_issuer) = match settings.issuer_url {
            Some(issuer_url) => (issuer_url, "issuer_url", false),
            None => (GOOGLE_ISSUER.to_owned(), "issuer", true),
        };
        let mut rp = RpConfig::new(issuer, setting, settings.client_id);
        rp.client_secret = settings.client_secret;
        rp.use_userinfo = settings.use_userinfo;
        rp.clock_skew_seconds = settings.clock_skew_seconds;
        rp.max_token_age_seconds = settings.max_token_age_seconds;
        let profile = GoogleProfile {
            allowed_domains,
            accept_bare_issuer,
        };
        RelyingParty::new(rp, profile).map(Self)
    }
}

gatehouse_oidc_core::delegate_to_relying_party!(GoogleIdp);

gatehouse_plugin_api::export_plugin!(GoogleIdp);

#[cfg(test)]
mod tests {
    use gatehouse_oidc_core::testing::{
        CLIENT_ID, CLIENT_SECRET, Harness, SUBJECT, Signer, TestProvider, refused,
    };
    use gatehouse_plugin_api::{
        Capabilities, ErrorKind, LogoutRequest,
        testkit::{FakeHost, conformance},
    };
    use serde_json::json;

    use gatehouse_plugin_api::IdentityProvider;

    use super::*;

    fn settings(edit: impl FnOnce(&mut Value)) -> Value {
        let mut settings = json!({ "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET });
        edit(&mut settings);
        settings
    }

    fn build(settings: Value) -> Result<GoogleIdp, PluginError> {
        GoogleIdp::new(&InstanceConfig::new("google", settings))
    }

    /// Google's discovery document has no RFC 9207 `iss` and no end_session_endpoint.
    fn google_discovery(issuer: &str) -> Value {
        let mut doc = TestProvider::new(issuer).discovery();
        let map = doc.as_object_mut().expect("object");
        map.remove("authorization_response_iss_parameter_supported");
        map.remove("end_session_endpoint");
        doc
    }

    fn harness(edit: impl FnOnce(&mut Value)) -> Harness<GoogleIdp> {
        let idp = build(settings(edit)).expect("valid");
        Harness::new(idp, GOOGLE_ISSUER, Some(google_discovery(GOOGLE_ISSUER)))
    }

    #[test]
    fn passes_the_conformance_check() {
        let fake = FakeHost::new();
        TestProvider::new(GOOGLE_ISSUER)
            .expect_discovery_doc(&fake, &google_discovery(GOOGLE_ISSUER));
        conformance::check_with::<GoogleIdp>(
            &conformance::Case {
                good_settings: settings(|_| {}),
                bad_settings: vec![
                    (settings(|s| s["client_id"] = json!("")), "client_id"),
                    (
                        settings(|s| s["allowed_domains"] = json!(["@example.com"])),
                        "allowed_domains",
                    ),
                    (settings(|s| s["scopes"] = json!(["openid"])), "scopes"),
                ],
            },
            &fake,
        );
    }

    #[test]
    fn bad_settings_are_refused_naming_the_setting() {
        let cases: Vec<(Value, &str)> = vec![
            (
                settings(|s| s["client_secret"] = json!("")),
                "`client_secret`",
            ),
            (
                settings(|s| s["allowed_domains"] = json!([""])),
                "`allowed_domains`",
            ),
            (
                settings(|s| s["allowed_domains"] = json!("example.com")),
                "allowed_domains",
            ),
            (
                settings(|s| s["issuer_url"] = json!("http://google.example.test")),
                "`issuer_url`",
            ),
            (settings(|s| s["domain"] = json!("example.com")), "domain"),
        ];
        gatehouse_oidc_core::testing::assert_settings_refused::<GoogleIdp>("google", &cases);
    }

    #[test]
    fn userinfo_is_not_asked_by_default_though_google_advertises_it() {
        let mut doc = google_discovery(GOOGLE_ISSUER);
        doc["userinfo_endpoint"] = json!(TestProvider::new(GOOGLE_ISSUER).userinfo_url());
        let idp = build(settings(|_| {})).expect("valid");
        let h = Harness::new(idp, GOOGLE_ISSUER, Some(doc.clone()));
        let identity = h.sign_in_with_userinfo(None).expect("signs in");
        assert_eq!(identity.attribute("email"), Some("ada@example.test"));
        for setting in [json!(true), json!("auto")] {
            let idp = build(settings(|s| s["use_userinfo"] = setting)).expect("valid");
            let h = Harness::new(idp, GOOGLE_ISSUER, Some(doc.clone()));
            let identity = h
                .sign_in_with_userinfo(Some(
                    &json!({ "sub": SUBJECT, "picture": "https://p.test/a" }),
                ))
                .expect("signs in");
            assert_eq!(identity.attribute("picture"), Some("https://p.test/a"));
        }
    }

    #[test]
    fn login_only_and_no_logout() {
        let manifest = GoogleIdp::manifest();
        assert!(!manifest.capabilities.contains(Capabilities::LOGOUT));
        let h = harness(|_| {});
        let error = h
            .fake
            .call(|host| {
                h.idp.logout(
                    host,
                    &LogoutRequest {
                        subject: SUBJECT.into(),
                        logout_state: Default::default(),
                        return_url: "https://gatehouse.test/".into(),
                    },
                )
            })
            .expect_err("unsupported");
        assert_eq!(error.kind, ErrorKind::UNSUPPORTED);
    }

    #[test]
    fn the_authorization_request_selects_an_account_and_hints_one_domain() {
        let h = harness(|s| s["allowed_domains"] = json!(["Example.com"]));
        let login = h.begin();
        assert!(
            login
                .url
                .as_str()
                .starts_with("https://accounts.google.com/auth?")
        );
        assert_eq!(login.param("prompt").as_deref(), Some("select_account"));
        assert_eq!(login.param("hd").as_deref(), Some("example.com"));
        assert_eq!(
            login.param("code_challenge_method").as_deref(),
            Some("S256")
        );

        let h = harness(|s| s["allowed_domains"] = json!(["example.com", "example.org"]));
        assert_eq!(h.begin().param("hd"), None, "no single domain to hint");
        let h = harness(|_| {});
        assert_eq!(h.begin().param("hd"), None);
    }

    #[test]
    fn the_hd_claim_must_be_an_allowed_domain() {
        let h = harness(|s| s["allowed_domains"] = json!(["example.com"]));
        let identity = h
            .sign_in(Signer::RsaA, |c| c["hd"] = json!("example.com"))
            .expect("an allowed domain");
        assert_eq!(identity.attribute("hd"), Some("example.com"));

        let h = harness(|s| s["allowed_domains"] = json!(["example.com"]));
        refused(
            h.sign_in(Signer::RsaA, |c| c["hd"] = json!("evil.com")),
            ErrorKind::ACCESS_DENIED,
            "`evil.com`, which is not in allowed_domains",
        );
        let h = harness(|s| s["allowed_domains"] = json!(["example.com"]));
        refused(
            h.sign_in(Signer::RsaA, |_| {}),
            ErrorKind::ACCESS_DENIED,
            "no `hd` claim",
        );
    }

    #[test]
    fn both_spellings_of_googles_issuer_are_accepted() {
        let h = harness(|_| {});
        h.sign_in(Signer::RsaA, |c| c["iss"] = json!("accounts.google.com"))
            .expect("bare issuer");
        let h = harness(|_| {});
        h.sign_in(Signer::RsaA, |_| {}).expect("https issuer");
        let h = harness(|_| {});
        refused(
            h.sign_in(Signer::RsaA, |c| {
                c["iss"] = json!("https://accounts.google.com.evil.test")
            }),
            ErrorKind::INVALID_RESPONSE,
            "issued by",
        );
    }

    #[test]
    fn email_verified_is_always_emitted_as_true_or_false() {
        let h = harness(|_| {});
        let identity = h.sign_in(Signer::RsaA, |_| {}).expect("signs in");
        assert_eq!(identity.attribute("email"), Some("ada@example.test"));
        assert_eq!(identity.attribute("email_verified"), Some("true"));

        let h = harness(|_| {});
        let identity = h
            .sign_in(Signer::RsaA, |c| c["email_verified"] = json!(false))
            .expect("signs in");
        assert_eq!(identity.attribute("email_verified"), Some("false"));

        let h = harness(|_| {});
        let identity = h
            .sign_in(Signer::RsaA, |c| {
                c.as_object_mut().map(|c| c.remove("email_verified"));
            })
            .expect("signs in");
        assert_eq!(identity.attribute("email_verified"), Some("false"));

        let h = harness(|_| {});
        let identity = h
            .sign_in(Signer::RsaA, |c| c["email_verified"] = json!("yes"))
            .expect("signs in");
        assert_eq!(identity.attribute("email_verified"), Some("false"));
    }

    #[test]
    fn issuer_url_replaces_google_and_drops_the_bare_spelling() {
        let issuer = "http://127.0.0.1:4000";
        let idp = build(settings(|s| s["issuer_url"] = json!(issuer))).expect("valid");
        let h = Harness::new(idp, issuer, Some(google_discovery(issuer)));
        h.sign_in(Signer::RsaA, |_| {}).expect("the test issuer");

        let idp = build(settings(|s| s["issuer_url"] = json!(issuer))).expect("valid");
        let h = Harness::new(idp, issuer, Some(google_discovery(issuer)));
        refused(
            h.sign_in(Signer::RsaA, |c| c["iss"] = json!("accounts.google.com")),
            ErrorKind::INVALID_RESPONSE,
            "issued by `accounts.google.com`",
        );
    }
}
