"""The policies feature's tables: policies, policy_versions, policy_targets. Only
`PoliciesService` uses this module."""

from __future__ import annotations

import secrets
import sqlite3
import time

from fleetsim.localcore.db import Database, columns
from fleetsim.localcore.features.policies.records import PolicyRecord, PolicyVersionRecord
from fleetsim.localcore.paging import first, itself, keyset, page

PRINCIPAL_TABLES = ("policies", "policy_targets")
_POLICY_COLS = "name, default_version, next_version, created, last_modified, generation_id"


def as_policy(row: sqlite3.Row) -> PolicyRecord:
    return PolicyRecord(**columns(row))


class PoliciesStore:
    def __init__(self, db: Database):
        self.db = db
        db.watch_principal_tables(*PRINCIPAL_TABLES)

    def get_policy(self, region: str, name: str) -> PolicyRecord | None:
        row = self.db.one(
            "SELECT p.name, p.default_version, p.next_version, p.created, p.last_modified, "
            "p.generation_id, v.document FROM policies p JOIN policy_versions v ON "
            "v.region = p.region AND v.policy_name = p.name AND v.version = p.default_version "
            "WHERE p.region = ? AND p.name = ?", (region, name))
        return as_policy(row) if row else None

    def create_policy(self, region: str, name: str, document: str) -> PolicyRecord:
        now = time.time()
        rec = PolicyRecord(name, 1, 2, now, now, secrets.token_hex(32), document)
        with self.db.transaction() as db:
            db.write("INSERT INTO policies(region, name, default_version, next_version, created, "
                     "last_modified, generation_id) VALUES (?, ?, 1, 2, ?, ?, ?)",
                     (region, name, now, now, rec.generation_id))
            db.write("INSERT INTO policy_versions(region, policy_name, version, document, "
                     "created) VALUES (?, ?, 1, ?, ?)", (region, name, document, now))
        return rec

    def delete_policy(self, region: str, name: str) -> None:
        with self.db.transaction() as db:
            db.write("DELETE FROM policies WHERE region = ? AND name = ?", (region, name))
            db.write("DELETE FROM policy_versions WHERE region = ? AND policy_name = ?",
                     (region, name))

    def list_policies(self, region: str, after: str, limit: int, ascending: bool = True
                      ) -> tuple[list[PolicyRecord], str | None]:
        rows = keyset(self.db, "policies", _POLICY_COLS, "name", after, limit, ascending,
                      ("region = ?",), (region,))
        return page(rows, limit, as_policy, lambda p: p.name)

    def policy_versions(self, region: str, name: str) -> list[PolicyVersionRecord]:
        default = self.db.one("SELECT default_version FROM policies WHERE region = ? AND "
                              "name = ?", (region, name))
        return [PolicyVersionRecord(name, r["version"], r["document"], r["created"],
                                    bool(default and r["version"] == default[0]))
                for r in self.db.query(
                    "SELECT version, document, created FROM policy_versions WHERE region = ? "
                    "AND policy_name = ? ORDER BY version DESC", (region, name))]

    def get_policy_version(self, region: str, name: str, version: int
                           ) -> PolicyVersionRecord | None:
        row = self.db.one(
            "SELECT v.version, v.document, v.created, p.default_version FROM policy_versions v "
            "JOIN policies p ON p.region = v.region AND p.name = v.policy_name "
            "WHERE v.region = ? AND v.policy_name = ? AND v.version = ?",
            (region, name, version))
        if row is None:
            return None
        return PolicyVersionRecord(name, row["version"], row["document"], row["created"],
                                   row["version"] == row["default_version"])

    def create_policy_version(self, region: str, policy: PolicyRecord, document: str,
                              set_default: bool) -> PolicyVersionRecord:
        now = time.time()
        version = policy.next_version
        with self.db.transaction() as db:
            db.write("INSERT INTO policy_versions(region, policy_name, version, document, "
                     "created) VALUES (?, ?, ?, ?, ?)", (region, policy.name, version, document,
                                                         now))
            db.write("UPDATE policies SET next_version = ?, last_modified = ?, "
                     "default_version = CASE WHEN ? THEN ? ELSE default_version END "
                     "WHERE region = ? AND name = ?",
                     (version + 1, now, int(set_default), version, region, policy.name))
        return PolicyVersionRecord(policy.name, version, document, now, set_default)

    def set_default_policy_version(self, region: str, name: str, version: int) -> None:
        with self.db.transaction() as db:
            db.write("UPDATE policies SET default_version = ?, last_modified = ? "
                     "WHERE region = ? AND name = ?", (version, time.time(), region, name))

    def delete_policy_version(self, region: str, name: str, version: int) -> None:
        with self.db.transaction() as db:
            db.write("DELETE FROM policy_versions WHERE region = ? AND policy_name = ? AND "
                     "version = ?", (region, name, version))

    def document(self, region: str, name: str, version: int) -> str | None:
        row = self.db.one("SELECT document FROM policy_versions WHERE region = ? AND "
                          "policy_name = ? AND version = ?", (region, name, version))
        return str(row["document"]) if row else None

    # --- attachments -------------------------------------------------------------------------

    def attach_policy(self, region: str, name: str, target: str) -> None:
        with self.db.transaction() as db:
            db.write("INSERT OR IGNORE INTO policy_targets(region, target, policy_name, "
                     "attached) VALUES (?, ?, ?, ?)", (region, target, name, time.time()))

    def detach_policy(self, region: str, name: str, target: str) -> bool:
        with self.db.transaction() as db:
            cur = db.write("DELETE FROM policy_targets WHERE region = ? AND target = ? AND "
                           "policy_name = ?", (region, target, name))
        return cur.rowcount > 0

    def detach_all(self, region: str, target: str) -> None:
        with self.db.transaction() as db:
            db.write("DELETE FROM policy_targets WHERE region = ? AND target = ?",
                     (region, target))

    def policies_of_target(self, region: str, target: str) -> list[str]:
        return [r["policy_name"] for r in self.db.query(
            "SELECT policy_name FROM policy_targets WHERE region = ? AND target = ? "
            "ORDER BY attached", (region, target))]

    def default_versions_of_target(self, region: str, target: str) -> list[tuple[str, int]]:
        return [(r["name"], r["default_version"]) for r in self.db.query(
            "SELECT p.name, p.default_version FROM policy_targets a JOIN policies p "
            "ON p.region = a.region AND p.name = a.policy_name WHERE a.region = ? AND "
            "a.target = ? ORDER BY a.attached", (region, target))]

    def targets_of_policy(self, region: str, name: str, after: str = "",
                          limit: int = 1_000_000) -> tuple[list[str], str | None]:
        rows = keyset(self.db, "policy_targets", "target", "target", after, limit,
                      where=("region = ?", "policy_name = ?"), args=(region, name))
        return page(rows, limit, first, itself)

    def policy_is_attached(self, region: str, name: str) -> bool:
        return self.db.one("SELECT 1 FROM policy_targets WHERE region = ? AND policy_name = ? "
                           "LIMIT 1", (region, name)) is not None
