"""What the registry announces on the bus, after the change is committed."""

from __future__ import annotations

from dataclasses import dataclass

from fleetsim.localcore.features.registry.records import (
    ThingGroupRecord,
    ThingRecord,
    ThingTypeRecord,
)
from fleetsim.localcore.scope import Scope


@dataclass(frozen=True, slots=True)
class ThingCreated:
    scope: Scope
    thing: ThingRecord


@dataclass(frozen=True, slots=True)
class ThingUpdated:
    scope: Scope
    thing: ThingRecord
    previous: ThingRecord


@dataclass(frozen=True, slots=True)
class ThingDeleted:
    scope: Scope
    thing: ThingRecord


@dataclass(frozen=True, slots=True)
class ThingTypeCreated:
    scope: Scope
    thing_type: ThingTypeRecord


@dataclass(frozen=True, slots=True)
class ThingTypeUpdated:
    """Description or searchable attributes changed, or (un)deprecated."""

    scope: Scope
    thing_type: ThingTypeRecord


@dataclass(frozen=True, slots=True)
class ThingTypeDeleted:
    scope: Scope
    thing_type: ThingTypeRecord


@dataclass(frozen=True, slots=True)
class ThingGroupCreated:
    scope: Scope
    group: ThingGroupRecord
    ancestors: tuple[ThingGroupRecord, ...]  # root first, parent last


@dataclass(frozen=True, slots=True)
class ThingGroupUpdated:
    scope: Scope
    group: ThingGroupRecord
    ancestors: tuple[ThingGroupRecord, ...]


@dataclass(frozen=True, slots=True)
class ThingGroupDeleted:
    scope: Scope
    group: ThingGroupRecord
    ancestors: tuple[ThingGroupRecord, ...]


@dataclass(frozen=True, slots=True)
class ThingAddedToGroup:
    scope: Scope
    group: ThingGroupRecord
    thing: ThingRecord
    membership_id: str


@dataclass(frozen=True, slots=True)
class ThingRemovedFromGroup:
    scope: Scope
    group: ThingGroupRecord
    thing: ThingRecord
    membership_id: str


@dataclass(frozen=True, slots=True)
class ThingPrincipalAttached:
    scope: Scope
    thing_name: str
    principal: str
    principal_type: str


@dataclass(frozen=True, slots=True)
class ThingPrincipalDetached:
    scope: Scope
    thing_name: str
    principal: str
