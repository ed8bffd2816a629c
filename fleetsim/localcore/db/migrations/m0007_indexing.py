"""Version 6: the fleet indexing configuration of each region (the index itself is built in
memory from the registry and shadows when local core starts)."""

from __future__ import annotations

import sqlite3


def migrate(db: sqlite3.Connection, default_region: str) -> None:
    db.execute("""
        CREATE TABLE indexing_configs (
            region TEXT PRIMARY KEY, config TEXT NOT NULL, updated REAL NOT NULL
        ) WITHOUT ROWID""")
