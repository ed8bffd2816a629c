"""What the broker learns about a client from its certificate: the contract between the
registry (which owns the data) and the broker (which enforces it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ThingInfo:
    name: str
    type_name: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    principal_type: str = "NON_EXCLUSIVE_THING"


@dataclass(frozen=True)
class Principal:
    """A registered certificate as the broker sees it at one point in time."""

    certificate_id: str
    certificate_arn: str
    status: str  # ACTIVE | INACTIVE | REVOKED | PENDING_TRANSFER | PENDING_ACTIVATION ...
    subject_common_name: str | None
    # Things the certificate is attached to (thing principals).
    things: tuple[ThingInfo, ...] = ()
    # Parsed default versions of every policy that applies: attached to the certificate and to
    # every thing group (and ancestor group) of every attached thing.
    policies: tuple[dict[str, Any], ...] = ()
    ca_certificate_id: str | None = None


class Authority(Protocol):
    """Implemented by the registry; called by the broker."""

    @property
    def epoch(self) -> int:
        """Bumped on every change that can alter a Principal (status, attachments, policies,
        groups, thing attributes): the broker re-resolves a cached Principal when it moves."""
        ...

    def principal_for_certificate(self, cert_der: bytes) -> Principal | None:
        """The registered certificate with this DER encoding, or None if it is not registered."""
        ...
