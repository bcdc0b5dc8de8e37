//! The ACS: a valid response signs in; each check of the validation refuses by name.

use std::time::Duration;

use gatehouse_plugin_api::{ErrorKind, Identity};
use serde_json::json;

use crate::support::*;

fn values<'a>(identity: &'a Identity, name: &str) -> Vec<&'a str> {
    identity
        .attributes
        .iter()
        .find(|a| a.name.as_str() == name)
        .map(|a| a.values.iter().map(|v| v.as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn a_valid_signed_response_signs_in_with_nameid_and_attributes() {
    let flow = Flow::begin(json!({}));
    let identity = flow.post(&flow.spec().response()).expect("signs in");
    assert_eq!(identity.subject.as_str(), "ada@example.test");
    assert_eq!(identity.attribute("NameID"), Some("ada@example.test"));
    assert_eq!(
        identity.attribute("NameIDFormat"),
        Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress")
    );
    assert_eq!(identity.attribute("SessionIndex"), Some("_session42"));
    assert_eq!(
        values(&identity, "urn:oid:0.9.2342.19200300.100.1.3"),
        ["ada@example.test"]
    );
    assert_eq!(values(&identity, "mail"), ["ada@example.test"]);
    assert_eq!(values(&identity, "groups"), ["staff", "admins"]);
    assert!(identity.attribute("email_verified").is_none());
    assert_eq!(
        gatehouse_saml::decode_logout_state(&identity.logout_state),
        Some((
            "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
            "ada@example.test".into(),
            "_session42".into()
        ))
    );
}

#[test]
fn signed_response_and_assertion_both_verify() {
    let flow = Flow::begin(json!({}));
    let mut spec = flow.spec();
    spec.sign_response = true;
    let identity = flow.post(&spec.response()).expect("signs in");
    assert_eq!(identity.subject.as_str(), "ada@example.test");
}

#[test]
fn a_signed_response_covering_an_unsigned_assertion_needs_want_assertions_signed_off() {
    let spec_for = |flow: &Flow| {
        let mut spec = flow.spec();
        spec.sign_assertion = false;
        spec.sign_response = true;
        spec.response()
    };
    let strict = Flow::begin(json!({}));
    refused(strict.post(&spec_for(&strict)), "signature");
    let lax = Flow::begin(json!({ "want_assertions_signed": false }));
    let identity = lax
        .post(&spec_for(&lax))
        .expect("the response's signature covers it");
    assert_eq!(identity.subject.as_str(), "ada@example.test");
}

#[test]
fn any_of_several_signing_certificates_verifies() {
    let metadata = idp_metadata(&[IDP2_CERT, IDP_CERT], true);
    let flow = Flow::begin(json!({ "idp_metadata": metadata }));
    assert!(flow.post(&flow.spec().response()).is_ok());
    let flow = Flow::begin(json!({ "idp_metadata": metadata }));
    let mut spec = flow.spec();
    spec.key = IDP2_KEY.into();
    assert!(flow.post(&spec.response()).is_ok());
}

#[test]
fn wrong_audience_recipient_destination_issuer_and_request_are_refused() {
    type Change = Box<dyn Fn(&mut Spec)>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "audience",
            Box::new(|s| s.audience = Some("https://other-sp.test/metadata".into())),
        ),
        ("audience", Box::new(|s| s.audience = None)),
        (
            "recipient",
            Box::new(|s| s.recipient = "https://evil.test/acs".into()),
        ),
        (
            "recipient",
            Box::new(|s| s.recipient = format!("{OTHER_BASE}/sso/corp/callback")),
        ),
        (
            "destination",
            Box::new(|s| s.destination = Some("https://evil.test/acs".into())),
        ),
        (
            "issuer",
            Box::new(|s| s.assertion_issuer = "https://evil-idp.test".into()),
        ),
        (
            "issuer",
            Box::new(|s| s.response_issuer = Some("https://evil-idp.test".into())),
        ),
        (
            "in-response-to",
            Box::new(|s| s.confirmation_in_response_to = Some("_another_request".into())),
        ),
        (
            "in-response-to",
            Box::new(|s| s.in_response_to = Some("_another_request".into())),
        ),
        (
            "in-response-to",
            Box::new(|s| s.confirmation_in_response_to = None),
        ),
        (
            "status",
            Box::new(|s| s.status = "urn:oasis:names:tc:SAML:2.0:status:Responder".into()),
        ),
    ];
    for (check, change) in cases {
        let flow = Flow::begin(json!({}));
        let mut spec = flow.spec();
        change(&mut spec);
        let error = refused(flow.post(&spec.response()), check);
        assert!(
            !error.message().contains("ada@example.test"),
            "{}",
            error.message()
        );
    }
}

