//! The SP side: metadata content, AuthnRequests (ids, RelayState, signed redirects), the
//! manifest, and the metadata URL source with its refresh task.

use base64::Engine as _;
use gatehouse_plugin_api::testkit::{Expectation, FakeHost};
use gatehouse_plugin_api::{ErrorKind, IdentityProvider, Plugin, PluginError};
use gatehouse_saml::SamlSp;
use openssl::{hash::MessageDigest, sign::Verifier, x509::X509};
use serde_json::json;

use crate::support::*;

#[test]
fn manifest_declares_the_saml_plugin() {
    let manifest = SamlSp::manifest();
    assert_eq!(manifest.id.as_str(), "saml");
    assert_eq!(manifest.protocol.as_str(), "saml");
    assert_eq!(manifest.state_parameter.as_str(), "RelayState");
    assert_eq!(manifest.tasks.len(), 1);
    assert_eq!(manifest.tasks[0].as_str(), "refresh_metadata");
    let attributes: Vec<&str> = manifest.attributes.iter().map(|a| a.as_str()).collect();
    assert_eq!(attributes, ["NameID", "NameIDFormat", "SessionIndex"]);
    let routes = SamlSp::routes();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].path.as_str(), "logout");
}

#[test]
fn sp_metadata_lists_every_host_and_the_certificate() {
    let sp = sp(json!({
        "sp_private_key": SP_KEY,
        "sp_certificate": SP_CERT,
        "name_id_format": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    }));
    let document = FakeHost::new()
        .call(|host| sp.metadata(host))
        .expect("metadata");
    assert_eq!(
        document.content_type.as_str(),
        "application/samlmetadata+xml"
    );
    let xml = document.body.as_str();
    let parsed = roxmltree::Document::parse(xml).expect("well-formed");
    let root = parsed.root_element();
    assert_eq!(root.attribute("entityID"), Some(SP_ENTITY));
    let descriptor = root.first_element_child().expect("SPSSODescriptor");
    assert_eq!(descriptor.tag_name().name(), "SPSSODescriptor");
    assert_eq!(descriptor.attribute("AuthnRequestsSigned"), Some("true"));
    assert_eq!(descriptor.attribute("WantAssertionsSigned"), Some("true"));
    let named = |name: &str| -> Vec<roxmltree::Node<'_, '_>> {
        descriptor
            .children()
            .filter(|n| n.tag_name().name() == name)
            .collect()
    };
    let acs = named("AssertionConsumerService");
    assert_eq!(acs.len(), 2);
    assert_eq!(acs[0].attribute("Location"), Some(ACS));
    assert_eq!(acs[0].attribute("index"), Some("0"));
    assert_eq!(acs[0].attribute("isDefault"), Some("true"));
    assert_eq!(
        acs[1].attribute("Location"),
        Some(&*format!("{OTHER_BASE}/sso/corp/callback"))
    );
    assert_eq!(acs[1].attribute("index"), Some("1"));
    assert!(
        acs.iter()
            .all(|a| a.attribute("Binding")
                == Some("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"))
    );
    let slo = named("SingleLogoutService");
    assert_eq!(slo.len(), 4);
    assert_eq!(slo[0].attribute("Location"), Some(SLO));
    let keys = named("KeyDescriptor");
    let uses: Vec<_> = keys.iter().map(|k| k.attribute("use")).collect();
    assert_eq!(uses, [Some("signing"), Some("encryption")]);
    assert!(xml.contains(&cert_b64(SP_CERT)));
    assert_eq!(named("NameIDFormat").len(), 1);
    // Schema order: KeyDescriptor, SingleLogoutService, NameIDFormat, AssertionConsumerService.
    let order: Vec<&str> = descriptor
        .children()
        .filter(|n| n.is_element())
        .map(|n| n.tag_name().name())
        .collect();
    let rank = |name: &str| {
        [
            "KeyDescriptor",
            "SingleLogoutService",
            "NameIDFormat",
            "AssertionConsumerService",
        ]
        .iter()
        .position(|n| *n == name)
    };
    assert!(
        order.windows(2).all(|w| rank(w[0]) <= rank(w[1])),
        "{order:?}"
    );

    let plain = crate::support::sp(json!({ "want_assertions_signed": false }));
    let document = FakeHost::new()
        .call(|host| plain.metadata(host))
        .expect("metadata");
    assert!(
        document
            .body
            .contains("AuthnRequestsSigned=\"false\" WantAssertionsSigned=\"false\"")
    );
    assert!(!document.body.contains("KeyDescriptor"));
}

