//! Test support: the test IdP's keys, its metadata, responses built and signed in the
//! tests (with samael's xmlsec signing), and a FakeHost-driven SP. Test-only keys.

use std::io::Read;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use gatehouse_plugin_api::testkit::FakeHost;
use gatehouse_plugin_api::{
    BeginRequest, CallbackRequest, Identity, IdentityProvider, InstanceConfig, Pair, Placement,
    Plugin, PluginError,
};
use gatehouse_saml::SamlSp;
use samael::crypto::{CryptoProvider, XmlSec};
use serde_json::{Value, json};

pub const IDP_KEY: &str = include_str!("../fixtures/idp.key");
pub const IDP_CERT: &str = include_str!("../fixtures/idp.crt");
pub const IDP2_KEY: &str = include_str!("../fixtures/idp2.key");
pub const IDP2_CERT: &str = include_str!("../fixtures/idp2.crt");
pub const ATTACKER_KEY: &str = include_str!("../fixtures/attacker.key");
pub const ATTACKER_CERT: &str = include_str!("../fixtures/attacker.crt");
pub const SP_KEY: &str = include_str!("../fixtures/sp.key");
pub const SP_CERT: &str = include_str!("../fixtures/sp.crt");

pub const IDP_ENTITY: &str = "https://idp.example.test/metadata";
pub const IDP_SSO: &str = "https://idp.example.test/sso";
pub const IDP_SLO: &str = "https://idp.example.test/slo";
pub const BASE: &str = "https://sso.example.test";
pub const OTHER_BASE: &str = "https://learn.example.test";
pub const ACS: &str = "https://sso.example.test/sso/corp/callback";
pub const SLO: &str = "https://sso.example.test/sso/corp/logout";
pub const SP_ENTITY: &str = "https://sso.example.test/sso/corp/metadata";

pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
pub const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
pub const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
pub const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";

