"""The broker's side of the registry (`fleetsim.localcore.principal.Authority`): the Principal
of a certificate, with its things and effective policies (parsed documents cached), the epoch
that tells the broker when to resolve again, and the trust anchors of its TLS context."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fleetsim.localcore.policy_document import parse_policy_document
from fleetsim.localcore.principal import Principal, ThingInfo
from fleetsim.localcore.store.base import StoreBase
from fleetsim.localcore.store.records import CertificateRecord
from fleetsim.pki import certificate_id


class AuthorityMixin(StoreBase):
    """Composed into `Store` with the mixins that provide these lookups."""

    if TYPE_CHECKING:  # provided by CertificatesMixin and ThingGroupsMixin
        def get_certificate(self, cert_id: str) -> CertificateRecord | None: ...
        def groups_of_thing(self, thing: str) -> list[str]: ...
        def ancestors(self, name: str) -> list[str]: ...

    @property
    def epoch(self) -> int:
        return self._epoch

    def principal_for_certificate(self, cert_der: bytes) -> Principal | None:
        cert = self.get_certificate(certificate_id(cert_der))
        if cert is None:
            return None
        arn = self.arn("cert", cert.id)
        rows = self._db.execute(
            "SELECT t.name, t.type_name, t.attributes, p.principal_type FROM thing_principals p "
            "JOIN things t ON t.name = p.thing_name WHERE p.principal = ? ORDER BY p.attached",
            (arn,)).fetchall()
        things = tuple(ThingInfo(r[0], r[1], json.loads(r[2]), principal_type=r[3],
                                 group_policies=self._group_policies(r[0])) for r in rows)
        return Principal(cert.id, arn, cert.status, cert.subject_cn, things=things,
                         certificate_policies=self._policies_of([arn]),
                         ca_certificate_id=cert.ca_id)

    def _group_policies(self, thing: str) -> tuple[dict[str, Any], ...]:
        """Policies of the thing's groups and of their ancestors, nearest first."""
        targets: list[str] = []
        for group in self.groups_of_thing(thing):
            for name in (group, *self.ancestors(group)):
                target = self.arn("thinggroup", name)
                if target not in targets:
                    targets.append(target)
        return self._policies_of(targets)

    def _policies_of(self, targets: list[str]) -> tuple[dict[str, Any], ...]:
        return tuple(self._parsed_policy(name, version)
                     for name, version in self._effective_policy_versions(targets))

    def _effective_policy_versions(self, targets: list[str]) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        seen: set[str] = set()
        for target in targets:
            for name, version in self._db.execute(
                    "SELECT p.name, p.default_version FROM policy_targets a JOIN policies p "
                    "ON p.name = a.policy_name WHERE a.target = ? ORDER BY a.attached",
                    (target,)):
                if name not in seen:
                    seen.add(name)
                    out.append((name, version))
        return out

    def _parsed_policy(self, name: str, version: int) -> dict[str, Any]:
        key = (name, version)
        doc = self._policy_cache.get(key)
        if doc is None:
            row = self._db.execute("SELECT document FROM policy_versions WHERE policy_name = ? "
                                   "AND version = ?", key).fetchone()
            doc = parse_policy_document(row[0]) if row else {"Statement": []}
            doc = {**doc, "PolicyName": name}
            self._policy_cache[key] = doc
        return doc

    def trust_anchor_pems(self) -> list[str]:
        """Registered CA certificates and certificates registered without a CA: the broker's
        TLS context must accept chains ending in them."""
        pems = [r[0] for r in self._db.execute(
            "SELECT pem FROM ca_certificates ORDER BY seq")]
        pems += [r[0] for r in self._db.execute(
            "SELECT pem FROM certificates WHERE mode = 'SNI_ONLY' ORDER BY seq")]
        return pems
