"""What the policies feature announces on the bus."""

from __future__ import annotations

from dataclasses import dataclass

from fleetsim.localcore.features.policies.records import PolicyRecord
from fleetsim.localcore.scope import Scope


@dataclass(frozen=True, slots=True)
class PolicyCreated:
    scope: Scope
    policy: PolicyRecord


@dataclass(frozen=True, slots=True)
class PolicyUpdated:
    """A version was created or deleted, or the default version changed."""

    scope: Scope
    policy_name: str


@dataclass(frozen=True, slots=True)
class PolicyDeleted:
    scope: Scope
    policy_name: str


@dataclass(frozen=True, slots=True)
class PolicyAttached:
    scope: Scope
    policy_name: str
    target: str


@dataclass(frozen=True, slots=True)
class PolicyDetached:
    scope: Scope
    policy_name: str
    target: str