#[test]
fn the_entity_id_can_be_set() {
    let sp = sp(json!({ "sp_entity_id": "urn:example:sp" }));
    let document = FakeHost::new()
        .call(|host| sp.metadata(host))
        .expect("metadata");
    assert!(document.body.contains("entityID=\"urn:example:sp\""));
}

#[test]
fn the_authn_request_carries_a_128_bit_id_the_state_token_and_our_urls() {
    let flow = Flow::begin(
        json!({ "name_id_format": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" }),
    );
    assert!(flow.url.starts_with(&format!("{IDP_SSO}?SAMLRequest=")));
    assert_eq!(
        param(&flow.url, "RelayState").as_deref(),
        Some("state-token-123")
    );
    assert!(
        param(&flow.url, "Signature").is_none(),
        "no SP key, no signature"
    );
    let request = inflate(&param(&flow.url, "SAMLRequest").expect("request"));
    let id = xml_id(&request);
    assert_eq!(id.len(), 33);
    assert!(id.starts_with('_') && id[1..].chars().all(|c| c.is_ascii_hexdigit()));
    let parsed = roxmltree::Document::parse(&request).expect("well-formed");
    let root = parsed.root_element();
    assert_eq!(root.tag_name().name(), "AuthnRequest");
    assert_eq!(root.attribute("Destination"), Some(IDP_SSO));
    assert_eq!(root.attribute("AssertionConsumerServiceURL"), Some(ACS));
    assert_eq!(
        root.attribute("ProtocolBinding"),
        Some("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST")
    );
    assert_eq!(root.attribute("IssueInstant"), Some(&*instant(flow.now())));
    assert!(request.contains(&format!("<saml:Issuer>{SP_ENTITY}</saml:Issuer>")));
    assert!(
        request.contains(
            "NameIDPolicy Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:persistent\""
        )
    );

    // Another sign-in, another id: 128 bits from the host's randomness.
    let other = Flow::begin(json!({}));
    let second = other
        .fake
        .call(|host| other.sp.begin_login(host, &begin_request("t2")))
        .expect("begins");
    let second_id = xml_id(&inflate(
        &param(&second.step.url, "SAMLRequest").expect("request"),
    ));
    assert_ne!(
        second_id,
        xml_id(&inflate(
            &param(&other.url, "SAMLRequest").expect("request")
        ))
    );
}

#[test]
fn the_acs_url_follows_the_host_the_browser_came_on() {
    let sp = sp(json!({}));
    let fake = FakeHost::new();
    let mut request = begin_request("t");
    request.callback_url = format!("{OTHER_BASE}/sso/corp/callback").as_str().into();
    let begun = fake
        .call(|host| sp.begin_login(host, &request))
        .expect("begins");
    let xml = inflate(&param(&begun.step.url, "SAMLRequest").expect("request"));
    assert!(xml.contains(&format!(
        "AssertionConsumerServiceURL=\"{OTHER_BASE}/sso/corp/callback\""
    )));
    request.callback_url = "https://evil.test/sso/corp/callback".into();
    let error = fake
        .call(|host| sp.begin_login(host, &request))
        .expect_err("not ours");
    assert_eq!(error.kind, ErrorKind::INTERNAL);
}

#[test]
fn a_signed_redirect_verifies_with_the_sp_certificate_over_the_exact_query() {
    let flow = Flow::begin(json!({ "sp_private_key": SP_KEY, "sp_certificate": SP_CERT }));
    let query = flow.url.split_once('?').expect("a query").1;
    let (signed, signature) = query.split_once("&Signature=").expect("signed");
    assert!(
        signed.ends_with("&SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256")
    );
    let signature = base64::engine::general_purpose::STANDARD
        .decode(
            url::form_urlencoded::parse(format!("s={signature}").as_bytes())
                .next()
                .expect("s")
                .1
                .as_bytes(),
        )
        .expect("base64");
    let public = X509::from_pem(SP_CERT.as_bytes())
        .and_then(|c| c.public_key())
        .expect("cert");
    let mut verifier = Verifier::new(MessageDigest::sha256(), &public).expect("verifier");
    verifier.update(signed.as_bytes()).expect("update");
    assert!(
        verifier.verify(&signature).expect("verify"),
        "the signature covers the exact query"
    );
}

/// Scripts one answer of the IdP's metadata endpoint with these signing certificates.
fn serve_metadata(fake: &FakeHost, certs: &[&str]) {
    let body = idp_metadata(certs, true);
    fake.expect(
        Expectation::new("GET", "https://idp.example.test/md").reply(
            200,
            "application/xml",
            body.as_bytes(),
        ),
    );
}

fn url_sp() -> SamlSp {
    build(json!({ "idp_metadata_url": "https://idp.example.test/md" })).expect("valid")
}

#[test]
fn metadata_from_a_url_is_fetched_lazily_cached_and_kept_while_the_idp_is_down() {
    let sp = url_sp();
    let fake = FakeHost::new();
    serve_metadata(&fake, &[IDP_CERT]);
    fake.call(|host| sp.begin_login(host, &begin_request("a")))
        .expect("fetches and begins");
    fake.call(|host| sp.begin_login(host, &begin_request("b")))
        .expect("cached: no second fetch");
    fake.assert_script_done();

    // A day later the copy is stale; the IdP is down; the stale copy serves on.
    fake.advance(std::time::Duration::from_secs(25 * 3600));
    fake.expect(
        Expectation::new("GET", "https://idp.example.test/md")
            .fail(PluginError::idp_unavailable("down")),
    );
    fake.call(|host| sp.begin_login(host, &begin_request("c")))
        .expect("stale copy serves");
    fake.assert_script_done();
    assert!(
        fake.logs()
            .iter()
            .any(|(_, line)| line.contains("stored copy serves on"))
    );

    // The task fetches again, and reports what it got.
    serve_metadata(&fake, &[IDP_CERT, IDP2_CERT]);
    let out = fake
        .call(|host| sp.run_task(host, "refresh_metadata"))
        .expect("refreshes");
    assert_eq!(
        out["summary"],
        format!("fetched the metadata of {IDP_ENTITY} (2 signing certificate(s))")
    );
    fake.assert_script_done();
}

#[test]
fn fetched_metadata_without_a_signing_certificate_is_refused() {
    let sp = url_sp();
    let fake = FakeHost::new();
    serve_metadata(&fake, &[]);
    let error = fake
        .call(|host| sp.begin_login(host, &begin_request("a")))
        .expect_err("refused");
    assert_eq!(error.kind, ErrorKind::INVALID_SETTINGS);
    assert!(
        error.message().contains("idp_metadata_url")
            && error.message().contains("no signing certificate")
    );
    // Nothing was stored: the next call asks again.
    fake.expect(
        Expectation::new("GET", "https://idp.example.test/md")
            .fail(PluginError::idp_unavailable("down")),
    );
    let error = fake
        .call(|host| sp.begin_login(host, &begin_request("b")))
        .expect_err("no copy");
    assert_eq!(error.kind, ErrorKind::IDP_UNAVAILABLE);
    fake.assert_script_done();
}

#[test]
fn the_task_says_so_for_inline_metadata_and_refuses_unknown_tasks() {
    let sp = sp(json!({}));
    let fake = FakeHost::new();
    let out = fake
        .call(|host| sp.run_task(host, "refresh_metadata"))
        .expect("runs");
    assert!(out["summary"].as_str().expect("summary").contains("inline"));
    let error = fake
        .call(|host| sp.run_task(host, "other"))
        .expect_err("unknown");
    assert_eq!(error.kind, ErrorKind::UNSUPPORTED);
}
