//! The online check (plugin API 1.3) against a scripted provider on the test kit's
//! `FakeHost`: a usable provider gives no finding and says what it reached; an unreachable
//! discovery document, another issuer, a missing token endpoint, an unreachable key set and
//! a key set without a usable key each give one error naming the problem; nothing is cached
//! or stored, so the check always asks the provider.

use gatehouse_oidc_core::{
    RelyingParty, RpConfig, StandardProfile,
    testing::{CLIENT_ID, CLIENT_SECRET, TestProvider},
};
use gatehouse_plugin_api::{
    IdentityProvider, OnlineReport, PluginError, Secret, Severity,
    testkit::{Expectation, FakeHost},
};
use serde_json::json;

const ISSUER: &str = "https://idp.test";

fn relying_party() -> RelyingParty<StandardProfile> {
    let mut config = RpConfig::new(ISSUER.into(), "issuer", CLIENT_ID.into());
    config.client_secret = Some(Secret::new(CLIENT_SECRET));
    RelyingParty::new(config, StandardProfile).expect("valid config")
}

fn check(fake: &FakeHost) -> OnlineReport {
    let report = fake
        .call(|host| relying_party().check_online(host))
        .expect("the check runs");
    fake.assert_script_done();
    report
}

/// The one error of `report`, with its setting.
fn only_error(report: &OnlineReport) -> (String, Option<String>, String) {
    assert_eq!(report.findings.len(), 1, "{report:?}");
    let finding = &report.findings[0];
    assert_eq!(finding.severity, Severity::ERROR, "{finding:?}");
    (
        finding.message.to_string(),
        finding.setting.clone().into_option().map(|s| s.to_string()),
        finding
            .help
            .clone()
            .into_option()
            .map(|s| s.to_string())
            .unwrap_or_default(),
    )
}

#[test]
fn a_usable_provider_gives_no_finding_and_says_what_was_reached() {
    let fake = FakeHost::new();
    let provider = TestProvider::new(ISSUER);
    provider.expect_discovery(&fake);
    provider.expect_jwks(&fake, &provider.jwks());
    let report = check(&fake);
    assert!(report.findings.is_empty(), "{report:?}");
    let checked: Vec<String> = report.checked.iter().map(|c| c.to_string()).collect();
    assert_eq!(checked.len(), 2, "{checked:?}");
    assert!(
        checked[0].contains(&provider.discovery_url()),
        "{checked:?}"
    );
    assert!(checked[0].contains(&provider.token_url()), "{checked:?}");
    assert!(
        checked[1].contains("2 usable signing key(s)"),
        "{checked:?}"
    );

    // Nothing was kept: a second check asks the provider again.
    provider.expect_discovery(&fake);
    provider.expect_jwks(&fake, &provider.jwks());
    assert!(check(&fake).findings.is_empty());
}

#[test]
fn an_unreachable_discovery_document_is_an_error_about_the_issuer() {
    let fake = FakeHost::new();
    let provider = TestProvider::new(ISSUER);
    fake.expect(Expectation::new("GET", &provider.discovery_url()).fail(
        PluginError::idp_unavailable(
            "GET https://idp.test/.well-known/openid-configuration: could not connect",
        ),
    ));
    let report = check(&fake);
    let (message, setting, help) = only_error(&report);
    assert!(message.contains("could not connect"), "{message}");
    assert_eq!(setting.as_deref(), Some("issuer"));
    assert!(help.contains("can reach"), "{help}");
    assert!(report.checked.is_empty());
}

#[test]
fn a_discovery_document_naming_another_issuer_is_an_error_with_the_fix() {
    let fake = FakeHost::new();
    let provider = TestProvider::new(ISSUER);
    let mut doc = provider.discovery();
    doc["issuer"] = json!("https://idp.test/");
    provider.expect_discovery_doc(&fake, &doc);
    let (message, setting, help) = only_error(&check(&fake));
    assert!(
        message.contains("names the issuer `https://idp.test/`"),
        "{message}"
    );
    assert_eq!(setting.as_deref(), Some("issuer"));
    assert!(help.contains("must equal `issuer`"), "{help}");
}

#[test]
fn a_discovery_document_without_a_token_endpoint_is_an_error() {
    let fake = FakeHost::new();
    let provider = TestProvider::new(ISSUER);
    let mut doc = provider.discovery();
    doc.as_object_mut()
        .expect("object")
        .remove("token_endpoint");
    provider.expect_discovery_doc(&fake, &doc);
    let (message, _, _) = only_error(&check(&fake));
    assert!(message.contains("has no token_endpoint"), "{message}");
}

#[test]
fn a_missing_discovery_document_is_an_error() {
    let fake = FakeHost::new();
    let provider = TestProvider::new(ISSUER);
    fake.expect(Expectation::new("GET", &provider.discovery_url()).reply(
        404,
        "text/html",
        b"not here",
    ));
    let (message, setting, _) = only_error(&check(&fake));
    assert!(message.contains("answered HTTP 404"), "{message}");
    assert_eq!(setting.as_deref(), Some("issuer"));
}

#[test]
fn an_unreachable_key_set_is_an_error_after_a_good_discovery() {
    let fake = FakeHost::new();
    let provider = TestProvider::new(ISSUER);
    provider.expect_discovery(&fake);
    fake.expect(Expectation::new("GET", &provider.jwks_url()).reply(503, "text/plain", b"down"));
    let report = check(&fake);
    let (message, setting, _) = only_error(&report);
    assert!(message.contains("key set (JWKS)"), "{message}");
    assert!(message.contains("HTTP 503"), "{message}");
    assert_eq!(setting, None);
    assert_eq!(report.checked.len(), 1, "discovery was fine: {report:?}");
}

#[test]
fn a_key_set_without_a_usable_key_is_an_error() {
    let fake = FakeHost::new();
    let provider = TestProvider::new(ISSUER);
    provider.expect_discovery(&fake);
    provider.expect_jwks(
        &fake,
        &json!({ "keys": [{ "kty": "oct", "k": "c2VjcmV0" }] }),
    );
    let (message, _, help) = only_error(&check(&fake));
    assert!(
        message.contains("holds no key Gatehouse can use"),
        "{message}"
    );
    assert!(help.contains("at least one"), "{help}");
}
