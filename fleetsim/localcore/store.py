"""The registry of local core, kept in SQLite: things, thing types, thing groups, certificates,
CA certificates, policies (with versions), attachments and the event configuration.

One connection, used from the event loop only. Every mutating call commits before it returns
(WAL, synchronous=NORMAL: a process killed with SIGKILL loses nothing that was acknowledged).
The store holds no AWS wire knowledge: the API layer checks preconditions and maps results to
response shapes; the store keeps data consistent and answers the broker (`Authority`).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from fleetsim.localcore.policy_document import parse_policy_document
from fleetsim.localcore.principal import Principal, ThingInfo
from fleetsim.pki import certificate_id, certificate_pem, load_certificate

EVENT_TYPES = ("THING", "THING_GROUP", "THING_TYPE", "THING_GROUP_MEMBERSHIP",
               "THING_GROUP_HIERARCHY", "THING_TYPE_ASSOCIATION", "JOB", "JOB_EXECUTION",
               "POLICY", "CERTIFICATE", "CA_CERTIFICATE")

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS thing_types (
    name TEXT PRIMARY KEY, type_id TEXT NOT NULL, description TEXT,
    searchable_attributes TEXT NOT NULL DEFAULT '[]', deprecated INTEGER NOT NULL DEFAULT 0,
    deprecation_date REAL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS things (
    seq INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, thing_id TEXT NOT NULL,
    type_name TEXT, attributes TEXT NOT NULL DEFAULT '{}', version INTEGER NOT NULL,
    billing_group TEXT, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS things_type ON things(type_name) WHERE type_name IS NOT NULL;
CREATE TABLE IF NOT EXISTS thing_attributes (
    thing_seq INTEGER NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (thing_seq, name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS thing_attributes_nv ON thing_attributes(name, value, thing_seq);
CREATE TABLE IF NOT EXISTS thing_groups (
    seq INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, group_id TEXT NOT NULL,
    parent_name TEXT, description TEXT, attributes TEXT NOT NULL DEFAULT '{}',
    version INTEGER NOT NULL, created REAL NOT NULL, query_string TEXT);
CREATE INDEX IF NOT EXISTS thing_groups_parent ON thing_groups(parent_name);
CREATE TABLE IF NOT EXISTS thing_group_members (
    group_name TEXT NOT NULL, thing_name TEXT NOT NULL, membership_id TEXT NOT NULL,
    added REAL NOT NULL, PRIMARY KEY (group_name, thing_name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS thing_group_members_thing ON thing_group_members(thing_name);
CREATE TABLE IF NOT EXISTS ca_certificates (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, pem TEXT NOT NULL, status TEXT NOT NULL,
    auto_registration TEXT NOT NULL, registration_config TEXT, mode TEXT NOT NULL,
    created REAL NOT NULL, last_modified REAL NOT NULL, customer_version INTEGER NOT NULL,
    generation_id TEXT NOT NULL, not_before REAL, not_after REAL);
CREATE TABLE IF NOT EXISTS certificates (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, pem TEXT NOT NULL, status TEXT NOT NULL,
    ca_id TEXT, mode TEXT NOT NULL, subject_cn TEXT, created REAL NOT NULL,
    last_modified REAL NOT NULL, customer_version INTEGER NOT NULL, generation_id TEXT NOT NULL,
    not_before REAL, not_after REAL);
CREATE INDEX IF NOT EXISTS certificates_ca ON certificates(ca_id) WHERE ca_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS policies (
    seq INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, default_version INTEGER NOT NULL,
    next_version INTEGER NOT NULL, created REAL NOT NULL, last_modified REAL NOT NULL,
    generation_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS policy_versions (
    policy_name TEXT NOT NULL, version INTEGER NOT NULL, document TEXT NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (policy_name, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS policy_targets (
    target TEXT NOT NULL, policy_name TEXT NOT NULL, attached REAL NOT NULL,
    PRIMARY KEY (target, policy_name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS policy_targets_policy ON policy_targets(policy_name);
CREATE TABLE IF NOT EXISTS thing_principals (
    principal TEXT NOT NULL, thing_name TEXT NOT NULL, principal_type TEXT NOT NULL,
    attached REAL NOT NULL, PRIMARY KEY (principal, thing_name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS thing_principals_thing ON thing_principals(thing_name);
"""


