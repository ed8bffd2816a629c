"""What the broker learns about a client from its certificate: the contract between the
registry (which owns the data) and the broker (which enforces it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Protocol

EXCLUSIVE_THING = "EXCLUSIVE_THING"
NON_EXCLUSIVE_THING = "NON_EXCLUSIVE_THING"

PolicyDocument = dict[str, Any]


@dataclass(frozen=True)
class ThingInfo:
    """A thing the certificate is attached to (a thing principal)."""

    name: str
    type_name: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    # attach-thing-principal --thing-principal-type: EXCLUSIVE_THING | NON_EXCLUSIVE_THING.
    principal_type: str = NON_EXCLUSIVE_THING
    # Parsed default versions of the policies attached to this thing's groups and to their
    # ancestor groups. They apply only while this thing is the connection's thing.
    group_policies: tuple[PolicyDocument, ...] = ()


@dataclass(frozen=True)
class Principal:
    """A registered certificate as the broker sees it at one point in time."""

    certificate_id: str
    certificate_arn: str
    status: str  # ACTIVE | INACTIVE | REVOKED | PENDING_TRANSFER | PENDING_ACTIVATION ...
    subject_common_name: str | None
    _: KW_ONLY
    # Things the certificate is attached to (thing principals).
    things: tuple[ThingInfo, ...] = ()
    # Parsed default versions of the policies attached to the certificate itself. Thing-group
    # policies are on each `ThingInfo`: which of them apply depends on the connection.
    certificate_policies: tuple[PolicyDocument, ...] = ()
    ca_certificate_id: str | None = None
    # When its chain verifies, as far as the registry knows (epoch seconds): the certificate's
    # validity and its issuer's. (0, 0): not known, its chain is verified at every handshake.
    valid_from: float = 0.0
    valid_until: float = 0.0

    def connection_thing(self, client_id: str) -> ThingInfo | None:
        """The thing a connection with this client id acts as, or None.

        AWS ("Thing policy variables"; "Associating an AWS IoT thing to an MQTT client
        connection"): with a non-exclusive association (the default) the thing is the attached
        thing whose name equals the MQTT client id; with an exclusive association
        (EXCLUSIVE_THING) it is the certificate's only thing, whatever the client id. Thing
        policy variables resolve, and thing-group policies apply, only for this thing.
        """
        for thing in self.things:
            if thing.principal_type == EXCLUSIVE_THING:
                return thing
        for thing in self.things:
            if thing.name == client_id:
                return thing
        return None

    def policies_for(self, client_id: str) -> tuple[PolicyDocument, ...]:
        """Every policy that applies to a connection with this client id."""
        thing = self.connection_thing(client_id)
        if thing is None or not thing.group_policies:
            return self.certificate_policies
        return self.certificate_policies + thing.group_policies


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


@dataclass(frozen=True)
class UnknownCertificate:
    """A client at CONNECT whose certificate the Authority does not know (JITP/JITR input)."""

    cert_der: bytes
    # The chain the client presented after its own certificate, DER, when the TLS layer gives
    # it (Python 3.13+); empty otherwise.
    chain_ders: tuple[bytes, ...]
    client_id: str
    peer_ip: str
    # The Server Name Indication the client sent in its TLS handshake, or None if it sent none
    # (AWS requires SNI for just-in-time provisioning: "Just-in-time provisioning").
    server_name: str | None = None
    # The certificate as the Authority knows it when it is registered but PENDING_ACTIVATION
    # (a JITR/JITP certificate connecting again); None when it is not registered at all.
    pending: Principal | None = None


# Offered certificates the Authority does not know, and those it knows as PENDING_ACTIVATION
# with an issuing CA (AWS publishes the JITR event again at each of their connects).
# Returns the Principal to connect with, or None to refuse the connection. A Principal it
# returns should be one the Authority now knows: the connection re-resolves it from the
# Authority whenever the epoch moves, as every connection does.
UnknownCertificateHook = Callable[[UnknownCertificate], Awaitable[Principal | None]]
