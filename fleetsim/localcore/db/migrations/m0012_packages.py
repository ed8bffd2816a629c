"""Version 12: the Software Package Catalog: packages, their versions and the account's package
configuration (versionUpdateByJobsConfig)."""

from __future__ import annotations

import sqlite3


def migrate(db: sqlite3.Connection, default_region: str) -> None:
    db.execute("""
        CREATE TABLE packages (
            region TEXT NOT NULL, name TEXT NOT NULL, description TEXT,
            default_version TEXT, tags TEXT NOT NULL, created REAL NOT NULL,
            modified REAL NOT NULL,
            PRIMARY KEY (region, name)) WITHOUT ROWID""")
    db.execute("""
        CREATE TABLE package_versions (
            region TEXT NOT NULL, package TEXT NOT NULL, name TEXT NOT NULL,
            description TEXT, attributes TEXT NOT NULL, artifact TEXT, recipe TEXT,
            status TEXT NOT NULL, tags TEXT NOT NULL, created REAL NOT NULL,
            modified REAL NOT NULL,
            PRIMARY KEY (region, package, name)) WITHOUT ROWID""")
    db.execute("""
        CREATE TABLE package_configs (
            region TEXT NOT NULL PRIMARY KEY, jobs_enabled INTEGER NOT NULL,
            role_arn TEXT) WITHOUT ROWID""")
