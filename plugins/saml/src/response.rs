//! Validation of a SAML Response at the ACS, in a fixed order: size, base64, no
//! declarations, strict parse and shape (`prescan`), signatures (`signature`), then
//! every check on the signed content, on the host's clock: signed assertion, status,
//! issuer, audience, bearer confirmation (recipient, in-response-to, time), destination,
//! conditions' time window. The replay cache is the caller's (it needs the host's store);
//! this module returns what it needs.

use chrono::DateTime;
use roxmltree::{Document, Node};

use crate::bindings;
use crate::idp_metadata::IdpConfig;
use crate::prescan::{self, Shape};
use crate::refusal::{Check, Refusal};
use crate::settings::SpConfig;
use crate::signature;
use crate::xml::{self, CM_BEARER, NS_ASSERTION, NS_PROTOCOL, STATUS_SUCCESS};

/// What the ACS expects of this response.
pub struct Expected<'a> {
    pub config: &'a SpConfig,
    pub idp: &'a IdpConfig,
    /// The AuthnRequest's ID; `None` for an unsolicited (IdP-initiated) response.
    pub request_id: Option<&'a str>,
    /// The ACS URL the response must name (Recipient, Destination).
    pub acs_url: &'a str,
    /// The host's time, in Unix milliseconds.
    pub now_millis: i64,
    /// When the AuthnRequest was made (Unix milliseconds), for a solicited response.
    pub requested_at_millis: Option<i64>,
}

/// A verified assertion's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub issuer: String,
    pub assertion_id: String,
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub session_index: Option<String>,
    /// Attributes in document order: (Name, FriendlyName, values).
    pub attributes: Vec<(String, Option<String>, Vec<String>)>,
    /// Until when the assertion could be replayed (Unix milliseconds): the latest
    /// NotOnOrAfter plus the skew.
    pub replay_until_millis: i64,
}

/// Validates a base64 `SAMLResponse` form value.
pub fn verify(encoded: &str, expected: &Expected<'_>) -> Result<Verified, Refusal> {
    let xml = bindings::decode_post(encoded)?;
    prescan::refuse_declarations(&xml)?;
    let document = prescan::parse(&xml)?;
    let shape = prescan::scan(&document, NS_PROTOCOL, "Response")?;
    let root = document.root_element();

    let Some(assertion_shape) = shape.assertion.clone() else {
        // A refusal from the IdP carries no assertion: name its status, which is what the
        // admin needs (unsigned, but it only ever refuses).
        check_status(root)?;
        return Err(Check::AssertionCount.refuse(format!(
            "the response carries {} assertions; exactly one is accepted",
            shape.assertion_count
        )));
    };
    // An encrypted assertion carries its signature inside: an unsigned Response around
    // it is checked after decryption, where a signature is always required.
    let unsigned = !shape.root_signed && !assertion_shape.signed;
    if unsigned && !assertion_shape.encrypted {
        return Err(Check::Signature.refuse("the response carries no signature"));
    }
    let predigest = if unsigned {
        None
    } else {
        Some(signature::verify(&xml, &expected.idp.signing_certs)?)
    };
    let signed_doc = predigest.as_deref().map(parse_canonical).transpose()?;
    let signed_root = signed_doc.as_ref().map(Document::root_element);

    // The element whose signature was returned must be the one the shape promised.
    let response = match signed_root {
        Some(signed_root) if shape.root_signed => {
            require_root(signed_root, NS_PROTOCOL, "Response", Some(&shape.root_id))?;
            signed_root
        }
        Some(signed_root) => {
            require_root(
                signed_root,
                NS_ASSERTION,
                "Assertion",
                assertion_shape.id.as_deref(),
            )?;
            root
        }
        None => root,
    };
    check_response(response, &shape, expected)?;

    if assertion_shape.encrypted {
        let key = expected.config.key.as_ref().ok_or_else(|| {
            Check::Decryption.refuse("the assertion is encrypted but no `sp_private_key` is set")
        })?;
        let encrypted = xml::child(response, NS_ASSERTION, "EncryptedAssertion")
            .ok_or_else(|| Check::AssertionCount.refuse("the encrypted assertion is missing"))?;
        let plain = signature::decrypt(encrypted, key)?;
        return verify_decrypted(&plain, expected);
    }
    let Some(signed_root) = signed_root else {
        return Err(Check::Signature.refuse("the response carries no signature"));
    };
    let assertion = if signed_root.tag_name().name() == "Assertion" {
        signed_root
    } else {
        if !assertion_shape.signed && expected.config.want_assertions_signed {
            return Err(Check::Signature
                .refuse("the assertion itself is not signed (want_assertions_signed = true)"));
        }
        xml::child(signed_root, NS_ASSERTION, "Assertion")
            .ok_or_else(|| Check::AssertionCount.refuse("the signed response has no assertion"))?
    };
    check_assertion(assertion, expected)
}