# --- records ------------------------------------------------------------------------------

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


def certificate_record(cert: x509.Certificate, status: str, ca_id: str | None = None,
                       mode: str = "DEFAULT") -> CertificateRecord:
    """A new registry record for `cert` (id = SHA-256 of its DER encoding)."""
    der = cert.public_bytes(Encoding.DER)
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    now = time.time()
    return CertificateRecord(
        certificate_id(der), certificate_pem(cert).decode(), status, ca_id, mode,
        str(cns[0].value) if cns else None, now, now, 1, str(uuid.uuid4()),
        cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp())


def _thing(row: sqlite3.Row) -> ThingRecord:
    return ThingRecord(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6], row[7])


def _group(row: sqlite3.Row) -> ThingGroupRecord:
    return ThingGroupRecord(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6],
                            row[7])


def _thing_type(row: sqlite3.Row) -> ThingTypeRecord:
    return ThingTypeRecord(row[0], row[1], row[2], json.loads(row[3]), bool(row[4]), row[5],
                           row[6])


def _cert(row: sqlite3.Row) -> CertificateRecord:
    return CertificateRecord(row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8],
                             row[9], row[10], row[11], row[12], seq=row[0])


def _ca(row: sqlite3.Row) -> CaCertificateRecord:
    return CaCertificateRecord(row[1], row[2], row[3], row[4],
                               json.loads(row[5]) if row[5] else None, row[6], row[7], row[8],
                               row[9], row[10], row[11], row[12], seq=row[0])


R = TypeVar("R")
K = TypeVar("K")


def _page(rows: list[Any], limit: int, record: Callable[[Any], R],
          position: Callable[[R], K]) -> tuple[list[R], K | None]:
    """A page from `rows` fetched with LIMIT limit + 1: the first `limit` as records, and the
    position of the last of them if there are more (else None)."""
    page = [record(r) for r in rows[:limit]]
    return page, (position(page[-1]) if len(rows) > limit else None)


def _first(row: Any) -> Any:
    return row[0]


def _itself(value: K) -> K:
    return value


_THING_COLS = "seq, name, thing_id, type_name, attributes, version, billing_group, created"
_GROUP_COLS = ("seq, name, group_id, parent_name, description, attributes, version, created")
_TYPE_COLS = ("name, type_id, description, searchable_attributes, deprecated, deprecation_date, "
              "created")
_CERT_COLS = ("seq, id, pem, status, ca_id, mode, subject_cn, created, last_modified, "
              "customer_version, generation_id, not_before, not_after")
_CA_COLS = ("seq, id, pem, status, auto_registration, registration_config, mode, created, "
            "last_modified, customer_version, generation_id, not_before, not_after")


