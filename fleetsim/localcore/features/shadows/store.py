"""The `shadows` table: one row per (region, thing, shadow), the classic shadow under the name ''.
A deleted shadow stays as a tombstone row (`deleted_at` set, document NULL) so that a shadow
re-created within 48 hours continues its version numbers ("Interacting with shadows")."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from fleetsim.localcore.db import Database

_COLUMNS = "region, thing_name, shadow_name, document, version, deleted_at, updated"


@dataclass(frozen=True)
class ShadowRow:
    region: str
    thing_name: str
    shadow_name: str  # '' for the classic shadow
    document: str | None
    version: int
    deleted_at: float | None
    updated: float

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ShadowRow:
        return cls(**{name: row[name] for name in row.keys()})  # noqa: SIM118


class ShadowStore:
    """Reads and writes of `shadows`; `ShadowService` is its only caller."""

    def __init__(self, db: Database):
        self._db = db

    def _query(self, sql: str, args: tuple[object, ...]) -> list[ShadowRow]:
        return [ShadowRow.from_row(r) for r in self._db.query(sql, args)]

    def load(self, region: str, thing_name: str, shadow_name: str) -> ShadowRow | None:
        """The row, tombstone or not."""
        rows = self._query(f"SELECT {_COLUMNS} FROM shadows WHERE region = ? AND thing_name = ? "
                           "AND shadow_name = ?", (region, thing_name, shadow_name))
        return rows[0] if rows else None

    def save(self, region: str, thing_name: str, shadow_name: str, document: str, version: int,
             updated: float) -> None:
        self._db.write(
            f"INSERT INTO shadows ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, NULL, ?) "
            "ON CONFLICT (region, thing_name, shadow_name) DO UPDATE SET "
            "document = excluded.document, version = excluded.version, deleted_at = NULL, "
            "updated = excluded.updated",
            (region, thing_name, shadow_name, document, version, updated))

    def tombstone(self, region: str, thing_name: str, shadow_name: str, deleted_at: float) -> None:
        """Mark the shadow deleted, keeping its version."""
        self._db.write("UPDATE shadows SET document = NULL, deleted_at = ?, updated = ? "
                         "WHERE region = ? AND thing_name = ? AND shadow_name = ?",
                         (deleted_at, deleted_at, region, thing_name, shadow_name))

    def purge_tombstones(self, before: float) -> int:
        """Drop tombstones deleted before `before` (their versions no longer count)."""
        cur = self._db.write("DELETE FROM shadows WHERE deleted_at IS NOT NULL "
                               "AND deleted_at < ?", (before,))
        return cur.rowcount

    def named(self, region: str, thing_name: str, after: str, limit: int) -> list[str]:
        """Names of the thing's live named shadows after `after`, in name order, at most
        `limit`."""
        rows = self._db.query(
            "SELECT shadow_name FROM shadows WHERE region = ? AND thing_name = ? "
            "AND shadow_name != '' AND shadow_name > ? AND deleted_at IS NULL "
            "ORDER BY shadow_name LIMIT ?", (region, thing_name, after, limit))
        return [r[0] for r in rows]

    def live(self, region: str, thing_name: str | None = None) -> list[ShadowRow]:
        """Every live shadow of the region (or of one thing)."""
        where, args = "region = ? AND deleted_at IS NULL", [region]
        if thing_name is not None:
            where += " AND thing_name = ?"
            args.append(thing_name)
        return self._query(f"SELECT {_COLUMNS} FROM shadows WHERE {where}", tuple(args))