/// A decrypted assertion must carry its own signature, checked like any other.
fn verify_decrypted(plain: &str, expected: &Expected<'_>) -> Result<Verified, Refusal> {
    prescan::refuse_declarations(plain)?;
    let document = prescan::parse(plain)?;
    let shape = prescan::scan(&document, NS_ASSERTION, "Assertion")?;
    if shape.assertion_count != 0 {
        return Err(Check::AssertionCount.refuse("the decrypted assertion holds another assertion"));
    }
    if !shape.root_signed {
        return Err(Check::Signature.refuse("the decrypted assertion is not signed"));
    }
    let predigest = signature::verify(plain, &expected.idp.signing_certs)?;
    let signed_doc = parse_canonical(&predigest)?;
    let assertion = signed_doc.root_element();
    require_root(assertion, NS_ASSERTION, "Assertion", Some(&shape.root_id))?;
    check_assertion(assertion, expected)
}

fn parse_canonical(predigest: &str) -> Result<Document<'_>, Refusal> {
    Document::parse(predigest)
        .map_err(|_| Check::Malformed.refuse("the signed content does not parse"))
}

fn require_root(node: Node<'_, '_>, ns: &str, name: &str, id: Option<&str>) -> Result<(), Refusal> {
    if xml::is(node, ns, name) && id.is_some() && node.attribute("ID") == id {
        Ok(())
    } else {
        Err(Check::Signature.refuse(format!("the signature does not cover the {name}")))
    }
}

/// The Response's own fields: status, issuer, destination, in-response-to.
fn check_response(
    response: Node<'_, '_>,
    shape: &Shape,
    expected: &Expected<'_>,
) -> Result<(), Refusal> {
    check_status(response)?;
    if let Some(issuer) = xml::child(response, NS_ASSERTION, "Issuer") {
        check_issuer(issuer, expected.idp, "Response")?;
    }
    match response.attribute("Destination") {
        Some(destination) if destination != expected.acs_url => {
            return Err(Check::Destination.refuse("the response's Destination is not this ACS URL"));
        }
        None if shape.root_signed => {
            return Err(Check::Destination.refuse("a signed response must name its Destination"));
        }
        _ => {}
    }
    match (response.attribute("InResponseTo"), expected.request_id) {
        (Some(got), Some(want)) if got != want => {
            Err(Check::InResponseTo
                .refuse("the response answers another request than this sign-in's"))
        }
        (Some(_), None) => Err(Check::InResponseTo
            .refuse("an unsolicited response must not name a request (InResponseTo)")),
        _ => Ok(()),
    }
}

fn check_status(response: Node<'_, '_>) -> Result<(), Refusal> {
    let top = xml::child(response, NS_PROTOCOL, "Status")
        .and_then(|s| xml::child(s, NS_PROTOCOL, "StatusCode"));
    let value = top.and_then(|c| c.attribute("Value"));
    if value == Some(STATUS_SUCCESS) {
        return Ok(());
    }
    let mut codes: Vec<&str> = Vec::new();
    let mut code = top;
    while let Some(node) = code {
        codes.push(node.attribute("Value").unwrap_or("(none)"));
        code = xml::child(node, NS_PROTOCOL, "StatusCode");
    }
    if codes.is_empty() {
        codes.push("(no StatusCode)");
    }
    // Status codes are URIs the IdP chose from SAML's list; they name no user.
    let codes: Vec<String> = codes
        .iter()
        .map(|c| c.chars().filter(|c| !c.is_control()).take(200).collect())
        .collect();
    Err(Check::Status.refuse(format!("the IdP answered {}", codes.join(" / "))))
}

