//! Single logout both ways: the SP's LogoutRequest and the IdP's answer; the IdP's
//! LogoutRequest, verified strictly, answered and turned into "end these sessions".

use std::io::Write;

use base64::Engine as _;
use gatehouse_plugin_api::testkit::FakeHost;
use gatehouse_plugin_api::{
    ActionKind, HostAction, IdentityProvider, InboundReply, InboundRequest, LogoutRequest, Pair,
};
use gatehouse_saml::SamlSp;
use openssl::{hash::MessageDigest, pkey::PKey, sign::Signer};
use serde_json::json;

use crate::support::*;

fn deflate_b64(xml: &str) -> String {
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(xml.as_bytes()).expect("deflate");
    base64::engine::general_purpose::STANDARD.encode(encoder.finish().expect("deflate"))
}

fn enc(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Redirect-binding pairs carrying `xml` under `param`, signed with `key_pem` (if any).
fn redirect_pairs(param: &str, xml: &str, key_pem: Option<&str>) -> Vec<Pair> {
    let message = deflate_b64(xml);
    let mut pairs = vec![Pair::new(param, message.as_str())];
    if let Some(key_pem) = key_pem {
        let sig_alg = RSA_SHA256;
        let signed = format!("{param}={}&SigAlg={}", enc(&message), enc(sig_alg));
        let key = PKey::private_key_from_pem(key_pem.as_bytes()).expect("key");
        let mut signer = Signer::new(MessageDigest::sha256(), &key).expect("signer");
        signer.update(signed.as_bytes()).expect("update");
        let signature =
            base64::engine::general_purpose::STANDARD.encode(signer.sign_to_vec().expect("sign"));
        pairs.push(Pair::new("SigAlg", sig_alg));
        pairs.push(Pair::new("Signature", signature.as_str()));
    }
    pairs
}

fn inbound(method: &str, query: Vec<Pair>, form: Vec<Pair>) -> InboundRequest {
    InboundRequest {
        method: method.into(),
        route: "logout".into(),
        host: "sso.example.test".into(),
        headers: Default::default(),
        query: query.into(),
        form: form.into(),
        body: Default::default(),
    }
}

fn call(sp: &SamlSp, fake: &FakeHost, request: &InboundRequest) -> InboundReply {
    fake.call(|host| sp.handle_inbound(host, request))
        .expect("answers")
}

fn signature_template(id: &str) -> String {
    format!(
        "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/><ds:SignatureMethod Algorithm=\"{RSA_SHA256}\"/><ds:Reference URI=\"#{id}\"><ds:Transforms><ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/><ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></ds:Transforms><ds:DigestMethod Algorithm=\"{SHA256}\"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue></ds:Signature>"
    )
}

fn logout_response_xml(in_response_to: &str, now: i64, signed: bool) -> String {
    let signature = if signed {
        signature_template("_lr1")
    } else {
        String::new()
    };
    let xml = format!(
        "<samlp:LogoutResponse xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_lr1\" Version=\"2.0\" IssueInstant=\"{}\" Destination=\"{SLO}\" InResponseTo=\"{in_response_to}\"><saml:Issuer>{IDP_ENTITY}</saml:Issuer>{signature}<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status></samlp:LogoutResponse>",
        instant(now)
    );
    if signed { sign(&xml, IDP_KEY) } else { xml }
}

fn logout_request_xml(id: &str, now: i64, issuer: &str, indexes: &[&str], signed: bool) -> String {
    let signature = if signed {
        signature_template(id)
    } else {
        String::new()
    };
    let indexes: String = indexes
        .iter()
        .map(|i| format!("<samlp:SessionIndex>{i}</samlp:SessionIndex>"))
        .collect();
    let xml = format!(
        "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{}\" Destination=\"{SLO}\"><saml:Issuer>{issuer}</saml:Issuer>{signature}<saml:NameID Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress\">ada@example.test</saml:NameID>{indexes}</samlp:LogoutRequest>",
        instant(now)
    );
    if signed { sign(&xml, IDP_KEY) } else { xml }
}

/// Signs in through a real response and asks the SP to log out at the IdP.
fn sp_initiated(extra: serde_json::Value) -> (Flow, String, String) {
    let flow = Flow::begin(extra);
    let identity = flow.post(&flow.spec().response()).expect("signs in");
    let step = flow
        .fake
        .call(|host| {
            flow.sp.logout(
                host,
                &LogoutRequest {
                    subject: identity.subject.clone(),
                    logout_state: identity.logout_state.clone(),
                    return_url: format!("{BASE}/logged-out").as_str().into(),
                },
            )
        })
        .expect("logs out")
        .expect("the IdP has an SLO endpoint");
    let url = step.url.to_string();
    let request = inflate(&param(&url, "SAMLRequest").expect("request"));
    (flow, url, request)
}

#[test]
fn sp_initiated_logout_names_the_nameid_and_session_and_is_signed_with_a_key() {
    let (flow, url, request) =
        sp_initiated(json!({ "sp_private_key": SP_KEY, "sp_certificate": SP_CERT }));
    assert!(url.starts_with(&format!("{IDP_SLO}?SAMLRequest=")));
    assert!(
        param(&url, "Signature").is_some() && param(&url, "SigAlg").as_deref() == Some(RSA_SHA256)
    );
    assert!(request.contains("<saml:NameID Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress\">ada@example.test</saml:NameID>"));
    assert!(request.contains("<samlp:SessionIndex>_session42</samlp:SessionIndex>"));
    assert!(request.contains(&format!("Destination=\"{IDP_SLO}\"")));
    let id = xml_id(&request);
    assert_eq!(id.len(), 33);
    assert!(flow.fake.stored(&format!("slo-request:{id}")).is_some());
}

#[test]
fn without_an_slo_endpoint_logout_needs_no_redirect() {
    let sp = sp(json!({ "idp_metadata": idp_metadata(&[IDP_CERT], false) }));
    let step = FakeHost::new()
        .call(|host| {
            sp.logout(
                host,
                &LogoutRequest {
                    subject: "ada".into(),
                    logout_state: Default::default(),
                    return_url: "".into(),
                },
            )
        })
        .expect("fine");
    assert!(step.is_none());
}

#[test]
fn the_idps_signed_logout_response_lands_once_on_the_logout_page() {
    let (flow, _, request) = sp_initiated(json!({}));
    let id = xml_id(&request);
    let form = vec![Pair::new(
        "SAMLResponse",
        b64(&logout_response_xml(&id, flow.now(), true)),
    )];
    let reply = call(&flow.sp, &flow.fake, &inbound("POST", vec![], form.clone()));
    assert_eq!(reply.status, 303);
    assert_eq!(
        reply.actions.as_slice(),
        [HostAction::show_logout_landing()]
    );
    // Single use.
    let again = call(&flow.sp, &flow.fake, &inbound("POST", vec![], form));
    assert_eq!((again.status, again.actions.len()), (400, 0));
}

#[test]
fn a_redirect_binding_logout_response_needs_the_idps_query_signature() {
    let (flow, _, request) = sp_initiated(json!({}));
    let id = xml_id(&request);
    let xml = logout_response_xml(&id, flow.now(), false);
    let forged = call(
        &flow.sp,
        &flow.fake,
        &inbound(
            "GET",
            redirect_pairs("SAMLResponse", &xml, Some(ATTACKER_KEY)),
            vec![],
        ),
    );
    assert_eq!((forged.status, forged.actions.len()), (400, 0));
    let unsigned = call(
        &flow.sp,
        &flow.fake,
        &inbound("GET", redirect_pairs("SAMLResponse", &xml, None), vec![]),
    );
    assert_eq!((unsigned.status, unsigned.actions.len()), (400, 0));
    let genuine = call(
        &flow.sp,
        &flow.fake,
        &inbound(
            "GET",
            redirect_pairs("SAMLResponse", &xml, Some(IDP_KEY)),
            vec![],
        ),
    );
    assert_eq!(genuine.status, 303);
    assert_eq!(
        genuine.actions.as_slice(),
        [HostAction::show_logout_landing()]
    );
}

#[test]
fn unsigned_or_unknown_logout_responses_are_refused() {
    let (flow, _, request) = sp_initiated(json!({}));
    let id = xml_id(&request);
    let unsigned = vec![Pair::new(
        "SAMLResponse",
        b64(&logout_response_xml(&id, flow.now(), false)),
    )];
    let reply = call(&flow.sp, &flow.fake, &inbound("POST", vec![], unsigned));
    assert_eq!((reply.status, reply.actions.len()), (400, 0));
    let unknown = vec![Pair::new(
        "SAMLResponse",
        b64(&logout_response_xml("_never_sent", flow.now(), true)),
    )];
    let reply = call(&flow.sp, &flow.fake, &inbound("POST", vec![], unknown));
    assert_eq!((reply.status, reply.actions.len()), (400, 0));
    assert!(
        flow.fake
            .logs()
            .iter()
            .any(|(_, l)| l.contains("in-response-to:"))
    );
}

#[test]
fn an_idp_logout_request_ends_the_sessions_it_names_and_is_answered() {
    let flow = Flow::begin(json!({ "sp_private_key": SP_KEY, "sp_certificate": SP_CERT }));
    let identity = flow.post(&flow.spec().response()).expect("signs in");
    let xml = logout_request_xml("_idp_lr_1", flow.now(), IDP_ENTITY, &["_session42"], false);
    let mut query = redirect_pairs("SAMLRequest", &xml, Some(IDP_KEY));
    query.insert(1, Pair::new("RelayState", "idp-relay"));
    // RelayState is signed too: re-sign with it.
    let message = deflate_b64(&xml);
    let signed = format!(
        "SAMLRequest={}&RelayState=idp-relay&SigAlg={}",
        enc(&message),
        enc(RSA_SHA256)
    );
    let key = PKey::private_key_from_pem(IDP_KEY.as_bytes()).expect("key");
    let mut signer = Signer::new(MessageDigest::sha256(), &key).expect("signer");
    signer.update(signed.as_bytes()).expect("update");
    let signature =
        base64::engine::general_purpose::STANDARD.encode(signer.sign_to_vec().expect("sign"));
    let query = vec![
        Pair::new("SAMLRequest", message.as_str()),
        Pair::new("RelayState", "idp-relay"),
        Pair::new("SigAlg", RSA_SHA256),
        Pair::new("Signature", signature.as_str()),
    ];
    let reply = call(&flow.sp, &flow.fake, &inbound("GET", query.clone(), vec![]));
    assert_eq!(reply.status, 303, "{:?}", flow.fake.logs());
    assert_eq!(reply.actions.len(), 1);
    let action = &reply.actions[0];
    assert_eq!(action.kind, ActionKind::END_SESSIONS);
    assert_eq!(action.sessions.subject.as_str(), "ada@example.test");
    assert_eq!(
        action.sessions.logout_state.as_slice(),
        identity.logout_state.as_slice(),
        "matches the session's logout state"
    );
    let location = reply
        .headers
        .iter()
        .find(|h| h.name.as_str() == "location")
        .expect("location")
        .value
        .to_string();
    assert!(location.starts_with(&format!("{IDP_SLO}?SAMLResponse=")));
    assert_eq!(param(&location, "RelayState").as_deref(), Some("idp-relay"));
    assert!(
        param(&location, "Signature").is_some(),
        "signed with the SP key"
    );
    let answer = inflate(&param(&location, "SAMLResponse").expect("response"));
    assert!(answer.contains("InResponseTo=\"_idp_lr_1\""));
    assert!(answer.contains("status:Success"));
    // Replayed: refused with no actions.
    let replay = call(&flow.sp, &flow.fake, &inbound("GET", query, vec![]));
    assert_eq!((replay.status, replay.actions.len()), (400, 0));
    assert!(flow.fake.logs().iter().any(|(_, l)| l.contains("replay:")));
}

#[test]
fn an_idp_logout_request_without_session_index_ends_the_subjects_sessions() {
    let sp = sp(json!({}));
    let fake = FakeHost::new();
    let xml = logout_request_xml("_idp_lr_2", fake.now_unix_seconds(), IDP_ENTITY, &[], true);
    let reply = call(
        &sp,
        &fake,
        &inbound("POST", vec![], vec![Pair::new("SAMLRequest", b64(&xml))]),
    );
    assert_eq!(reply.status, 303, "{:?}", fake.logs());
    assert_eq!(reply.actions.len(), 1);
    assert_eq!(
        reply.actions[0].sessions.subject.as_str(),
        "ada@example.test"
    );
    assert!(reply.actions[0].sessions.logout_state.is_empty());
}

#[test]
fn forged_or_wrong_idp_logout_requests_are_refused_without_actions() {
    let sp = sp(json!({}));
    let fake = FakeHost::new();
    let now = fake.now_unix_seconds();
    let cases = [
        // Unsigned POST.
        inbound(
            "POST",
            vec![],
            vec![Pair::new(
                "SAMLRequest",
                b64(&logout_request_xml("_a", now, IDP_ENTITY, &[], false)),
            )],
        ),
        // Unsigned redirect.
        inbound(
            "GET",
            redirect_pairs(
                "SAMLRequest",
                &logout_request_xml("_b", now, IDP_ENTITY, &[], false),
                None,
            ),
            vec![],
        ),
        // Signed by someone else.
        inbound(
            "GET",
            redirect_pairs(
                "SAMLRequest",
                &logout_request_xml("_c", now, IDP_ENTITY, &[], false),
                Some(ATTACKER_KEY),
            ),
            vec![],
        ),
        // Another issuer.
        inbound(
            "POST",
            vec![],
            vec![Pair::new(
                "SAMLRequest",
                b64(&logout_request_xml(
                    "_d",
                    now,
                    "https://evil.test",
                    &[],
                    true,
                )),
            )],
        ),
        // Too old.
        inbound(
            "POST",
            vec![],
            vec![Pair::new(
                "SAMLRequest",
                b64(&logout_request_xml("_e", now - 3600, IDP_ENTITY, &[], true)),
            )],
        ),
        // A DOCTYPE.
        inbound(
            "POST",
            vec![],
            vec![Pair::new(
                "SAMLRequest",
                b64(&format!(
                    "<!DOCTYPE x>{}",
                    logout_request_xml("_f", now, IDP_ENTITY, &[], true)
                )),
            )],
        ),
        // Nothing at all.
        inbound("POST", vec![], vec![]),
    ];
    for request in cases {
        let reply = call(&sp, &fake, &request);
        assert_eq!(
            (reply.status, reply.actions.len()),
            (400, 0),
            "{:?}",
            fake.logs().last()
        );
    }
    let logs: Vec<String> = fake.logs().into_iter().map(|(_, l)| l).collect();
    for check in [
        "signature:",
        "issuer:",
        "expired:",
        "doctype:",
        "malformed:",
    ] {
        assert!(
            logs.iter().any(|l| l.contains(check)),
            "no `{check}` in {logs:?}"
        );
    }
}

#[test]
fn a_deflate_bomb_is_refused_before_it_is_read() {
    let sp = sp(json!({}));
    let fake = FakeHost::new();
    let bomb = deflate_b64(&"A".repeat(8 * 1024 * 1024));
    assert!(bomb.len() < 64 * 1024, "small on the wire");
    let reply = call(
        &sp,
        &fake,
        &inbound("GET", vec![Pair::new("SAMLRequest", bomb.as_str())], vec![]),
    );
    assert_eq!((reply.status, reply.actions.len()), (400, 0));
    assert!(
        fake.logs().iter().any(|(_, l)| l.contains("too-large:")),
        "{:?}",
        fake.logs()
    );
}

#[test]
fn an_idp_with_only_a_post_slo_endpoint_gets_an_escaped_form() {
    let metadata = idp_metadata(&[IDP_CERT], false).replace(
        "<md:SingleSignOnService",
        &format!("<md:SingleLogoutService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" Location=\"{IDP_SLO}?a=1&amp;b=2\"/><md:SingleSignOnService"),
    );
    let sp = sp(json!({ "idp_metadata": metadata }));
    let fake = FakeHost::new();
    let xml = logout_request_xml("_idp_lr_9", fake.now_unix_seconds(), IDP_ENTITY, &[], true);
    let form = vec![
        Pair::new("SAMLRequest", b64(&xml)),
        Pair::new("RelayState", "\"><script>alert(1)</script>"),
    ];
    let reply = call(&sp, &fake, &inbound("POST", vec![], form));
    assert_eq!(reply.status, 200, "{:?}", fake.logs());
    assert_eq!(reply.actions.len(), 1);
    let page = String::from_utf8(reply.body.to_vec()).expect("utf-8");
    assert!(page.contains("name=\"SAMLResponse\""));
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(page.contains("&quot;&gt;&lt;script&gt;"));
}
