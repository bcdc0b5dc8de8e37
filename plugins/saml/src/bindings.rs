//! The SAML bindings this plugin speaks: HTTP-Redirect (deflate + base64 in the query,
//! signed over the exact encoded query string with SigAlg and Signature) and HTTP-POST
//! (base64 in a form field, an auto-submitting page). Encoding, decoding with size caps,
//! and redirect-binding signatures; nothing here reads the SAML inside.

use std::io::{Read, Write};

use base64::Engine as _;
use flate2::{Compression, read::DeflateDecoder, write::DeflateEncoder};
use gatehouse_plugin_api::Pair;
use openssl::{hash::MessageDigest, pkey::PKey, sign::Signer, sign::Verifier, x509::X509};

use crate::refusal::{Check, Refusal};
use crate::settings::SpKey;
use crate::xml::escape;

/// The largest base64 message accepted from a browser or an IdP (POST or query), checked
/// before anything is decoded.
pub const MAX_ENCODED_BYTES: usize = 256 * 1024;
/// The largest inflated HTTP-Redirect message: a deflate bomb stops here.
pub const MAX_INFLATED_BYTES: usize = 256 * 1024;

pub const SIG_RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
/// A SigAlg URI and the digest it signs with.
type SigAlg = (&'static str, fn() -> MessageDigest);

const ALLOWED_SIG_ALGS: [SigAlg; 6] = [
    (SIG_RSA_SHA256, MessageDigest::sha256),
    (
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
        MessageDigest::sha384,
    ),
    (
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
        MessageDigest::sha512,
    ),
    (
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
        MessageDigest::sha256,
    ),
    (
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
        MessageDigest::sha384,
    ),
    (
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
        MessageDigest::sha512,
    ),
];

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Percent-encodes everything but RFC 3986's unreserved characters, with upper-case hex.
pub fn encode_component(value: &str) -> String {
    encode_with(value, "0123456789ABCDEF")
}

fn encode_with(value: &str, hex: &str) -> String {
    let hex = hex.as_bytes();
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(hex[usize::from(byte >> 4)]));
            out.push(char::from(hex[usize::from(byte & 15)]));
        }
    }
    out
}

/// A message for the HTTP-Redirect binding: raw deflate, then base64.
pub fn deflate_b64(xml: &str) -> Result<String, Refusal> {
    let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(xml.as_bytes())
        .and_then(|()| encoder.finish())
        .map(|deflated| b64().encode(deflated))
        .map_err(|e| gatehouse_plugin_api::PluginError::internal(format!("deflate failed: {e}")))
}

/// The XML of an HTTP-Redirect message: size cap, base64, inflate (capped), UTF-8.
pub fn inflate_b64(value: &str) -> Result<String, Refusal> {
    let bytes = decode_b64(value)?;
    let mut inflated = Vec::new();
    let limit = u64::try_from(MAX_INFLATED_BYTES + 1).unwrap_or(u64::MAX);
    DeflateDecoder::new(bytes.as_slice())
        .take(limit)
        .read_to_end(&mut inflated)
        .map_err(|_| Check::Malformed.refuse("the redirect-binding message does not inflate"))?;
    if inflated.len() > MAX_INFLATED_BYTES {
        return Err(Check::TooLarge.refuse(format!(
            "the message inflates to over {MAX_INFLATED_BYTES} bytes"
        )));
    }
    utf8(inflated)
}

/// The XML of an HTTP-POST message: size cap, base64, UTF-8.
pub fn decode_post(value: &str) -> Result<String, Refusal> {
    utf8(decode_b64(value)?)
}

/// The message as text, without a UTF-8 byte-order mark (some IdPs send one; the XML
/// declaration must then be first).
fn utf8(bytes: Vec<u8>) -> Result<String, Refusal> {
    let text = String::from_utf8(bytes)
        .map_err(|_| Check::Malformed.refuse("the message is not UTF-8"))?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    })
}

fn decode_b64(value: &str) -> Result<Vec<u8>, Refusal> {
    if value.len() > MAX_ENCODED_BYTES {
        return Err(Check::TooLarge.refuse(format!(
            "the message is {} bytes of base64, over {MAX_ENCODED_BYTES}",
            value.len()
        )));
    }
    // IdPs wrap base64 at 64 or 76 columns.
    let compact: String = value.split_ascii_whitespace().collect();
    b64()
        .decode(compact.as_bytes())
        .map_err(|_| Check::Malformed.refuse("the message is not base64"))
}

