"""IAM roles as far as the workshop uses them: a role with its trust policy, inline policies
(PutRolePolicy) and attached managed policies (AttachRolePolicy). Error codes and messages as
IAM returns them (IAM API Reference: CreateRole, GetRole, DeleteRole, AttachRolePolicy, ...).

Managed policies: local core keeps no customer managed policies, so only AWS managed policies
(`arn:aws:iam::aws:policy/...`) can be attached; any other ARN is `NoSuchEntity`, as IAM
answers for a policy that does not exist. Policies are stored, not enforced: local core does
not evaluate IAM."""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Callable

from fleetsim.localcore.db import Database
from fleetsim.localcore.errors import AwsError
from fleetsim.localcore.features.iam.store import IamStore, RoleRecord

_ID_CHARS = string.ascii_uppercase + string.digits
_AWS_MANAGED = re.compile(r"arn:aws:iam::aws:policy/[\w+=,.@/-]+")
DEFAULT_MAX_SESSION = 3600


def _no_role(name: str) -> AwsError:
    return AwsError("NoSuchEntityException", f"The role with name {name} cannot be found.")


def _document(text: str) -> str:
    try:
        parsed = json.loads(text)
    except ValueError:
        raise AwsError("MalformedPolicyDocumentException",
                         "This policy contains invalid Json") from None
    if not isinstance(parsed, dict):
        raise AwsError("MalformedPolicyDocumentException",
                         "This policy contains invalid Json")
    return text


class IamService:
    def __init__(self, db: Database, account_id: str, clock: Callable[[], float]):
        self._store = IamStore(db)
        self._account = account_id
        self._clock = clock

    def arn(self, role: RoleRecord) -> str:
        return f"arn:aws:iam::{self._account}:role{role.path}{role.name}"

    def role(self, name: str) -> RoleRecord:
        found = self._store.role(name)
        if found is None:
            raise _no_role(name)
        return found

    def create_role(self, name: str, trust_policy: str, path: str | None,
                    description: str | None, max_session: int | None) -> RoleRecord:
        if self._store.role(name) is not None:
            raise AwsError("EntityAlreadyExistsException",
                             f"Role with name {name} already exists.")
        role = RoleRecord(name, "AROA" + "".join(secrets.choice(_ID_CHARS) for _ in range(17)),
                          path or "/", _document(trust_policy), description,
                          max_session or DEFAULT_MAX_SESSION, self._clock())
        self._store.add_role(role)
        return role

    def list_roles(self, path_prefix: str | None) -> list[RoleRecord]:
        return self._store.roles(path_prefix or "/")

    def delete_role(self, name: str) -> None:
        self.role(name)
        if self._store.attached(name):
            raise AwsError("DeleteConflictException",
                             "Cannot delete entity, must detach all policies first.")
        if self._store.inline(name):
            raise AwsError("DeleteConflictException",
                             "Cannot delete entity, must delete policies first.")
        self._store.delete_role(name)

    def put_role_policy(self, role: str, name: str, document: str) -> None:
        self._store.put_inline(self.role(role).name, name, _document(document))

    def role_policy(self, role: str, name: str) -> str:
        document = self._store.inline(self.role(role).name).get(name)
        if document is None:
            raise AwsError("NoSuchEntityException",
                             f"The role policy with name {name} cannot be found.")
        return document

    def role_policy_names(self, role: str) -> list[str]:
        return list(self._store.inline(self.role(role).name))

    def delete_role_policy(self, role: str, name: str) -> None:
        self.role_policy(role, name)
        self._store.delete_inline(self.role(role).name, name)

    def attach(self, role: str, policy_arn: str) -> None:
        record = self.role(role)
        if not _AWS_MANAGED.fullmatch(policy_arn):
            raise AwsError("NoSuchEntityException",
                             f"Policy {policy_arn} does not exist or is not attachable.")
        self._store.attach(record.name, policy_arn)

    def attached(self, role: str) -> list[str]:
        return self._store.attached(self.role(role).name)

    def detach(self, role: str, policy_arn: str) -> None:
        record = self.role(role)
        if policy_arn not in self._store.attached(record.name):
            raise AwsError("NoSuchEntityException", f"Policy {policy_arn} was not found.")
        self._store.detach(record.name, policy_arn)
