"""Doing one thing for many devices: bounded concurrency, failures counted per device."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from fleetsim.control.errors import ApiError, api_error
from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.pacing import Pacer, RateCurve, paced
from fleetsim.errors import UserError
from fleetsim.scenario.model import Pacing


class StepFailed(UserError):
    pass


def _snake(op: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", op).lower()


async def api_call(ctx: RunContext, op: str, subject: str = "", *, client: Any = None,
                   expected: Any = frozenset(), **params: Any) -> dict[str, Any]:
    """One AWS API call (of `ctx.iot` unless `client` is given, e.g. `ctx.iot_data`), timed as
    `api.<Op>`; failures raise ApiError (counted by its code). An answer whose error code is
    `expected` (a state the caller handles, e.g. a policy already there) raises ApiError too,
    but is timed as an answer, not counted as an error. (`expected` is typed Any, like
    `client`, so that callers may pass `**params` of any type.)"""
    method = getattr(ctx.iot if client is None else client, _snake(op))
    answer: ClientError | None = None
    try:
        with ctx.metrics.time(f"api.{op}"):  # a failure is counted by its AWS error code
            try:
                result: dict[str, Any] = await method(**params)
                return result
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") not in expected:
                    raise
                answer = e
    except (ClientError, BotoCoreError) as e:
        raise api_error(op, e, subject) from e
    raise api_error(op, answer, subject) from answer


async def api_pages(ctx: RunContext, op: str, subject: str = "", *, client: Any = None,
                    expected: Any = frozenset(), **params: Any) -> AsyncIterator[dict[str, Any]]:
    """Every page of a paginated AWS API call (`api_call` each, `nextToken` passed on until an
    answer has none)."""
    while True:
        page = await api_call(ctx, op, subject, client=client, expected=expected, **params)
        yield page
        token = page.get("nextToken")
        if not token:
            return
        params["nextToken"] = token


# Devices a paced step started (counter and timeline series): the rate or ramp as kept by
# the pacer, before the service answers.
PACED_STARTS = "paced.started"


def pacer_for(pacing: Pacing | None, share: tuple[int, int] = (1, 1),
              origin: float | None = None) -> Pacer:
    """The pacer of a step; `share` (K, N): this process is the K-th of N that split the
    step's devices and its rate (a distributed run): it takes every N-th start of the
    schedule that starts at `origin` (epoch seconds) on every shard."""
    if pacing is None:
        return Pacer()
    if pacing.ramp is not None:
        r = pacing.ramp
        curve = RateCurve(r.start, r.end, r.over, r.profile, r.steps)
    else:
        curve = RateCurve(pacing.rate or 0.0)
    return Pacer(curve, pacing.jitter, share=share, origin=origin, tick=pacing.tick)


async def for_each_device(ctx: RunContext, devices: list[Device],
                          action: Callable[[Device], Awaitable[None]],
                          pacing: Pacing | None = None) -> None:
    """Run `action` for every device, paced (rate or ramp, jitter) and at most `concurrency`
    at once (the step's, else the run's). A device whose action fails drops out of the run;
    the step fails only if no device succeeded."""
    failures: list[str] = []
    metrics = ctx.metrics if pacing is not None else None

    async def one(device: Device) -> None:
        if metrics is not None:  # the pace kept, per second, whatever the calls then take
            metrics.incr(PACED_STARTS)
        try:
            await action(device)
        except (TimeoutError, ApiError, UserError, OSError) as e:
            device.failed = str(e) or type(e).__name__
            failures.append(device.failed)

    concurrency = (pacing.concurrency if pacing and pacing.concurrency else ctx.concurrency)
    pacer = pacer_for(pacing, ctx.pace_share, ctx.pace_origin)
    if pacing is not None:  # the step's shared start time is for its first paced pass only
        ctx.pace_origin = None
    await paced(devices, one, pacer, concurrency)
    if devices and len(failures) == len(devices):
        more = f" (and {len(failures) - 1} more devices)" if len(failures) > 1 else ""
        raise StepFailed(failures[0] + more)