fn check_issuer(issuer: Node<'_, '_>, idp: &IdpConfig, whose: &str) -> Result<(), Refusal> {
    if xml::trimmed_text(issuer) == idp.entity_id {
        Ok(())
    } else {
        Err(Check::Issuer.refuse(format!("the {whose} Issuer is not the IdP's entity id")))
    }
}

/// An xs:dateTime attribute in Unix milliseconds.
fn instant(node: Node<'_, '_>, name: &str) -> Result<Option<i64>, Refusal> {
    node.attribute(name)
        .map(|value| {
            DateTime::parse_from_rfc3339(value.trim())
                .map(|t| t.timestamp_millis())
                .map_err(|_| Check::Malformed.refuse(format!("{name} is not a date and time")))
        })
        .transpose()
}

/// NotBefore and NotOnOrAfter of `node` against the host's clock, with the skew.
/// NotOnOrAfter is exclusive: at exactly NotOnOrAfter + skew the assertion is expired.
fn check_window(
    node: Node<'_, '_>,
    expected: &Expected<'_>,
    what: &str,
) -> Result<Option<i64>, Refusal> {
    let skew = expected.config.clock_skew_seconds * 1000;
    if let Some(not_before) = instant(node, "NotBefore")?
        && expected.now_millis < not_before - skew
    {
        return Err(Check::NotYetValid.refuse(format!("the {what} is not valid yet (NotBefore)")));
    }
    let not_on_or_after = instant(node, "NotOnOrAfter")?;
    if let Some(end) = not_on_or_after
        && expected.now_millis >= end + skew
    {
        return Err(Check::Expired.refuse(format!("the {what} has expired (NotOnOrAfter)")));
    }
    Ok(not_on_or_after)
}

