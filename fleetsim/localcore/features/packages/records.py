"""What the packages feature hands out: plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PackageRecord:
    region: str
    name: str
    description: str | None
    default_version: str | None
    tags: dict[str, str]
    created: float
    modified: float


@dataclass(frozen=True, slots=True)
class VersionRecord:
    region: str
    package: str
    name: str
    description: str | None
    attributes: dict[str, str]
    artifact: dict[str, Any] | None
    recipe: str | None
    status: str  # DRAFT | PUBLISHED | DEPRECATED
    tags: dict[str, str]
    created: float
    modified: float


@dataclass(frozen=True, slots=True)
class PackageConfig:
    jobs_enabled: bool
    role_arn: str | None
