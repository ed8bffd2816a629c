"""What the certificates feature announces on the bus."""

from __future__ import annotations

from dataclasses import dataclass

from fleetsim.localcore.features.certificates.records import (
    CaCertificateRecord,
    CertificateRecord,
)
from fleetsim.localcore.scope import Scope


@dataclass(frozen=True, slots=True)
class CertificateRegistered:
    """Created (create-keys-and-certificate, from a CSR), registered, or registered just in
    time (`just_in_time`: signed by a CA with auto-registration)."""

    scope: Scope
    certificate: CertificateRecord
    just_in_time: bool = False


@dataclass(frozen=True, slots=True)
class CertificateStateChanged:
    scope: Scope
    certificate: CertificateRecord
    previous_status: str


@dataclass(frozen=True, slots=True)
class CertificateDeleted:
    scope: Scope
    certificate: CertificateRecord


@dataclass(frozen=True, slots=True)
class CaCertificateRegistered:
    scope: Scope
    ca: CaCertificateRecord


@dataclass(frozen=True, slots=True)
class CaCertificateUpdated:
    scope: Scope
    ca: CaCertificateRecord


@dataclass(frozen=True, slots=True)
class CaCertificateDeleted:
    scope: Scope
    ca: CaCertificateRecord
