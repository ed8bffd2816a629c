"""`wait_job`: describe a job (DescribeJob) until it has ended and no execution runs any more
(a CONTINUOUS job, which never ends by itself: until it rolls out to no more targets and none
of its executions is pending), or until a deadline; then list its executions
(ListJobExecutionsForJob) and measure.

What it records:
- `job.queued_to_in_progress`, `job.in_progress_to_terminal`, `job.queued_to_terminal`:
  per execution, from its `queuedAt`, `startedAt` and (ended) `lastUpdatedAt`;
- timeline series `job.queued`, `job.started` and `job.ended` at the executions' `queuedAt`,
  `startedAt` and (ended) `lastUpdatedAt` (per second; `--timeline` writes them, the HTML
  report plots them per minute); in the step's detail, the executions notified
  (queued: what `maximumPerMinute` limits, "The maximum number of things that will be
  notified of a pending job, per minute") and started per minute since the job's creation,
  and the observed rollout rate against `maximumPerMinute` with its deviation;
- counters `job.status.<STATUS>` (final execution statuses), `job.aborted` (1 when the job
  was canceled without this run canceling it: the abort config fired), and the abort's time
  after creation in the detail.
Optional checks: `expect_status` (the job's final status), `expect_aborted` and
`expect_rate_within` (the observed rollout rate within this many percent of
`maximumPerMinute`).

Against local core a minute of rollout rates lasts `$FLEETSIM_LOCAL_JOBS_MINUTE_S` seconds
when that is set (tests and demos shorten it); the per-minute counts and the rate use the same
minute. Against AWS a minute is 60 s, whatever the environment says."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator

from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import StepFailed, api_call, api_pages
from fleetsim.engine.steps.base import StepKind
from fleetsim.engine.steps.create_job import RUN_NAMES, job_id_of
from fleetsim.errors import UserError
from fleetsim.scenario.model import Duration, StepBase, parse_duration
from fleetsim.scenario.semantics import Loc, Problem, Scope, template_problems

JOB_ENDED = frozenset({"COMPLETED", "CANCELED"})
MINUTE_ENV = "FLEETSIM_LOCAL_JOBS_MINUTE_S"  # local core's minute (read by local core too)
EXECUTION_ENDED = frozenset({"SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "REMOVED",
                             "CANCELED"})


class WaitJobStep(StepBase):
    kind: Literal["wait_job"]
    job_id: str = "fleetsim-{run_id}"
    timeout: Duration = 600.0  # the deadline
    poll: Duration = 2.0
    expect_status: Literal["COMPLETED", "CANCELED"] | None = None
    expect_aborted: bool | None = None
    expect_rate_within: float | None = Field(default=None, gt=0, le=100)  # percent

    _duration = field_validator("timeout", "poll", mode="before")(parse_duration)

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        return template_problems((*at, "job_id"), self.job_id, RUN_NAMES)


def _epoch(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return None


def minute_s(ctx: RunContext) -> float:
    """How many seconds a minute of rollout rates lasts on the target."""
    text = os.environ.get(MINUTE_ENV, "") if ctx.target.kind == "local" else ""
    if not text:
        return 60.0
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 60:
        raise UserError(f"${MINUTE_ENV} is {text!r}: it must be a number of seconds, more "
                        "than 0 and at most 60")
    return value


def per_minute(times: list[float], since: float, minute: float = 60.0) -> list[int]:
    """How many of `times` fell in each minute since `since` (minute 0 first)."""
    if not times:
        return []
    minutes = Counter(int(max(0.0, t - since) // minute) for t in times)
    return [minutes.get(m, 0) for m in range(max(minutes) + 1)]


def observed_rate(times: list[float], minute: float = 60.0) -> float | None:
    """Executions per minute from the first notification to the last (the first is notified
    at once, each later one after a rollout interval): None with fewer than two."""
    if len(times) < 2:
        return None
    span = max(times) - min(times)
    return (len(times) - 1) * minute / span if span > 0 else None


def _settled(job: dict[str, Any]) -> bool:
    details = job.get("jobProcessDetails") or {}
    pending = details.get("numberOfInProgressThings") or details.get("numberOfQueuedThings")
    if job.get("status") == "CANCELED":
        return not details.get("numberOfInProgressThings")
    if job.get("status") == "COMPLETED":
        return not pending
    if job.get("status") == "IN_PROGRESS" and job.get("targetSelection") == "CONTINUOUS":
        executed = sum(v for k, v in details.items() if k.startswith("numberOf")
                       and isinstance(v, int))
        return executed > 0 and not pending and not details.get("processingTargets")
    return False


async def _executions(ctx: RunContext, job_id: str) -> list[dict[str, Any]]:
    return [e.get("jobExecutionSummary", {}) async for page in api_pages(
                ctx, "ListJobExecutionsForJob", job_id, jobId=job_id, maxResults=250)
            for e in page.get("executionSummaries", [])]


@dataclass
class Rollout:
    """What a job's rollout came to: the configured and observed rates (per minute)."""

    configured: float | None
    observed: float | None
    exponential: bool

    @property
    def deviation(self) -> float | None:
        """Percent by which the observed rate departs from `maximumPerMinute`."""
        if not self.configured or self.observed is None:
            return None
        return (self.observed - self.configured) * 100 / self.configured

    def describe(self) -> str:
        if self.observed is None:
            return "rollout rate: too few executions notified to measure"
        text = f"rollout rate {self.observed:.1f}/min"
        if self.configured and self.deviation is not None:
            text += f" against maximumPerMinute {self.configured:g} ({self.deviation:+.1f}%"
            text += ", exponentialRate)" if self.exponential else ")"
        return text


