//! The SP metadata the SAML plugin serves at `/sso/{idp}/metadata`, through the real
//! library and router: it validates against the OASIS metadata schema (pysaml2's copy of
//! saml-schema-metadata-2.0.xsd, offline), is served while the IdP is hidden, lists the
//! ACS and SLO endpoints of every host of the domain, and each IdP on each domain has an
//! entity id of its own.

use std::path::{Path, PathBuf};
use std::process::Command;

use gatehouse_tests::TestHost;
use gatehouse_tests::saml::{
    ACME_HOST, IdpConfig, host_config, idp, key_file, sp_metadata, support_dir,
};

/// An IdP's metadata with one signing certificate (the samlify peer's test certificate),
/// written to `dir`: enough for the SP side, which is all this file tests.
fn idp_metadata(dir: &Path, entity_id: &str) -> PathBuf {
    let pem = std::fs::read_to_string(key_file("samlify-idp.crt")).expect("test certificate");
    let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let xml = format!(
        r#"<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity_id}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{der}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.test/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"#
    );
    let path = dir.join(format!("{}.xml", entity_id.replace(['/', ':'], "_")));
    std::fs::write(&path, xml).expect("write the IdP metadata");
    path
}

/// Runs the schema check in the SAML peers' venv (scripts/test-peers installs it).
fn assert_schema_valid(dir: &Path, name: &str, metadata: &str) {
    let python = support_dir().join(".venv/bin/python");
    assert!(
        python.exists(),
        "the SAML peers' Python venv is missing: run scripts/test-peers"
    );
    let file = dir.join(name);
    std::fs::write(&file, metadata).expect("write the SP metadata");
    let output = Command::new(python)
        .arg(support_dir().join("validate_metadata.py"))
        .arg(&file)
        .output()
        .expect("run validate_metadata.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.trim() == "valid",
        "{name} is not valid SAML metadata:\n{stdout}{}\n{metadata}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn entity_id(metadata: &str) -> String {
    gatehouse_tests::saml::entity_id_of(metadata)
}

#[tokio::test]
async fn sp_metadata_is_schema_valid_per_host_and_its_own_per_idp_and_domain() {
    let files = tempfile::tempdir().expect("temporary directory");
    let root_idp = idp_metadata(files.path(), "https://idp-a.example.test/metadata");
    let acme_idp = idp_metadata(files.path(), "https://idp-b.example.test/metadata");
    let idps = [
        idp(&IdpConfig {
            idp_keys: "behaviour = \"hidden\"",
            ..IdpConfig::new("corp", &root_idp)
        }),
        idp(&IdpConfig {
            domain: "acme",
            idp_keys: "behaviour = \"hidden\"",
            // No SP key: metadata without KeyDescriptors must be valid too.
            settings: "",
            ..IdpConfig::new("acme-corp", &acme_idp)
        })
        .replace(
            &format!(
                "sp_private_key = {{ file = \"{}\" }}\n",
                key_file("sp.key").display()
            ),
            "",
        )
        .replace(
            &format!(
                "sp_certificate = {{ file = \"{}\" }}\n",
                key_file("sp.crt").display()
            ),
            "",
        ),
    ];
    let host = TestHost::start(&host_config(&idps.concat())).await;

    let root = sp_metadata(&host, "localhost", "corp").await;
    let acme = sp_metadata(&host, ACME_HOST, "acme-corp").await;
    assert_schema_valid(files.path(), "root.xml", &root);
    assert_schema_valid(files.path(), "acme.xml", &acme);

    assert_eq!(entity_id(&root), "http://localhost/sso/corp/metadata");
    assert_eq!(
        entity_id(&acme),
        format!("http://{ACME_HOST}/sso/acme-corp/metadata")
    );
    assert!(
        root.contains("Location=\"http://localhost/sso/corp/callback\""),
        "{root}"
    );
    assert!(
        root.contains("Location=\"http://localhost/sso/corp/logout\""),
        "{root}"
    );
    assert!(
        root.contains("use=\"signing\""),
        "the SP certificate is published: {root}"
    );
    assert!(root.contains("AuthnRequestsSigned=\"true\""), "{root}");
    assert!(
        !acme.contains("KeyDescriptor"),
        "no SP certificate, no key: {acme}"
    );
    assert!(acme.contains("AuthnRequestsSigned=\"false\""), "{acme}");

    // An IdP of one domain is not served on another's host.
    let mut stranger = host.browser(ACME_HOST);
    assert_eq!(
        stranger.get("/sso/corp/metadata").await.status,
        axum::http::StatusCode::NOT_FOUND
    );
}
