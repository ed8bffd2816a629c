"""The records the registry hands out, plain dataclasses, and for those read whole from one
table the columns selected (`*_COLS`) and the record made of such a row (`as_*`)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

EVENT_TYPES = ("THING", "THING_GROUP", "THING_TYPE", "THING_GROUP_MEMBERSHIP",
               "THING_GROUP_HIERARCHY", "THING_TYPE_ASSOCIATION", "JOB", "JOB_EXECUTION",
               "POLICY", "CERTIFICATE", "CA_CERTIFICATE")


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


THING_COLS = "seq, name, thing_id, type_name, attributes, version, billing_group, created"


def as_thing(row: sqlite3.Row) -> ThingRecord:
    return ThingRecord(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6], row[7])


@dataclass(slots=True)
class ThingTypeRecord:
    name: str
    type_id: str
    description: str | None
    searchable_attributes: list[str]
    deprecated: bool
    deprecation_date: float | None
    created: float


TYPE_COLS = ("name, type_id, description, searchable_attributes, deprecated, deprecation_date, "
             "created")


def as_thing_type(row: sqlite3.Row) -> ThingTypeRecord:
    return ThingTypeRecord(row[0], row[1], row[2], json.loads(row[3]), bool(row[4]), row[5],
                           row[6])


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


GROUP_COLS = ("seq, name, group_id, parent_name, description, attributes, version, created")


def as_group(row: sqlite3.Row) -> ThingGroupRecord:
    return ThingGroupRecord(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6],
                            row[7])


@dataclass(slots=True)
class CertificateRecord:
    id: str
    pem: str
    status: str
    ca_id: str | None
    mode: str
    subject_cn: str | None
    created: float
    last_modified: float
    customer_version: int
    generation_id: str
    not_before: float | None
    not_after: float | None
    seq: int = 0


CERT_COLS = ("seq, id, pem, status, ca_id, mode, subject_cn, created, last_modified, "
             "customer_version, generation_id, not_before, not_after")


def as_cert(row: sqlite3.Row) -> CertificateRecord:
    return CertificateRecord(row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8],
                             row[9], row[10], row[11], row[12], seq=row[0])


@dataclass(slots=True)
class CaCertificateRecord:
    id: str
    pem: str
    status: str
    auto_registration: str
    registration_config: dict[str, Any] | None
    mode: str
    created: float
    last_modified: float
    customer_version: int
    generation_id: str
    not_before: float | None
    not_after: float | None
    seq: int = 0


CA_COLS = ("seq, id, pem, status, auto_registration, registration_config, mode, created, "
           "last_modified, customer_version, generation_id, not_before, not_after")


def as_ca(row: sqlite3.Row) -> CaCertificateRecord:
    return CaCertificateRecord(row[1], row[2], row[3], row[4],
                               json.loads(row[5]) if row[5] else None, row[6], row[7], row[8],
                               row[9], row[10], row[11], row[12], seq=row[0])


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


@dataclass(slots=True)
class EventConfig:
    enabled: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(EVENT_TYPES, False))
    created: float = 0.0
    last_modified: float = 0.0
