"""A real SAML 2.0 identity provider for Gatehouse's integration tests: PyPI's `pysaml2`
(pinned with hashes in requirements.txt; it signs by running Debian's `xmlsec1`) behind
the same endpoints as samlify-idp.mjs, on 127.0.0.1, started by tests/src/saml.rs.

    .venv/bin/python pysaml2_idp.py CONFIG.json
    CONFIG: { "port": 0, "key": "<PEM path>", "cert": "<PEM path>",
              "sp_metadata": "<path of the SP's metadata XML, optional>",
              "users": { "alice@example.test": { "givenName": "Alice", ... } } }

Endpoints:
  GET  /metadata            the IdP's metadata
  GET  /sso?SAMLRequest=…&RelayState=…[&as=<email>]
                            HTTP-Redirect AuthnRequest in, auto-submitting form out (HTTP-POST)
  GET  /slo?SAMLRequest=…   the SP's LogoutRequest: a signed LogoutResponse by a 302 to the SP
  GET  /slo?SAMLResponse=…  the SP's LogoutResponse to our IdP-initiated LogoutRequest
  POST /__test/sp-metadata  body: the SP's metadata XML
  POST /__test/users        body: JSON { email: { attribute: value | [values] } }
  POST /__test/config       body: JSON { "sign_alg": "rsa-sha256" | "rsa-sha1",
                            "digest_alg": "sha256" | "sha1", "sign_assertion": true,
                            "sign_response": false }
  POST /__test/logout       body: JSON { "as": email, "session_index": … } → { "id", "url" }
  GET  /__test/log          JSON: every message received and sent, in order

pysaml2 signs with RSA-SHA1 and SHA-1 digests unless told otherwise: every signing call
here passes the algorithms explicitly (RSA-SHA256 and SHA-256 by default).
Attribute names go through pysaml2's own converters, so `givenName` is sent as
Name="urn:oid:2.5.4.42" FriendlyName="givenName" (the URI name format), as real IdPs do.
When ready it prints one line: GATEHOUSE_SAML_IDP_READY {"port":…,"entity_id":"…"}.
It exits when its stdin closes.
"""

import base64
import json
import re
import shutil
import sys
import threading
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, xmldsig
from saml2.authn_context import PASSWORDPROTECTEDTRANSPORT
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID
from saml2.server import Server

SIGN_ALGS = {
    "rsa-sha256": xmldsig.SIG_RSA_SHA256,
    "rsa-sha1": xmldsig.SIG_RSA_SHA1,
}
DIGEST_ALGS = {
    "sha256": xmldsig.DIGEST_SHA256,
    "sha1": xmldsig.DIGEST_SHA1,
}
DEFAULTS = {
    "sign_alg": "rsa-sha256",
    "digest_alg": "sha256",
    "sign_assertion": True,
    "sign_response": False,
}


def values_of(value):
    """An attribute's values: a list, one value, or samlify's `{friendly_name, values}` form
    (pysaml2 chooses the friendly names itself)."""
    if isinstance(value, dict):
        value = value["values"]
    return value if isinstance(value, list) else [value]


