"""Validates a SAML metadata document against the OASIS saml-schema-metadata-2.0.xsd (the
copy pysaml2 ships, with the XML Signature, XML Encryption and assertion schemas it
imports), offline. Prints "valid", or the schema's reasons and exits 1.

Usage: validate_metadata.py FILE"""

import sys
from pathlib import Path

import saml2
import xmlschema

SCHEMAS = Path(saml2.__file__).parent / "data" / "schemas"
# Where the imports point on the network, answered from the local copies.
LOCATIONS = [
    ("http://www.w3.org/2000/09/xmldsig#", str(SCHEMAS / "xmldsig-core-schema.xsd")),
    ("http://www.w3.org/2001/04/xmlenc#", str(SCHEMAS / "xenc-schema.xsd")),
    ("urn:oasis:names:tc:SAML:2.0:assertion", str(SCHEMAS / "saml-schema-assertion-2.0.xsd")),
    ("http://www.w3.org/XML/1998/namespace", str(SCHEMAS / "xml.xsd")),
]


def main():
    schema = xmlschema.XMLSchema(
        str(SCHEMAS / "saml-schema-metadata-2.0.xsd"), locations=LOCATIONS, allow="local"
    )
    errors = list(schema.iter_errors(sys.argv[1]))
    if errors:
        for error in errors:
            print(error.reason, "at", error.path)
        sys.exit(1)
    print("valid")


if __name__ == "__main__":
    main()