#[test]
fn a_signed_response_must_name_its_destination() {
    let flow = Flow::begin(json!({}));
    let mut spec = flow.spec();
    spec.sign_response = true;
    spec.destination = None;
    refused(flow.post(&spec.response()), "destination");
}

#[test]
fn a_failed_status_names_the_idps_codes() {
    let flow = Flow::begin(json!({}));
    let response = format!(
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_r1\" Version=\"2.0\" IssueInstant=\"{}\" InResponseTo=\"{}\"><samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Responder\"><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:AuthnFailed\"/></samlp:StatusCode></samlp:Status></samlp:Response>",
        instant(flow.now()),
        flow.request_id
    );
    let error = refused(flow.post(&response), "status");
    assert!(error.message().contains("status:Responder"));
    assert!(error.message().contains("status:AuthnFailed"));
    assert_eq!(error.kind, ErrorKind::ACCESS_DENIED);
}

#[test]
fn time_conditions_use_the_host_clock_with_exact_boundaries() {
    // NotOnOrAfter is exclusive: at exactly NotOnOrAfter (+ skew) it is expired.
    for (skew, offset, outcome) in [
        (0, -1, None),
        (0, 0, Some("expired")),
        (180, 179, None),
        (180, 180, Some("expired")),
    ] {
        let flow = Flow::begin(json!({ "clock_skew_seconds": skew }));
        let spec = flow.spec();
        let response = spec.response();
        flow.fake.set_time(spec.not_on_or_after + offset);
        match outcome {
            None => {
                flow.post(&response)
                    .unwrap_or_else(|e| panic!("skew {skew}, +{offset}: {e:?}"));
            }
            Some(check) => {
                let error = refused(flow.post(&response), check);
                assert_eq!(error.kind, ErrorKind::EXPIRED);
            }
        }
    }
}

#[test]
fn subject_confirmation_expiry_is_checked_on_its_own() {
    let flow = Flow::begin(json!({ "clock_skew_seconds": 0 }));
    let mut spec = flow.spec();
    spec.confirmation_not_on_or_after = spec.now + 10;
    let response = spec.response();
    flow.fake.advance(Duration::from_secs(10));
    refused(flow.post(&response), "expired");
}

#[test]
fn not_before_beyond_the_skew_is_refused_and_within_it_accepted() {
    let flow = Flow::begin(json!({ "clock_skew_seconds": 60 }));
    let mut spec = flow.spec();
    spec.not_before = spec.now + 61;
    refused(flow.post(&spec.response()), "not-yet-valid");
    let flow = Flow::begin(json!({ "clock_skew_seconds": 60 }));
    let mut spec = flow.spec();
    spec.not_before = spec.now + 60;
    flow.post(&spec.response()).expect("within the skew");
}

#[test]
fn the_same_response_twice_is_a_replay() {
    let flow = Flow::begin(json!({}));
    let response = flow.spec().response();
    flow.post(&response).expect("first use");
    refused(flow.post(&response), "replay");
}

