"""LazyClient makes its client at the first operation call, once, and then stands aside."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fleetsim.control.lazy import LazyClient


class FakePaginator:
    def __init__(self, operation: str):
        self.operation = operation

    async def paginate(self, **params: Any) -> Any:
        for page in (1, 2):
            yield {"operation": self.operation, "page": page, **params}


class FakeClient:
    meta = "the client's meta"

    def get_paginator(self, operation: str) -> FakePaginator:
        return FakePaginator(operation)

    async def put_object(self, **kwargs: Any) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"put": kwargs}


async def test_the_client_is_made_at_the_first_call_and_only_once() -> None:
    made: list[FakeClient] = []

    async def make() -> FakeClient:
        await asyncio.sleep(0.01)  # callers arrive while it is being made
        made.append(FakeClient())
        return made[-1]

    lazy = LazyClient("s3", make)
    assert not made and "not made" in repr(lazy)
    answers = await asyncio.gather(*(lazy.put_object(Key=str(i)) for i in range(5)))
    assert [a["put"]["Key"] for a in answers] == ["0", "1", "2", "3", "4"]
    assert len(made) == 1
    assert lazy.meta == "the client's meta"  # now the client's own attributes
    assert await lazy.client() is made[0]


async def test_an_unknown_operation_fails_as_the_client_would() -> None:
    lazy = LazyClient("s3", lambda: asyncio.sleep(0, FakeClient()))
    with pytest.raises(AttributeError, match="no_such_operation"):
        await lazy.no_such_operation()
    with pytest.raises(AttributeError):
        lazy._private  # noqa: B018


async def test_a_paginator_asked_for_before_the_client_exists_makes_it() -> None:
    made: list[FakeClient] = []

    async def make() -> FakeClient:
        made.append(FakeClient())
        return made[-1]

    lazy = LazyClient("s3", make)
    pages = [p async for p in lazy.get_paginator("list_buckets").paginate(Prefix="b")]
    assert pages == [{"operation": "list_buckets", "page": n, "Prefix": "b"} for n in (1, 2)]
    assert len(made) == 1
    assert isinstance(lazy.get_paginator("list_objects_v2"), FakePaginator)  # now the client's
