"""Version 7: AWS IoT logging (v1 and v2 options per region, v2 log levels per target) and
the IAM roles the labs create (global, as IAM is: no region column)."""

from __future__ import annotations

import sqlite3


def migrate(db: sqlite3.Connection, default_region: str) -> None:
    db.execute("""
        CREATE TABLE iot_logging_options (
            region TEXT NOT NULL, version TEXT NOT NULL, role_arn TEXT,
            log_level TEXT, disable_all INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (region, version)) WITHOUT ROWID""")
    db.execute("""
        CREATE TABLE iot_logging_levels (
            region TEXT NOT NULL, target_type TEXT NOT NULL, target_name TEXT NOT NULL,
            log_level TEXT NOT NULL,
            PRIMARY KEY (region, target_type, target_name)) WITHOUT ROWID""")
    db.execute("""
        CREATE TABLE iam_roles (
            name TEXT PRIMARY KEY COLLATE NOCASE, role_id TEXT NOT NULL, path TEXT NOT NULL,
            trust_policy TEXT NOT NULL, description TEXT, max_session INTEGER NOT NULL,
            created REAL NOT NULL) WITHOUT ROWID""")
    db.execute("""
        CREATE TABLE iam_role_policies (
            role TEXT NOT NULL COLLATE NOCASE, name TEXT NOT NULL, document TEXT NOT NULL,
            PRIMARY KEY (role, name)) WITHOUT ROWID""")
    db.execute("""
        CREATE TABLE iam_attached_policies (
            role TEXT NOT NULL COLLATE NOCASE, policy_arn TEXT NOT NULL,
            PRIMARY KEY (role, policy_arn)) WITHOUT ROWID""")