#[test]
fn the_replay_key_lives_until_not_on_or_after_plus_skew() {
    let flow = Flow::begin(json!({}));
    let spec = flow.spec();
    flow.post(&spec.response()).expect("first use");
    let key = {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{IDP_ENTITY}\n{}", spec.assertion_id));
        format!(
            "replay:{}",
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    };
    assert!(flow.fake.stored(&key).is_some());
    flow.fake.set_time(spec.not_on_or_after + 180 - 1);
    assert!(
        flow.fake.stored(&key).is_some(),
        "kept while still acceptable"
    );
    flow.fake.set_time(spec.not_on_or_after + 180 + 2);
    assert!(
        flow.fake.stored(&key).is_none(),
        "gone once it can no longer be accepted"
    );
}

#[test]
fn unsigned_assertions_and_stripped_signatures_are_refused() {
    let flow = Flow::begin(json!({}));
    let mut spec = flow.spec();
    spec.sign_assertion = false;
    refused(flow.post(&spec.response()), "signature");

    // The signature removed from a signed response.
    let flow = Flow::begin(json!({}));
    let signed = flow.spec().response();
    let start = signed.find("<ds:Signature").expect("signed");
    let end = signed.find("</ds:Signature>").expect("closed") + "</ds:Signature>".len();
    let stripped = format!("{}{}", &signed[..start], &signed[end..]);
    refused(flow.post(&stripped), "signature");
}

#[test]
fn a_corrupted_signature_value_is_refused() {
    let flow = Flow::begin(json!({}));
    let signed = flow.spec().response();
    let at = signed.find("<ds:SignatureValue>").expect("signed") + "<ds:SignatureValue>".len();
    let mut bytes = signed.into_bytes();
    bytes[at + 5] = if bytes[at + 5] == b'A' { b'B' } else { b'A' };
    let corrupted = String::from_utf8(bytes).expect("utf-8");
    refused(flow.post(&corrupted), "signature");
}

#[test]
fn a_nameid_or_attribute_changed_after_signing_is_refused() {
    let flow = Flow::begin(json!({}));
    let signed = flow.spec().response();
    refused(
        flow.post(&signed.replace(
            ">ada@example.test</saml:NameID>",
            ">admin@example.test</saml:NameID>",
        )),
        "signature",
    );
    let flow = Flow::begin(json!({}));
    let signed = flow.spec().response();
    refused(
        flow.post(&signed.replace(">admins<", ">superusers<")),
        "signature",
    );
}

#[test]
fn a_response_signed_by_another_key_with_its_cert_in_keyinfo_is_refused() {
    let flow = Flow::begin(json!({}));
    let mut spec = flow.spec();
    spec.key = ATTACKER_KEY.into();
    let signed = spec.response().replace(
        "</ds:SignatureValue>",
        &format!(
            "</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>",
            cert_b64(ATTACKER_CERT)
        ),
    );
    refused(flow.post(&signed), "signature");
}

#[test]
fn two_assertions_are_refused() {
    let flow = Flow::begin(json!({}));
    let spec = flow.spec();
    let signed = spec.assertion();
    let mut evil = spec.clone();
    evil.assertion_id = "_evil".into();
    evil.sign_assertion = false;
    evil.name_id = "admin@example.test".into();
    // XSW3: an evil unsigned copy before the signed assertion.
    refused(
        flow.post(&spec.response_with(&format!("{}{signed}", evil.assertion()))),
        "assertion-count",
    );
    // The evil copy inside the signed assertion's Signature (XSW6/8-like).
    let hidden = signed.replace(
        "</ds:SignatureValue>",
        &format!(
            "</ds:SignatureValue><ds:Object>{}</ds:Object>",
            evil.assertion()
        ),
    );
    refused(flow.post(&spec.response_with(&hidden)), "assertion-count");
    // An assertion wrapped in an Extensions element (XSW7).
    let wrapped = format!(
        "<samlp:Extensions xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\">{signed}</samlp:Extensions>"
    );
    refused(flow.post(&spec.response_with(&wrapped)), "assertion-count");
}

#[test]
fn a_signed_assertion_moved_under_an_evil_one_is_refused() {
    // XSW4: the original signed assertion inside an evil unsigned one.
    let flow = Flow::begin(json!({}));
    let spec = flow.spec();
    let mut evil = spec.clone();
    evil.assertion_id = "_evil".into();
    evil.sign_assertion = false;
    let evil_xml = evil.assertion().replace(
        "</saml:Assertion>",
        &format!("{}</saml:Assertion>", spec.assertion()),
    );
    refused(flow.post(&spec.response_with(&evil_xml)), "assertion-count");
}

#[test]
fn sha1_signatures_and_digests_are_refused() {
    let flow = Flow::begin(json!({}));
    let mut spec = flow.spec();
    spec.signature_method = RSA_SHA1.into();
    refused(flow.post(&spec.response()), "algorithm");
    let flow = Flow::begin(json!({}));
    let mut spec = flow.spec();
    spec.digest_method = SHA1.into();
    refused(flow.post(&spec.response()), "algorithm");
}

#[test]
fn transforms_outside_the_allow_list_and_foreign_references_are_refused() {
    let flow = Flow::begin(json!({}));
    let signed = flow.spec().response();
    let xslt = signed.replace(
        "<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>",
        "<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xslt-19991116\"/>",
    );
    refused(flow.post(&xslt), "transform");
    let with_comments = signed.replace(
        "<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>",
        "<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#WithComments\"/>",
    );
    refused(flow.post(&with_comments), "transform");
    let empty_uri = signed.replace("URI=\"#_assert0123456789abcdef\"", "URI=\"\"");
    refused(flow.post(&empty_uri), "signature");
}

#[test]
fn doctype_xxe_and_billion_laughs_are_refused_before_parsing() {
    let flow = Flow::begin(json!({}));
    let signed = flow.spec().response();
    let xxe = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"http://127.0.0.1:9/\">]>{}",
        signed.replacen("ada@example.test", "&x;", 1)
    );
    refused(flow.post(&xxe), "doctype");
    let laughs = format!(
        "<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\"><!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>{}",
        signed.replacen("ada@example.test", "&lol3;", 1)
    );
    refused(flow.post(&laughs), "doctype");
    let pi = signed.replacen("<saml:Subject>", "<saml:Subject><?evil x?>", 1);
    refused(flow.post(&pi), "malformed");
}

