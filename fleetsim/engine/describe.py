"""Describing what exists before a step declares it (see engine/reconcile.py): an answer of
"not found" is a state, not an error, and listings several devices share are made once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fleetsim.control.errors import ApiError
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import api_call

NOT_FOUND = frozenset({"ResourceNotFoundException"})


async def describe(ctx: RunContext, op: str, subject: str = "", *, client: Any = None,
                   missing: Any = NOT_FOUND, **params: Any) -> dict[str, Any] | None:
    """The answer of a Describe/Get/List call, or None if the resource is not there (an
    error code of `missing`, by default ResourceNotFoundException, is timed as an answer, not
    counted as an error)."""
    try:
        return await api_call(ctx, op, subject, client=client, expected=missing, **params)
    except ApiError as e:
        if e.code in missing:
            return None
        raise


async def shared(ctx: RunContext, key: str, load: Callable[[], Awaitable[Any]]) -> Any:
    """`load()`, made once per run and `key` (concurrent callers share the one call)."""
    future = ctx.listings.get(key)
    if future is None:
        future = ctx.listings[key] = asyncio.ensure_future(load())
    return await asyncio.shield(future)


async def policy_targets(ctx: RunContext, policy: str) -> set[str]:
    """Every target (certificate or thing group ARN) `policy` is attached to, listed once per
    run (API reference, "ListTargetsForPolicy": paged by `marker`, up to 250 a page); an
    empty set if the policy is not there."""
    async def load() -> set[str]:
        targets: set[str] = set()
        params: dict[str, Any] = {"policyName": policy, "pageSize": 250}
        while True:
            page = await describe(ctx, "ListTargetsForPolicy", policy, **params)
            if page is None:
                return targets
            targets.update(page.get("targets", []))
            marker = page.get("nextMarker")
            if not marker:
                return targets
            params["marker"] = marker
    result: set[str] = await shared(ctx, f"policy-targets:{policy}", load)
    return result