class Store:
    """The registry. Implements `fleetsim.localcore.principal.Authority` for the broker."""

    def __init__(self, db_path: Path, account_id: str, region: str):
        self.account_id = account_id
        self.region = region
        self._arn_prefix = f"arn:aws:iot:{region}:{account_id}:"
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False,
                                   cached_statements=256)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=OFF")
        self._db.executescript(_SCHEMA)
        self._depth = 0
        self._epoch = 1
        self._policy_cache: dict[tuple[str, int], dict[str, Any]] = {}
        with self.transaction():
            self._meta_default("schema_version", str(SCHEMA_VERSION))
            self._meta_default("registration_code", secrets.token_hex(32))
        self._event_config = self._load_event_config()

    # --- plumbing -------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Group writes into one commit; nested uses join the outer transaction."""
        if self._depth == 0:
            self._db.execute("BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield self._db
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self._db.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def _meta_default(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _keyset(self, table: str, cols: str, key: str, after: Any, limit: int,
                ascending: bool = True, where: tuple[str, ...] = (),
                args: tuple[Any, ...] = ()) -> list[Any]:
        """Keyset pagination: the rows of `table` after `after` in `key` order (descending:
        before it) that also match `where`, at most limit + 1 of them (for `_page`)."""
        order, cmp = ("ASC", ">") if ascending else ("DESC", "<")
        conditions = " AND ".join((f"{key} {cmp} ?", *where))
        return self._db.execute(f"SELECT {cols} FROM {table} WHERE {conditions} "
                                f"ORDER BY {key} {order} LIMIT ?",
                                (after, *args, limit + 1)).fetchall()

    def _bump(self) -> None:
        self._epoch += 1

    def arn(self, kind: str, name: str) -> str:
        return f"{self._arn_prefix}{kind}/{name}"

    # --- Authority (broker contract) ------------------------------------------------------

    @property
    def epoch(self) -> int:
        return self._epoch

    def principal_for_certificate(self, cert_der: bytes) -> Principal | None:
        cert = self.get_certificate(certificate_id(cert_der))
        if cert is None:
            return None
        arn = self.arn("cert", cert.id)
        rows = self._db.execute(
            "SELECT t.name, t.type_name, t.attributes FROM thing_principals p "
            "JOIN things t ON t.name = p.thing_name WHERE p.principal = ? ORDER BY p.attached",
            (arn,)).fetchall()
        things = tuple(ThingInfo(r[0], r[1], json.loads(r[2])) for r in rows)
        targets = [arn]
        seen: set[str] = set()
        for thing in things:
            for group in self.groups_of_thing(thing.name):
                for name in (group, *self.ancestors(group)):
                    if name not in seen:
                        seen.add(name)
                        targets.append(self.arn("thinggroup", name))
        policies = tuple(self._parsed_policy(name, version)
                         for name, version in self._effective_policy_versions(targets))
        return Principal(cert.id, arn, cert.status, cert.subject_cn, things, policies,
                         cert.ca_id)

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

    # --- registration code / event configuration -----------------------------------------

    @property
    def registration_code(self) -> str:
        return self._meta("registration_code") or ""

    def _load_event_config(self) -> EventConfig:
        raw = self._meta("event_configurations")
        if raw is None:
            return EventConfig()
        data = json.loads(raw)
        enabled = dict.fromkeys(EVENT_TYPES, False) | data["enabled"]
        return EventConfig(enabled, data["created"], data["last_modified"])

    @property
    def event_config(self) -> EventConfig:
        return self._event_config

    def event_enabled(self, event_type: str) -> bool:
        return self._event_config.enabled.get(event_type, False)

    def update_event_config(self, changes: dict[str, bool]) -> EventConfig:
        now = time.time()
        cfg = self._event_config
        enabled = cfg.enabled | changes
        new = EventConfig(enabled, cfg.created or now, now)
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('event_configurations', ?)",
                       (json.dumps({"enabled": enabled, "created": new.created,
                                    "last_modified": now}),))
        self._event_config = new
        return new

    # --- things ---------------------------------------------------------------------------

    def get_thing(self, name: str) -> ThingRecord | None:
        row = self._db.execute(f"SELECT {_THING_COLS} FROM things WHERE name = ?",
                               (name,)).fetchone()
        return _thing(row) if row else None

    def create_thing(self, name: str, type_name: str | None, attributes: dict[str, str],
                     billing_group: str | None = None) -> ThingRecord:
        now = time.time()
        thing_id = str(uuid.uuid4())
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO things(name, thing_id, type_name, attributes, version, "
                "billing_group, created) VALUES (?, ?, ?, ?, 1, ?, ?)",
                (name, thing_id, type_name, json.dumps(attributes), billing_group, now))
            seq = cur.lastrowid or 0
            if attributes:
                db.executemany("INSERT INTO thing_attributes(thing_seq, name, value) "
                               "VALUES (?, ?, ?)", [(seq, k, v) for k, v in attributes.items()])
        return ThingRecord(seq, name, thing_id, type_name, attributes, 1, billing_group, now)

    def update_thing(self, thing: ThingRecord, attributes: dict[str, str],
                     type_name: str | None) -> ThingRecord:
        """Store new attributes/type and bump the version."""
        with self.transaction() as db:
            db.execute("UPDATE things SET attributes = ?, type_name = ?, version = version + 1 "
                       "WHERE seq = ?", (json.dumps(attributes), type_name, thing.seq))
            if attributes != thing.attributes:
                db.execute("DELETE FROM thing_attributes WHERE thing_seq = ?", (thing.seq,))
                db.executemany("INSERT INTO thing_attributes(thing_seq, name, value) "
                               "VALUES (?, ?, ?)",
                               [(thing.seq, k, v) for k, v in attributes.items()])
        self._bump()
        return ThingRecord(thing.seq, thing.name, thing.thing_id, type_name, attributes,
                           thing.version + 1, thing.billing_group, thing.created)

    def delete_thing(self, thing: ThingRecord) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM things WHERE seq = ?", (thing.seq,))
            db.execute("DELETE FROM thing_attributes WHERE thing_seq = ?", (thing.seq,))
            db.execute("DELETE FROM thing_group_members WHERE thing_name = ?", (thing.name,))
            db.execute("DELETE FROM thing_principals WHERE thing_name = ?", (thing.name,))
        self._bump()

    def list_things(self, after: int, limit: int, attribute_name: str | None = None,
                    attribute_value: str | None = None, prefix: bool = False,
                    type_name: str | None = None) -> tuple[list[ThingRecord], int | None]:
        """Things with seq > after, in creation order; returns (page, last seq if more)."""
        where, args = ["t.seq > ?"], [after]
        join = ""
        if attribute_name is not None:
            join = " JOIN thing_attributes a ON a.thing_seq = t.seq AND a.name = ?"
            args.insert(0, attribute_name)
            if attribute_value is not None:
                if prefix:
                    where.append("substr(a.value, 1, ?) = ?")
                    args += [len(attribute_value), attribute_value]
                else:
                    where.append("a.value = ?")
                    args.append(attribute_value)
        if type_name is not None:
            where.append("t.type_name = ?")
            args.append(type_name)
        cols = ", ".join(f"t.{c.strip()}" for c in _THING_COLS.split(","))
        rows = self._db.execute(
            f"SELECT {cols} FROM things t{join} WHERE {' AND '.join(where)} ORDER BY t.seq "
            "LIMIT ?", (*args, limit + 1)).fetchall()
        return _page(rows, limit, _thing, lambda t: t.seq)

    def count_things_of_type(self, type_name: str) -> int:
        return self._db.execute("SELECT count(*) FROM things WHERE type_name = ?",
                                (type_name,)).fetchone()[0]

    # --- thing principals -----------------------------------------------------------------

    def attach_thing_principal(self, thing_name: str, principal: str,
                               principal_type: str = "NON_EXCLUSIVE_THING") -> bool:
        with self.transaction() as db:
            cur = db.execute("INSERT OR IGNORE INTO thing_principals(principal, thing_name, "
                             "principal_type, attached) VALUES (?, ?, ?, ?)",
                             (principal, thing_name, principal_type, time.time()))
        self._bump()
        return cur.rowcount > 0

    def detach_thing_principal(self, thing_name: str, principal: str) -> bool:
        with self.transaction() as db:
            cur = db.execute("DELETE FROM thing_principals WHERE principal = ? AND "
                             "thing_name = ?", (principal, thing_name))
        self._bump()
        return cur.rowcount > 0

    def principals_of_thing(self, thing_name: str) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self._db.execute(
            "SELECT principal, principal_type FROM thing_principals WHERE thing_name = ? "
            "ORDER BY attached", (thing_name,))]

    def things_of_principal(self, principal: str) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self._db.execute(
            "SELECT thing_name, principal_type FROM thing_principals WHERE principal = ? "
            "ORDER BY attached", (principal,))]

    def thing_has_principals(self, thing_name: str) -> bool:
        return self._db.execute("SELECT 1 FROM thing_principals WHERE thing_name = ? LIMIT 1",
                                (thing_name,)).fetchone() is not None

    # --- thing types ----------------------------------------------------------------------

    def get_thing_type(self, name: str) -> ThingTypeRecord | None:
        row = self._db.execute(f"SELECT {_TYPE_COLS} FROM thing_types WHERE name = ?",
                               (name,)).fetchone()
        return _thing_type(row) if row else None

    def create_thing_type(self, name: str, description: str | None,
                          searchable_attributes: list[str]) -> ThingTypeRecord:
        rec = ThingTypeRecord(name, str(uuid.uuid4()), description, searchable_attributes, False,
                              None, time.time())
        with self.transaction() as db:
            db.execute(f"INSERT INTO thing_types({_TYPE_COLS}) VALUES (?, ?, ?, ?, 0, NULL, ?)",
                       (name, rec.type_id, description, json.dumps(searchable_attributes),
                        rec.created))
        return rec

    def set_thing_type_deprecated(self, rec: ThingTypeRecord, deprecated: bool) -> ThingTypeRecord:
        date = time.time() if deprecated else None
        with self.transaction() as db:
            db.execute("UPDATE thing_types SET deprecated = ?, deprecation_date = ? "
                       "WHERE name = ?", (int(deprecated), date, rec.name))
        return ThingTypeRecord(rec.name, rec.type_id, rec.description, rec.searchable_attributes,
                               deprecated, date, rec.created)

    def update_thing_type(self, rec: ThingTypeRecord, description: str | None,
                          searchable_attributes: list[str]) -> ThingTypeRecord:
        with self.transaction() as db:
            db.execute("UPDATE thing_types SET description = ?, searchable_attributes = ? "
                       "WHERE name = ?", (description, json.dumps(searchable_attributes),
                                          rec.name))
        return ThingTypeRecord(rec.name, rec.type_id, description, searchable_attributes,
                               rec.deprecated, rec.deprecation_date, rec.created)

    def delete_thing_type(self, name: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM thing_types WHERE name = ?", (name,))

    def list_thing_types(self, after: str, limit: int, name: str | None = None
                         ) -> tuple[list[ThingTypeRecord], str | None]:
        if name is not None:
            rec = self.get_thing_type(name)
            return ([rec] if rec else []), None
        rows = self._keyset("thing_types", _TYPE_COLS, "name", after, limit)
        return _page(rows, limit, _thing_type, lambda t: t.name)

    # --- thing groups ---------------------------------------------------------------------

    def get_thing_group(self, name: str) -> ThingGroupRecord | None:
        row = self._db.execute(f"SELECT {_GROUP_COLS} FROM thing_groups WHERE name = ?",
                               (name,)).fetchone()
        return _group(row) if row else None

    def create_thing_group(self, name: str, parent_name: str | None, description: str | None,
                           attributes: dict[str, str]) -> ThingGroupRecord:
        now = time.time()
        group_id = str(uuid.uuid4())
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO thing_groups(name, group_id, parent_name, description, attributes, "
                "version, created) VALUES (?, ?, ?, ?, ?, 1, ?)",
                (name, group_id, parent_name, description, json.dumps(attributes), now))
        return ThingGroupRecord(cur.lastrowid or 0, name, group_id, parent_name, description,
                                attributes, 1, now)

    def update_thing_group(self, rec: ThingGroupRecord, description: str | None,
                           attributes: dict[str, str]) -> ThingGroupRecord:
        with self.transaction() as db:
            db.execute("UPDATE thing_groups SET description = ?, attributes = ?, "
                       "version = version + 1 WHERE seq = ?",
                       (description, json.dumps(attributes), rec.seq))
        return ThingGroupRecord(rec.seq, rec.name, rec.group_id, rec.parent_name, description,
                                attributes, rec.version + 1, rec.created)

    def delete_thing_group(self, name: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM thing_groups WHERE name = ?", (name,))
            db.execute("DELETE FROM thing_group_members WHERE group_name = ?", (name,))
            db.execute("DELETE FROM policy_targets WHERE target = ?",
                       (self.arn("thinggroup", name),))
        self._bump()

    def child_groups(self, name: str) -> list[str]:
        return [r[0] for r in self._db.execute(
            "SELECT name FROM thing_groups WHERE parent_name = ? ORDER BY seq", (name,))]

    def ancestors(self, name: str) -> list[str]:
        """Parent, grandparent, ... up to the root."""
        out: list[str] = []
        current: str | None = name
        while current is not None:
            row = self._db.execute("SELECT parent_name FROM thing_groups WHERE name = ?",
                                   (current,)).fetchone()
            current = row[0] if row else None
            if current is not None:
                if current in out:  # defensive: a cycle cannot be created through the API
                    break
                out.append(current)
        return out

    def descendants(self, name: str) -> list[str]:
        out, todo = [], [name]
        while todo:
            for child in self.child_groups(todo.pop()):
                out.append(child)
                todo.append(child)
        return out

    def list_thing_groups(self, after: int, limit: int, parent: str | None = None,
                          name_prefix: str | None = None, recursive: bool = True
                          ) -> tuple[list[ThingGroupRecord], int | None]:
        where: list[str] = []
        args: list[Any] = []
        if parent is not None:
            names = self.descendants(parent) if recursive else self.child_groups(parent)
            if not names:
                return [], None
            where.append(f"name IN ({','.join('?' * len(names))})")
            args += names
        elif not recursive:
            where.append("parent_name IS NULL")
        if name_prefix:
            where.append("substr(name, 1, ?) = ?")
            args += [len(name_prefix), name_prefix]
        rows = self._keyset("thing_groups", _GROUP_COLS, "seq", after, limit, where=tuple(where),
                            args=tuple(args))
        return _page(rows, limit, _group, lambda g: g.seq)

    def add_thing_to_group(self, group: str, thing: str) -> str | None:
        """Returns the new membership id, or None if the thing was already a member."""
        membership_id = str(uuid.uuid4())
        with self.transaction() as db:
            cur = db.execute("INSERT OR IGNORE INTO thing_group_members(group_name, thing_name, "
                             "membership_id, added) VALUES (?, ?, ?, ?)",
                             (group, thing, membership_id, time.time()))
        self._bump()
        return membership_id if cur.rowcount > 0 else None

    def remove_thing_from_group(self, group: str, thing: str) -> str | None:
        """Returns the removed membership id, or None if the thing was not a member."""
        with self.transaction() as db:
            row = db.execute("SELECT membership_id FROM thing_group_members WHERE group_name = ? "
                             "AND thing_name = ?", (group, thing)).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM thing_group_members WHERE group_name = ? AND thing_name = ?",
                       (group, thing))
        self._bump()
        return row[0]

    def groups_of_thing(self, thing: str) -> list[str]:
        return [r[0] for r in self._db.execute(
            "SELECT group_name FROM thing_group_members WHERE thing_name = ? ORDER BY added",
            (thing,))]

    def things_in_groups(self, groups: list[str], after: str, limit: int
                         ) -> tuple[list[str], str | None]:
        if not groups:
            return [], None
        marks = ",".join("?" * len(groups))
        rows = self._db.execute(
            f"SELECT DISTINCT thing_name FROM thing_group_members WHERE group_name IN ({marks}) "
            "AND thing_name > ? ORDER BY thing_name LIMIT ?",
            (*groups, after, limit + 1)).fetchall()
        return _page(rows, limit, _first, _itself)

    # --- certificates ---------------------------------------------------------------------

    def get_certificate(self, cert_id: str) -> CertificateRecord | None:
        row = self._db.execute(f"SELECT {_CERT_COLS} FROM certificates WHERE id = ?",
                               (cert_id,)).fetchone()
        return _cert(row) if row else None

    def insert_certificate(self, rec: CertificateRecord) -> CertificateRecord:
        with self.transaction() as db:
            cur = db.execute(
                f"INSERT INTO certificates({_CERT_COLS}) VALUES "
                "(NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (rec.id, rec.pem, rec.status, rec.ca_id, rec.mode, rec.subject_cn, rec.created,
                 rec.last_modified, rec.customer_version, rec.generation_id, rec.not_before,
                 rec.not_after))
        rec.seq = cur.lastrowid or 0
        self._bump()
        return rec

    def set_certificate_status(self, rec: CertificateRecord, status: str) -> CertificateRecord:
        now = time.time()
        gen = str(uuid.uuid4())
        with self.transaction() as db:
            db.execute("UPDATE certificates SET status = ?, last_modified = ?, "
                       "customer_version = customer_version + 1, generation_id = ? WHERE id = ?",
                       (status, now, gen, rec.id))
        self._bump()
        rec.status, rec.last_modified, rec.generation_id = status, now, gen
        rec.customer_version += 1
        return rec

    def delete_certificate(self, cert_id: str) -> None:
        arn = self.arn("cert", cert_id)
        with self.transaction() as db:
            db.execute("DELETE FROM certificates WHERE id = ?", (cert_id,))
            db.execute("DELETE FROM policy_targets WHERE target = ?", (arn,))
        self._bump()

    def list_certificates(self, after: int, limit: int, ascending: bool = False,
                          ca_id: str | None = None) -> tuple[list[CertificateRecord], int | None]:
        where, args = (("ca_id = ?",), (ca_id,)) if ca_id is not None else ((), ())
        rows = self._keyset("certificates", _CERT_COLS, "seq", after, limit, ascending, where,
                            args)
        return _page(rows, limit, _cert, lambda c: c.seq)

    # --- CA certificates ------------------------------------------------------------------

    def get_ca_certificate(self, ca_id: str) -> CaCertificateRecord | None:
        row = self._db.execute(f"SELECT {_CA_COLS} FROM ca_certificates WHERE id = ?",
                               (ca_id,)).fetchone()
        return _ca(row) if row else None

    def insert_ca_certificate(self, rec: CaCertificateRecord) -> CaCertificateRecord:
        with self.transaction() as db:
            cur = db.execute(
                f"INSERT INTO ca_certificates({_CA_COLS}) VALUES "
                "(NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (rec.id, rec.pem, rec.status, rec.auto_registration,
                 json.dumps(rec.registration_config) if rec.registration_config else None,
                 rec.mode, rec.created, rec.last_modified, rec.customer_version,
                 rec.generation_id, rec.not_before, rec.not_after))
        rec.seq = cur.lastrowid or 0
        self._bump()
        return rec

    def update_ca_certificate(self, rec: CaCertificateRecord) -> CaCertificateRecord:
        rec.last_modified = time.time()
        rec.customer_version += 1
        rec.generation_id = str(uuid.uuid4())
        with self.transaction() as db:
            db.execute("UPDATE ca_certificates SET status = ?, auto_registration = ?, "
                       "registration_config = ?, last_modified = ?, customer_version = ?, "
                       "generation_id = ? WHERE id = ?",
                       (rec.status, rec.auto_registration,
                        json.dumps(rec.registration_config) if rec.registration_config else None,
                        rec.last_modified, rec.customer_version, rec.generation_id, rec.id))
        self._bump()
        return rec

    def delete_ca_certificate(self, ca_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM ca_certificates WHERE id = ?", (ca_id,))
        self._bump()

    def list_ca_certificates(self, after: int, limit: int, ascending: bool = False
                             ) -> tuple[list[CaCertificateRecord], int | None]:
        rows = self._keyset("ca_certificates", _CA_COLS, "seq", after, limit, ascending)
        return _page(rows, limit, _ca, lambda c: c.seq)

    def ca_certificates(self) -> list[CaCertificateRecord]:
        return [_ca(r) for r in self._db.execute(f"SELECT {_CA_COLS} FROM ca_certificates")]

    def issuing_ca(self, cert: x509.Certificate) -> CaCertificateRecord | None:
        """The registered CA certificate whose key signed `cert` (any status), for
        RegisterCertificate and just-in-time registration."""
        for ca in self.ca_certificates():
            ca_cert = load_certificate(ca.pem.encode())
            if ca_cert.subject != cert.issuer:
                continue
            try:
                cert.verify_directly_issued_by(ca_cert)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return ca
        return None

    def auto_register_certificate(self, cert_der: bytes
                                  ) -> tuple[CertificateRecord, CaCertificateRecord] | None:
        """Just-in-time registration: an unregistered certificate signed by an ACTIVE
        registered CA whose auto-registration is ENABLE is registered as PENDING_ACTIVATION.
        Returns (certificate, CA), or None if the certificate does not qualify."""
        if self.get_certificate(certificate_id(cert_der)) is not None:
            return None
        cert = x509.load_der_x509_certificate(cert_der)
        ca = self.issuing_ca(cert)
        if ca is None or ca.status != "ACTIVE" or ca.auto_registration != "ENABLE":
            return None
        return self.insert_certificate(certificate_record(cert, "PENDING_ACTIVATION", ca.id)), ca

    # --- policies -------------------------------------------------------------------------

    def get_policy(self, name: str) -> PolicyRecord | None:
        row = self._db.execute(
            "SELECT p.name, p.default_version, p.next_version, p.created, p.last_modified, "
            "p.generation_id, v.document FROM policies p JOIN policy_versions v ON "
            "v.policy_name = p.name AND v.version = p.default_version WHERE p.name = ?",
            (name,)).fetchone()
        return PolicyRecord(*row) if row else None

    def create_policy(self, name: str, document: str) -> PolicyRecord:
        now = time.time()
        rec = PolicyRecord(name, 1, 2, now, now, secrets.token_hex(32), document)
        with self.transaction() as db:
            db.execute("INSERT INTO policies(name, default_version, next_version, created, "
                       "last_modified, generation_id) VALUES (?, 1, 2, ?, ?, ?)",
                       (name, now, now, rec.generation_id))
            db.execute("INSERT INTO policy_versions(policy_name, version, document, created) "
                       "VALUES (?, 1, ?, ?)", (name, document, now))
        return rec

    def delete_policy(self, name: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM policies WHERE name = ?", (name,))
            db.execute("DELETE FROM policy_versions WHERE policy_name = ?", (name,))
        self._policy_cache = {k: v for k, v in self._policy_cache.items() if k[0] != name}

    def list_policies(self, after: str, limit: int, ascending: bool = True
                      ) -> tuple[list[PolicyRecord], str | None]:
        rows = self._keyset("policies", "name, default_version, next_version, created, "
                            "last_modified, generation_id", "name", after, limit, ascending)
        return _page(rows, limit, lambda r: PolicyRecord(*r), lambda p: p.name)

    def policy_versions(self, name: str) -> list[PolicyVersionRecord]:
        default = self._db.execute("SELECT default_version FROM policies WHERE name = ?",
                                   (name,)).fetchone()
        return [PolicyVersionRecord(name, r[0], r[1], r[2], bool(default and r[0] == default[0]))
                for r in self._db.execute(
                    "SELECT version, document, created FROM policy_versions WHERE "
                    "policy_name = ? ORDER BY version DESC", (name,))]

    def get_policy_version(self, name: str, version: int) -> PolicyVersionRecord | None:
        row = self._db.execute(
            "SELECT v.version, v.document, v.created, p.default_version FROM policy_versions v "
            "JOIN policies p ON p.name = v.policy_name WHERE v.policy_name = ? AND v.version = ?",
            (name, version)).fetchone()
        if row is None:
            return None
        return PolicyVersionRecord(name, row[0], row[1], row[2], row[0] == row[3])

    def create_policy_version(self, policy: PolicyRecord, document: str,
                              set_default: bool) -> PolicyVersionRecord:
        now = time.time()
        version = policy.next_version
        with self.transaction() as db:
            db.execute("INSERT INTO policy_versions(policy_name, version, document, created) "
                       "VALUES (?, ?, ?, ?)", (policy.name, version, document, now))
            db.execute("UPDATE policies SET next_version = ?, last_modified = ?, "
                       "default_version = CASE WHEN ? THEN ? ELSE default_version END "
                       "WHERE name = ?", (version + 1, now, int(set_default), version,
                                          policy.name))
        if set_default:
            self._bump()
        return PolicyVersionRecord(policy.name, version, document, now, set_default)

    def set_default_policy_version(self, name: str, version: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE policies SET default_version = ?, last_modified = ? "
                       "WHERE name = ?", (version, time.time(), name))
        self._bump()

    def delete_policy_version(self, name: str, version: int) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM policy_versions WHERE policy_name = ? AND version = ?",
                       (name, version))
        self._policy_cache.pop((name, version), None)

    def attach_policy(self, name: str, target: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO policy_targets(target, policy_name, attached) "
                       "VALUES (?, ?, ?)", (target, name, time.time()))
        self._bump()

    def detach_policy(self, name: str, target: str) -> bool:
        with self.transaction() as db:
            cur = db.execute("DELETE FROM policy_targets WHERE target = ? AND policy_name = ?",
                             (target, name))
        self._bump()
        return cur.rowcount > 0

    def policies_of_target(self, target: str) -> list[str]:
        return [r[0] for r in self._db.execute(
            "SELECT policy_name FROM policy_targets WHERE target = ? ORDER BY attached",
            (target,))]

    def targets_of_policy(self, name: str, after: str = "", limit: int = 1_000_000
                          ) -> tuple[list[str], str | None]:
        rows = self._keyset("policy_targets", "target", "target", after, limit,
                            where=("policy_name = ?",), args=(name,))
        return _page(rows, limit, _first, _itself)

    def policy_is_attached(self, name: str) -> bool:
        return self._db.execute("SELECT 1 FROM policy_targets WHERE policy_name = ? LIMIT 1",
                                (name,)).fetchone() is not None