fn check_assertion(assertion: Node<'_, '_>, expected: &Expected<'_>) -> Result<Verified, Refusal> {
    let skew = expected.config.clock_skew_seconds * 1000;
    let assertion_id = assertion
        .attribute("ID")
        .ok_or_else(|| Check::Malformed.refuse("the assertion has no ID"))?
        .to_owned();
    let issuer = xml::child(assertion, NS_ASSERTION, "Issuer")
        .ok_or_else(|| Check::Issuer.refuse("the assertion has no Issuer"))?;
    check_issuer(issuer, expected.idp, "Assertion")?;
    let issued = instant(assertion, "IssueInstant")?
        .ok_or_else(|| Check::Malformed.refuse("the assertion has no IssueInstant"))?;
    if expected.now_millis < issued - skew {
        return Err(
            Check::NotYetValid.refuse("the assertion is issued in the future (IssueInstant)")
        );
    }
    // An answer cannot be older than its question: an assertion issued before this
    // sign-in's AuthnRequest was made for another one.
    if let Some(requested) = expected.requested_at_millis
        && issued < requested - skew
    {
        return Err(Check::Expired
            .refuse("the assertion was issued before this sign-in's request (IssueInstant)"));
    }

    let conditions = xml::child(assertion, NS_ASSERTION, "Conditions")
        .ok_or_else(|| Check::Audience.refuse("the assertion has no Conditions, so no Audience"))?;
    let restrictions: Vec<Node<'_, '_>> =
        xml::children(conditions, NS_ASSERTION, "AudienceRestriction").collect();
    if restrictions.is_empty() {
        return Err(Check::Audience.refuse("the assertion names no Audience"));
    }
    for restriction in restrictions {
        let ours = xml::children(restriction, NS_ASSERTION, "Audience")
            .any(|a| xml::trimmed_text(a) == expected.config.entity_id);
        if !ours {
            return Err(Check::Audience
                .refuse("the assertion is for another audience than this SP's entity id"));
        }
    }

    let subject = xml::child(assertion, NS_ASSERTION, "Subject")
        .ok_or_else(|| Check::NameId.refuse("the assertion has no Subject"))?;
    let confirmation_end = check_confirmation(subject, expected)?;
    let conditions_end = check_window(conditions, expected, "assertion")?;

    let name_ids: Vec<Node<'_, '_>> = xml::children(subject, NS_ASSERTION, "NameID").collect();
    let [name_id] = name_ids.as_slice() else {
        return Err(Check::NameId.refuse(
            "the Subject must have exactly one NameID (encrypted NameIDs are not supported)",
        ));
    };
    let name_id_value = xml::text(*name_id);
    if name_id_value.trim().is_empty() {
        return Err(Check::NameId.refuse("the NameID is empty"));
    }

    let session_index = xml::children(assertion, NS_ASSERTION, "AuthnStatement")
        .find_map(|s| s.attribute("SessionIndex"))
        .map(str::to_owned);
    let mut attributes = Vec::new();
    for statement in xml::children(assertion, NS_ASSERTION, "AttributeStatement") {
        for attribute in xml::children(statement, NS_ASSERTION, "Attribute") {
            let Some(name) = attribute.attribute("Name") else {
                return Err(Check::Malformed.refuse("an Attribute has no Name"));
            };
            let values = xml::children(attribute, NS_ASSERTION, "AttributeValue")
                .map(xml::text)
                .collect();
            attributes.push((
                name.to_owned(),
                attribute.attribute("FriendlyName").map(str::to_owned),
                values,
            ));
        }
    }
    let latest_end = confirmation_end.max(conditions_end.unwrap_or(confirmation_end));
    Ok(Verified {
        issuer: expected.idp.entity_id.clone(),
        assertion_id,
        name_id: name_id_value,
        name_id_format: name_id.attribute("Format").map(str::to_owned),
        session_index,
        attributes,
        replay_until_millis: latest_end + skew,
    })
}

/// At least one bearer SubjectConfirmation whose data names this ACS, this request (or
/// none, unsolicited) and an unexpired NotOnOrAfter. Returns that NotOnOrAfter; refuses
/// with the first failure otherwise.
fn check_confirmation(subject: Node<'_, '_>, expected: &Expected<'_>) -> Result<i64, Refusal> {
    let mut first_failure = None;
    for confirmation in xml::children(subject, NS_ASSERTION, "SubjectConfirmation")
        .filter(|c| c.attribute("Method") == Some(CM_BEARER))
    {
        let outcome = (|| {
            let data = xml::child(confirmation, NS_ASSERTION, "SubjectConfirmationData")
                .ok_or_else(|| {
                    Check::SubjectConfirmation.refuse("a bearer confirmation has no data")
                })?;
            if data.attribute("Recipient") != Some(expected.acs_url) {
                return Err(
                    Check::Recipient.refuse("the confirmation's Recipient is not this ACS URL")
                );
            }
            match (data.attribute("InResponseTo"), expected.request_id) {
                (Some(got), Some(want)) if got == want => {}
                (None, None) => {}
                (_, Some(_)) => {
                    return Err(Check::InResponseTo
                        .refuse("the confirmation answers another request than this sign-in's"));
                }
                (Some(_), None) => {
                    return Err(Check::InResponseTo.refuse(
                        "an unsolicited assertion must not name a request (InResponseTo)",
                    ));
                }
            }
            check_window(data, expected, "subject confirmation")?.ok_or_else(|| {
                Check::SubjectConfirmation.refuse("the confirmation has no NotOnOrAfter")
            })
        })();
        match outcome {
            Ok(end) => return Ok(end),
            Err(error) => {
                first_failure.get_or_insert(error);
            }
        }
    }
    Err(first_failure.unwrap_or_else(|| {
        Check::SubjectConfirmation.refuse("the assertion has no bearer SubjectConfirmation")
    }))
}
