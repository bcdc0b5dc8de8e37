//! The relying party against a scripted provider on the test kit's `FakeHost`: the
//! whole sign-in, and every hostile answer of the OIDC attack catalogue refused with a
//! message that says why.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use gatehouse_oidc_core::{
    ClientAuth, RelyingParty, RpConfig, StandardProfile, UseUserinfo, provider,
    testing::{
        self, CLIENT_ID, CLIENT_SECRET, RSA_A_PUBLIC_PEM, SUBJECT, Signer, TestProvider, refused,
    },
};
use gatehouse_plugin_api::{
    ErrorKind, HttpRequest, IdentityProvider, LogoutRequest, Secret,
    testkit::{Expectation, FakeHost},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const ISSUER: &str = "https://idp.test";

fn config() -> RpConfig {
    let mut config = RpConfig::new(ISSUER.into(), "issuer", CLIENT_ID.into());
    config.client_secret = Some(Secret::new(CLIENT_SECRET));
    config
}

type Harness = testing::Harness<RelyingParty<StandardProfile>>;

fn harness() -> Harness {
    with(config(), None)
}

/// A relying party with `config`, whose discovery (`discovery` or the default) and
/// JWKS are already cached.
fn with(config: RpConfig, discovery: Option<Value>) -> Harness {
    let idp = RelyingParty::new(config, StandardProfile).expect("valid config");
    testing::Harness::new(idp, ISSUER, discovery)
}

fn form(request: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect()
}

fn form_value(request: &HttpRequest, name: &str) -> Option<String> {
    form(request)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

fn header(request: &HttpRequest, name: &str) -> Option<String> {
    request
        .headers
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .map(|p| p.value.to_string())
}

// ---------------------------------------------------------------------------------------
// The sign-in that works

#[test]
fn a_valid_sign_in_yields_the_subject_and_flattened_attributes() {
    let h = harness();
    let login = h.begin();
    let token = h.provider.sign(Signer::RsaA, &h.claims(&login));
    let identity = h
        .complete(&login, &token, &[("iss", ISSUER)])
        .expect("signs in");
    assert_eq!(identity.subject.as_str(), SUBJECT);
    assert_eq!(identity.attribute("sub"), Some(SUBJECT));
    assert_eq!(identity.attribute("email"), Some("ada@example.test"));
    assert_eq!(identity.attribute("email_verified"), Some("true"));
    assert_eq!(identity.attribute("given_name"), Some("Ada"));
    assert_eq!(identity.attribute("groups"), Some("staff,admins"));
    assert_eq!(identity.logout_state.as_slice(), token.as_bytes());
    h.fake.assert_script_done();
}

#[test]
fn an_eddsa_token_is_accepted() {
    let h = harness();
    let identity = h.sign_in(Signer::Ed25519, |_| {}).expect("signs in");
    assert_eq!(identity.subject.as_str(), SUBJECT);
}

#[test]
fn the_authorization_request_uses_pkce_s256_state_nonce_and_scopes() {
    let h = harness();
    let login = h.begin();
    assert!(login.url.as_str().starts_with("https://idp.test/auth?"));
    assert_eq!(login.param("response_type").as_deref(), Some("code"));
    assert_eq!(login.param("client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(login.param("state").as_deref(), Some("host-state-token"));
    assert_eq!(
        login.param("code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        login.param("scope").as_deref(),
        Some("openid email profile")
    );
    assert_eq!(
        login.param("redirect_uri").as_deref(),
        Some(gatehouse_oidc_core::testing::CALLBACK_URL)
    );
    assert!(login.nonce.len() >= 43, "a 256-bit nonce");
    let challenge = login.param("code_challenge").expect("code_challenge");

    // The token request carries the verifier that hashes to that challenge.
    let token = h.provider.sign(Signer::RsaA, &h.claims(&login));
    h.provider
        .expect_token_checked(&h.fake, &token, move |request| {
            let verifier = form_value(request, "code_verifier").ok_or("no code_verifier")?;
            let hashed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if hashed != challenge {
                return Err(format!(
                    "code_verifier does not hash to the challenge {challenge}"
                ));
            }
            if form_value(request, "code").as_deref() != Some("test-code") {
                return Err("code missing".into());
            }
            if form_value(request, "grant_type").as_deref() != Some("authorization_code") {
                return Err("grant_type is not authorization_code".into());
            }
            Ok(())
        });
    h.fake
        .call(|host| {
            h.idp
                .complete_login(host, &login.callback(&[("iss", ISSUER)]))
        })
        .expect("signs in");
    h.fake.assert_script_done();
}

#[test]
fn seeded_randomness_makes_the_authorization_request_deterministic() {
    let first = harness().begin();
    let second = harness().begin();
    assert_eq!(first.url, second.url);
    let other = {
        let h = harness();
        h.begin();
        h.begin()
    };
    assert_ne!(first.nonce, other.nonce, "each sign-in gets a fresh nonce");
}

#[test]
fn client_secret_basic_sends_the_secret_in_the_authorization_header_only() {
    let h = harness();
    let login = h.begin();
    let token = h.provider.sign(Signer::RsaA, &h.claims(&login));
    h.provider.expect_token_checked(&h.fake, &token, |request| {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
        );
        match header(request, "authorization") {
            Some(value) if value == expected => {}
            other => {
                return Err(format!(
                    "authorization header {other:?}, expected {expected}"
                ));
            }
        }
        if form_value(request, "client_secret").is_some() {
            return Err("the secret is also in the body".into());
        }
        Ok(())
    });
    h.fake
        .call(|host| {
            h.idp
                .complete_login(host, &login.callback(&[("iss", ISSUER)]))
        })
        .expect("signs in");
    h.fake.assert_script_done();
}

#[test]
fn client_secret_post_sends_the_credentials_in_the_body() {
    let mut config = config();
    config.client_auth = ClientAuth::ClientSecretPost;
    let h = with(config, None);
    let login = h.begin();
    let token = h.provider.sign(Signer::RsaA, &h.claims(&login));
    h.provider.expect_token_checked(&h.fake, &token, |request| {
        if header(request, "authorization").is_some() {
            return Err("an authorization header was sent".into());
        }
        if form_value(request, "client_id").as_deref() != Some(CLIENT_ID) {
            return Err("client_id missing from the body".into());
        }
        if form_value(request, "client_secret").as_deref() != Some(CLIENT_SECRET) {
            return Err("client_secret missing from the body".into());
        }
        Ok(())
    });
    h.fake
        .call(|host| {
            h.idp
                .complete_login(host, &login.callback(&[("iss", ISSUER)]))
        })
        .expect("signs in");
    h.fake.assert_script_done();
}

#[test]
fn private_key_jwt_sends_a_signed_client_assertion() {
    use openidconnect::{
        JsonWebKey,
        core::{CoreJsonWebKey, CoreJwsSigningAlgorithm},
    };
    let mut config = config();
    config.client_auth = ClientAuth::PrivateKeyJwt;
    config.client_secret = None;
    config.private_key = Some(Secret::new(gatehouse_oidc_core::testing::RSA_A_PEM));
    config.private_key_id = Some("client-key".into());
    let h = with(config, None);
    let jwks = h.provider.jwks();
    let public: CoreJsonWebKey = serde_json::from_value(jwks["keys"][0].clone()).expect("jwk");
    let now = h.now();
    let token_url = h.provider.token_url();
    let login = h.begin();
    let token = h.provider.sign(Signer::RsaA, &h.claims(&login));
    h.provider.expect_token_checked(&h.fake, &token, move |request| {
        if header(request, "authorization").is_some() {
            return Err("an authorization header was sent".into());
        }
        if form_value(request, "client_assertion_type").as_deref()
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return Err("wrong client_assertion_type".into());
        }
        let assertion = form_value(request, "client_assertion").ok_or("no client_assertion")?;
        let parts: Vec<&str> = assertion.split('.').collect();
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).map_err(|e| e.to_string())?;
        public
            .verify_signature(
                &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                format!("{}.{}", parts[0], parts[1]).as_bytes(),
                &signature,
            )
            .map_err(|e| format!("assertion signature: {e}"))?;
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        let expected = json!({ "iss": CLIENT_ID, "sub": CLIENT_ID, "aud": token_url, "iat": now, "exp": now + 60 });
        for key in ["iss", "sub", "aud", "iat", "exp"] {
            if claims[key] != expected[key] {
                return Err(format!("assertion {key} = {}, expected {}", claims[key], expected[key]));
            }
        }
        if header["kid"] != "client-key" || !claims["jti"].is_string() {
            return Err("assertion kid or jti missing".into());
        }
        Ok(())
    });
    h.fake
        .call(|host| {
            h.idp
                .complete_login(host, &login.callback(&[("iss", ISSUER)]))
        })
        .expect("signs in");
    h.fake.assert_script_done();
}

// ---------------------------------------------------------------------------------------
// Signatures and algorithms

#[test]
fn an_unsigned_token_is_refused() {
    let h = harness();
    refused(
        h.sign_in(Signer::Unsigned, |_| {}),
        ErrorKind::BAD_SIGNATURE,
        "unsigned",
    );
}

#[test]
fn a_bad_rs256_signature_is_refused() {
    let h = harness();
    refused(
        h.sign_in(Signer::RsaBAsA, |_| {}),
        ErrorKind::BAD_SIGNATURE,
        "signature does not verify",
    );
}

#[test]
fn hs256_keyed_with_the_rsa_public_key_is_refused() {
    // The provider advertises HS256 and a secret is configured, so HS256 is allowed:
    // the MAC key is the client secret, never the provider's public key.
    let h = harness();
    refused(
        h.sign_in(Signer::Hs256(RSA_A_PUBLIC_PEM.as_bytes()), |_| {}),
        ErrorKind::BAD_SIGNATURE,
        "signature does not verify",
    );
    // The same token shape keyed with the real client secret verifies.
    let h = harness();
    h.sign_in(Signer::Hs256(CLIENT_SECRET.as_bytes()), |_| {})
        .expect("HS256 with the client secret");
}

#[test]
fn hs256_is_refused_when_the_provider_does_not_advertise_it() {
    let h0 = TestProvider::new(ISSUER);
    let mut doc = h0.discovery();
    doc["id_token_signing_alg_values_supported"] = json!(["RS256"]);
    let h = with(config(), Some(doc));
    refused(
        h.sign_in(Signer::Hs256(CLIENT_SECRET.as_bytes()), |_| {}),
        ErrorKind::BAD_SIGNATURE,
        "HS256, which is not allowed",
    );
    // …and EdDSA too, since the provider only advertises RS256.
    let h0 = TestProvider::new(ISSUER);
    let mut doc = h0.discovery();
    doc["id_token_signing_alg_values_supported"] = json!(["RS256"]);
    let h = with(config(), Some(doc));
    refused(
        h.sign_in(Signer::Ed25519, |_| {}),
        ErrorKind::BAD_SIGNATURE,
        "EdDSA, which is not allowed",
    );
}

#[test]
fn hs256_is_refused_without_a_client_secret() {
    let mut config = config();
    config.client_auth = ClientAuth::PrivateKeyJwt;
    config.client_secret = None;
    config.private_key = Some(Secret::new(gatehouse_oidc_core::testing::ED25519_PEM));
    let h = with(config, None);
    let login = h.begin();
    let token = h
        .provider
        .sign(Signer::Hs256(CLIENT_SECRET.as_bytes()), &h.claims(&login));
    refused(
        h.complete(&login, &token, &[("iss", ISSUER)]),
        ErrorKind::BAD_SIGNATURE,
        "not allowed",
    );
}

// ---------------------------------------------------------------------------------------
// Claims

#[test]
fn a_token_from_another_issuer_is_refused() {
    let h = harness();
    refused(
        h.sign_in(Signer::RsaA, |c| c["iss"] = json!("https://evil.test")),
        ErrorKind::INVALID_RESPONSE,
        "issued by `https://evil.test`",
    );
}

#[test]
fn a_token_for_another_client_is_refused() {
    let h = harness();
    refused(
        h.sign_in(Signer::RsaA, |c| c["aud"] = json!("another-client")),
        ErrorKind::INVALID_RESPONSE,
        "not meant for this client",
    );
}

#[test]
fn an_extra_untrusted_audience_is_refused_and_a_trusted_one_accepted() {
    let h = harness();
    refused(
        h.sign_in(Signer::RsaA, |c| {
            c["aud"] = json!([CLIENT_ID, "evil-api"]);
            c["azp"] = json!(CLIENT_ID);
        }),
        ErrorKind::INVALID_RESPONSE,
        "`evil-api`, which is not a trusted audience",
    );
    let mut config = config();
    config.trusted_audiences = vec!["my-api".into()];
    let h = with(config, None);
    h.sign_in(Signer::RsaA, |c| {
        c["aud"] = json!([CLIENT_ID, "my-api"]);
        c["azp"] = json!(CLIENT_ID);
    })
    .expect("a trusted extra audience is fine");
}

#[test]
fn azp_of_another_client_is_refused() {
    let h = harness();
    refused(
        h.sign_in(Signer::RsaA, |c| c["azp"] = json!("another-client")),
        ErrorKind::INVALID_RESPONSE,
        "authorized party (azp) is `another-client`",
    );
}

#[test]
fn several_audiences_without_azp_are_refused() {
    let mut config = config();
    config.trusted_audiences = vec!["my-api".into()];
    let h = with(config, None);
    refused(
        h.sign_in(Signer::RsaA, |c| c["aud"] = json!([CLIENT_ID, "my-api"])),
        ErrorKind::INVALID_RESPONSE,
        "no authorized party",
    );
}

#[test]
fn an_expired_token_is_refused() {
    let h = harness();
    let now = h.now();
    refused(
        h.sign_in(Signer::RsaA, |c| {
            c["iat"] = json!(now - 400);
            c["exp"] = json!(now - 100);
        }),
        ErrorKind::EXPIRED,
        "expired",
    );
}

#[test]
fn expiry_within_the_clock_skew_is_tolerated() {
    let h = harness();
    let now = h.now();
    h.sign_in(Signer::RsaA, |c| c["exp"] = json!(now - 30))
        .expect("30 s past exp is within the 60 s skew");
}

#[test]
fn a_token_issued_long_ago_is_refused() {
    let h = harness();
    let now = h.now();
    refused(
        h.sign_in(Signer::RsaA, |c| {
            c["iat"] = json!(now - 700);
            c["exp"] = json!(now + 3000);
        }),
        ErrorKind::EXPIRED,
        "max_token_age_seconds",
    );
}

#[test]
fn a_token_issued_in_the_future_is_refused() {
    let h = harness();
    let now = h.now();
    refused(
        h.sign_in(Signer::RsaA, |c| c["iat"] = json!(now + 120)),
        ErrorKind::EXPIRED,
        "in the future",
    );
    // Within the skew it is fine.
    let h = harness();
    h.sign_in(Signer::RsaA, |c| c["iat"] = json!(now + 30))
        .expect("30 s ahead is within the skew");
}

#[test]
fn a_token_not_yet_valid_is_refused() {
    let h = harness();
    let now = h.now();
    refused(
        h.sign_in(Signer::RsaA, |c| c["nbf"] = json!(now + 600)),
        ErrorKind::EXPIRED,
        "not valid before",
    );
}

#[test]
fn a_token_without_iat_is_refused() {
    let h = harness();
    let login = h.begin();
    let mut claims = h.claims(&login);
    claims.as_object_mut().map(|c| c.remove("iat"));
    let token = h.provider.sign(Signer::RsaA, &claims);
    refused(
        h.complete(&login, &token, &[("iss", ISSUER)]),
        ErrorKind::INVALID_RESPONSE,
        "no `iat`",
    );
}

#[test]
fn a_token_without_sub_is_refused() {
    let h = harness();
    refused(
        h.sign_in(Signer::RsaA, |c| {
            c.as_object_mut().map(|c| c.remove("sub"));
        }),
        ErrorKind::INVALID_RESPONSE,
        "no `sub`",
    );
}

#[test]
fn a_token_without_kid_is_checked_against_the_fitting_keys() {
    // kid absent, one RSA key in the set (oidcc-client-test-kid-absent-single-jwks).
    let h = harness();
    let login = h.begin();
    let claims = h.claims(&login);
    let token = h.provider.sign(Signer::RsaANoKid, &claims);
    h.complete(&login, &token, &[("iss", ISSUER)])
        .expect("the one RSA key verifies it");
}

#[test]
fn critical_header_extensions_are_refused() {
    let h = harness();
    let login = h.begin();
    let token = h.provider.sign(
        Signer::RsaAWithHeader(json!({ "crit": ["exp"], "exp": 1 })),
        &h.claims(&login),
    );
    refused(
        h.complete(&login, &token, &[("iss", ISSUER)]),
        ErrorKind::INVALID_RESPONSE,
        "crit",
    );
}

#[test]
fn a_wrong_nonce_is_refused() {
    let h = harness();
    refused(
        h.sign_in(Signer::RsaA, |c| c["nonce"] = json!("someone-elses-nonce")),
        ErrorKind::INVALID_RESPONSE,
        "nonce does not belong to this sign-in",
    );
    let h = harness();
    refused(
        h.sign_in(Signer::RsaA, |c| {
            c.as_object_mut().map(|c| c.remove("nonce"));
        }),
        ErrorKind::INVALID_RESPONSE,
        "nonce",
    );
}

#[test]
fn a_nonce_is_accepted_once() {
    let h = harness();
    let login = h.begin();
    let token = h.provider.sign(Signer::RsaA, &h.claims(&login));
    h.complete(&login, &token, &[("iss", ISSUER)])
        .expect("first use");
    refused(
        h.complete(&login, &token, &[("iss", ISSUER)]),
        ErrorKind::INVALID_RESPONSE,
        "already used",
    );
}

// ---------------------------------------------------------------------------------------
// The callback

#[test]
fn a_callback_iss_from_another_provider_is_refused() {
    let h = harness();
    let login = h.begin();
    let result = h.fake.call(|host| {
        h.idp
            .complete_login(host, &login.callback(&[("iss", "https://other-idp.test")]))
    });
    refused(result, ErrorKind::INVALID_RESPONSE, "mix-up");
    assert_eq!(
        h.requests_to(&h.provider.token_url()),
        0,
        "the code is never redeemed"
    );
}

#[test]
fn a_missing_callback_iss_is_refused_when_advertised() {
    let h = harness();
    let login = h.begin();
    let result = h
        .fake
        .call(|host| h.idp.complete_login(host, &login.callback(&[])));
    refused(result, ErrorKind::INVALID_RESPONSE, "RFC 9207");
}

#[test]
fn a_callback_without_iss_is_fine_when_not_advertised_but_a_wrong_one_is_not() {
    let mut doc = TestProvider::new(ISSUER).discovery();
    doc.as_object_mut()
        .map(|d| d.remove("authorization_response_iss_parameter_supported"));
    let h = with(config(), Some(doc.clone()));
    let login = h.begin();
    let token = h.provider.sign(Signer::RsaA, &h.claims(&login));
    h.complete(&login, &token, &[])
        .expect("no iss, not advertised");

    let h = with(config(), Some(doc));
    let login = h.begin();
    let result = h.fake.call(|host| {
        h.idp
            .complete_login(host, &login.callback(&[("iss", "https://other-idp.test")]))
    });
    refused(result, ErrorKind::INVALID_RESPONSE, "mix-up");
}

#[test]
fn a_provider_error_is_refused_with_its_reason() {
    let h = harness();
    let login = h.begin();
    let mut callback = login.callback(&[]);
    callback.query = vec![
        gatehouse_plugin_api::Pair::new("error", "access_denied"),
        gatehouse_plugin_api::Pair::new("error_description", "the user cancelled"),
        gatehouse_plugin_api::Pair::new("state", login.state.as_str()),
    ]
    .into();
    let result = h.fake.call(|host| h.idp.complete_login(host, &callback));
    refused(
        result,
        ErrorKind::ACCESS_DENIED,
        "access_denied: the user cancelled",
    );
}

#[test]
fn a_state_from_another_sign_in_is_refused() {
    let h = harness();
    let login = h.begin();
    let mut callback = login.callback(&[("iss", ISSUER)]);
    callback.query = vec![
        gatehouse_plugin_api::Pair::new("state", "another-sign-in"),
        gatehouse_plugin_api::Pair::new("code", "test-code"),
    ]
    .into();
    let result = h.fake.call(|host| h.idp.complete_login(host, &callback));
    refused(result, ErrorKind::INVALID_RESPONSE, "`state`");
}

#[test]
fn a_token_endpoint_refusal_is_reported() {
    let h = harness();
    let login = h.begin();
    h.fake.expect(
        Expectation::new("POST", &h.provider.token_url()).reply_json(
            400,
            &json!({ "error": "invalid_grant", "error_description": "PKCE verification failed" }),
        ),
    );
    let result = h.fake.call(|host| {
        h.idp
            .complete_login(host, &login.callback(&[("iss", ISSUER)]))
    });
    refused(
        result,
        ErrorKind::ACCESS_DENIED,
        "invalid_grant: PKCE verification failed",
    );
}

// ---------------------------------------------------------------------------------------
// UserInfo

/// A sign-in through a relying party with `use_userinfo`, on a provider whose discovery
/// advertises UserInfo (or not), the UserInfo request answered by `reply` when given.
fn userinfo_sign_in(
    use_userinfo: UseUserinfo,
    advertised: bool,
    reply: Option<Expectation>,
) -> (
    Harness,
    Result<gatehouse_plugin_api::Identity, gatehouse_plugin_api::PluginError>,
) {
    let mut config = config();
    config.use_userinfo = use_userinfo;
    let provider = TestProvider::new(ISSUER);
    let doc = if advertised {
        provider.discovery_with_userinfo()
    } else {
        provider.discovery()
    };
    let h = with(config, Some(doc));
    let login = h.begin();
    let token = h.provider.sign(Signer::RsaA, &h.claims(&login));
    h.provider.expect_token(&h.fake, &token);
    if let Some(reply) = reply {
        h.fake.expect(reply);
    }
    let result = h.fake.call(|host| {
        h.idp
            .complete_login(host, &login.callback(&[("iss", ISSUER)]))
    });
    (h, result)
}

fn userinfo_reply(body: &Value) -> Expectation {
    Expectation::new("GET", &TestProvider::new(ISSUER).userinfo_url()).reply_json(200, body)
}

#[test]
fn userinfo_is_asked_by_default_when_discovery_advertises_it_and_merged() {
    assert_eq!(config().use_userinfo, UseUserinfo::Auto, "the default");
    let reply = userinfo_reply(&json!({
        "sub": SUBJECT,
        "department": "R&D",
        "address": { "locality": "London" },
        "name": "Ada King",
        "iss": "https://elsewhere.test",
    }))
    .check(|request| match header(request, "authorization") {
        Some(value) if value == "Bearer test-access-token" => Ok(()),
        other => Err(format!("authorization {other:?}")),
    });
    let (h, result) = userinfo_sign_in(UseUserinfo::Auto, true, Some(reply));
    let identity = result.expect("signs in");
    assert_eq!(identity.attribute("department"), Some("R&D"));
    assert_eq!(identity.attribute("address.locality"), Some("London"));
    // The ID token's claims stay where UserInfo is silent; UserInfo wins for a profile
    // claim both carry, never for a protocol claim.
    assert_eq!(identity.attribute("email"), Some("ada@example.test"));
    assert_eq!(identity.attribute("email_verified"), Some("true"));
    assert_eq!(identity.attribute("name"), Some("Ada King"));
    assert_eq!(identity.attribute("iss"), Some(ISSUER));
    h.fake.assert_script_done();
}

#[test]
fn no_userinfo_request_when_discovery_names_no_endpoint_or_it_is_switched_off() {
    for (use_userinfo, advertised) in [(UseUserinfo::Auto, false), (UseUserinfo::Never, true)] {
        let (h, result) = userinfo_sign_in(use_userinfo, advertised, None);
        let identity = result.expect("signs in on the ID token's claims");
        assert_eq!(identity.attribute("email"), Some("ada@example.test"));
        assert_eq!(
            h.requests_to(&h.provider.userinfo_url()),
            0,
            "{use_userinfo:?}"
        );
        h.fake.assert_script_done();
    }
}

#[test]
fn use_userinfo_true_without_an_advertised_endpoint_is_refused_with_the_fix() {
    let (h, result) = userinfo_sign_in(UseUserinfo::Always, false, None);
    let error = refused(result, ErrorKind::INVALID_RESPONSE, "no userinfo_endpoint");
    assert!(error.message().contains("\"auto\""), "{error}");
    assert_eq!(h.requests_to(&h.provider.userinfo_url()), 0);
}

#[test]
fn userinfo_about_another_subject_is_refused() {
    for use_userinfo in [UseUserinfo::Auto, UseUserinfo::Always] {
        let reply = userinfo_reply(&json!({ "sub": "someone-else", "email": "x@evil.test" }));
        let (_, result) = userinfo_sign_in(use_userinfo, true, Some(reply));
        let error = refused(result, ErrorKind::INVALID_RESPONSE, "about `someone-else`");
        assert!(error.message().contains(SUBJECT), "{error}");
    }
    let (_, result) = userinfo_sign_in(
        UseUserinfo::Auto,
        true,
        Some(userinfo_reply(&json!({ "email": "x@evil.test" }))),
    );
    refused(result, ErrorKind::INVALID_RESPONSE, "no `sub`");
}

#[test]
fn an_oversized_userinfo_answer_is_refused_by_the_host_cap() {
    // The host reads at most `http_max_response_bytes` and fails the request past it;
    // the core passes that failure on and signs nobody in.
    let url = TestProvider::new(ISSUER).userinfo_url();
    let cap = gatehouse_plugin_api::PluginError::idp_unavailable(format!(
        "GET {url}: the response is larger than the 1048576 bytes allowed ([host] or [[idp]] http_max_response_bytes)"
    ));
    let (_, result) = userinfo_sign_in(
        UseUserinfo::Auto,
        true,
        Some(Expectation::new("GET", &url).fail(cap)),
    );
    refused(
        result,
        ErrorKind::IDP_UNAVAILABLE,
        "http_max_response_bytes",
    );
}

#[test]
fn an_unreadable_or_refused_userinfo_answer_is_refused_saying_how_to_do_without() {
    let url = TestProvider::new(ISSUER).userinfo_url();
    let cases = [
        (
            Expectation::new("GET", &url).reply(200, "application/json", b"[1, 2]"),
            ErrorKind::INVALID_RESPONSE,
            "not a JSON object",
        ),
        (
            Expectation::new("GET", &url).reply(200, "application/json", b"{\"sub\": "),
            ErrorKind::INVALID_RESPONSE,
            "not a JSON object",
        ),
        (
            Expectation::new("GET", &url).reply(200, "text/html", b"<html>"),
            ErrorKind::INVALID_RESPONSE,
            "`text/html`",
        ),
        (
            Expectation::new("GET", &url).reply_json(401, &json!({ "error": "invalid_token" })),
            ErrorKind::INVALID_RESPONSE,
            "HTTP 401",
        ),
        (
            Expectation::new("GET", &url).reply_json(503, &json!({})),
            ErrorKind::IDP_UNAVAILABLE,
            "HTTP 503",
        ),
    ];
    for (reply, kind, words) in cases {
        let (_, result) = userinfo_sign_in(UseUserinfo::Auto, true, Some(reply));
        let error = refused(result, kind, words);
        assert!(
            error.message().contains("`use_userinfo = false`"),
            "{error}"
        );
    }
}

/// A sign-in whose UserInfo answer is the JWT `jwt` (`application/jwt`).
fn signed_userinfo_sign_in(
    jwt: &str,
) -> Result<gatehouse_plugin_api::Identity, gatehouse_plugin_api::PluginError> {
    let reply = Expectation::new("GET", &TestProvider::new(ISSUER).userinfo_url()).reply(
        200,
        "application/jwt; charset=utf-8",
        jwt.as_bytes(),
    );
    userinfo_sign_in(UseUserinfo::Auto, true, Some(reply)).1
}

#[test]
fn a_signed_userinfo_answer_is_read_once_it_verifies() {
    let provider = TestProvider::new(ISSUER);
    let claims = json!({
        "iss": ISSUER, "aud": CLIENT_ID, "sub": SUBJECT, "department": "R&D",
    });
    for signer in [Signer::RsaA, Signer::Ed25519] {
        let identity = signed_userinfo_sign_in(&provider.sign(signer, &claims)).expect("signs in");
        assert_eq!(identity.attribute("department"), Some("R&D"));
    }
    // `iss` and `aud` may be left out.
    let bare = provider.sign(
        Signer::RsaA,
        &json!({ "sub": SUBJECT, "department": "R&D" }),
    );
    let identity = signed_userinfo_sign_in(&bare).expect("signs in");
    assert_eq!(identity.attribute("department"), Some("R&D"));
}

#[test]
fn a_signed_userinfo_answer_that_does_not_verify_is_refused() {
    let provider = TestProvider::new(ISSUER);
    let good = json!({ "iss": ISSUER, "aud": CLIENT_ID, "sub": SUBJECT, "email": "x@evil.test" });
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut claims = good.clone();
        edit(&mut claims);
        claims
    };
    let cases: Vec<(String, ErrorKind, &str)> = vec![
        (
            provider.sign(Signer::RsaBAsA, &good),
            ErrorKind::BAD_SIGNATURE,
            "the signed UserInfo answer's signature does not verify",
        ),
        (
            provider.sign(Signer::Unsigned, &good),
            ErrorKind::BAD_SIGNATURE,
            "alg \"none\"",
        ),
        (
            provider.sign(Signer::Hs256(b"an attacker's key"), &good),
            ErrorKind::BAD_SIGNATURE,
            "does not verify",
        ),
        (
            provider.sign(
                Signer::RsaA,
                &with(&|c| c["iss"] = json!("https://evil.test")),
            ),
            ErrorKind::INVALID_RESPONSE,
            "not by the configured issuer",
        ),
        (
            provider.sign(Signer::RsaA, &with(&|c| c["aud"] = json!("another-client"))),
            ErrorKind::INVALID_RESPONSE,
            "not meant for this client",
        ),
        (
            provider.sign(Signer::RsaA, &with(&|c| c["sub"] = json!("someone-else"))),
            ErrorKind::INVALID_RESPONSE,
            "about `someone-else`",
        ),
        (
            "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d".to_owned(),
            ErrorKind::INVALID_RESPONSE,
            "encrypted ones are not supported",
        ),
    ];
    for (jwt, kind, words) in cases {
        refused(signed_userinfo_sign_in(&jwt), kind, words);
    }
}

// ---------------------------------------------------------------------------------------
// Keys, discovery and caching

#[test]
fn an_unknown_kid_triggers_one_rate_limited_jwks_refresh() {
    let h = harness();
    let jwks_url = h.provider.jwks_url();
    assert_eq!(h.requests_to(&jwks_url), 1, "the warm-up fetch");

    // Key B is new: the cached set lacks it, one refresh finds it.
    let login = h.begin();
    let token = h.provider.sign(Signer::RsaB, &h.claims(&login));
    h.provider.expect_token(&h.fake, &token);
    h.provider.expect_jwks(&h.fake, &h.provider.rotated_jwks());
    h.fake
        .call(|host| {
            h.idp
                .complete_login(host, &login.callback(&[("iss", ISSUER)]))
        })
        .expect("signs in after one refresh");
    assert_eq!(h.requests_to(&jwks_url), 2, "exactly one refetch");
    h.fake.assert_script_done();

    // Tokens naming keys nobody has, within the rate-limit window: no refetch.
    refused(
        h.sign_in(Signer::RsaAWithKid("random-kid-1"), |_| {}),
        ErrorKind::BAD_SIGNATURE,
        "`random-kid-1`",
    );
    refused(
        h.sign_in(Signer::RsaAWithKid("random-kid-2"), |_| {}),
        ErrorKind::BAD_SIGNATURE,
        "jwks_refresh_min_seconds",
    );
    assert_eq!(h.requests_to(&jwks_url), 2, "no refetch inside the window");
    h.fake.assert_script_done();

    // After the window, one more refresh is allowed (and finds nothing).
    h.fake.advance(std::time::Duration::from_secs(61));
    let login = h.begin();
    let token = h
        .provider
        .sign(Signer::RsaAWithKid("random-kid-3"), &h.claims(&login));
    h.provider.expect_token(&h.fake, &token);
    h.provider.expect_jwks(&h.fake, &h.provider.rotated_jwks());
    refused(
        h.fake.call(|host| {
            h.idp
                .complete_login(host, &login.callback(&[("iss", ISSUER)]))
        }),
        ErrorKind::BAD_SIGNATURE,
        "even after fetching it again",
    );
    assert_eq!(h.requests_to(&jwks_url), 3);
    h.fake.assert_script_done();
}

#[test]
fn discovery_is_cached_for_its_ttl_then_fetched_again() {
    let h = harness();
    let discovery = h.provider.discovery_url();
    h.begin();
    h.begin();
    assert_eq!(h.requests_to(&discovery), 1);
    h.fake.advance(std::time::Duration::from_secs(3601));
    h.provider.expect_discovery(&h.fake);
    h.begin();
    assert_eq!(h.requests_to(&discovery), 2);
    h.fake.assert_script_done();
}

#[test]
fn a_discovery_document_naming_another_issuer_is_refused() {
    let fake = FakeHost::new();
    let provider = TestProvider::new(ISSUER);
    let idp = RelyingParty::new(config(), StandardProfile).expect("valid");
    let mut doc = provider.discovery();
    doc["issuer"] = json!("https://idp.test/");
    provider.expect_discovery_doc(&fake, &doc);
    let result = fake.call(|host| {
        idp.begin_login(
            host,
            &gatehouse_plugin_api::BeginRequest {
                callback_url: "https://gatehouse.test/cb".into(),
                state_token: "t".into(),
                login_hint: None.into(),
            },
        )
    });
    let error = result.expect_err("refused");
    assert_eq!(error.kind, ErrorKind::INVALID_RESPONSE);
    assert!(
        error.message().contains("trailing slash"),
        "{}",
        error.message()
    );
}

#[test]
fn a_discovery_document_with_plain_http_endpoints_is_refused() {
    let fake = FakeHost::new();
    let provider = TestProvider::new(ISSUER);
    let idp = RelyingParty::new(config(), StandardProfile).expect("valid");
    let mut doc = provider.discovery();
    doc["token_endpoint"] = json!("http://idp.test/token");
    provider.expect_discovery_doc(&fake, &doc);
    let error = fake
        .call(|host| provider::metadata(host, idp.config()))
        .expect_err("refused");
    assert!(error.to_string().contains("token_endpoint"), "{error}");
}

#[test]
fn an_unreachable_provider_is_reported_as_unavailable() {
    let fake = FakeHost::new();
    let idp = RelyingParty::new(config(), StandardProfile).expect("valid");
    fake.expect(
        Expectation::new("GET", "https://idp.test/.well-known/openid-configuration").reply(
            503,
            "text/plain",
            b"down",
        ),
    );
    let error = fake
        .call(|host| {
            idp.begin_login(
                host,
                &gatehouse_plugin_api::BeginRequest {
                    callback_url: "https://gatehouse.test/cb".into(),
                    state_token: "t".into(),
                    login_hint: None.into(),
                },
            )
        })
        .expect_err("refused");
    assert_eq!(error.kind, ErrorKind::IDP_UNAVAILABLE);
}

// ---------------------------------------------------------------------------------------
// Logout

#[test]
fn logout_goes_to_the_end_session_endpoint_with_the_id_token_hint() {
    let h = harness();
    let identity = h.sign_in(Signer::RsaA, |_| {}).expect("signs in");
    let step = h
        .fake
        .call(|host| {
            h.idp.logout(
                host,
                &LogoutRequest {
                    subject: identity.subject.clone(),
                    logout_state: identity.logout_state.clone(),
                    return_url: "https://gatehouse.test/logged-out".into(),
                },
            )
        })
        .expect("logout")
        .expect("a redirect");
    let url = url::Url::parse(step.url.as_str()).expect("url");
    assert!(step.url.starts_with("https://idp.test/session/end?"));
    let param = |name: &str| {
        url.query_pairs()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(
        param("id_token_hint").as_deref(),
        std::str::from_utf8(&identity.logout_state).ok()
    );
    assert_eq!(
        param("post_logout_redirect_uri").as_deref(),
        Some("https://gatehouse.test/logged-out")
    );
    assert_eq!(param("client_id").as_deref(), Some(CLIENT_ID));
}

#[test]
fn logout_is_none_without_an_end_session_endpoint() {
    let mut doc = TestProvider::new(ISSUER).discovery();
    doc.as_object_mut()
        .map(|d| d.remove("end_session_endpoint"));
    let h = with(config(), Some(doc));
    let step = h
        .fake
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
        .expect("logout");
    assert_eq!(step, None);
}
