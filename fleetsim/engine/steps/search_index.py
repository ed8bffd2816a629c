"""`search_index`: fleet indexing's search-index, checked against what the scenario set.

Optionally turns thing indexing on first (`indexing: REGISTRY_AND_SHADOW`; the previous
configuration is restored at clean-up). The index follows the registry and the shadows a
little after each change, and answers IndexNotReadyException while it is built, so the search
is retried until its answer is the expected one or `timeout` passes. Expected: a `count`, the
`things` by name, or a `fleet`'s devices whose reported shadow state (as the service accepted
it from the `shadow` step) satisfies every comparison of `reported` (`temperature: "> 20"`).
"""

from __future__ import annotations

import asyncio
import operator
import re
import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from fleetsim.control.cleanup import JournalKind, Phase
from fleetsim.control.errors import ApiError
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import api_call, api_pages
from fleetsim.engine.steps.base import StepKind
from fleetsim.errors import UserError
from fleetsim.scenario.model import Duration, StepBase, parse_duration
from fleetsim.scenario.semantics import Loc, Problem, Scope

_COMPARISON = re.compile(r"\s*(>=|<=|>|<|==)\s*(-?\d+(?:\.\d+)?)\s*")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq}


class SearchExpectation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int | None = None
    things: list[str] | None = None
    fleet: str | None = None
    reported: dict[str, str] = {}  # field -> comparison, e.g. "> 20"

    @field_validator("reported")
    @classmethod
    def _comparisons(cls, value: dict[str, str]) -> dict[str, str]:
        for name, comparison in value.items():
            if not _COMPARISON.fullmatch(comparison):
                raise ValueError(f"reported.{name}: {comparison!r} is not a comparison such "
                                 "as '> 20', '<= 5' or '== 3'")
        return value


class SearchIndexStep(StepBase):
    kind: Literal["search_index"]
    query: str
    index: str = "AWS_Things"
    indexing: Literal["REGISTRY", "REGISTRY_AND_SHADOW"] | None = None
    expect: SearchExpectation
    timeout: Duration = 60.0

    scalar_field: ClassVar[str | None] = "query"
    _duration = field_validator("timeout", mode="before")(parse_duration)

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        e = self.expect
        given = [e.count is not None, e.things is not None, e.fleet is not None]
        if sum(given) != 1:
            return [((*at, "expect"), "give exactly one of count, things or fleet")]
        if e.reported and e.fleet is None:
            return [((*at, "expect", "reported"), "reported needs a fleet")]
        return []


INDEXING = JournalKind(
    "indexing_configuration", Phase.RESTORE,
    lambda c, d: c.iot.update_indexing_configuration(thingIndexingConfiguration=d["previous"]),
    first_only=True)


def _satisfies(reported: dict[str, Any], wanted: dict[str, str]) -> bool:
    for path, comparison in wanted.items():
        value: Any = reported
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        m = _COMPARISON.fullmatch(comparison)
        assert m is not None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not _OPS[m.group(1)](value, float(m.group(2))):
            return False
    return True


def expected_names(ctx: RunContext, e: SearchExpectation) -> set[str] | None:
    """The thing names the search must answer (None: only a count is expected)."""
    if e.things is not None:
        return set(e.things)
    if e.fleet is None:
        return None
    out = set()
    for d in ctx.fleet_devices(e.fleet):
        reporter = d.shadow("")
        if _satisfies(reporter.reported if reporter is not None else {}, e.reported):
            out.add(d.thing_name)
    return out


async def _search(ctx: RunContext, step: SearchIndexStep) -> list[str] | None:
    """Every thing name the query answers; None while the index is not ready."""
    try:
        return [t["thingName"] async for answer in api_pages(
                    ctx, "SearchIndex", expected={"IndexNotReadyException"},
                    indexName=step.index, queryString=step.query)
                for t in answer.get("things", [])]
    except ApiError as e:
        if e.code == "IndexNotReadyException":
            return None
        raise


async def _indexing(ctx: RunContext, mode: str) -> None:
    """Thing indexing as declared: already in `mode`, reused; else set (counted as created,
    the configuration found journaled first for clean-up to restore)."""
    current = await api_call(ctx, "GetIndexingConfiguration")
    previous = current.get("thingIndexingConfiguration") or {"thingIndexingMode": "OFF"}
    previous.pop("managedFields", None)
    if previous.get("thingIndexingMode") == mode:
        ctx.reconcile.reuse(INDEXING.name, mode)
        return
    ctx.reconcile.create(INDEXING.name, mode)
    if ctx.reconcile.plan:
        return
    ctx.journal.record(INDEXING.name, previous=previous)
    await api_call(ctx, "UpdateIndexingConfiguration", thingIndexingConfiguration={
        **previous, "thingIndexingMode": mode})


async def run(ctx: RunContext, step: SearchIndexStep) -> None:
    """Indexing set as declared first; planning, that is all (the search is a check)."""
    if step.indexing is not None:
        await _indexing(ctx, step.indexing)
    if ctx.reconcile.plan:
        return
    wanted = expected_names(ctx, step.expect)
    deadline = time.monotonic() + step.timeout
    got: list[str] | None = None
    while True:
        got = await _search(ctx, step)
        if got is not None and (set(got) == wanted if wanted is not None
                                else len(got) == step.expect.count):
            ctx.metrics.incr("search_index.matched", len(got))
            return
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.5)
    if got is None:
        raise UserError(f"search_index {step.query!r}: the index was still not ready after "
                        f"{step.timeout:g} s")
    if wanted is None:
        raise UserError(f"search_index {step.query!r}: {len(got)} things answered, "
                        f"{step.expect.count} expected")
    missing, extra = sorted(wanted - set(got)), sorted(set(got) - wanted)
    raise UserError(f"search_index {step.query!r}: {len(got)} things answered, {len(wanted)} "
                    f"expected; missing {missing[:10]}, unexpected {extra[:10]}")


KIND = StepKind(SearchIndexStep, run, journals=(INDEXING,), plans=True)