class Idp:
    def __init__(self, config, port):
        self.config = config
        self.base = f"http://127.0.0.1:{port}"
        self.entity_id = f"{self.base}/metadata"
        self.sp_metadata = None
        if config.get("sp_metadata"):
            with open(config["sp_metadata"], encoding="utf-8") as file:
                self.sp_metadata = file.read()
        self.users = config.get("users", {})
        self.overrides = dict(DEFAULTS)
        self.log = []
        self.lock = threading.Lock()
        self.server = self._server()

    def _server(self):
        settings = {
            "entityid": self.entity_id,
            "key_file": self.config["key"],
            "cert_file": self.config["cert"],
            "xmlsec_binary": shutil.which("xmlsec1"),
            "service": {
                "idp": {
                    "endpoints": {
                        "single_sign_on_service": [(f"{self.base}/sso", BINDING_HTTP_REDIRECT)],
                        "single_logout_service": [(f"{self.base}/slo", BINDING_HTTP_REDIRECT)],
                    },
                    "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                    "want_authn_requests_signed": False,
                    "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None}},
                },
            },
            "metadata": {"inline": [self.sp_metadata]} if self.sp_metadata else {},
            "signing_algorithm": xmldsig.SIG_RSA_SHA256,
            "digest_algorithm": xmldsig.DIGEST_SHA256,
        }
        config = IdPConfig()
        config.load(settings)
        return Server(config=config)

    def metadata(self):
        """The IdP's metadata XML (bytes)."""
        return create_metadata_string(None, config=self.server.config, valid=None, sign=False)

    def sign_alg(self):
        return SIGN_ALGS[self.overrides["sign_alg"]]

    def digest_alg(self):
        return DIGEST_ALGS[self.overrides["digest_alg"]]

    def sp_entity_id(self):
        entities = list(self.server.metadata.with_descriptor("spsso").keys())
        if len(entities) != 1:
            raise ValueError(f"expected one SP in the metadata, found {entities}")
        return entities[0]

    def sp_slo(self):
        services = self.server.metadata.single_logout_service(self.sp_entity_id(), BINDING_HTTP_REDIRECT, "spsso")
        if not services:
            raise ValueError("the SP's metadata has no HTTP-Redirect SingleLogoutService")
        return services[0]["location"]

    def verify_redirect_signature(self, raw_query, message_param):
        """Checks an HTTP-Redirect signature over the raw query (saml-bindings §3.4.4.1)
        against the SP's signing certificates from its metadata."""
        parts = {p.split("=", 1)[0]: p for p in raw_query.split("&") if "=" in p}
        if "Signature" not in parts:
            return False
        octets = "&".join(parts[k] for k in (message_param, "RelayState", "SigAlg") if k in parts)
        query = dict(urllib.parse.parse_qsl(raw_query))
        algorithm = {xmldsig.SIG_RSA_SHA256: hashes.SHA256(), xmldsig.SIG_RSA_SHA1: hashes.SHA1()}.get(query.get("SigAlg"))
        if algorithm is None:
            raise ValueError(f"unsupported SigAlg {query.get('SigAlg')}")
        signature = base64.b64decode(query["Signature"])
        certs = self.server.metadata.certs(self.sp_entity_id(), "spsso", "signing")
        for _, pem in certs:
            der = base64.b64decode("".join(pem.split()))
            key = x509.load_der_x509_certificate(der).public_key()
            try:
                key.verify(signature, octets.encode(), padding.PKCS1v15(), algorithm)
                return True
            except Exception:  # noqa: BLE001 (try the next certificate)
                continue
        raise ValueError("the SP's redirect signature does not verify")

    def sso(self, query):
        saml_request = query["SAMLRequest"]
        request = self.server.parse_authn_request(saml_request, BINDING_HTTP_REDIRECT).message
        email = query.get("as") or next(iter(self.users))
        if email not in self.users:
            return 403, "text/plain", f"no such user: {email}".encode(), {}
        args = self.server.response_args(request, [BINDING_HTTP_POST])
        identity = {name: values_of(value) for name, value in self.users[email].items()}
        response = self.server.create_authn_response(
            identity,
            userid=email,
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=email),
            authn={"class_ref": PASSWORDPROTECTEDTRANSPORT, "authn_auth": self.entity_id},
            sign_assertion=self.overrides["sign_assertion"],
            sign_response=self.overrides["sign_response"],
            sign_alg=self.sign_alg(),
            digest_alg=self.digest_alg(),
            session_not_on_or_after=None,
            **args,
        )
        text = str(response)
        found = re.search(r'SessionIndex="([^"]+)"', text)
        session_index = found.group(1) if found else None
        relay_state = query.get("RelayState", "")
        http_args = self.server.apply_binding(BINDING_HTTP_POST, text, args["destination"], relay_state, response=True)
        self.log.append(
            {
                "kind": "authn_request",
                "id": request.id,
                "issuer": request.issuer.text if request.issuer is not None else None,
                "acs": args["destination"],
                "relay_state": relay_state or None,
                "signed": "Signature" in query,
                "as": email,
                "session_index": session_index,
            }
        )
        body = http_args["data"]
        return 200, "text/html; charset=utf-8", body.encode() if isinstance(body, str) else body, {}

    def slo(self, query, raw_query):
        if "SAMLRequest" in query:
            signed = self.verify_redirect_signature(raw_query, "SAMLRequest")
            request = self.server.parse_logout_request(query["SAMLRequest"], BINDING_HTTP_REDIRECT).message
            response = self.server.create_logout_response(
                request, [BINDING_HTTP_REDIRECT], sign=False, sign_alg=self.sign_alg(), digest_alg=self.digest_alg()
            )
            http_args = self.server.apply_binding(
                BINDING_HTTP_REDIRECT,
                str(response),
                self.sp_slo(),
                query.get("RelayState", ""),
                response=True,
                sign=True,
                sigalg=self.sign_alg(),
            )
            self.log.append(
                {
                    "kind": "logout_request",
                    "id": request.id,
                    "issuer": request.issuer.text if request.issuer is not None else None,
                    "name_id": request.name_id.text if request.name_id is not None else None,
                    "session_index": [s.text for s in request.session_index] or None,
                    "signed": signed,
                    "sig_alg": query.get("SigAlg"),
                    "relay_state": query.get("RelayState"),
                }
            )
            location = dict(http_args["headers"])["Location"]
            return 302, "text/plain", b"", {"Location": location}
        if "SAMLResponse" in query:
            signed = self.verify_redirect_signature(raw_query, "SAMLResponse")
            response = self.server.parse_logout_request_response(query["SAMLResponse"], BINDING_HTTP_REDIRECT)
            message = response.response
            self.log.append(
                {
                    "kind": "logout_response",
                    "in_response_to": message.in_response_to,
                    "issuer": message.issuer.text if message.issuer is not None else None,
                    "status": message.status.status_code.value,
                    "signed": signed,
                    "sig_alg": query.get("SigAlg"),
                }
            )
            return 200, "text/html; charset=utf-8", b"<!DOCTYPE html><p>Signed out.</p>", {}
        return 400, "text/plain", b"no SAML message", {}

    def idp_logout(self, body):
        email = body["as"]
        session_index = body.get("session_index")
        request_id, request = self.server.create_logout_request(
            self.sp_slo(),
            self.sp_entity_id(),
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=email),
            session_indexes=[session_index] if session_index else None,
            sign=False,
        )
        http_args = self.server.apply_binding(
            BINDING_HTTP_REDIRECT, str(request), self.sp_slo(), "", sign=True, sigalg=self.sign_alg()
        )
        self.log.append(
            {"kind": "idp_logout_request", "id": request_id, "name_id": email, "session_index": session_index}
        )
        url = dict(http_args["headers"])["Location"]
        return 200, "application/json", json.dumps({"id": request_id, "url": url}).encode(), {}


