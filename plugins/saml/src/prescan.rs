//! The strict look at an incoming SAML message before any signature library sees it:
//! no DTD or entity declarations, no processing instructions, well-formed with one root
//! (roxmltree, which unlike libxml2 in samael never "recovers" broken XML), unique IDs,
//! at most one assertion in the only place it may be, and every ds:Signature of the
//! shape this plugin accepts (allowed algorithms and transforms, one `#ID` reference to
//! its own parent). It checks shape, not signatures: `signature` verifies them.

use roxmltree::{Document, Node, ParsingOptions};

use crate::refusal::{Check, Refusal};
use crate::xml::{self, NS_DSIG};

pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const SIGNATURE_METHODS: [&str; 6] = [
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
];
const DIGEST_METHODS: [&str; 3] = [
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];
/// Deeper nesting than any SAML message has is refused (no stack games downstream).
const MAX_DEPTH: usize = 48;
/// More nodes than any SAML message has is refused before it costs memory.
const MAX_NODES: u32 = 50_000;

/// What the strict look found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// The root element's ID.
    pub root_id: String,
    /// Whether the root carries a ds:Signature (of the accepted shape, not yet verified).
    pub root_signed: bool,
    /// How many Assertion or EncryptedAssertion elements there are below the root.
    pub assertion_count: usize,
    /// The one assertion (a child of the root), when there is exactly one.
    pub assertion: Option<AssertionShape>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionShape {
    pub id: Option<String>,
    pub encrypted: bool,
    pub signed: bool,
}

/// Refuses DTDs, entity declarations and processing instructions by looking at the raw
/// text, before any parser runs.
pub fn refuse_declarations(text: &str) -> Result<(), Refusal> {
    let body = match text.strip_prefix("<?xml") {
        Some(rest) => match rest.find("?>") {
            // `<?xml ` or `<?xml?>`: the declaration, not a PI called xml-something.
            Some(end) if rest.starts_with(char::is_whitespace) => &rest[end + 2..],
            _ => return Err(Check::Malformed.refuse("a broken XML declaration")),
        },
        None => text,
    };
    let mut rest = body;
    while let Some(at) = rest.find("<!") {
        let tail = &rest[at..];
        if !(tail.starts_with("<!--") || tail.starts_with("<![CDATA[")) {
            return Err(Check::Doctype.refuse(
                "the message contains a DOCTYPE or another declaration, which is never accepted",
            ));
        }
        rest = &tail[2..];
    }
    if body.contains("<?") {
        return Err(Check::Malformed.refuse("the message contains a processing instruction"));
    }
    Ok(())
}

/// Parses strictly (after [`refuse_declarations`]).
pub fn parse(text: &str) -> Result<Document<'_>, Refusal> {
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
    };
    let document = Document::parse_with_options(text, options)
        .map_err(|e| Check::Malformed.refuse(format!("the XML is not well-formed ({e})")))?;
    if document
        .descendants()
        .any(|n| n.is_element() && n.ancestors().count() > MAX_DEPTH)
    {
        return Err(Check::Malformed.refuse("the XML is nested too deeply"));
    }
    Ok(document)
}

/// Looks at a message whose root must be `ns`:`root_name`.
pub fn scan(document: &Document<'_>, ns: &str, root_name: &str) -> Result<Shape, Refusal> {
    let root = document.root_element();
    if !xml::is(root, ns, root_name) {
        return Err(
            Check::Malformed.refuse(format!("the root element is not a {root_name} of SAML 2.0"))
        );
    }
    unique_ids(document)?;
    unsplit_values(document)?;
    let root_id = root
        .attribute("ID")
        .ok_or_else(|| Check::Malformed.refuse(format!("the {root_name} has no ID")))?
        .to_owned();

    let assertions: Vec<Node<'_, '_>> = document
        .descendants()
        .filter(|n| {
            // A decrypted assertion is its own root; only assertions below the root count.
            *n != root
                && n.is_element()
                && matches!(n.tag_name().name(), "Assertion" | "EncryptedAssertion")
        })
        .collect();
    if assertions.len() > 1 {
        return Err(Check::AssertionCount.refuse(format!(
            "the message carries {} assertions; exactly one is accepted",
            assertions.len()
        )));
    }
    let assertion = match assertions.as_slice() {
        [one]
            if one.parent() == Some(root)
                && one.tag_name().namespace() == Some(xml::NS_ASSERTION) =>
        {
            Some(*one)
        }
        [_] => {
            return Err(Check::AssertionCount
                .refuse("the assertion is not where SAML puts it (a child of the Response)"));
        }
        _ => None,
    };

    let mut root_signed = false;
    let mut assertion_signed = false;
    for signature in document
        .descendants()
        .filter(|n| xml::is(*n, NS_DSIG, "Signature"))
    {
        let parent = signature.parent().filter(|p| p.is_element());
        let parent = match parent {
            Some(p) if p == root && !root_signed => {
                root_signed = true;
                p
            }
            Some(p) if Some(p) == assertion && !assertion_signed => {
                assertion_signed = true;
                p
            }
            _ => {
                return Err(Check::Signature.refuse(
                    "a Signature is somewhere other than directly in the message or its assertion, or twice there",
                ));
            }
        };
        signature_shape(signature, parent)?;
    }

    Ok(Shape {
        root_id,
        root_signed,
        assertion_count: assertions.len(),
        assertion: assertion.map(|a| AssertionShape {
            id: a.attribute("ID").map(str::to_owned),
            encrypted: a.tag_name().name() == "EncryptedAssertion",
            signed: assertion_signed,
        }),
    })
}

/// The SAML elements whose text becomes an identity, an issuer or an audience.
const VALUE_ELEMENTS: [&str; 4] = ["NameID", "AttributeValue", "Issuer", "Audience"];

