"""Thing groups: the hierarchy (children, ancestors, descendants) and group memberships."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from fleetsim.localcore.store.base import StoreBase
from fleetsim.localcore.store.paging import first, itself, keyset, page
from fleetsim.localcore.store.records import GROUP_COLS, ThingGroupRecord, as_group


class ThingGroupsMixin(StoreBase):
    def get_thing_group(self, name: str) -> ThingGroupRecord | None:
        row = self._db.execute(f"SELECT {GROUP_COLS} FROM thing_groups WHERE name = ?",
                               (name,)).fetchone()
        return as_group(row) if row else None

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
        rows = keyset(self._db, "thing_groups", GROUP_COLS, "seq", after, limit,
                      where=tuple(where), args=tuple(args))
        return page(rows, limit, as_group, lambda g: g.seq)

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
        return page(rows, limit, first, itself)
