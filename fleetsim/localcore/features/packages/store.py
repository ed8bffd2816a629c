"""The packages feature's tables: `packages`, `package_versions`, `package_configs`. Only
`PackageService` uses this module."""

from __future__ import annotations

import json
import sqlite3

from fleetsim.localcore.db import Database
from fleetsim.localcore.features.packages.records import (
    PackageConfig,
    PackageRecord,
    VersionRecord,
)

_PACKAGE = "region, name, description, default_version, tags, created, modified"
_VERSION = ("region, package, name, description, attributes, artifact, recipe, status, tags, "
            "created, modified")


def _package(row: sqlite3.Row) -> PackageRecord:
    return PackageRecord(row["region"], row["name"], row["description"],
                         row["default_version"], json.loads(row["tags"]), row["created"],
                         row["modified"])


def _version(row: sqlite3.Row) -> VersionRecord:
    return VersionRecord(row["region"], row["package"], row["name"], row["description"],
                         json.loads(row["attributes"]),
                         json.loads(row["artifact"]) if row["artifact"] else None,
                         row["recipe"], row["status"], json.loads(row["tags"]), row["created"],
                         row["modified"])


class PackageStore:
    def __init__(self, db: Database):
        self._db = db

    # --- packages ----------------------------------------------------------------------------

    def package(self, region: str, name: str) -> PackageRecord | None:
        row = self._db.one(f"SELECT {_PACKAGE} FROM packages WHERE region = ? AND name = ?",
                           (region, name))
        return _package(row) if row else None

    def put_package(self, rec: PackageRecord) -> None:
        self._db.write(f"INSERT OR REPLACE INTO packages ({_PACKAGE}) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (rec.region, rec.name, rec.description, rec.default_version,
                        json.dumps(rec.tags), rec.created, rec.modified))

    def delete_package(self, region: str, name: str) -> None:
        self._db.write("DELETE FROM packages WHERE region = ? AND name = ?", (region, name))

    def packages(self, region: str, after: str, limit: int
                 ) -> tuple[list[PackageRecord], str | None]:
        rows = self._db.query(f"SELECT {_PACKAGE} FROM packages WHERE region = ? AND name > ? "
                              "ORDER BY name LIMIT ?", (region, after, limit + 1))
        page = [_package(r) for r in rows[:limit]]
        return page, (page[-1].name if len(rows) > limit else None)

    # --- versions ----------------------------------------------------------------------------

    def version(self, region: str, package: str, name: str) -> VersionRecord | None:
        row = self._db.one(f"SELECT {_VERSION} FROM package_versions "
                           "WHERE region = ? AND package = ? AND name = ?",
                           (region, package, name))
        return _version(row) if row else None

    def put_version(self, rec: VersionRecord) -> None:
        self._db.write(f"INSERT OR REPLACE INTO package_versions ({_VERSION}) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (rec.region, rec.package, rec.name, rec.description,
                        json.dumps(rec.attributes),
                        json.dumps(rec.artifact) if rec.artifact is not None else None,
                        rec.recipe, rec.status, json.dumps(rec.tags), rec.created,
                        rec.modified))

    def delete_version(self, region: str, package: str, name: str) -> None:
        self._db.write("DELETE FROM package_versions WHERE region = ? AND package = ? "
                       "AND name = ?", (region, package, name))

    def count_versions(self, region: str, package: str) -> int:
        row = self._db.one("SELECT count(*) AS n FROM package_versions "
                           "WHERE region = ? AND package = ?", (region, package))
        return int(row["n"]) if row else 0

    def versions(self, region: str, package: str, status: str | None, after: str, limit: int
                 ) -> tuple[list[VersionRecord], str | None]:
        sql = (f"SELECT {_VERSION} FROM package_versions WHERE region = ? AND package = ? "
               "AND name > ?")
        args: list[object] = [region, package, after]
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        rows = self._db.query(sql + " ORDER BY name LIMIT ?", (*args, limit + 1))
        page = [_version(r) for r in rows[:limit]]
        return page, (page[-1].name if len(rows) > limit else None)

    # --- the package configuration -----------------------------------------------------------

    def config(self, region: str) -> PackageConfig:
        row = self._db.one("SELECT jobs_enabled, role_arn FROM package_configs "
                           "WHERE region = ?", (region,))
        return PackageConfig(bool(row["jobs_enabled"]), row["role_arn"]) if row else \
            PackageConfig(False, None)

    def put_config(self, region: str, config: PackageConfig) -> None:
        self._db.write("INSERT OR REPLACE INTO package_configs (region, jobs_enabled, role_arn) "
                       "VALUES (?, ?, ?)", (region, int(config.jobs_enabled), config.role_arn))
