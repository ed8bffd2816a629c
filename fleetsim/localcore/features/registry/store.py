"""The registry's tables: things (and their attribute index), thing types, thing groups and
their members, thing principals. Only `RegistryService` uses this module."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from typing import Any

from fleetsim.localcore.db import Database
from fleetsim.localcore.features.registry.records import (
    ThingGroupRecord,
    ThingPrincipal,
    ThingRecord,
    ThingTypeRecord,
)
from fleetsim.localcore.paging import first, itself, keyset, page

# Tables whose changes can alter a broker Principal (its things, their attributes, groups).
PRINCIPAL_TABLES = ("things", "thing_groups", "thing_group_members", "thing_principals")

THING_COLS = "seq, name, thing_id, type_name, attributes, version, billing_group, created"
TYPE_COLS = ("name, type_id, description, searchable_attributes, deprecated, deprecation_date, "
             "created")
GROUP_COLS = ("seq, name, group_id, parent_name, description, attributes, version, created, "
              "query_string")


def as_thing(row: sqlite3.Row) -> ThingRecord:
    return ThingRecord(seq=row["seq"], name=row["name"], thing_id=row["thing_id"],
                       type_name=row["type_name"], attributes=json.loads(row["attributes"]),
                       version=row["version"], billing_group=row["billing_group"],
                       created=row["created"])


def as_thing_type(row: sqlite3.Row) -> ThingTypeRecord:
    return ThingTypeRecord(name=row["name"], type_id=row["type_id"],
                           description=row["description"],
                           searchable_attributes=json.loads(row["searchable_attributes"]),
                           deprecated=bool(row["deprecated"]),
                           deprecation_date=row["deprecation_date"], created=row["created"])


def as_group(row: sqlite3.Row) -> ThingGroupRecord:
    return ThingGroupRecord(seq=row["seq"], name=row["name"], group_id=row["group_id"],
                            parent_name=row["parent_name"], description=row["description"],
                            attributes=json.loads(row["attributes"]), version=row["version"],
                            created=row["created"], query_string=row["query_string"])


def as_principal(row: sqlite3.Row) -> ThingPrincipal:
    return ThingPrincipal(row["thing_name"], row["principal"], row["principal_type"])


class RegistryStore:
    def __init__(self, db: Database):
        self.db = db
        db.watch_principal_tables(*PRINCIPAL_TABLES)

    # --- things ------------------------------------------------------------------------------

    def get_thing(self, region: str, name: str) -> ThingRecord | None:
        row = self.db.one(f"SELECT {THING_COLS} FROM things WHERE region = ? AND name = ?",
                          (region, name))
        return as_thing(row) if row else None

    def create_thing(self, region: str, name: str, type_name: str | None,
                     attributes: dict[str, str], billing_group: str | None) -> ThingRecord:
        now = time.time()
        thing_id = str(uuid.uuid4())
        with self.db.transaction() as db:
            cur = db.write(
                "INSERT INTO things(region, name, thing_id, type_name, attributes, version, "
                "billing_group, created) VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
                (region, name, thing_id, type_name, json.dumps(attributes), billing_group, now))
            seq = cur.lastrowid or 0
            if attributes:
                db.write_many("INSERT INTO thing_attributes(thing_seq, name, value) "
                              "VALUES (?, ?, ?)", [(seq, k, v) for k, v in attributes.items()])
        return ThingRecord(seq, name, thing_id, type_name, attributes, 1, billing_group, now)

    def update_thing(self, thing: ThingRecord, attributes: dict[str, str],
                     type_name: str | None) -> ThingRecord:
        with self.db.transaction() as db:
            db.write("UPDATE things SET attributes = ?, type_name = ?, version = version + 1 "
                     "WHERE seq = ?", (json.dumps(attributes), type_name, thing.seq))
            if attributes != thing.attributes:
                db.write("DELETE FROM thing_attributes WHERE thing_seq = ?", (thing.seq,))
                db.write_many("INSERT INTO thing_attributes(thing_seq, name, value) "
                              "VALUES (?, ?, ?)",
                              [(thing.seq, k, v) for k, v in attributes.items()])
        return ThingRecord(thing.seq, thing.name, thing.thing_id, type_name, attributes,
                           thing.version + 1, thing.billing_group, thing.created)

    def delete_thing(self, region: str, thing: ThingRecord) -> None:
        with self.db.transaction() as db:
            db.write("DELETE FROM things WHERE seq = ?", (thing.seq,))
            db.write("DELETE FROM thing_attributes WHERE thing_seq = ?", (thing.seq,))
            db.write("DELETE FROM thing_group_members WHERE region = ? AND thing_name = ?",
                     (region, thing.name))
            db.write("DELETE FROM thing_principals WHERE region = ? AND thing_name = ?",
                     (region, thing.name))

    def list_things(self, region: str, after: int, limit: int, attribute_name: str | None = None,
                    attribute_value: str | None = None, prefix: bool = False,
                    type_name: str | None = None) -> tuple[list[ThingRecord], int | None]:
        """Things with seq > after, in creation order; returns (page, last seq if more)."""
        where, args = ["t.region = ?", "t.seq > ?"], [region, after]
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
        cols = ", ".join(f"t.{c.strip()}" for c in THING_COLS.split(","))
        rows = self.db.query(
            f"SELECT {cols} FROM things t{join} WHERE {' AND '.join(where)} ORDER BY t.seq "
            "LIMIT ?", (*args, limit + 1))
        return page(rows, limit, as_thing, lambda t: t.seq)

    def count_things_of_type(self, region: str, type_name: str) -> int:
        row = self.db.one("SELECT count(*) FROM things WHERE region = ? AND type_name = ?",
                          (region, type_name))
        return int(row[0]) if row else 0

    # --- thing types -------------------------------------------------------------------------

    def get_thing_type(self, region: str, name: str) -> ThingTypeRecord | None:
        row = self.db.one(f"SELECT {TYPE_COLS} FROM thing_types WHERE region = ? AND name = ?",
                          (region, name))
        return as_thing_type(row) if row else None

    def create_thing_type(self, region: str, name: str, description: str | None,
                          searchable_attributes: list[str]) -> ThingTypeRecord:
        rec = ThingTypeRecord(name, str(uuid.uuid4()), description, searchable_attributes, False,
                              None, time.time())
        with self.db.transaction() as db:
            db.write(f"INSERT INTO thing_types(region, {TYPE_COLS}) "
                     "VALUES (?, ?, ?, ?, ?, 0, NULL, ?)",
                     (region, name, rec.type_id, description, json.dumps(searchable_attributes),
                      rec.created))
        return rec

    def set_thing_type_deprecated(self, region: str, rec: ThingTypeRecord,
                                  deprecated: bool) -> ThingTypeRecord:
        date = time.time() if deprecated else None
        with self.db.transaction() as db:
            db.write("UPDATE thing_types SET deprecated = ?, deprecation_date = ? "
                     "WHERE region = ? AND name = ?", (int(deprecated), date, region, rec.name))
        return ThingTypeRecord(rec.name, rec.type_id, rec.description, rec.searchable_attributes,
                               deprecated, date, rec.created)

    def update_thing_type(self, region: str, rec: ThingTypeRecord, description: str | None,
                          searchable_attributes: list[str]) -> ThingTypeRecord:
        with self.db.transaction() as db:
            db.write("UPDATE thing_types SET description = ?, searchable_attributes = ? "
                     "WHERE region = ? AND name = ?",
                     (description, json.dumps(searchable_attributes), region, rec.name))
        return ThingTypeRecord(rec.name, rec.type_id, description, searchable_attributes,
                               rec.deprecated, rec.deprecation_date, rec.created)

    def delete_thing_type(self, region: str, name: str) -> None:
        with self.db.transaction() as db:
            db.write("DELETE FROM thing_types WHERE region = ? AND name = ?", (region, name))

    def list_thing_types(self, region: str, after: str, limit: int
                         ) -> tuple[list[ThingTypeRecord], str | None]:
        rows = keyset(self.db, "thing_types", TYPE_COLS, "name", after, limit,
                      where=("region = ?",), args=(region,))
        return page(rows, limit, as_thing_type, lambda t: t.name)

    # --- thing groups ------------------------------------------------------------------------

    def get_thing_group(self, region: str, name: str) -> ThingGroupRecord | None:
        row = self.db.one(f"SELECT {GROUP_COLS} FROM thing_groups WHERE region = ? AND name = ?",
                          (region, name))
        return as_group(row) if row else None

    def create_thing_group(self, region: str, name: str, parent_name: str | None,
                           description: str | None, attributes: dict[str, str],
                           query_string: str | None = None) -> ThingGroupRecord:
        now = time.time()
        group_id = str(uuid.uuid4())
        with self.db.transaction() as db:
            cur = db.write(
                "INSERT INTO thing_groups(region, name, group_id, parent_name, description, "
                "attributes, version, created, query_string) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)",
                (region, name, group_id, parent_name, description, json.dumps(attributes), now,
                 query_string))
        return ThingGroupRecord(cur.lastrowid or 0, name, group_id, parent_name, description,
                                attributes, 1, now, query_string)

    def update_thing_group(self, rec: ThingGroupRecord, description: str | None,
                           attributes: dict[str, str], query_string: str | None = None
                           ) -> ThingGroupRecord:
        """`query_string` (dynamic groups only) replaces the query if given."""
        query = query_string if query_string is not None else rec.query_string
        with self.db.transaction() as db:
            db.write("UPDATE thing_groups SET description = ?, attributes = ?, "
                     "query_string = ?, version = version + 1 WHERE seq = ?",
                     (description, json.dumps(attributes), query, rec.seq))
        return ThingGroupRecord(rec.seq, rec.name, rec.group_id, rec.parent_name, description,
                                attributes, rec.version + 1, rec.created, query)

    def dynamic_groups(self, region: str) -> list[ThingGroupRecord]:
        return [as_group(r) for r in self.db.query(
            f"SELECT {GROUP_COLS} FROM thing_groups WHERE region = ? AND "
            "query_string IS NOT NULL ORDER BY seq", (region,))]

    def memberships(self, region: str) -> list[tuple[str, str]]:
        """Every (thing, group) membership of the region, oldest first."""
        return [(r["thing_name"], r["group_name"]) for r in self.db.query(
            "SELECT thing_name, group_name FROM thing_group_members WHERE region = ? "
            "ORDER BY added", (region,))]

    def delete_thing_group(self, region: str, name: str) -> None:
        with self.db.transaction() as db:
            db.write("DELETE FROM thing_groups WHERE region = ? AND name = ?", (region, name))
            db.write("DELETE FROM thing_group_members WHERE region = ? AND group_name = ?",
                     (region, name))

    def child_groups(self, region: str, name: str) -> list[str]:
        return [r["name"] for r in self.db.query(
            "SELECT name FROM thing_groups WHERE region = ? AND parent_name = ? ORDER BY seq",
            (region, name))]

    def ancestors(self, region: str, name: str) -> list[str]:
        """Parent, grandparent, ... up to the root."""
        out: list[str] = []
        current: str | None = name
        while current is not None:
            row = self.db.one("SELECT parent_name FROM thing_groups WHERE region = ? AND "
                              "name = ?", (region, current))
            current = row["parent_name"] if row else None
            if current is not None:
                if current in out:  # defensive: a cycle cannot be created through the API
                    break
                out.append(current)
        return out

    def descendants(self, region: str, name: str) -> list[str]:
        out, todo = [], [name]
        while todo:
            for child in self.child_groups(region, todo.pop()):
                out.append(child)
                todo.append(child)
        return out

    def list_thing_groups(self, region: str, after: int, limit: int, parent: str | None = None,
                          name_prefix: str | None = None, recursive: bool = True
                          ) -> tuple[list[ThingGroupRecord], int | None]:
        where: list[str] = ["region = ?"]
        args: list[Any] = [region]
        if parent is not None:
            names = (self.descendants(region, parent) if recursive
                     else self.child_groups(region, parent))
            if not names:
                return [], None
            where.append(f"name IN ({','.join('?' * len(names))})")
            args += names
        elif not recursive:
            where.append("parent_name IS NULL")
        if name_prefix:
            where.append("substr(name, 1, ?) = ?")
            args += [len(name_prefix), name_prefix]
        rows = keyset(self.db, "thing_groups", GROUP_COLS, "seq", after, limit,
                      where=tuple(where), args=tuple(args))
        return page(rows, limit, as_group, lambda g: g.seq)

    def add_thing_to_group(self, region: str, group: str, thing: str) -> str | None:
        """Returns the new membership id, or None if the thing was already a member."""
        membership_id = str(uuid.uuid4())
        with self.db.transaction() as db:
            cur = db.write("INSERT OR IGNORE INTO thing_group_members(region, group_name, "
                           "thing_name, membership_id, added) VALUES (?, ?, ?, ?, ?)",
                           (region, group, thing, membership_id, time.time()))
        return membership_id if cur.rowcount > 0 else None

    def remove_thing_from_group(self, region: str, group: str, thing: str) -> str | None:
        """Returns the removed membership id, or None if the thing was not a member."""
        with self.db.transaction() as db:
            row = db.one("SELECT membership_id FROM thing_group_members WHERE region = ? AND "
                         "group_name = ? AND thing_name = ?", (region, group, thing))
            if row is None:
                return None
            db.write("DELETE FROM thing_group_members WHERE region = ? AND group_name = ? AND "
                     "thing_name = ?", (region, group, thing))
        return str(row["membership_id"])

    def groups_of_thing(self, region: str, thing: str) -> list[str]:
        return [r["group_name"] for r in self.db.query(
            "SELECT group_name FROM thing_group_members WHERE region = ? AND thing_name = ? "
            "ORDER BY added", (region, thing))]

    def things_in_groups(self, region: str, groups: list[str], after: str, limit: int
                         ) -> tuple[list[str], str | None]:
        if not groups:
            return [], None
        marks = ",".join("?" * len(groups))
        rows = self.db.query(
            "SELECT DISTINCT thing_name FROM thing_group_members WHERE region = ? AND "
            f"group_name IN ({marks}) AND thing_name > ? ORDER BY thing_name LIMIT ?",
            (region, *groups, after, limit + 1))
        return page(rows, limit, first, itself)

    # --- thing principals --------------------------------------------------------------------

    def attach_thing_principal(self, region: str, thing_name: str, principal: str,
                               principal_type: str) -> None:
        with self.db.transaction() as db:
            db.write("INSERT INTO thing_principals(region, principal, thing_name, "
                     "principal_type, attached) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE "
                     "SET principal_type = excluded.principal_type",
                     (region, principal, thing_name, principal_type, time.time()))

    def detach_thing_principal(self, region: str, thing_name: str, principal: str) -> bool:
        with self.db.transaction() as db:
            cur = db.write("DELETE FROM thing_principals WHERE region = ? AND principal = ? "
                           "AND thing_name = ?", (region, principal, thing_name))
        return cur.rowcount > 0

    def principals_of_thing(self, region: str, thing_name: str) -> list[ThingPrincipal]:
        return [as_principal(r) for r in self.db.query(
            "SELECT thing_name, principal, principal_type FROM thing_principals "
            "WHERE region = ? AND thing_name = ? ORDER BY attached", (region, thing_name))]

    def things_of_principal(self, region: str, principal: str) -> list[ThingPrincipal]:
        return [as_principal(r) for r in self.db.query(
            "SELECT thing_name, principal, principal_type FROM thing_principals "
            "WHERE region = ? AND principal = ? ORDER BY attached", (region, principal))]

    def thing_has_principals(self, region: str, thing_name: str) -> bool:
        return self.db.one("SELECT 1 FROM thing_principals WHERE region = ? AND thing_name = ? "
                           "LIMIT 1", (region, thing_name)) is not None
