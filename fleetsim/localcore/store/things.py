"""Things and their attribute index (`thing_attributes`, for ListThings by attribute)."""

from __future__ import annotations

import json
import time
import uuid

from fleetsim.localcore.store.base import StoreBase
from fleetsim.localcore.store.paging import page
from fleetsim.localcore.store.records import THING_COLS, ThingRecord, as_thing


class ThingsMixin(StoreBase):
    def get_thing(self, name: str) -> ThingRecord | None:
        row = self._db.execute(f"SELECT {THING_COLS} FROM things WHERE name = ?",
                               (name,)).fetchone()
        return as_thing(row) if row else None

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
        cols = ", ".join(f"t.{c.strip()}" for c in THING_COLS.split(","))
        rows = self._db.execute(
            f"SELECT {cols} FROM things t{join} WHERE {' AND '.join(where)} ORDER BY t.seq "
            "LIMIT ?", (*args, limit + 1)).fetchall()
        return page(rows, limit, as_thing, lambda t: t.seq)

    def count_things_of_type(self, type_name: str) -> int:
        return self._db.execute("SELECT count(*) FROM things WHERE type_name = ?",
                                (type_name,)).fetchone()[0]