#[test]
fn malformed_xml_is_refused() {
    let flow = Flow::begin(json!({}));
    let signed = flow.spec().response();
    let variants = [
        signed.replacen("</saml:NameID>", "", 1),
        format!("{signed}<samlp:Response/>"),
        format!("{signed}garbage"),
        format!("garbage{signed}"),
        signed.replacen("Version=\"2.0\"", "Version=\"2.0\" Version=\"2.0\"", 1),
        signed[..signed.len() - 5].to_owned(),
        "not xml at all".to_owned(),
    ];
    for variant in variants {
        refused(flow.post(&variant), "malformed");
    }
    refused(flow.post_encoded("%%% not base64"), "malformed");
    refused(flow.post_encoded(&b64("\u{0}\u{ff}binary")), "malformed");
}

#[test]
fn an_oversized_response_is_refused_before_decoding() {
    let flow = Flow::begin(json!({}));
    refused(flow.post_encoded(&"A".repeat(2 * 1024 * 1024)), "too-large");
}

#[test]
fn an_unsolicited_response_is_refused_unless_allowed() {
    let flow = Flow::begin(json!({}));
    let mut spec = flow.spec();
    spec.in_response_to = None;
    spec.confirmation_in_response_to = None;
    let response = spec.response();
    let unsolicited = |flow: &Flow, response: &str| {
        let request = gatehouse_plugin_api::CallbackRequest {
            callback_url: ACS.into(),
            query: Vec::new().into(),
            form: vec![gatehouse_plugin_api::Pair::new(
                "SAMLResponse",
                b64(response),
            )]
            .into(),
            state: Vec::new().into(),
        };
        flow.fake.call(|host| {
            gatehouse_plugin_api::IdentityProvider::complete_login(&flow.sp, host, &request)
        })
    };
    refused(unsolicited(&flow, &response), "unsolicited");

    let allowed = Flow::begin(json!({ "allow_idp_initiated": true }));
    let identity = unsolicited(&allowed, &response).expect("allowed");
    assert_eq!(identity.subject.as_str(), "ada@example.test");
    refused(unsolicited(&allowed, &response), "replay");
    // A response to some request is not unsolicited.
    let allowed = Flow::begin(json!({ "allow_idp_initiated": true }));
    let mut solicited = allowed.spec();
    solicited.assertion_id = "_other".into();
    refused(
        unsolicited(&allowed, &solicited.response()),
        "in-response-to",
    );
}

