"""Device and CA certificates as the certificates feature hands them out."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from fleetsim.pki import certificate_id, certificate_pem


@dataclass(slots=True)
class CertificateRecord:
    id: str
    pem: str
    status: str
    ca_id: str | None
    mode: str
    subject_cn: str | None
    created: float
    last_modified: float
    customer_version: int
    generation_id: str
    not_before: float | None
    not_after: float | None
    seq: int = 0


@dataclass(slots=True)
class CaCertificateRecord:
    id: str
    pem: str
    status: str
    auto_registration: str
    registration_config: dict[str, Any] | None
    mode: str
    created: float
    last_modified: float
    customer_version: int
    generation_id: str
    not_before: float | None
    not_after: float | None
    seq: int = 0


def certificate_record(cert: x509.Certificate, status: str, ca_id: str | None = None,
                       mode: str = "DEFAULT") -> CertificateRecord:
    """A new registry record for `cert` (id = SHA-256 of its DER encoding)."""
    der = cert.public_bytes(Encoding.DER)
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    now = time.time()
    return CertificateRecord(
        certificate_id(der), certificate_pem(cert).decode(), status, ca_id, mode,
        str(cns[0].value) if cns else None, now, now, 1, str(uuid.uuid4()),
        cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp())
