"""The `indexing_configs` table: each region's indexing configuration. Only
`IndexingService` uses this module."""

from __future__ import annotations

import json
import time
from typing import Any

from fleetsim.localcore.db import Database


class IndexingStore:
    def __init__(self, db: Database):
        self._db = db

    def load(self, region: str) -> dict[str, Any] | None:
        row = self._db.one("SELECT config FROM indexing_configs WHERE region = ?", (region,))
        return json.loads(row["config"]) if row else None

    def save(self, region: str, config: dict[str, Any]) -> None:
        with self._db.transaction() as db:
            db.write("INSERT INTO indexing_configs(region, config, updated) VALUES (?, ?, ?) "
                     "ON CONFLICT (region) DO UPDATE SET config = excluded.config, "
                     "updated = excluded.updated", (region, json.dumps(config), time.time()))
