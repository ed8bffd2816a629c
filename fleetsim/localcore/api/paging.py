"""Opaque pagination tokens (nextToken / marker) and page sizes."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, TypeVar

from fleetsim.localcore.errors import invalid

T = TypeVar("T")


def encode(position: int | str) -> str:
    return base64.b64encode(f"{type(position).__name__}:{position}".encode()).decode()


def decode_int(token: str | None, default: int = 0) -> int:
    if not token:
        return default
    kind, value = _decode(token)
    if kind != "int":
        raise invalid("The pagination token is not valid.")
    return int(value)


def decode_str(token: str | None, default: str = "") -> str:
    if not token:
        return default
    kind, value = _decode(token)
    if kind != "str":
        raise invalid("The pagination token is not valid.")
    return value


def _decode(token: str) -> tuple[str, str]:
    try:
        kind, _, value = base64.b64decode(token.encode(), validate=True).decode().partition(":")
        if kind == "int":
            int(value)
        return kind, value
    except ValueError as e:
        raise invalid("The pagination token is not valid.") from e


def page_size(params: dict[str, Any], key: str = "maxResults", default: int = 50) -> int:
    return int(params.get(key) or default)


def slice_page(items: Sequence[T], token: str | None, size: int) -> tuple[list[T], str | None]:
    """Page an in-memory list by index (for short lists: principals, policies of a target)."""
    start = decode_int(token)
    page = list(items[start:start + size])
    return page, (encode(start + size) if start + size < len(items) else None)


def next_token(last: int | str | None) -> str | None:
    """The token of the page after the one a store query ended at `last` (None: no more)."""
    return None if last is None else encode(last)


def listing(key: str, items: list[Any], token_key: str, token: str | None) -> dict[str, Any]:
    """A List* response: `items` under `key`, and the next page's token (if any) under
    `token_key` (nextToken or nextMarker)."""
    out: dict[str, Any] = {key: items}
    if token:
        out[token_key] = token
    return out
