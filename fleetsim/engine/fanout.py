"""Doing one thing for many devices: bounded concurrency, failures counted per device."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from fleetsim.control.errors import ApiError, api_error
from fleetsim.engine.context import Device, RunContext
from fleetsim.errors import UserError


class StepFailed(UserError):
    pass


def _snake(op: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", op).lower()


async def api_call(ctx: RunContext, op: str, subject: str = "", **params: Any) -> dict[str, Any]:
    """One AWS API call, timed as `api.<Op>`; failures raise ApiError (counted by its code)."""
    method = getattr(ctx.iot, _snake(op))
    try:
        with ctx.metrics.time(f"api.{op}"):  # a failure is counted by its AWS error code
            return await method(**params)
    except (ClientError, BotoCoreError) as e:
        raise api_error(op, e, subject) from e


async def for_each_device(ctx: RunContext, devices: list[Device],
                          action: Callable[[Device], Awaitable[None]]) -> None:
    """Run `action` for every device, at most `ctx.concurrency` at once. A device whose action
    fails drops out of the run; the step fails only if no device succeeded."""
    limit = asyncio.Semaphore(ctx.concurrency)
    failures: list[str] = []

    async def one(device: Device) -> None:
        async with limit:
            try:
                await action(device)
            except (TimeoutError, ApiError, UserError, OSError) as e:
                device.failed = str(e) or type(e).__name__
                failures.append(device.failed)

    await asyncio.gather(*(one(d) for d in devices))
    if devices and len(failures) == len(devices):
        more = f" (and {len(failures) - 1} more devices)" if len(failures) > 1 else ""
        raise StepFailed(failures[0] + more)