def measure(ctx: RunContext, job: dict[str, Any], executions: list[dict[str, Any]],
            minute: float = 60.0) -> tuple[list[str], Rollout]:
    """Record what the module docstring lists; returns the detail's parts and the rollout."""
    m = ctx.metrics
    created = _epoch(job.get("createdAt")) or 0.0
    started: list[float] = []
    notified: list[float] = []
    statuses: Counter[str] = Counter()
    for e in executions:
        status = str(e.get("status"))
        statuses[status] += 1
        queued, start, updated = (_epoch(e.get(k)) for k in ("queuedAt", "startedAt",
                                                            "lastUpdatedAt"))
        if queued is not None:
            m.incr_at("job.queued", queued)
            if not e.get("retryAttempt"):  # a retry is queued again, not notified by the rollout
                notified.append(queued)
        if start is not None:
            m.incr_at("job.started", start)
            started.append(start)
            if queued is not None:
                m.record("job.queued_to_in_progress", max(0.0, start - queued) * 1e6)
        if status in EXECUTION_ENDED and updated is not None:
            m.incr_at("job.ended", updated)
            if start is not None:
                m.record("job.in_progress_to_terminal", max(0.0, updated - start) * 1e6)
            if queued is not None:
                m.record("job.queued_to_terminal", max(0.0, updated - queued) * 1e6)
    for status, n in statuses.items():
        m.incr(f"job.status.{status}", n)
    parts = [f"job {job.get('jobId')}: {job.get('status')}",
             ", ".join(f"{s} {n}" for s, n in sorted(statuses.items())) or "no executions"]
    config = job.get("jobExecutionsRolloutConfig") or {}
    maximum = config.get("maximumPerMinute")
    unit = "minute" if minute == 60 else f"minute of {minute:g} s"
    for name, times in (("notified", notified), ("started", started)):
        counts = per_minute(times, created, minute)
        if counts:
            parts.append(f"{name} per {unit}: {' '.join(map(str, counts))}")
    rollout = Rollout(float(maximum) if maximum else None, observed_rate(notified, minute),
                      bool(config.get("exponentialRate")))
    if rollout.configured:
        parts.append(rollout.describe())
    return parts, rollout


async def run(ctx: RunContext, step: WaitJobStep) -> None:
    job_id = job_id_of(step.job_id, ctx)
    deadline = time.monotonic() + step.timeout
    while True:
        job = (await api_call(ctx, "DescribeJob", job_id, jobId=job_id))["job"]
        if _settled(job) or time.monotonic() >= deadline:
            break
        await asyncio.sleep(min(step.poll, max(0.0, deadline - time.monotonic())))
    parts, rollout = measure(ctx, job, await _executions(ctx, job_id), minute_s(ctx))
    # Canceled although this run did not cancel it: the abort config fired.
    aborted = job.get("status") == "CANCELED"
    if aborted:
        ctx.metrics.incr("job.aborted")
        at = (_epoch(job.get("completedAt")) or _epoch(job.get("lastUpdatedAt")) or 0.0) \
            - (_epoch(job.get("createdAt")) or 0.0)
        reason = job.get("reasonCode") or job.get("comment")
        parts.append(f"aborted {at:.0f} s after creation" + (f" ({reason})" if reason else ""))
    record = ctx.metrics.steps.get(ctx.metrics.active_step)
    if record is not None:
        record.detail = "; ".join(parts)
    if step.expect_status is not None:
        ctx.metrics.check(f"job {job_id} ends {step.expect_status}",
                          job.get("status") == step.expect_status, str(job.get("status")))
    if step.expect_aborted is not None:
        ctx.metrics.check(f"job {job_id} {'is' if step.expect_aborted else 'is not'} aborted",
                          aborted == step.expect_aborted, "aborted" if aborted else "not aborted")
    if step.expect_rate_within is not None:
        deviation = rollout.deviation
        ctx.metrics.check(
            f"job {job_id} rolled out within {step.expect_rate_within:g}% of maximumPerMinute",
            deviation is not None and abs(deviation) <= step.expect_rate_within,
            rollout.describe() if rollout.configured else "no maximumPerMinute configured")
    if not _settled(job):
        raise StepFailed(f"job {job_id} had not ended within {step.timeout:g}s (status "
                         f"{job.get('status')}, {_in_progress(job)} executions in progress)")


def _in_progress(job: dict[str, Any]) -> int:
    return int((job.get("jobProcessDetails") or {}).get("numberOfInProgressThings") or 0)


KIND = StepKind(WaitJobStep, run)
