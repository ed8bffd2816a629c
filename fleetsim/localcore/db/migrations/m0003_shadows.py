"""Version 3: device shadows, one row per (region, thing, shadow); the classic shadow has the
name ''. A deleted shadow stays as a tombstone (document NULL, `deleted_at` set) for 48 hours, so
that a shadow re-created meanwhile continues its version numbers."""

from __future__ import annotations

import sqlite3


def migrate(db: sqlite3.Connection, default_region: str) -> None:
    db.execute("""
        CREATE TABLE shadows (
            region TEXT NOT NULL, thing_name TEXT NOT NULL,
            shadow_name TEXT NOT NULL DEFAULT '',
            document TEXT,
            version INTEGER NOT NULL,
            deleted_at REAL,
            updated REAL NOT NULL,
            PRIMARY KEY (region, thing_name, shadow_name)) WITHOUT ROWID""")
