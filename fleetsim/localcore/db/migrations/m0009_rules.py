"""Version 6: topic rules (the rules engine), per region. `payload` is the TopicRulePayload as
the API took it (JSON); `topic_filter` its FROM clause, for ListTopicRules' topic filter."""

from __future__ import annotations

import sqlite3


def migrate(db: sqlite3.Connection, default_region: str) -> None:
    db.execute("""
        CREATE TABLE topic_rules (
            region TEXT NOT NULL, name TEXT NOT NULL, payload TEXT NOT NULL,
            topic_filter TEXT NOT NULL, disabled INTEGER NOT NULL, created REAL NOT NULL,
            tags TEXT, PRIMARY KEY (region, name)) WITHOUT ROWID""")
