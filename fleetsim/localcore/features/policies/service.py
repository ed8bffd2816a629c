"""IoT policies, their versions and their attachments (certificates, thing groups), and the
effective policies of a set of targets. The only writer of this feature's tables."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from fleetsim.localcore.bus import Bus
from fleetsim.localcore.db import Database
from fleetsim.localcore.errors import AwsError, already_exists, delete_conflict, found, invalid
from fleetsim.localcore.features.policies import announcements as a
from fleetsim.localcore.features.policies.records import PolicyRecord, PolicyVersionRecord
from fleetsim.localcore.features.policies.store import PoliciesStore
from fleetsim.localcore.policy_document import PolicyDocumentError, parse_policy_document
from fleetsim.localcore.scope import Scope

if TYPE_CHECKING:
    from fleetsim.localcore.features.context import Services

MAX_POLICY_VERSIONS = 5
MAX_POLICIES_PER_TARGET = 10
_GROUP = ":thinggroup/"
# arn:PARTITION:iot:REGION:ACCOUNT:cert/ID or .../thinggroup/NAME, or a Cognito identity ID
# (IdentityId pattern of botocore's cognito-identity model: [\w-]+:[0-9a-f-]+).
_TARGET = re.compile(r"arn:[\w-]+:iot:[\w-]+:\d{12}:(cert/\w+|thinggroup/[\w:.-]+)"
                     r"|[\w-]+:[0-9a-f-]+")


def validate_document(document: str) -> None:
    try:
        parse_policy_document(document)
    except PolicyDocumentError as e:
        raise AwsError("MalformedPolicyException", str(e)) from e


def _stored_document(text: str | None) -> dict[str, Any]:
    """A stored document as the evaluator reads it. One stored before create-policy checked
    what it checks today is read as it is (the evaluator ignores statements it cannot read)
    rather than refused, so a principal with such a policy still gets its other statements."""
    if not text:
        return {"Statement": []}
    try:
        return parse_policy_document(text)
    except PolicyDocumentError:
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError):
            return {"Statement": []}
        return raw if isinstance(raw, dict) else {"Statement": []}


class PoliciesService:
    def __init__(self, db: Database, bus: Bus, services: Services):
        self._db = db
        self._store = PoliciesStore(db)
        self._bus = bus
        self._services = services
        # (region, name, version) -> parsed document, for the broker's Principals
        self._parsed: dict[tuple[str, str, int], dict[str, Any]] = {}

    def require_policy(self, scope: Scope, name: str) -> PolicyRecord:
        return found(self._store.get_policy(scope.region, name))

    def get_policy(self, scope: Scope, name: str) -> PolicyRecord | None:
        return self._store.get_policy(scope.region, name)

    def create_policy(self, scope: Scope, name: str, document: str) -> PolicyRecord:
        if self._store.get_policy(scope.region, name) is not None:
            raise already_exists(f"Policy cannot be created - name already exists (name={name})",
                                 name, scope.arn("policy", name))
        validate_document(document)
        rec = self._store.create_policy(scope.region, name, document)
        self._bus.publish(a.PolicyCreated(scope, rec))
        return rec

    def delete_policy(self, scope: Scope, name: str) -> None:
        policy = self.require_policy(scope, name)
        if self._store.policy_is_attached(scope.region, policy.name):
            raise delete_conflict("The policy cannot be deleted as the policy is attached to "
                                  f"one or more principals (name={policy.name})")
        if len(self._store.policy_versions(scope.region, policy.name)) > 1:
            raise delete_conflict("Cannot delete the policy because it has one or more policy "
                                  f"versions attached to it (name={policy.name})")
        self._store.delete_policy(scope.region, policy.name)
        self._parsed = {k: v for k, v in self._parsed.items()
                        if k[:2] != (scope.region, policy.name)}
        self._bus.publish(a.PolicyDeleted(scope, policy.name))

    def list_policies(self, scope: Scope, after: str, limit: int, ascending: bool
                      ) -> tuple[list[PolicyRecord], str | None]:
        return self._store.list_policies(scope.region, after, limit, ascending)

    # --- versions ----------------------------------------------------------------------------

    def create_policy_version(self, scope: Scope, name: str, document: str,
                              set_default: bool) -> PolicyVersionRecord:
        policy = self.require_policy(scope, name)
        validate_document(document)
        if len(self._store.policy_versions(scope.region, policy.name)) >= MAX_POLICY_VERSIONS:
            raise AwsError("VersionsLimitExceededException",
                           f"The policy {policy.name} already has the maximum number of "
                           f"versions ({MAX_POLICY_VERSIONS})")
        version = self._store.create_policy_version(scope.region, policy, document, set_default)
        self._bus.publish(a.PolicyUpdated(scope, policy.name))
        return version

    def require_version(self, scope: Scope, name: str, version_id: str) -> PolicyVersionRecord:
        policy = self.require_policy(scope, name)
        try:
            version = int(version_id)
        except ValueError as e:
            raise invalid(f"Invalid policy version id: {version_id}") from e
        return found(self._store.get_policy_version(scope.region, policy.name, version))

    def policy_versions(self, scope: Scope, name: str) -> list[PolicyVersionRecord]:
        return self._store.policy_versions(scope.region, self.require_policy(scope, name).name)

    def set_default_policy_version(self, scope: Scope, name: str, version_id: str) -> None:
        version = self.require_version(scope, name, version_id)
        self._store.set_default_policy_version(scope.region, version.policy_name,
                                               version.version)
        self._bus.publish(a.PolicyUpdated(scope, version.policy_name))

    def delete_policy_version(self, scope: Scope, name: str, version_id: str) -> None:
        version = self.require_version(scope, name, version_id)
        if version.is_default:
            raise delete_conflict("Cannot delete the default version of a policy")
        self._store.delete_policy_version(scope.region, version.policy_name, version.version)
        self._parsed.pop((scope.region, version.policy_name, version.version), None)
        self._bus.publish(a.PolicyUpdated(scope, version.policy_name))

    # --- attachments -------------------------------------------------------------------------

    def require_target(self, scope: Scope, target: str) -> None:
        """A policy target is a certificate ARN (of a registered certificate), a thing group
        ARN (of an existing group) or an Amazon Cognito identity ID ("AttachPolicy", AWS IoT
        API reference); anything else is InvalidRequestException."""
        if not _TARGET.fullmatch(target):
            raise invalid(f"The target {target} is not a certificate ARN, a thing group ARN or "
                          "an Amazon Cognito identity ID.")
        self._services.registry.require_principal(scope, target)
        if target.startswith("arn:") and _GROUP in target:
            self._services.registry.require_group(scope, target.split(_GROUP, 1)[1])

    def attach_policy(self, scope: Scope, name: str, target: str) -> None:
        policy = self.require_policy(scope, name)
        self.require_target(scope, target)
        if _GROUP in target:  # "Dynamic thing groups": they can't have policies applied
            group = self._services.registry.require_group(scope, target.split(_GROUP, 1)[1])
            if group.dynamic:
                raise invalid(f"Policies cannot be attached to {group.name}: it is a dynamic "
                              "thing group, and dynamic thing groups can't have policies.")
        attached = self._store.policies_of_target(scope.region, target)
        if policy.name not in attached and len(attached) >= MAX_POLICIES_PER_TARGET:
            raise AwsError("LimitExceededException",
                           f"The target {target} already has the maximum number of policies "
                           f"({MAX_POLICIES_PER_TARGET}) attached")
        self._store.attach_policy(scope.region, policy.name, target)
        self._bus.publish(a.PolicyAttached(scope, policy.name, target))

    def detach_policy(self, scope: Scope, name: str, target: str) -> None:
        self.require_policy(scope, name)
        if self._store.detach_policy(scope.region, name, target):
            self._bus.publish(a.PolicyDetached(scope, name, target))

    def detach_all(self, scope: Scope, target: str) -> None:
        """Detach every policy from `target` (a deleted certificate or thing group)."""
        names = self._store.policies_of_target(scope.region, target)
        self._store.detach_all(scope.region, target)
        for name in names:
            self._bus.publish(a.PolicyDetached(scope, name, target))

    def policies_of_target(self, scope: Scope, target: str) -> list[str]:
        return self._store.policies_of_target(scope.region, target)

    def policies_of(self, scope: Scope, targets: list[str]) -> list[str]:
        """The names of the policies attached to `targets`, each once, in attachment order."""
        names: list[str] = []
        for t in targets:
            names += [n for n in self._store.policies_of_target(scope.region, t)
                      if n not in names]
        return names

    def targets_of_policy(self, scope: Scope, name: str, after: str, limit: int
                          ) -> tuple[list[str], str | None]:
        policy = self.require_policy(scope, name)
        return self._store.targets_of_policy(scope.region, policy.name, after, limit)

    def group_chain(self, scope: Scope, target: str) -> list[str]:
        """The target, then (for a thing group) its ancestors' ARNs."""
        if _GROUP not in target:
            return [target]
        group = target.split(_GROUP, 1)[1]
        return [target, *(scope.arn("thinggroup", g)
                          for g in self._services.registry.ancestors(scope, group))]

    def effective_policies(self, scope: Scope, principal: str | None,
                           thing_name: str | None) -> list[PolicyRecord]:
        targets: list[str] = []
        if principal:
            self.require_target(scope, principal)
            targets.append(principal)
        if thing_name:
            thing = self._services.registry.require_thing(scope, thing_name)
            targets += [scope.arn("thinggroup", g)
                        for g in self._services.registry.group_chain_of_thing(scope, thing.name)]
        out = []
        for name in self.policies_of(scope, targets):
            policy = self._store.get_policy(scope.region, name)
            if policy is not None:
                out.append(policy)
        return out

    def effective_documents(self, scope: Scope, targets: list[str]) -> list[dict[str, Any]]:
        """The parsed default version of every policy attached to `targets`, each once, in
        target then attachment order, with its name as "PolicyName" (for the broker)."""
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for target in targets:
            for name, version in self._store.default_versions_of_target(scope.region, target):
                if name not in seen:
                    seen.add(name)
                    out.append(self._parsed_document(scope.region, name, version))
        return out

    def _parsed_document(self, region: str, name: str, version: int) -> dict[str, Any]:
        key = (region, name, version)
        doc = self._parsed.get(key)
        if doc is None:
            text = self._store.document(region, name, version)
            doc = self._parsed[key] = {**_stored_document(text), "PolicyName": name}
        return doc
