"""The parameters just-in-time provisioning extracts from a device certificate ("Just-in-time
provisioning": "The values for these provisioning template parameters are limited to what JITP
can extract from the subject field of the certificate"; `AWS::IoT::Certificate::Id` is the
registry's certificate id, not a field of the certificate)."""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

PREFIX = "AWS::IoT::Certificate::"
SUBJECT_FIELDS: tuple[tuple[str, x509.ObjectIdentifier], ...] = (
    ("Country", NameOID.COUNTRY_NAME),
    ("Organization", NameOID.ORGANIZATION_NAME),
    ("OrganizationalUnit", NameOID.ORGANIZATIONAL_UNIT_NAME),
    ("DistinguishedNameQualifier", NameOID.DN_QUALIFIER),
    ("StateName", NameOID.STATE_OR_PROVINCE_NAME),
    ("CommonName", NameOID.COMMON_NAME),
    # The subject's serialNumber attribute (OID 2.5.4.5), not the certificate's serial.
    ("SerialNumber", NameOID.SERIAL_NUMBER),
)


def template_parameters(subject: x509.Name, certificate_id: str) -> dict[str, str]:
    """`AWS::IoT::Certificate::*` values for a template: the subject fields present (the first
    value of each) and the certificate id. A field the subject lacks is absent, so a template
    that uses it fails as on AWS ("The certificate must contain values for all of the
    parameters in the template body")."""
    params = {PREFIX + "Id": certificate_id}
    for name, oid in SUBJECT_FIELDS:
        values = subject.get_attributes_for_oid(oid)
        if values:
            value = values[0].value
            params[PREFIX + name] = value if isinstance(value, str) else value.decode()
    return params