def handler_for(idp):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 (the base class's name)
            sys.stderr.write(f"{self.command} {self.path.split('?')[0]} {format % args}\n")

        def answer(self, status, content_type, body, headers):
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def body(self):
            return self.rfile.read(int(self.headers.get("content-length", "0"))).decode("utf-8")

        def route(self):
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            if self.command == "GET" and url.path == "/metadata":
                return 200, "application/samlmetadata+xml", idp.metadata(), {}
            if self.command == "GET" and url.path == "/sso":
                return idp.sso(query)
            if self.command == "GET" and url.path == "/slo":
                return idp.slo(query, url.query)
            if self.command == "POST" and url.path == "/__test/sp-metadata":
                idp.sp_metadata = self.body()
                idp.server = idp._server()
                idp.sp_entity_id()
                return 204, "text/plain", b"", {}
            if self.command == "POST" and url.path == "/__test/users":
                idp.users = json.loads(self.body())
                return 204, "text/plain", b"", {}
            if self.command == "POST" and url.path == "/__test/config":
                overrides = dict(DEFAULTS)
                overrides.update(json.loads(self.body()))
                idp.overrides = overrides
                return 204, "text/plain", b"", {}
            if self.command == "POST" and url.path == "/__test/logout":
                return idp.idp_logout(json.loads(self.body()))
            if self.command == "GET" and url.path == "/__test/log":
                return 200, "application/json", json.dumps(idp.log).encode(), {}
            return 404, "text/plain", b"not found", {}

        def handle_one(self):
            with idp.lock:
                try:
                    answer = self.route()
                except Exception as error:  # noqa: BLE001 (every failure is a 400 with its reason)
                    traceback.print_exc()
                    message = f"{type(error).__name__}: {error}"
                    idp.log.append({"kind": "error", "path": self.path.split("?")[0], "message": message})
                    answer = (400, "text/plain", f"refused: {message}".encode(), {})
            self.answer(*answer)

        do_GET = handle_one  # noqa: N815 (BaseHTTPRequestHandler's names)
        do_POST = handle_one  # noqa: N815

    return Handler


def main():
    with open(sys.argv[1], encoding="utf-8") as file:
        config = json.load(file)
    httpd = ThreadingHTTPServer(("127.0.0.1", config.get("port", 0)), None)
    port = httpd.server_address[1]
    idp = Idp(config, port)
    httpd.RequestHandlerClass = handler_for(idp)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    ready = {"port": port, "entity_id": idp.entity_id}
    sys.stdout.write(f"GATEHOUSE_SAML_IDP_READY {json.dumps(ready)}\n")
    sys.stdout.flush()
    # The harness holds our stdin open; when it goes away (even killed), so do we.
    sys.stdin.read()


if __name__ == "__main__":
    main()
