"""Policies, their versions, and their attachments to targets (certificates, thing groups)."""

from __future__ import annotations

import secrets
import time

from fleetsim.localcore.store.base import StoreBase
from fleetsim.localcore.store.paging import first, itself, keyset, page
from fleetsim.localcore.store.records import PolicyRecord, PolicyVersionRecord


class PoliciesMixin(StoreBase):
    def get_policy(self, name: str) -> PolicyRecord | None:
        row = self._db.execute(
            "SELECT p.name, p.default_version, p.next_version, p.created, p.last_modified, "
            "p.generation_id, v.document FROM policies p JOIN policy_versions v ON "
            "v.policy_name = p.name AND v.version = p.default_version WHERE p.name = ?",
            (name,)).fetchone()
        return PolicyRecord(*row) if row else None

    def create_policy(self, name: str, document: str) -> PolicyRecord:
        now = time.time()
        rec = PolicyRecord(name, 1, 2, now, now, secrets.token_hex(32), document)
        with self.transaction() as db:
            db.execute("INSERT INTO policies(name, default_version, next_version, created, "
                       "last_modified, generation_id) VALUES (?, 1, 2, ?, ?, ?)",
                       (name, now, now, rec.generation_id))
            db.execute("INSERT INTO policy_versions(policy_name, version, document, created) "
                       "VALUES (?, 1, ?, ?)", (name, document, now))
        return rec

    def delete_policy(self, name: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM policies WHERE name = ?", (name,))
            db.execute("DELETE FROM policy_versions WHERE policy_name = ?", (name,))
        self._policy_cache = {k: v for k, v in self._policy_cache.items() if k[0] != name}

    def list_policies(self, after: str, limit: int, ascending: bool = True
                      ) -> tuple[list[PolicyRecord], str | None]:
        rows = keyset(self._db, "policies", "name, default_version, next_version, created, "
                      "last_modified, generation_id", "name", after, limit, ascending)
        return page(rows, limit, lambda r: PolicyRecord(*r), lambda p: p.name)

    def policy_versions(self, name: str) -> list[PolicyVersionRecord]:
        default = self._db.execute("SELECT default_version FROM policies WHERE name = ?",
                                   (name,)).fetchone()
        return [PolicyVersionRecord(name, r[0], r[1], r[2], bool(default and r[0] == default[0]))
                for r in self._db.execute(
                    "SELECT version, document, created FROM policy_versions WHERE "
                    "policy_name = ? ORDER BY version DESC", (name,))]

    def get_policy_version(self, name: str, version: int) -> PolicyVersionRecord | None:
        row = self._db.execute(
            "SELECT v.version, v.document, v.created, p.default_version FROM policy_versions v "
            "JOIN policies p ON p.name = v.policy_name WHERE v.policy_name = ? AND v.version = ?",
            (name, version)).fetchone()
        if row is None:
            return None
        return PolicyVersionRecord(name, row[0], row[1], row[2], row[0] == row[3])

    def create_policy_version(self, policy: PolicyRecord, document: str,
                              set_default: bool) -> PolicyVersionRecord:
        now = time.time()
        version = policy.next_version
        with self.transaction() as db:
            db.execute("INSERT INTO policy_versions(policy_name, version, document, created) "
                       "VALUES (?, ?, ?, ?)", (policy.name, version, document, now))
            db.execute("UPDATE policies SET next_version = ?, last_modified = ?, "
                       "default_version = CASE WHEN ? THEN ? ELSE default_version END "
                       "WHERE name = ?", (version + 1, now, int(set_default), version,
                                          policy.name))
        if set_default:
            self._bump()
        return PolicyVersionRecord(policy.name, version, document, now, set_default)

    def set_default_policy_version(self, name: str, version: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE policies SET default_version = ?, last_modified = ? "
                       "WHERE name = ?", (version, time.time(), name))
        self._bump()

    def delete_policy_version(self, name: str, version: int) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM policy_versions WHERE policy_name = ? AND version = ?",
                       (name, version))
        self._policy_cache.pop((name, version), None)

    def attach_policy(self, name: str, target: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO policy_targets(target, policy_name, attached) "
                       "VALUES (?, ?, ?)", (target, name, time.time()))
        self._bump()

    def detach_policy(self, name: str, target: str) -> bool:
        with self.transaction() as db:
            cur = db.execute("DELETE FROM policy_targets WHERE target = ? AND policy_name = ?",
                             (target, name))
        self._bump()
        return cur.rowcount > 0

    def policies_of_target(self, target: str) -> list[str]:
        return [r[0] for r in self._db.execute(
            "SELECT policy_name FROM policy_targets WHERE target = ? ORDER BY attached",
            (target,))]

    def targets_of_policy(self, name: str, after: str = "", limit: int = 1_000_000
                          ) -> tuple[list[str], str | None]:
        rows = keyset(self._db, "policy_targets", "target", "target", after, limit,
                      where=("policy_name = ?",), args=(name,))
        return page(rows, limit, first, itself)

    def policy_is_attached(self, name: str) -> bool:
        return self._db.execute("SELECT 1 FROM policy_targets WHERE policy_name = ? LIMIT 1",
                                (name,)).fetchone() is not None

