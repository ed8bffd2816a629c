"""The events feature's table: event_configurations, one row per region. Only `EventsService`
uses this module."""

from __future__ import annotations

import json
import time

from fleetsim.localcore.db import Database


class EventsStore:
    def __init__(self, db: Database):
        self.db = db

    def load(self, region: str) -> tuple[dict[str, bool], float, float] | None:
        """(enabled by type, created, last modified), or None if never configured."""
        row = self.db.one("SELECT enabled, created, last_modified FROM event_configurations "
                          "WHERE region = ?", (region,))
        if row is None:
            return None
        return json.loads(row["enabled"]), row["created"], row["last_modified"]

    def save(self, region: str, enabled: dict[str, bool], created: float) -> float:
        now = time.time()
        with self.db.transaction() as db:
            db.write("INSERT OR REPLACE INTO event_configurations(region, enabled, created, "
                     "last_modified) VALUES (?, ?, ?, ?)",
                     (region, json.dumps(enabled), created or now, now))
        return now