#[test]
fn comments_cdata_and_processing_instructions_in_nameid_are_refused() {
    // The Duo attack: a comment inside a NameID an IdP signed (c14n drops comments, so
    // the signature still verifies). A reader of the first text node would see only
    // `victim@example.test`; a split value is refused outright, before anything reads it.
    for inserted in ["<!---->", "<![CDATA[]]>", "<![CDATA[.x]]>"] {
        let flow = Flow::begin(json!({}));
        let mut spec = flow.spec();
        spec.name_id = "victim@example.test.attacker.test".into();
        let signed = spec.response();
        let injected = signed.replacen(
            "victim@example.test.attacker.test",
            &format!("victim@example.test{inserted}.attacker.test"),
            1,
        );
        refused(flow.post(&injected), "name-id");
        // The same response unsplit still signs in: the refusal is the split, not the value.
        assert_eq!(
            flow.post(&signed).expect("genuine").subject.as_str(),
            "victim@example.test.attacker.test"
        );
    }
    // A processing instruction is refused before parsing.
    let flow = Flow::begin(json!({}));
    let signed = flow.spec().response();
    let injected = signed.replacen("ada@example.test<", "ada@example.test<?x?><", 1);
    refused(flow.post(&injected), "malformed");
}

#[test]
fn a_comment_inside_an_attribute_value_is_refused() {
    let flow = Flow::begin(json!({}));
    let signed = flow.spec().response();
    let at = signed
        .find("</saml:AttributeValue>")
        .expect("an attribute value");
    let injected = format!("{}<!-- x -->{}", &signed[..at], &signed[at..]);
    refused(flow.post(&injected), "malformed");
}

#[test]
fn an_empty_nameid_is_refused() {
    let flow = Flow::begin(json!({}));
    let mut spec = flow.spec();
    spec.name_id = String::new();
    refused(flow.post(&spec.response()), "name-id");
}

#[test]
fn a_response_for_another_sp_is_refused_by_audience() {
    // Cross-tenant: a genuine response for another IdP instance's SP.
    let flow = Flow::begin(json!({}));
    let mut spec = flow.spec();
    spec.audience = Some("https://sso.example.test/sso/other/metadata".into());
    spec.recipient = "https://sso.example.test/sso/other/callback".into();
    refused(flow.post(&spec.response()), "audience");
    // With its own Destination too, the Response's Destination is the first to differ.
    let flow = Flow::begin(json!({}));
    let mut spec = flow.spec();
    spec.audience = Some("https://sso.example.test/sso/other/metadata".into());
    spec.recipient = "https://sso.example.test/sso/other/callback".into();
    spec.destination = Some("https://sso.example.test/sso/other/callback".into());
    refused(flow.post(&spec.response()), "destination");
}

/// An EncryptedAssertion of `assertion` for the SP's key (RSA-OAEP + AES-128-CBC).
fn encrypt_for_sp(assertion: &str) -> String {
    use base64::Engine as _;
    use openssl::{rsa::Padding, symm::Cipher, x509::X509};
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let content_key = [7u8; 16];
    let iv = [9u8; 16];
    let mut data = iv.to_vec();
    data.extend(
        openssl::symm::encrypt(
            Cipher::aes_128_cbc(),
            &content_key,
            Some(&iv),
            assertion.as_bytes(),
        )
        .expect("encrypts"),
    );
    let rsa = X509::from_pem(SP_CERT.as_bytes())
        .and_then(|c| c.public_key())
        .and_then(|k| k.rsa())
        .expect("SP key");
    let mut wrapped = vec![0u8; rsa.size() as usize];
    let len = rsa
        .public_encrypt(&content_key, &mut wrapped, Padding::PKCS1_OAEP)
        .expect("wraps");
    wrapped.truncate(len);
    format!(
        "<saml:EncryptedAssertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\"><xenc:EncryptedData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\" Type=\"http://www.w3.org/2001/04/xmlenc#Element\"><xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#aes128-cbc\"/><ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p\"/><xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData></saml:EncryptedAssertion>",
        b64(&wrapped),
        b64(&data)
    )
}

