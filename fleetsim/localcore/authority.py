"""The broker's read model of the registry (`fleetsim.localcore.principal.Authority`): the
Principal of a certificate in the region the broker serves, composed from the certificates,
registry and policies services (no table is read here), and the database's epoch.

Principals are kept per certificate until the epoch moves (every committed change to a table
that can alter one moves it): a device reconnecting, or a connection re-checking after an
unrelated change elsewhere, costs a dictionary look-up instead of five queries. What is read
while a transaction is open is not kept (it could still be rolled back).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetsim.localcore.db import Database
from fleetsim.localcore.principal import PolicyDocument, Principal, ThingInfo
from fleetsim.localcore.scope import Scope
from fleetsim.pki import certificate_id

if TYPE_CHECKING:
    from fleetsim.localcore.features.certificates.records import CertificateRecord
    from fleetsim.localcore.features.context import Services

CACHED_PRINCIPALS = 100_000  # a fleet's worth; beyond, the cache starts again


class RegistryAuthority:
    def __init__(self, db: Database, scope: Scope, services: Services,
                 root_validity: tuple[float, float] = (0.0, 0.0)):
        self._db = db
        self._scope = scope
        self._services = services
        self._root_validity = root_validity  # local core's own root CA's
        self._principals: dict[str, Principal | None] = {}
        self._principals_epoch = 0

    @property
    def epoch(self) -> int:
        return self._db.epoch

    def principal_for_certificate(self, cert_der: bytes) -> Principal | None:
        db, cert_id = self._db, certificate_id(cert_der)
        if self._principals_epoch != db.epoch:
            self._principals.clear()
            self._principals_epoch = db.epoch
        try:
            return self._principals[cert_id]
        except KeyError:
            pass
        principal = self._resolve(cert_id)
        if not db.in_transaction:
            if len(self._principals) >= CACHED_PRINCIPALS:
                self._principals.clear()
            self._principals[cert_id] = principal
        return principal

    def _resolve(self, cert_id: str) -> Principal | None:
        scope = self._scope
        cert = self._services.certificates.get_certificate(scope, cert_id)
        if cert is None:
            return None
        arn = scope.arn("cert", cert.id)
        valid_from, valid_until = self._chain_validity(cert)
        registry = self._services.registry
        things = tuple(
            ThingInfo(record.name, record.type_name, record.attributes,
                      attachment.principal_type,
                      group_policies=self._group_policies(record.name))
            for attachment in registry.things_of_principal(scope, arn)
            if (record := registry.get_thing(scope, attachment.thing_name)) is not None)
        return Principal(cert.id, arn, cert.status, cert.subject_cn, things=things,
                         certificate_policies=tuple(
                             self._services.policies.effective_documents(scope, [arn])),
                         ca_certificate_id=cert.ca_id,
                         valid_from=valid_from, valid_until=valid_until)

    def _chain_validity(self, cert: CertificateRecord) -> tuple[float, float]:
        """When the certificate's chain verifies: its own validity and its issuer's, a
        registered CA or, for what local core issued, its root; (0, 0) if unknown."""
        windows = [(cert.not_before, cert.not_after)]
        if cert.ca_id is not None:
            ca = self._services.certificates.get_ca(self._scope, cert.ca_id)
            if ca is None:
                return 0.0, 0.0
            windows.append((ca.not_before, ca.not_after))
        elif cert.mode == "DEFAULT":  # issued by local core (SNI_ONLY: its own anchor)
            windows.append(self._root_validity)
        known = [(a, b) for a, b in windows if a is not None and b is not None]
        if len(known) < len(windows):
            return 0.0, 0.0
        return max(a for a, _ in known), min(b for _, b in known)

    def _group_policies(self, thing: str) -> tuple[PolicyDocument, ...]:
        """Policies of the thing's groups and of their ancestors: they apply only while the
        thing is the connection's thing (see `Principal.policies_for`)."""
        scope = self._scope
        targets = [scope.arn("thinggroup", group)
                   for group in self._services.registry.group_chain_of_thing(scope, thing)]
        return tuple(self._services.policies.effective_documents(scope, targets))