/// A redirect-binding URL to `endpoint` carrying `message` under `param` (`SAMLRequest`
/// or `SAMLResponse`), signed when the SP has a key: the signature covers exactly the
/// query string that is sent.
pub fn redirect_url(
    endpoint: &str,
    param: &str,
    message: &str,
    relay_state: Option<&str>,
    key: Option<&SpKey>,
) -> Result<String, Refusal> {
    let mut query = format!("{param}={}", encode_component(&deflate_b64(message)?));
    if let Some(relay_state) = relay_state {
        query.push_str("&RelayState=");
        query.push_str(&encode_component(relay_state));
    }
    if let Some(key) = key {
        query.push_str("&SigAlg=");
        query.push_str(&encode_component(SIG_RSA_SHA256));
        let signature = sign(key, query.as_bytes())?;
        query.push_str("&Signature=");
        query.push_str(&encode_component(&b64().encode(signature)));
    }
    let separator = if endpoint.contains('?') { '&' } else { '?' };
    Ok(format!("{endpoint}{separator}{query}"))
}

fn sign(key: &SpKey, data: &[u8]) -> Result<Vec<u8>, Refusal> {
    let internal = |e: openssl::error::ErrorStack| {
        gatehouse_plugin_api::PluginError::internal(format!("signing failed: {e}"))
    };
    let mut signer = Signer::new(MessageDigest::sha256(), &key.key).map_err(internal)?;
    signer.update(data).map_err(internal)?;
    signer.sign_to_vec().map_err(internal)
}

/// Checks a redirect-binding signature (`SigAlg`, `Signature`) over `param`, `RelayState`
/// and `SigAlg` against the IdP's certificates. The host hands over decoded pairs, not
/// the raw query, so the signed string is rebuilt in the encodings IdPs use (upper- and
/// lower-case hex, form encoding); a forgery verifies under none of them.
pub fn verify_redirect(query: &[Pair], param: &str, certs: &[Vec<u8>]) -> Result<(), Refusal> {
    let value = |name: &str| {
        let mut found = query.iter().filter(|p| p.name.as_str() == name);
        match (found.next(), found.next()) {
            (Some(pair), None) => Ok(Some(pair.value.as_str())),
            (None, _) => Ok(None),
            (Some(_), Some(_)) => Err(Check::Malformed.refuse(format!("`{name}` is sent twice"))),
        }
    };
    let message = value(param)?.ok_or_else(|| Check::Malformed.refuse(format!("no `{param}`")))?;
    let relay_state = value("RelayState")?;
    let (Some(sig_alg), Some(signature)) = (value("SigAlg")?, value("Signature")?) else {
        return Err(Check::Signature
            .refuse("the redirect-binding message is not signed (no SigAlg and Signature)"));
    };
    let digest = ALLOWED_SIG_ALGS
        .iter()
        .find(|(uri, _)| *uri == sig_alg)
        .map(|(_, digest)| digest())
        .ok_or_else(|| {
            Check::Algorithm
                .refuse("the SigAlg is not in the allow-list (RSA or ECDSA with SHA-256/384/512)")
        })?;
    let signature = b64()
        .decode(signature.split_ascii_whitespace().collect::<String>())
        .map_err(|_| Check::Signature.refuse("the Signature parameter is not base64"))?;

    let encoders: [&dyn Fn(&str) -> String; 3] = [
        &encode_component,
        &|v: &str| encode_with(v, "0123456789abcdef"),
        &|v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect(),
    ];
    for cert in certs {
        let Ok(public) = X509::from_der(cert).and_then(|c| c.public_key()) else {
            continue;
        };
        for encode in encoders {
            let mut signed = format!("{param}={}", encode(message));
            if let Some(relay_state) = relay_state {
                signed.push_str(&format!("&RelayState={}", encode(relay_state)));
            }
            signed.push_str(&format!("&SigAlg={}", encode(sig_alg)));
            if verifies(&public, digest, signed.as_bytes(), &signature) {
                return Ok(());
            }
        }
    }
    Err(Check::Signature
        .refuse("the redirect-binding signature does not verify with the IdP's certificates"))
}

fn verifies(
    public: &PKey<openssl::pkey::Public>,
    digest: MessageDigest,
    data: &[u8],
    signature: &[u8],
) -> bool {
    Verifier::new(digest, public)
        .and_then(|mut verifier| {
            verifier.update(data)?;
            verifier.verify(signature)
        })
        .unwrap_or(false)
}

/// An HTML page that POSTs `fields` to `url` (HTTP-POST binding), every value escaped.
/// Without script (the host's CSP may block it) the button does the same.
pub fn post_form_page(url: &str, fields: &[Pair]) -> String {
    let inputs: String = fields
        .iter()
        .map(|p| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(&p.name),
                escape(&p.value)
            )
        })
        .collect();
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Continue</title></head>\
<body onload=\"document.forms[0].submit()\"><form method=\"post\" action=\"{}\">{inputs}\
<noscript><p>Press the button to continue.</p></noscript><button type=\"submit\">Continue</button></form></body></html>",
        escape(url)
    )
}