/// The base64 body of a PEM certificate.
pub fn cert_b64(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

/// IdP metadata with these signing certificates (PEM) and optional SLO endpoints.
pub fn idp_metadata(certs: &[&str], slo: bool) -> String {
    let keys: String = certs
        .iter()
        .map(|c| {
            format!(
                "<md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>",
                cert_b64(c)
            )
        })
        .collect();
    let slo = if slo {
        format!(
            "<md:SingleLogoutService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"{IDP_SLO}\"/>"
        )
    } else {
        String::new()
    };
    format!(
        "<?xml version=\"1.0\"?>\n<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"{IDP_ENTITY}\"><md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">{keys}{slo}<md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"{IDP_SSO}\"/></md:IDPSSODescriptor></md:EntityDescriptor>"
    )
}

pub fn placement() -> Placement {
    Placement::new("root", &[BASE, OTHER_BASE])
}

/// Settings with inline metadata signed by the test IdP, plus `extra`.
pub fn settings(extra: Value) -> Value {
    let mut settings = json!({ "idp_metadata": idp_metadata(&[IDP_CERT], true) });
    if let (Some(base), Some(extra)) = (settings.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    settings
}

pub fn build(settings: Value) -> Result<SamlSp, PluginError> {
    SamlSp::new(&InstanceConfig::new("corp", settings).placed(placement()))
}

pub fn sp(extra: Value) -> SamlSp {
    build(settings(extra)).expect("valid settings")
}

pub fn instant(unix_seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix_seconds, 0)
        .expect("a time")
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Inflates a redirect-binding parameter.
pub fn inflate(value: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .expect("base64");
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(bytes.as_slice())
        .read_to_string(&mut xml)
        .expect("inflates");
    xml
}

/// The decoded query pairs of a URL.
pub fn query(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .expect("a URL")
        .query_pairs()
        .into_owned()
        .collect()
}

pub fn param(url: &str, name: &str) -> Option<String> {
    query(url)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

/// The `ID="…"` of an XML message.
pub fn xml_id(xml: &str) -> String {
    let start = xml.find(" ID=\"").expect("an ID") + 5;
    let end = xml[start..].find('"').expect("closed") + start;
    xml[start..end].to_owned()
}

/// What a test response says; every field defaults to a valid answer.
#[derive(Clone)]
pub struct Spec {
    pub response_id: String,
    pub assertion_id: String,
    pub in_response_to: Option<String>,
    pub confirmation_in_response_to: Option<String>,
    pub destination: Option<String>,
    pub recipient: String,
    pub response_issuer: Option<String>,
    pub assertion_issuer: String,
    pub audience: Option<String>,
    pub now: i64,
    pub not_before: i64,
    pub not_on_or_after: i64,
    pub confirmation_not_on_or_after: i64,
    pub name_id: String,
    /// Raw XML put first in the Subject (namespace-differential tests).
    pub subject_prefix: String,
    pub name_id_format: String,
    pub session_index: String,
    /// (Name, FriendlyName, values): raw XML text allowed in values.
    pub attributes: Vec<(String, Option<String>, Vec<String>)>,
    pub status: String,
    pub sign_assertion: bool,
    pub sign_response: bool,
    pub signature_method: String,
    pub digest_method: String,
    pub key: String,
}

impl Spec {
    pub fn new(request_id: Option<&str>, now: i64) -> Self {
        Self {
            response_id: "_resp0123456789abcdef".into(),
            assertion_id: "_assert0123456789abcdef".into(),
            in_response_to: request_id.map(str::to_owned),
            confirmation_in_response_to: request_id.map(str::to_owned),
            destination: Some(ACS.into()),
            recipient: ACS.into(),
            response_issuer: Some(IDP_ENTITY.into()),
            assertion_issuer: IDP_ENTITY.into(),
            audience: Some(SP_ENTITY.into()),
            now,
            not_before: now - 60,
            not_on_or_after: now + 300,
            confirmation_not_on_or_after: now + 300,
            name_id: "ada@example.test".into(),
            subject_prefix: String::new(),
            name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
            session_index: "_session42".into(),
            attributes: vec![
                (
                    "urn:oid:0.9.2342.19200300.100.1.3".into(),
                    Some("mail".into()),
                    vec!["ada@example.test".into()],
                ),
                ("groups".into(), None, vec!["staff".into(), "admins".into()]),
            ],
            status: "urn:oasis:names:tc:SAML:2.0:status:Success".into(),
            sign_assertion: true,
            sign_response: false,
            signature_method: RSA_SHA256.into(),
            digest_method: SHA256.into(),
            key: IDP_KEY.into(),
        }
    }

    fn signature_template(&self, id: &str) -> String {
        format!(
            "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/><ds:SignatureMethod Algorithm=\"{}\"/><ds:Reference URI=\"#{id}\"><ds:Transforms><ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/><ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></ds:Transforms><ds:DigestMethod Algorithm=\"{}\"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue></ds:Signature>",
            self.signature_method, self.digest_method
        )
    }

    /// The Assertion XML (signed when `sign_assertion`).
    pub fn assertion(&self) -> String {
        let attributes: String = self
            .attributes
            .iter()
            .map(|(name, friendly, values)| {
                let friendly = friendly
                    .as_ref()
                    .map(|f| format!(" FriendlyName=\"{f}\""))
                    .unwrap_or_default();
                let values: String = values
                    .iter()
                    .map(|v| format!("<saml:AttributeValue>{v}</saml:AttributeValue>"))
                    .collect();
                format!("<saml:Attribute Name=\"{name}\"{friendly}>{values}</saml:Attribute>")
            })
            .collect();
        let irt = self
            .confirmation_in_response_to
            .as_ref()
            .map(|id| format!(" InResponseTo=\"{id}\""))
            .unwrap_or_default();
        let audience = self
            .audience
            .as_ref()
            .map(|a| {
                format!("<saml:AudienceRestriction><saml:Audience>{a}</saml:Audience></saml:AudienceRestriction>")
            })
            .unwrap_or_default();
        let signature = if self.sign_assertion {
            self.signature_template(&self.assertion_id)
        } else {
            String::new()
        };
        let xml = format!(
            "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{now}\"><saml:Issuer>{issuer}</saml:Issuer>{signature}<saml:Subject>{prefix}<saml:NameID Format=\"{format}\">{name_id}</saml:NameID><saml:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\"><saml:SubjectConfirmationData{irt} NotOnOrAfter=\"{scd_end}\" Recipient=\"{recipient}\"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore=\"{nb}\" NotOnOrAfter=\"{noa}\">{audience}</saml:Conditions><saml:AuthnStatement AuthnInstant=\"{now}\" SessionIndex=\"{session}\"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:Password</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement>{attributes}</saml:AttributeStatement></saml:Assertion>",
            id = self.assertion_id,
            now = instant(self.now),
            issuer = self.assertion_issuer,
            format = self.name_id_format,
            name_id = self.name_id,
            prefix = self.subject_prefix,
            scd_end = instant(self.confirmation_not_on_or_after),
            recipient = self.recipient,
            nb = instant(self.not_before),
            noa = instant(self.not_on_or_after),
            session = self.session_index,
        );
        if self.sign_assertion {
            sign(&xml, &self.key)
        } else {
            xml
        }
    }

    /// The Response XML around `assertion` (signed when `sign_response`).
    pub fn response_with(&self, assertion: &str) -> String {
        let irt = self
            .in_response_to
            .as_ref()
            .map(|id| format!(" InResponseTo=\"{id}\""))
            .unwrap_or_default();
        let destination = self
            .destination
            .as_ref()
            .map(|d| format!(" Destination=\"{d}\""))
            .unwrap_or_default();
        let issuer = self
            .response_issuer
            .as_ref()
            .map(|i| format!("<saml:Issuer xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\">{i}</saml:Issuer>"))
            .unwrap_or_default();
        let signature = if self.sign_response {
            self.signature_template(&self.response_id)
        } else {
            String::new()
        };
        let xml = format!(
            "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"{}\" Version=\"2.0\" IssueInstant=\"{}\"{destination}{irt}>{issuer}{signature}<samlp:Status><samlp:StatusCode Value=\"{}\"/></samlp:Status>{assertion}</samlp:Response>",
            self.response_id,
            instant(self.now),
            self.status
        );
        if self.sign_response {
            sign(&xml, &self.key)
        } else {
            xml
        }
    }

    pub fn response(&self) -> String {
        self.response_with(&self.assertion())
    }
}

/// Signs the first ds:Signature template in `xml` with a PEM private key (xmlsec through
/// samael), without the XML declaration libxml2 adds.
pub fn sign(xml: &str, key_pem: &str) -> String {
    let key = openssl::pkey::PKey::private_key_from_pem(key_pem.as_bytes()).expect("a key");
    let der = key.private_key_to_der().expect("DER");
    let signed = XmlSec::sign_xml(xml, &der).expect("signs");
    strip_declaration(&signed)
}

pub fn strip_declaration(xml: &str) -> String {
    let xml = xml.trim();
    match xml.strip_prefix("<?xml") {
        Some(rest) => rest[rest.find("?>").expect("closed") + 2..]
            .trim()
            .to_owned(),
        None => xml.to_owned(),
    }
}

pub fn b64(xml: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(xml)
}

/// A sign-in in progress: the fake host, the SP, the request id and the state.
pub struct Flow {
    pub fake: FakeHost,
    pub sp: SamlSp,
    pub request_id: String,
    pub state: Vec<u8>,
    pub url: String,
}

impl Flow {
    pub fn begin(extra: Value) -> Self {
        let fake = FakeHost::new();
        let sp = sp(extra);
        let begun = fake
            .call(|host| sp.begin_login(host, &begin_request("state-token-123")))
            .expect("begins");
        let url = begun.step.url.to_string();
        let request = inflate(&param(&url, "SAMLRequest").expect("SAMLRequest"));
        Self {
            request_id: xml_id(&request),
            state: begun.state.to_vec(),
            url,
            fake,
            sp,
        }
    }

    pub fn now(&self) -> i64 {
        self.fake.now_unix_seconds()
    }

    pub fn spec(&self) -> Spec {
        Spec::new(Some(&self.request_id), self.now())
    }

    pub fn post(&self, response_xml: &str) -> Result<Identity, PluginError> {
        self.post_encoded(&b64(response_xml))
    }

    pub fn post_encoded(&self, encoded: &str) -> Result<Identity, PluginError> {
        let request = self.callback(encoded);
        self.fake
            .call(|host| self.sp.complete_login(host, &request))
    }

    /// The ACS callback carrying a base64 `SAMLResponse` for this sign-in.
    pub fn callback(&self, encoded: &str) -> CallbackRequest {
        CallbackRequest {
            callback_url: ACS.into(),
            query: Vec::new().into(),
            form: vec![
                Pair::new("SAMLResponse", encoded),
                Pair::new("RelayState", "state-token-123"),
            ]
            .into(),
            state: self.state.clone().into(),
        }
    }
}

pub fn begin_request(token: &str) -> BeginRequest {
    BeginRequest {
        callback_url: ACS.into(),
        state_token: token.into(),
        login_hint: None.into(),
    }
}

/// Asserts that `outcome` is a refusal of the named check.
#[track_caller]
pub fn refused<T: std::fmt::Debug>(outcome: Result<T, PluginError>, check: &str) -> PluginError {
    let error = outcome.expect_err("must be refused");
    assert!(
        error.message().starts_with(&format!("{check}:")),
        "expected a `{check}` refusal, got: {}",
        error.message()
    );
    error
}