#[test]
fn an_encrypted_signed_assertion_is_decrypted_with_the_sp_key_and_verified() {
    let keyed = json!({ "sp_private_key": SP_KEY, "sp_certificate": SP_CERT });
    let flow = Flow::begin(keyed.clone());
    let spec = flow.spec();
    let response = spec.response_with(&encrypt_for_sp(&spec.assertion()));
    let identity = flow.post(&response).expect("decrypts and verifies");
    assert_eq!(identity.subject.as_str(), "ada@example.test");
    refused(flow.post(&response), "replay");

    // Decrypted but unsigned: refused, even inside a signed response.
    let flow = Flow::begin(keyed.clone());
    let mut spec = flow.spec();
    spec.sign_assertion = false;
    spec.sign_response = true;
    let response = spec.response_with(&encrypt_for_sp(&spec.assertion()));
    refused(flow.post(&response), "signature");

    // Without the SP key nothing decrypts; a tampered ciphertext is one uniform refusal.
    let flow = Flow::begin(json!({}));
    let spec = flow.spec();
    refused(
        flow.post(&spec.response_with(&encrypt_for_sp(&spec.assertion()))),
        "decryption",
    );
    let flow = Flow::begin(keyed);
    let spec = flow.spec();
    let encrypted = encrypt_for_sp(&spec.assertion());
    let at = encrypted.rfind("</xenc:CipherValue>").expect("cipher") - 30;
    let mut bytes = encrypted.into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).expect("utf-8");
    let error = flow
        .post(&spec.response_with(&tampered))
        .expect_err("refused");
    assert!(
        ["decryption:", "malformed:", "signature:"]
            .iter()
            .any(|c| error.message().starts_with(c)),
        "{}",
        error.message()
    );
}

#[test]
fn an_assertion_issued_before_the_request_is_refused() {
    let flow = Flow::begin(json!({ "clock_skew_seconds": 60 }));
    let mut spec = flow.spec();
    spec.now -= 61;
    refused(flow.post(&spec.response()), "expired");
    let flow = Flow::begin(json!({ "clock_skew_seconds": 60 }));
    let mut spec = flow.spec();
    spec.now -= 60;
    flow.post(&spec.response()).expect("within the skew");
}

/// A signed response (Response and Assertion both signed) for the wrapping attacks.
fn double_signed(flow: &Flow) -> (Spec, String) {
    let mut spec = flow.spec();
    spec.sign_response = true;
    let response = spec.response();
    (spec, response)
}

fn without_signature(xml: &str) -> String {
    let start = xml.find("<ds:Signature").expect("signed");
    let end = xml.find("</ds:Signature>").expect("closed") + "</ds:Signature>".len();
    format!("{}{}", &xml[..start], &xml[end..])
}

#[test]
fn response_wrapping_xsw1_and_xsw2_are_refused() {
    let flow = Flow::begin(json!({}));
    let (_, genuine) = double_signed(&flow);
    let evil_outer = |inner: &str, inside_signature: bool| {
        // The evil outer Response: a new ID and another NameID; the genuine one (its
        // signature stripped) hidden in or beside the original Signature.
        let evil = genuine
            .replacen("ID=\"_resp0123456789abcdef\"", "ID=\"_evil_resp\"", 1)
            .replace(
                ">ada@example.test</saml:NameID>",
                ">admin@example.test</saml:NameID>",
            );
        let clone = without_signature(inner);
        if inside_signature {
            evil.replacen(
                "</ds:SignatureValue>",
                &format!("</ds:SignatureValue><ds:Object>{clone}</ds:Object>"),
                1,
            )
        } else {
            evil.replacen("<ds:Signature", &format!("{clone}<ds:Signature"), 1)
        }
    };
    for inside in [true, false] {
        let flow = Flow::begin(json!({}));
        let (_, genuine_here) = double_signed(&flow);
        let attack = evil_outer(&genuine_here, inside);
        // The hidden clone repeats the assertion's ID: two elements with one ID.
        let error = refused(flow.post(&attack), "malformed");
        assert!(
            error.message().contains("share one ID"),
            "{}",
            error.message()
        );
    }
}

