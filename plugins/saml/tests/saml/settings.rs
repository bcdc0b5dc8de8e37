//! Settings refusals: each names the setting it is about; and the conformance check.

use gatehouse_plugin_api::testkit::conformance;
use gatehouse_plugin_api::{ErrorKind, InstanceConfig, Plugin};
use gatehouse_saml::SamlSp;
use serde_json::{Value, json};

use crate::support::*;

#[track_caller]
fn refused_setting(settings: Value, words: &[&str]) {
    let error = match build(settings.clone()) {
        Ok(_) => panic!("settings {settings} must be refused"),
        Err(error) => error,
    };
    assert_eq!(
        error.kind,
        ErrorKind::INVALID_SETTINGS,
        "{}",
        error.message()
    );
    for word in words {
        assert!(
            error.message().contains(word),
            "`{word}` not in: {}",
            error.message()
        );
    }
}

fn metadata_without_keys() -> String {
    idp_metadata(&[], true)
}

#[test]
fn metadata_problems_are_refused_naming_idp_metadata() {
    let encryption_only =
        idp_metadata(&[IDP_CERT], true).replace("use=\"signing\"", "use=\"encryption\"");
    refused_setting(
        json!({ "idp_metadata": encryption_only }),
        &["idp_metadata", "only an encryption key"],
    );
    refused_setting(
        json!({ "idp_metadata": metadata_without_keys() }),
        &["idp_metadata", "no signing certificate"],
    );
    let no_redirect = idp_metadata(&[IDP_CERT], true).replace(
        "<md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\"",
        "<md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\"",
    );
    refused_setting(
        json!({ "idp_metadata": no_redirect }),
        &["idp_metadata", "HTTP-Redirect"],
    );
    let sp_metadata =
        idp_metadata(&[IDP_CERT], true).replace("IDPSSODescriptor", "SPSSODescriptor");
    refused_setting(
        json!({ "idp_metadata": sp_metadata }),
        &["idp_metadata", "IDPSSODescriptor"],
    );
    let javascript = idp_metadata(&[IDP_CERT], true).replace(IDP_SSO, "javascript:alert(1)");
    refused_setting(
        json!({ "idp_metadata": javascript }),
        &["idp_metadata", "http(s)"],
    );
    let bad_slo = idp_metadata(&[IDP_CERT], true).replace(IDP_SLO, "file:///etc/passwd");
    refused_setting(
        json!({ "idp_metadata": bad_slo }),
        &["idp_metadata", "SingleLogoutService"],
    );
    refused_setting(
        json!({ "idp_metadata": "<md:EntityDescriptor" }),
        &["idp_metadata", "well-formed"],
    );
    let doctype = format!(
        "<!DOCTYPE x>{}",
        idp_metadata(&[IDP_CERT], true).replace("<?xml version=\"1.0\"?>\n", "")
    );
    refused_setting(
        json!({ "idp_metadata": doctype }),
        &["idp_metadata", "DOCTYPE"],
    );
    let garbage_cert =
        idp_metadata(&[IDP_CERT], true).replace(&cert_b64(IDP_CERT), "bm90IGEgY2VydA==");
    refused_setting(
        json!({ "idp_metadata": garbage_cert }),
        &["idp_metadata", "X509Certificate"],
    );
    let aggregate = format!(
        "<md:EntitiesDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\">{}</md:EntitiesDescriptor>",
        idp_metadata(&[IDP_CERT], true).replace("<?xml version=\"1.0\"?>\n", "")
    );
    refused_setting(
        json!({ "idp_metadata": aggregate }),
        &["idp_metadata", "EntitiesDescriptor"],
    );
}

#[test]
fn source_and_key_settings_are_refused_naming_the_setting() {
    refused_setting(json!({}), &["idp_metadata", "idp_metadata_url"]);
    refused_setting(
        json!({ "idp_metadata": idp_metadata(&[IDP_CERT], true), "idp_metadata_url": "https://idp.example.test/md" }),
        &["idp_metadata", "idp_metadata_url", "both"],
    );
    refused_setting(
        json!({ "idp_metadata_url": "ftp://idp.example.test/md" }),
        &["idp_metadata_url", "http(s)"],
    );
    refused_setting(
        settings(json!({ "sp_private_key": SP_KEY })),
        &["sp_private_key", "sp_certificate"],
    );
    refused_setting(
        settings(json!({ "sp_certificate": SP_CERT })),
        &["sp_certificate", "sp_private_key"],
    );
    refused_setting(
        settings(json!({ "sp_private_key": "nope", "sp_certificate": SP_CERT })),
        &["sp_private_key", "PEM"],
    );
    refused_setting(
        settings(json!({ "sp_private_key": SP_KEY, "sp_certificate": IDP_CERT })),
        &["sp_certificate", "does not belong"],
    );
    refused_setting(
        settings(json!({ "clock_skew_seconds": 86400 })),
        &["clock_skew_seconds"],
    );
    refused_setting(
        settings(json!({ "name_id_format": "email" })),
        &["name_id_format"],
    );
    refused_setting(settings(json!({ "colour": "blue" })), &["colour"]);
}

#[test]
fn the_private_key_never_shows_in_debug_or_errors() {
    let error = build(settings(json!({ "sp_private_key": SP_KEY })))
        .err()
        .expect("refused");
    assert!(!error.message().contains("PRIVATE KEY"));
    let error = build(settings(
        json!({ "sp_private_key": SP_KEY, "sp_certificate": IDP_CERT }),
    ))
    .err()
    .expect("refused");
    assert!(!error.message().contains("PRIVATE KEY"));
}

#[test]
fn without_a_placement_the_entity_id_must_be_given() {
    let error = SamlSp::new(&InstanceConfig::new("corp", settings(json!({}))))
        .err()
        .expect("refused");
    assert!(error.message().contains("1.2"), "{}", error.message());
    assert!(
        SamlSp::new(&InstanceConfig::new(
            "corp",
            settings(json!({ "sp_entity_id": SP_ENTITY }))
        ))
        .is_ok()
    );
}

#[test]
fn passes_the_conformance_check() {
    // The test kit builds instances through the 1.0 entry point (no placement), so the
    // entity id is given explicitly.
    conformance::check::<SamlSp>(&conformance::Case {
        good_settings: settings(json!({ "sp_entity_id": SP_ENTITY })),
        bad_settings: vec![
            (
                json!({ "idp_metadata": metadata_without_keys(), "sp_entity_id": SP_ENTITY }),
                "idp_metadata",
            ),
            (
                settings(json!({ "sp_entity_id": SP_ENTITY, "sp_private_key": SP_KEY })),
                "sp_certificate",
            ),
            (json!({ "sp_entity_id": SP_ENTITY }), "idp_metadata"),
            (
                settings(json!({ "sp_entity_id": SP_ENTITY, "colour": "blue" })),
                "colour",
            ),
        ],
    });
}
