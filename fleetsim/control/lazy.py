"""`LazyClient`: an aioboto3 client made at its first call. Each client loads its service's
model (S3's alone adds ~7 MB of RSS), and most runs never call S3, Lambda, CloudWatch Logs or
IAM: a run pays for the clients its steps use."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any


class LazyClient:
    """Stands for a client whose API operations are all that is used: `await
    lazy.put_object(...)` makes the client (once, whoever calls first) and calls it, and so does
    the first page of `lazy.get_paginator(...).paginate(...)`. Anything else (`meta`,
    `exceptions`) is there only once the client exists."""

    def __init__(self, service: str, make: Callable[[], Awaitable[Any]]):
        self.service = service
        self._make = make
        self._client: Any = None
        self._making: asyncio.Lock | None = None

    async def client(self) -> Any:
        if self._client is None:
            if self._making is None:
                self._making = asyncio.Lock()
            async with self._making:
                if self._client is None:
                    self._client = await self._make()
        return self._client

    def get_paginator(self, operation: str) -> Any:
        if self._client is not None:
            return self._client.get_paginator(operation)
        return _LazyPaginator(self, operation)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._client is not None:
            return getattr(self._client, name)

        async def operation(*args: Any, **kwargs: Any) -> Any:
            return await getattr(await self.client(), name)(*args, **kwargs)

        operation.__name__ = name
        return operation

    def __repr__(self) -> str:
        return f"LazyClient({self.service!r}, {'made' if self._client is not None else 'not made'})"


class _LazyPaginator:
    def __init__(self, lazy: LazyClient, operation: str):
        self._lazy, self._operation = lazy, operation

    def paginate(self, **params: Any) -> AsyncIterator[Any]:
        return self._pages(params)

    async def _pages(self, params: dict[str, Any]) -> AsyncIterator[Any]:
        client = await self._lazy.client()
        async for page in client.get_paginator(self._operation).paginate(**params):
            yield page
