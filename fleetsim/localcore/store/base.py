"""What every part of the registry shares: the connection, transactions, the `meta` table,
the epoch and ARNs. `Store` (in the package's `__init__`) sets the attributes declared here."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class StoreBase:
    account_id: str
    region: str
    _arn_prefix: str
    _db: sqlite3.Connection
    _depth: int  # of nested `transaction()` blocks
    _epoch: int  # see `Authority.epoch`
    _policy_cache: dict[tuple[str, int], dict[str, Any]]  # (name, version) -> parsed document

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Group writes into one commit; nested uses join the outer transaction."""
        if self._depth == 0:
            self._db.execute("BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield self._db
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self._db.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def _meta_default(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _bump(self) -> None:
        self._epoch += 1

    def arn(self, kind: str, name: str) -> str:
        return f"{self._arn_prefix}{kind}/{name}"
