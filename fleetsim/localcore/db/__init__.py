"""Local core's database: one SQLite file (`state.db`), numbered migrations, transactions, and
the epoch the broker watches.

`Database` is the only holder of the connection. Feature stores read with `query`/`one` and
write with `write`/`write_many` inside `transaction()`; when the outermost transaction that
changed rows of a table some feature declared principal-relevant (`watch_principal_tables`) commits,
the epoch moves, so the broker re-resolves the Principals it caches. Nobody bumps it by hand.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fleetsim.errors import UserError
from fleetsim.localcore.db.migrations import apply_migrations

__all__ = ["Database", "columns"]

_WRITTEN_TABLE = re.compile(
    r"^\s*(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?|DELETE\s+FROM)"
    r"\s+\"?(\w+)", re.IGNORECASE)


def _written_table(sql: str) -> str:
    m = _WRITTEN_TABLE.match(sql)
    if m is None:
        raise ValueError(f"not a write statement: {sql[:60]!r}")
    return m.group(1).lower()


def _private_file(path: Path) -> None:
    """Create the database file 0600 (SQLite gives its -wal and -shm files the database
    file's permissions), and narrow one made before to 0600."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.chmod(side, 0o600)


def columns(row: sqlite3.Row) -> dict[str, Any]:
    """A row as {column name: value}, to build a record by name."""
    return dict(zip(row.keys(), tuple(row), strict=True))


class Database:
    """The connection (autocommit mode; transactions are explicit, WAL, synchronous=NORMAL: a
    process killed with SIGKILL loses nothing that was acknowledged), used from the event loop
    only. Opening it applies the migrations the file has not had yet."""

    def __init__(self, path: Path, default_region: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        _private_file(path)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                   cached_statements=256)
        self._db.row_factory = sqlite3.Row
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as e:  # "file is not a database"
            self._db.close()
            raise UserError(f"{path} is not a local core database ({e}): move it away (or "
                            "delete it, losing local core's state) and start again") from e
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=OFF")
        self._depth = 0  # of nested `transaction()` blocks
        self._epoch = 1
        self._watched: set[str] = set()
        self._touched = False  # a watched table was written in the current transaction
        self._tables: dict[str, str] = {}  # SQL text -> table it writes
        self._on_commit: list[Callable[[], None]] = []
        try:
            with self.transaction():
                self.version = apply_migrations(self._db, path, default_region)
        except BaseException:
            self._db.close()
            raise

    # --- transactions ------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """Group writes into one commit; nested uses join the outer transaction."""
        if self._depth == 0:
            self._db.execute("BEGIN IMMEDIATE")
            self._touched = False
        self._depth += 1
        try:
            yield self
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self._db.execute("ROLLBACK")
                self._touched = False
                self._on_commit.clear()
            raise
        self._depth -= 1
        if self._depth == 0:
            self._db.execute("COMMIT")
            if self._touched:
                self._epoch += 1
                self._touched = False
            callbacks, self._on_commit = self._on_commit, []
            for callback in callbacks:
                callback()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the outermost transaction open now commits (now, if none is
        open); never if it rolls back."""
        if self._depth == 0:
            callback()
        else:
            self._on_commit.append(callback)

    # --- the epoch ---------------------------------------------------------------------------

    def watch_principal_tables(self, *tables: str) -> None:
        """Declare tables whose changes can alter a broker Principal (see `epoch`)."""
        self._watched.update(t.lower() for t in tables)

    @property
    def in_transaction(self) -> bool:
        """A `transaction()` is open: what it wrote may still be rolled back."""
        return self._depth > 0

    @property
    def epoch(self) -> int:
        """Moves after every committed transaction that wrote a watched table."""
        return self._epoch

    # --- statements --------------------------------------------------------------------------

    def _note_write(self, sql: str, cursor: sqlite3.Cursor) -> sqlite3.Cursor:
        table = self._tables.get(sql)
        if table is None:
            table = self._tables[sql] = _written_table(sql)
        if cursor.rowcount > 0 and table in self._watched:
            self._touched = True
        return cursor

    def write(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        if self._depth == 0:
            raise RuntimeError("writes go inside Database.transaction()")
        return self._note_write(sql, self._db.execute(sql, args))

    def write_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> sqlite3.Cursor:
        if self._depth == 0:
            raise RuntimeError("writes go inside Database.transaction()")
        return self._note_write(sql, self._db.executemany(sql, rows))

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._db.execute(sql, args).fetchall()

    def one(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._db.execute(sql, args).fetchone()
        return row

    def close(self) -> None:
        self._db.close()
