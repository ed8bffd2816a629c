"""Version 6: Lambda functions (their configuration and the SHA-256 of their code, whose zip is
a file under the state directory's `lambda/`) and the statements of their resource policies
(add-permission), in the order they were added."""

from __future__ import annotations

import sqlite3


def migrate(db: sqlite3.Connection, default_region: str) -> None:
    db.execute("""
        CREATE TABLE lambda_functions (
            region TEXT NOT NULL, name TEXT NOT NULL,
            runtime TEXT NOT NULL, role TEXT NOT NULL, handler TEXT NOT NULL,
            description TEXT NOT NULL, timeout INTEGER NOT NULL, memory_size INTEGER NOT NULL,
            environment TEXT NOT NULL, code_sha256 TEXT NOT NULL, code_size INTEGER NOT NULL,
            last_modified REAL NOT NULL, revision_id TEXT NOT NULL,
            PRIMARY KEY (region, name)) WITHOUT ROWID""")
    db.execute("""
        CREATE TABLE lambda_permissions (
            region TEXT NOT NULL, function_name TEXT NOT NULL, sid TEXT NOT NULL,
            statement TEXT NOT NULL,
            UNIQUE (region, function_name, sid))""")