#[test]
fn assertion_wrapping_xsw5_is_refused() {
    // XSW5: the signed assertion edited in place (new ID, evil NameID, signature kept)
    // and a clean unsigned copy with the original ID appended.
    let flow = Flow::begin(json!({}));
    let spec = flow.spec();
    let signed = spec.assertion();
    let edited = signed
        .replacen("ID=\"_assert0123456789abcdef\"", "ID=\"_evil\"", 1)
        .replace(
            ">ada@example.test</saml:NameID>",
            ">admin@example.test</saml:NameID>",
        );
    let clean = without_signature(&signed);
    refused(
        flow.post(&spec.response_with(&format!("{edited}{clean}"))),
        "assertion-count",
    );
    // Edited in place alone: the reference no longer points at its parent.
    let flow = Flow::begin(json!({}));
    let spec = flow.spec();
    refused(flow.post(&spec.response_with(&edited)), "signature");
}

#[test]
fn only_the_saml_namespace_nameid_is_read() {
    // Elements named NameID in another namespace (or none), even signed by a sloppy IdP,
    // are not the subject: lookups match the namespace, not just the local name.
    for prefix in [
        "<x:NameID xmlns:x=\"urn:example:evil\">admin@example.test</x:NameID>",
        "<NameID xmlns=\"\">admin@example.test</NameID>",
    ] {
        let flow = Flow::begin(json!({}));
        let mut spec = flow.spec();
        spec.subject_prefix = prefix.into();
        let identity = flow.post(&spec.response()).expect("signed");
        assert_eq!(identity.subject.as_str(), "ada@example.test");
    }
    // Two SAML NameIDs: refused rather than guessed between.
    let flow = Flow::begin(json!({}));
    let mut spec = flow.spec();
    spec.subject_prefix = "<saml:NameID>admin@example.test</saml:NameID>".into();
    refused(flow.post(&spec.response()), "name-id");
}

#[test]
fn an_idp_attribute_cannot_pass_itself_off_as_the_nameid() {
    let flow = Flow::begin(json!({}));
    let mut spec = flow.spec();
    spec.attributes.push((
        "NameID".into(),
        Some("SessionIndex".into()),
        vec!["admin@example.test".into()],
    ));
    let identity = flow.post(&spec.response()).expect("signs in");
    let name_ids: Vec<&str> = identity
        .attributes
        .iter()
        .filter(|a| a.name.as_str() == "NameID")
        .flat_map(|a| a.values.iter().map(|v| v.as_str()))
        .collect();
    assert_eq!(name_ids, ["ada@example.test"]);
    assert_eq!(identity.attribute("SessionIndex"), Some("_session42"));
}

#[test]
fn a_byte_order_mark_and_an_xml_declaration_are_accepted() {
    let flow = Flow::begin(json!({}));
    let response = format!(
        "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}",
        flow.spec().response()
    );
    flow.post(&response).expect("signs in");
}

#[test]
fn an_attribute_value_holding_a_name_id_is_accepted() {
    // eduPersonTargetedID (Shibboleth) is an AttributeValue that holds a NameID element.
    let flow = Flow::begin(json!({}));
    let signed = flow.spec().response();
    let at = signed
        .find("</saml:AttributeStatement>")
        .expect("an attribute statement");
    let unsigned = format!(
        "{}<saml:Attribute Name=\"urn:oid:1.3.6.1.4.1.5923.1.1.1.10\"><saml:AttributeValue><saml:NameID Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:persistent\">abc123</saml:NameID></saml:AttributeValue></saml:Attribute>{}",
        &signed[..at],
        &signed[at..]
    );
    // The edit breaks the signature, so the prescan passing is what this shows: the
    // refusal must be the signature's, not a split value's.
    refused(flow.post(&unsigned), "signature");
}