/// No comment or CDATA section splits a value, and NameID, Issuer and Audience hold plain
/// text only. Exclusive c14n drops comments, so a value split by one still verifies, and
/// readers that take only the first text node were signed in as someone else (the Duo
/// attack, CVE-2017-11427 and its kin). Our reader would see the whole value, but an IdP
/// never splits a value, so a split one is refused rather than interpreted. An
/// AttributeValue may hold elements (eduPersonTargetedID holds a NameID, itself checked).
fn unsplit_values(document: &Document<'_>) -> Result<(), Refusal> {
    let source = document.input_text();
    for node in document.descendants().filter(|n| {
        n.is_element()
            && n.tag_name().namespace() == Some(xml::NS_ASSERTION)
            && VALUE_ELEMENTS.contains(&n.tag_name().name())
    }) {
        let name = node.tag_name().name();
        let plain_children = node
            .children()
            .all(|c| c.is_text() || (name == "AttributeValue" && c.is_element()));
        let commented = node.descendants().any(|c| c.is_comment());
        let raw = &source[node.range()];
        if !plain_children || commented || raw.contains("<![CDATA[") || raw.contains("<!--") {
            let check = if name == "NameID" {
                Check::NameId
            } else {
                Check::Malformed
            };
            return Err(check.refuse(format!(
                "a {name} is split by a comment, CDATA section or element"
            )));
        }
    }
    Ok(())
}

/// IDs are unique and plain: two elements with one ID is the XSW8 trick.
fn unique_ids(document: &Document<'_>) -> Result<(), Refusal> {
    let mut seen = std::collections::HashSet::new();
    for node in document.descendants().filter(Node::is_element) {
        for attribute in node.attributes() {
            if attribute.name() != "ID" || attribute.namespace().is_some() {
                continue;
            }
            let id = attribute.value();
            let plain = !id.is_empty()
                && !id.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.')
                && id
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !plain {
                return Err(Check::Malformed.refuse("an ID attribute is not an NCName"));
            }
            if !seen.insert(id) {
                return Err(Check::Malformed.refuse("two elements share one ID"));
            }
        }
    }
    Ok(())
}

/// One ds:Signature: SignedInfo with exc-c14n, an allowed SignatureMethod, exactly one
/// Reference to `#<parent's ID>` with only enveloped-signature and exc-c14n transforms
/// and an allowed digest; nothing but SignedInfo, SignatureValue and KeyInfo inside.
fn signature_shape(signature: Node<'_, '_>, parent: Node<'_, '_>) -> Result<(), Refusal> {
    let elements: Vec<Node<'_, '_>> = signature.children().filter(Node::is_element).collect();
    let names: Vec<&str> = elements.iter().map(|n| n.tag_name().name()).collect();
    let allowed_layout = matches!(
        names.as_slice(),
        ["SignedInfo", "SignatureValue"] | ["SignedInfo", "SignatureValue", "KeyInfo"]
    ) && elements
        .iter()
        .all(|n| n.tag_name().namespace() == Some(NS_DSIG));
    if !allowed_layout {
        return Err(Check::Signature.refuse(
            "a Signature holds more than SignedInfo, SignatureValue and KeyInfo (an Object or Manifest?)",
        ));
    }
    let signed_info = elements[0];
    let c14n = xml::child(signed_info, NS_DSIG, "CanonicalizationMethod")
        .and_then(|n| n.attribute("Algorithm"));
    if c14n != Some(EXC_C14N) {
        return Err(Check::Transform
            .refuse("the SignedInfo is not canonicalised with exclusive c14n (without comments)"));
    }
    let method =
        xml::child(signed_info, NS_DSIG, "SignatureMethod").and_then(|n| n.attribute("Algorithm"));
    if !method.is_some_and(|m| SIGNATURE_METHODS.contains(&m)) {
        return Err(Check::Algorithm.refuse(format!(
            "the signature method {} is not in the allow-list (RSA or ECDSA with SHA-256/384/512)",
            method.unwrap_or("(none)")
        )));
    }
    let references: Vec<Node<'_, '_>> = xml::children(signed_info, NS_DSIG, "Reference").collect();
    let [reference] = references.as_slice() else {
        return Err(Check::Signature.refuse("a Signature must have exactly one Reference"));
    };
    let expected = parent.attribute("ID").map(|id| format!("#{id}"));
    if expected.is_none() || reference.attribute("URI") != expected.as_deref() {
        return Err(Check::Signature
            .refuse("the Reference does not point to the ID of the signed element itself"));
    }
    if let Some(transforms) = xml::child(*reference, NS_DSIG, "Transforms") {
        for transform in transforms.children().filter(Node::is_element) {
            let algorithm = transform.attribute("Algorithm");
            let allowed = xml::is(transform, NS_DSIG, "Transform")
                && matches!(algorithm, Some(ENVELOPED) | Some(EXC_C14N))
                && transform.children().filter(Node::is_element).all(|c| {
                    xml::is(c, EXC_C14N, "InclusiveNamespaces") && algorithm == Some(EXC_C14N)
                });
            if !allowed {
                return Err(Check::Transform.refuse(format!(
                    "the transform {} is not allowed (only enveloped-signature and exclusive c14n)",
                    algorithm.unwrap_or("(none)")
                )));
            }
        }
    }
    let digest =
        xml::child(*reference, NS_DSIG, "DigestMethod").and_then(|n| n.attribute("Algorithm"));
    if !digest.is_some_and(|d| DIGEST_METHODS.contains(&d)) {
        return Err(Check::Algorithm.refuse(format!(
            "the digest method {} is not in the allow-list (SHA-256/384/512)",
            digest.unwrap_or("(none)")
        )));
    }
    Ok(())
}
