"""IoT policies and their versions."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class PolicyRecord:
    name: str
    default_version: int
    next_version: int
    created: float
    last_modified: float
    generation_id: str
    document: str = ""  # of the default version


@dataclass(slots=True)
class PolicyVersionRecord:
    policy_name: str
    version: int
    document: str
    created: float
    is_default: bool = False
