"""`filter_log_events`: a CloudWatch Logs search over the run's time window, with a count
expected: exactly `count`, or `at_least` and/or `at_most`; `each` names fields every entry
found must have (its message read as JSON, as AWS IoT's v2 log entries are).

Log entries reach CloudWatch Logs in batches, some time after what they describe (the lab:
"it can take a small amount of time until logs are delivered"), so the search is repeated
until the lower bound is met or `timeout` passes. With only `at_most`, the search is repeated
until the timeout, failing as soon as there are more.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from fleetsim.control.errors import ApiError
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import StepFailed, api_pages
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import Duration, StepBase, Strict, parse_duration
from fleetsim.scenario.semantics import Loc, Problem, Scope

POLL_S = 1.0


class LogCount(Strict):
    count: int | None = Field(default=None, ge=0)
    at_least: int | None = Field(default=None, ge=0)
    at_most: int | None = Field(default=None, ge=0)
    each: dict[str, Any] = Field(default_factory=dict)  # field -> value every entry has

    def lower(self) -> int | None:
        return self.count if self.count is not None else self.at_least

    def upper(self) -> int | None:
        return self.count if self.count is not None else self.at_most

    def describe(self) -> str:
        if self.count is not None:
            return f"exactly {self.count}"
        bounds = ([f"at least {self.at_least}"] if self.at_least is not None else []) + (
            [f"at most {self.at_most}"] if self.at_most is not None else [])
        return " and ".join(bounds)


class FilterLogEventsStep(StepBase):
    kind: Literal["filter_log_events"]
    log_group: str = "AWSIotLogsV2"
    pattern: str | None = None  # a CloudWatch Logs filter pattern; none: every entry
    expect: LogCount
    timeout: Duration = 60.0

    scalar_field: ClassVar[str | None] = "pattern"
    _duration = field_validator("timeout", mode="before")(parse_duration)

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        e = self.expect
        if e.count is None and e.at_least is None and e.at_most is None:
            return [((*at, "expect"), "give count, at_least or at_most")]
        if e.count is not None and (e.at_least is not None or e.at_most is not None):
            return [((*at, "expect"), "count is exact: give it alone, or at_least/at_most")]
        if e.at_least is not None and e.at_most is not None and e.at_least > e.at_most:
            return [((*at, "expect"), f"at_least {e.at_least} is more than at_most "
                                      f"{e.at_most}")]
        return []


async def search(ctx: RunContext, step: FilterLogEventsStep) -> list[dict[str, Any]]:
    """Every event of the log group since the run started that the pattern matches."""
    params: dict[str, Any] = {"logGroupName": step.log_group,
                              "startTime": int(ctx.started * 1000)}
    if step.pattern is not None:
        params["filterPattern"] = step.pattern
    return [event async for page in api_pages(ctx, "FilterLogEvents", step.log_group,
                                              client=ctx.logs,
                                              expected={"ResourceNotFoundException"}, **params)
            for event in page.get("events", [])]


def _entry(event: dict[str, Any]) -> Any:
    try:
        return json.loads(event.get("message", ""))
    except ValueError:
        return None


def mismatch(events: list[dict[str, Any]], each: dict[str, Any]) -> str | None:
    """The first entry lacking one of the `each` fields, described (None: all have them)."""
    for event in events:
        entry = _entry(event)
        fields = entry if isinstance(entry, dict) else {}
        for name, value in each.items():
            if fields.get(name) != value:
                return (f"an entry has {name}={fields.get(name)!r}, not {value!r}: "
                        f"{event.get('message', '')[:200]}")
    return None


async def _found(ctx: RunContext, step: FilterLogEventsStep) -> list[dict[str, Any]] | None:
    """The search's events; None while the log group does not exist yet."""
    try:
        return await search(ctx, step)
    except ApiError as e:
        if e.code == "ResourceNotFoundException":
            return None
        raise


async def run(ctx: RunContext, step: FilterLogEventsStep) -> None:
    e = step.expect
    lower, upper = e.lower(), e.upper()
    deadline = time.monotonic() + step.timeout
    while True:
        found = await _found(ctx, step)
        n = len(found or [])
        if upper is not None and n > upper:
            break
        if lower is not None and n >= lower:
            break
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
    events = found or []
    ctx.metrics.incr("logs.events_found", n)
    within = (lower is None or n >= lower) and (upper is None or n <= upper)
    wrong = mismatch(events, e.each) if within else None
    name = (f"filter-log-events {step.log_group} {step.pattern or '(no pattern)'}: "
            f"{e.describe()}" + (f", each with {e.each}" if e.each else ""))
    detail = (wrong or f"{n} found") if found is not None else \
        f"log group {step.log_group} does not exist"
    passed = within and wrong is None
    ctx.metrics.check(name, passed, detail)
    if not passed:
        raise StepFailed(f"{name}: {detail}")


KIND = StepKind(FilterLogEventsStep, run)
