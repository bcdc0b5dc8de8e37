"""Times python's xmlsec binding (the bare libxml2 + xmlsec verification: the floor) and
python3-saml's Response.is_valid() on the response the benchmark wrote, and prints one JSON
line with verifications per second. Run by benches/peers.rs; not a test.

Usage: compare.py DIR SECONDS, where DIR holds response.xml, idp.crt and case.json."""

import base64
import json
import sys
import time
from pathlib import Path

import xmlsec
from lxml import etree
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.utils import OneLogin_Saml2_Utils

DS = "http://www.w3.org/2000/09/xmldsig#"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"


def rate(body, seconds):
    """Calls body() for about `seconds` and returns calls per second."""
    body()  # warm up, and fail early if it does not verify
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        body()
        calls += 1
    return calls / (time.perf_counter() - start)


def main():
    folder, seconds = Path(sys.argv[1]), float(sys.argv[2])
    response = (folder / "response.xml").read_bytes()
    cert = (folder / "idp.crt").read_bytes()
    case = json.loads((folder / "case.json").read_text())

    def floor():
        root = etree.fromstring(response)
        assertion = root.find(f"{{{SAML}}}Assertion")
        xmlsec.tree.add_ids(assertion, ["ID"])
        signature = assertion.find(f"{{{DS}}}Signature")
        context = xmlsec.SignatureContext()
        context.key = xmlsec.Key.from_memory(cert, xmlsec.constants.KeyDataFormatCertPem)
        context.verify(signature)

    settings = {
        "strict": True,
        "sp": {
            "entityId": case["sp_entity_id"],
            "assertionConsumerService": {"url": case["acs_url"]},
        },
        "idp": {
            "entityId": case["idp_entity_id"],
            "singleSignOnService": {"url": case["idp_sso_url"]},
            "x509cert": cert.decode(),
        },
        "security": {"wantAssertionsSigned": True, "rejectDeprecatedAlgorithm": True},
    }
    from onelogin.saml2.settings import OneLogin_Saml2_Settings

    parsed_settings = OneLogin_Saml2_Settings(settings, sp_validation_only=True)
    encoded = base64.b64encode(response)
    acs = case["acs_url"]
    scheme, rest = acs.split("://", 1)
    host, path = rest.split("/", 1)
    request_data = {
        "https": "on" if scheme == "https" else "off",
        "http_host": host,
        "script_name": "/" + path,
        "server_port": "443" if scheme == "https" else "80",
    }
    # The response was issued at the benchmark host's (fixed) time: python3-saml reads the
    # clock for its time checks, so it is given the same time.
    OneLogin_Saml2_Utils.now = staticmethod(lambda: case["now"])

    def python3_saml():
        result = OneLogin_Saml2_Response(parsed_settings, encoded)
        if not result.is_valid(request_data, case["request_id"], raise_exceptions=True):
            raise SystemExit("python3-saml refused the response")

    print(json.dumps({"floor": rate(floor, seconds), "python3_saml": rate(python3_saml, seconds)}))


if __name__ == "__main__":
    main()
