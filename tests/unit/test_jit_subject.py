"""The parameters JITP extracts from a certificate's subject ("Just-in-time provisioning")."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fleetsim.localcore.features.jit.subject import PREFIX, template_parameters
from fleetsim.pki.certs import SUBJECT_OIDS, subject_name

FIELDS = {"country": "Country", "organization": "Organization",
          "organizational_unit": "OrganizationalUnit",
          "dn_qualifier": "DistinguishedNameQualifier", "state": "StateName",
          "serial_number": "SerialNumber"}


def test_every_subject_field_and_the_certificate_id() -> None:
    subject = subject_name("dev-1", country="DE", organization="Org", organizational_unit="OU",
                           state="Bavaria", dn_qualifier="q1", serial_number="SN-42")
    assert template_parameters(subject, "abc") == {
        PREFIX + "Id": "abc", PREFIX + "CommonName": "dev-1", PREFIX + "Country": "DE",
        PREFIX + "Organization": "Org", PREFIX + "OrganizationalUnit": "OU",
        PREFIX + "StateName": "Bavaria", PREFIX + "DistinguishedNameQualifier": "q1",
        PREFIX + "SerialNumber": "SN-42"}


text = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20)


@given(st.dictionaries(st.sampled_from(sorted(set(SUBJECT_OIDS) - {"country"})), text),
       text)
def test_a_field_the_subject_lacks_is_absent(fields: dict[str, str], cn: str) -> None:
    params = template_parameters(subject_name(cn, **fields), "id")
    assert PREFIX + "Country" not in params
    assert params[PREFIX + "CommonName"] == cn
    for field, value in fields.items():
        assert params[PREFIX + FIELDS[field]] == value
