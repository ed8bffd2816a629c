"""What the registry hands out: plain dataclasses (regional: the scope a caller asked in is
implied)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ThingRecord:
    seq: int
    name: str
    thing_id: str
    type_name: str | None
    attributes: dict[str, str]
    version: int
    billing_group: str | None
    created: float


@dataclass(slots=True)
class ThingTypeRecord:
    name: str
    type_id: str
    description: str | None
    searchable_attributes: list[str]
    deprecated: bool
    deprecation_date: float | None
    created: float


@dataclass(slots=True)
class ThingGroupRecord:
    seq: int
    name: str
    group_id: str
    parent_name: str | None
    description: str | None
    attributes: dict[str, str]
    version: int
    created: float
    query_string: str | None = None  # a dynamic thing group's query; None: a static group

    @property
    def dynamic(self) -> bool:
        return self.query_string is not None


@dataclass(frozen=True, slots=True)
class ThingPrincipal:
    """One attachment of a principal (certificate ARN, Cognito id) to a thing."""

    thing_name: str
    principal: str
    principal_type: str  # EXCLUSIVE_THING | NON_EXCLUSIVE_THING
