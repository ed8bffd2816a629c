"""Thing types: creation, description and searchable attributes, deprecation."""

from __future__ import annotations

import json
import time
import uuid

from fleetsim.localcore.store.base import StoreBase
from fleetsim.localcore.store.paging import keyset, page
from fleetsim.localcore.store.records import TYPE_COLS, ThingTypeRecord, as_thing_type


class ThingTypesMixin(StoreBase):
    def get_thing_type(self, name: str) -> ThingTypeRecord | None:
        row = self._db.execute(f"SELECT {TYPE_COLS} FROM thing_types WHERE name = ?",
                               (name,)).fetchone()
        return as_thing_type(row) if row else None

    def create_thing_type(self, name: str, description: str | None,
                          searchable_attributes: list[str]) -> ThingTypeRecord:
        rec = ThingTypeRecord(name, str(uuid.uuid4()), description, searchable_attributes, False,
                              None, time.time())
        with self.transaction() as db:
            db.execute(f"INSERT INTO thing_types({TYPE_COLS}) VALUES (?, ?, ?, ?, 0, NULL, ?)",
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
        rows = keyset(self._db, "thing_types", TYPE_COLS, "name", after, limit)
        return page(rows, limit, as_thing_type, lambda t: t.name)
