"""Thing principals: which certificate ARNs are attached to which things."""

from __future__ import annotations

import time

from fleetsim.localcore.store.base import StoreBase


class ThingPrincipalsMixin(StoreBase):
    def attach_thing_principal(self, thing_name: str, principal: str,
                               principal_type: str = "NON_EXCLUSIVE_THING") -> bool:
        with self.transaction() as db:
            cur = db.execute("INSERT OR IGNORE INTO thing_principals(principal, thing_name, "
                             "principal_type, attached) VALUES (?, ?, ?, ?)",
                             (principal, thing_name, principal_type, time.time()))
        self._bump()
        return cur.rowcount > 0

    def detach_thing_principal(self, thing_name: str, principal: str) -> bool:
        with self.transaction() as db:
            cur = db.execute("DELETE FROM thing_principals WHERE principal = ? AND "
                             "thing_name = ?", (principal, thing_name))
        self._bump()
        return cur.rowcount > 0

    def principals_of_thing(self, thing_name: str) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self._db.execute(
            "SELECT principal, principal_type FROM thing_principals WHERE thing_name = ? "
            "ORDER BY attached", (thing_name,))]

    def things_of_principal(self, principal: str) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self._db.execute(
            "SELECT thing_name, principal_type FROM thing_principals WHERE principal = ? "
            "ORDER BY attached", (principal,))]

    def thing_has_principals(self, thing_name: str) -> bool:
        return self._db.execute("SELECT 1 FROM thing_principals WHERE thing_name = ? LIMIT 1",
                                (thing_name,)).fetchone() is not None
