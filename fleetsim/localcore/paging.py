"""Keyset pagination: fetch `limit + 1` rows after a position, hand back a page and the
position to continue from."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from fleetsim.localcore.db import Database

R = TypeVar("R")
K = TypeVar("K")


def keyset(db: Database, table: str, cols: str, key: str, after: Any, limit: int,
           ascending: bool = True, where: tuple[str, ...] = (),
           args: tuple[Any, ...] = ()) -> list[Any]:
    """The rows of `table` after `after` in `key` order (descending: before it) that also match
    `where`, at most limit + 1 of them (for `page`)."""
    order, cmp = ("ASC", ">") if ascending else ("DESC", "<")
    conditions = " AND ".join((f"{key} {cmp} ?", *where))
    return db.query(f"SELECT {cols} FROM {table} WHERE {conditions} "
                    f"ORDER BY {key} {order} LIMIT ?", (after, *args, limit + 1))


def page(rows: list[Any], limit: int, record: Callable[[Any], R],
         position: Callable[[R], K]) -> tuple[list[R], K | None]:
    """A page from `rows` fetched with LIMIT limit + 1: the first `limit` as records, and the
    position of the last of them if there are more (else None)."""
    records = [record(r) for r in rows[:limit]]
    return records, (position(records[-1]) if len(rows) > limit else None)


def first(row: Any) -> Any:
    return row[0]


def itself(value: K) -> K:
    return value
