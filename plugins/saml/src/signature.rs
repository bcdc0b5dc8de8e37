//! XML signature verification through samael (libxml2 + xmlsec), in its strictest
//! reduce mode, with the algorithm allow-list set; and the decryption of an
//! EncryptedAssertion with the SP key through samael's primitives. Only this module
//! calls samael's crypto; it never uses samael's response validation, whose time checks
//! read the system clock (`Utc::now()`) instead of the host's.
//!
//! Reduce mode: `ReduceMode::PreDigest`. The output is xmlsec's own pre-digest buffer of
//! the one verified reference (the Response's when both the Response and its assertion
//! are signed): the exact exclusive-c14n bytes that were digested, so what the plugin
//! reads is what was signed (comments are already gone, CDATA is plain text). The
//! default `ValidateAndMarkNoAncestors` re-serialises a pruned copy of libxml2's tree and
//! `ValidateAndMark` keeps unsigned ancestors; neither is needed here because `prescan`
//! allows at most one signature per element and only on the message and its assertion.

use base64::Engine as _;
use roxmltree::Node;
use samael::crypto::{
    AllowedSignatureAlgorithm, CertificateDer, CryptoProvider, ReduceMode, XmlSec,
};
use samael::schema::CipherValue;

use crate::refusal::{Check, Refusal};
use crate::settings::SpKey;
use crate::xml::{self, NS_DSIG, NS_XENC};

const ALLOWED: [AllowedSignatureAlgorithm; 6] = [
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

/// Verifies every signature in `xml` against the IdP's certificates (any of them) and
/// returns the canonical bytes of the signed element.
pub fn verify(xml: &str, certs: &[Vec<u8>]) -> Result<String, Refusal> {
    let certs: Vec<CertificateDer> = certs.iter().cloned().map(CertificateDer::from).collect();
    XmlSec::reduce_xml_to_signed_with_allowed_algorithms(
        xml,
        &certs,
        ReduceMode::PreDigest,
        Some(&ALLOWED),
    )
    .map_err(|_| {
        Check::Signature.refuse("the XML signature does not verify with the IdP's certificates")
    })
}

const AES_CBC: [&str; 3] = [
    "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes192-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
];
const AES128_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes128-gcm";

/// Decrypts an EncryptedAssertion to the assertion's XML. Every failure is one refusal,
/// whatever went wrong (no padding oracle).
pub fn decrypt(encrypted: Node<'_, '_>, key: &SpKey) -> Result<String, Refusal> {
    let failed =
        || Check::Decryption.refuse("the encrypted assertion does not decrypt with the SP key");
    let data = xml::child(encrypted, NS_XENC, "EncryptedData").ok_or_else(failed)?;
    let method = xml::child(data, NS_XENC, "EncryptionMethod")
        .and_then(|m| m.attribute("Algorithm"))
        .ok_or_else(failed)?;
    let value = cipher_value(data).ok_or_else(failed)?;
    let encrypted_key = xml::child(data, NS_DSIG, "KeyInfo")
        .and_then(|k| xml::child(k, NS_XENC, "EncryptedKey"))
        .or_else(|| xml::child(encrypted, NS_XENC, "EncryptedKey"))
        .ok_or_else(failed)?;
    let key_method = xml::child(encrypted_key, NS_XENC, "EncryptionMethod")
        .and_then(|m| m.attribute("Algorithm"))
        .ok_or_else(failed)?;
    let key_value = cipher_value(encrypted_key).ok_or_else(failed)?;

    // samael slices the ciphertext without checking its length: check it first.
    let raw = base64::engine::general_purpose::STANDARD
        .decode(value.split_ascii_whitespace().collect::<String>())
        .map_err(|_| failed())?;
    let cbc = AES_CBC.contains(&method);
    let minimum = if cbc {
        32
    } else if method == AES128_GCM {
        12 + 16 + 1
    } else {
        usize::MAX
    };
    if raw.len() < minimum || (cbc && raw.len() % 16 != 0) {
        return Err(failed());
    }
    let content_key =
        XmlSec::decrypt_assertion_key_info(&CipherValue { value: key_value }, key_method, &key.key)
            .map_err(|_| failed())?;
    let mut plain =
        XmlSec::decrypt_assertion_value_info(&CipherValue { value }, method, &content_key)
            .map_err(|_| failed())?;
    if cbc {
        // samael decrypts without removing the XML Encryption padding (last byte = its length).
        let pad = usize::from(*plain.last().ok_or_else(failed)?);
        if pad == 0 || pad > 16 || pad > plain.len() {
            return Err(failed());
        }
        plain.truncate(plain.len() - pad);
    }
    String::from_utf8(plain).map_err(|_| failed())
}

fn cipher_value(parent: Node<'_, '_>) -> Option<String> {
    xml::child(parent, NS_XENC, "CipherData")
        .and_then(|c| xml::child(c, NS_XENC, "CipherValue"))
        .map(xml::text)
}
