"""Version 4: provisioning templates (regional, by name), their versions, and the certificate
ownership tokens fleet provisioning hands out (valid one hour)."""

from __future__ import annotations

import sqlite3


def migrate(db: sqlite3.Connection, default_region: str) -> None:
    db.execute("""
        CREATE TABLE provisioning_templates (
            region TEXT NOT NULL, name TEXT NOT NULL,
            description TEXT, enabled INTEGER NOT NULL, role_arn TEXT NOT NULL,
            hook TEXT, type TEXT NOT NULL, default_version INTEGER NOT NULL,
            next_version INTEGER NOT NULL, created REAL NOT NULL, modified REAL NOT NULL,
            PRIMARY KEY (region, name)) WITHOUT ROWID""")
    db.execute("""
        CREATE TABLE provisioning_template_versions (
            region TEXT NOT NULL, template_name TEXT NOT NULL, version_id INTEGER NOT NULL,
            body TEXT NOT NULL, created REAL NOT NULL,
            PRIMARY KEY (region, template_name, version_id)) WITHOUT ROWID""")
    db.execute("""
        CREATE TABLE certificate_ownership_tokens (
            token TEXT PRIMARY KEY, region TEXT NOT NULL, certificate_id TEXT NOT NULL,
            expires REAL NOT NULL)""")
    db.execute("CREATE INDEX certificate_ownership_tokens_expires "
               "ON certificate_ownership_tokens (expires)")
