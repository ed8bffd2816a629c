"""Version 6: CloudWatch Logs: log groups (per region), their streams and events. Events are
keyed by an integer id in arrival order and indexed by stream and by group, each by
(timestamp, id), so reading a stream, filtering a group over a time range and deleting either
are index range scans; a stream's first/last event times and stored bytes are kept on its row."""

from __future__ import annotations

import sqlite3


def migrate(db: sqlite3.Connection, default_region: str) -> None:
    db.execute("""
        CREATE TABLE log_groups (
            id INTEGER PRIMARY KEY, region TEXT NOT NULL, name TEXT NOT NULL,
            created INTEGER NOT NULL, retention_days INTEGER,
            UNIQUE (region, name))""")
    db.execute("""
        CREATE TABLE log_streams (
            id INTEGER PRIMARY KEY, group_id INTEGER NOT NULL, name TEXT NOT NULL,
            created INTEGER NOT NULL, first_event INTEGER, last_event INTEGER,
            last_ingestion INTEGER, stored_bytes INTEGER NOT NULL DEFAULT 0,
            UNIQUE (group_id, name))""")
    db.execute("""
        CREATE TABLE log_events (
            id INTEGER PRIMARY KEY, group_id INTEGER NOT NULL, stream_id INTEGER NOT NULL,
            timestamp INTEGER NOT NULL, ingestion INTEGER NOT NULL, message TEXT NOT NULL)""")
    db.execute("CREATE INDEX log_events_by_stream ON log_events (stream_id, timestamp, id)")
    db.execute("CREATE INDEX log_events_by_group ON log_events (group_id, timestamp, id)")
