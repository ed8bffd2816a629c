"""`wait_job`: describe a job (DescribeJob) until it has ended and no execution runs any more,
or until a deadline; then list its executions (ListJobExecutionsForJob) and measure.

What it records:
- `job.queued_to_in_progress`, `job.in_progress_to_terminal`, `job.queued_to_terminal`:
  per execution, from its `queuedAt`, `startedAt` and (ended) `lastUpdatedAt`;
- timeline series `job.queued` and `job.started` at the executions' `queuedAt`/`startedAt`
  (per second; `--timeline` writes them), and the per-minute starts since the job's creation
  beside the rollout's `maximumPerMinute` in the step's detail;
- counters `job.status.<STATUS>` (final execution statuses), `job.aborted` (1 when the job
  was canceled without this run canceling it: the abort config fired), and the abort's time
  after creation in the detail.
Optional checks: `expect_status` (the job's final status) and `expect_aborted`."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime
from typing import Any, Literal

from pydantic import field_validator

from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import StepFailed, api_call
from fleetsim.engine.steps.base import StepKind
from fleetsim.engine.steps.create_job import RUN_NAMES, job_id_of
from fleetsim.scenario.model import Duration, StepBase, parse_duration
from fleetsim.scenario.semantics import Loc, Problem, Scope, template_problems

JOB_ENDED = frozenset({"COMPLETED", "CANCELED"})
EXECUTION_ENDED = frozenset({"SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "REMOVED",
                             "CANCELED"})


class WaitJobStep(StepBase):
    kind: Literal["wait_job"]
    job_id: str = "fleetsim-{run_id}"
    timeout: Duration = 600.0  # the deadline
    poll: Duration = 2.0
    expect_status: Literal["COMPLETED", "CANCELED"] | None = None
    expect_aborted: bool | None = None

    _duration = field_validator("timeout", "poll", mode="before")(parse_duration)

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        return template_problems((*at, "job_id"), self.job_id, RUN_NAMES)


def _epoch(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return None


def per_minute(times: list[float], since: float) -> list[int]:
    """How many of `times` fell in each minute since `since` (minute 0 first)."""
    if not times:
        return []
    minutes = Counter(int(max(0.0, t - since) // 60) for t in times)
    return [minutes.get(m, 0) for m in range(max(minutes) + 1)]


def _settled(job: dict[str, Any]) -> bool:
    details = job.get("jobProcessDetails") or {}
    return job.get("status") in JOB_ENDED and not details.get("numberOfInProgressThings") \
        and (job.get("status") == "CANCELED" or not details.get("numberOfQueuedThings"))


async def _executions(ctx: RunContext, job_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    params: dict[str, Any] = {"jobId": job_id, "maxResults": 250}
    while True:
        page = await api_call(ctx, "ListJobExecutionsForJob", job_id, **params)
        out += [e.get("jobExecutionSummary", {}) for e in page.get("executionSummaries", [])]
        if not page.get("nextToken"):
            return out
        params["nextToken"] = page["nextToken"]


def measure(ctx: RunContext, job: dict[str, Any], executions: list[dict[str, Any]]
            ) -> list[str]:
    """Record what the module docstring lists; returns the detail's parts."""
    m = ctx.metrics
    created = _epoch(job.get("createdAt")) or 0.0
    started: list[float] = []
    statuses: Counter[str] = Counter()
    for e in executions:
        status = str(e.get("status"))
        statuses[status] += 1
        queued, start, updated = (_epoch(e.get(k)) for k in ("queuedAt", "startedAt",
                                                            "lastUpdatedAt"))
        if queued is not None:
            m.incr_at("job.queued", queued)
        if start is not None:
            m.incr_at("job.started", start)
            started.append(start)
            if queued is not None:
                m.record("job.queued_to_in_progress", max(0.0, start - queued) * 1e6)
        if status in EXECUTION_ENDED and updated is not None:
            if start is not None:
                m.record("job.in_progress_to_terminal", max(0.0, updated - start) * 1e6)
            if queued is not None:
                m.record("job.queued_to_terminal", max(0.0, updated - queued) * 1e6)
    for status, n in statuses.items():
        m.incr(f"job.status.{status}", n)
    parts = [f"job {job.get('jobId')}: {job.get('status')}",
             ", ".join(f"{s} {n}" for s, n in sorted(statuses.items())) or "no executions"]
    rollout = (job.get("jobExecutionsRolloutConfig") or {}).get("maximumPerMinute")
    minutes = per_minute(started, created)
    if minutes:
        configured = f" (maximumPerMinute {rollout})" if rollout else ""
        parts.append(f"started per minute: {' '.join(map(str, minutes))}{configured}")
    return parts


async def run(ctx: RunContext, step: WaitJobStep) -> None:
    job_id = job_id_of(step.job_id, ctx)
    deadline = time.monotonic() + step.timeout
    while True:
        job = (await api_call(ctx, "DescribeJob", job_id, jobId=job_id))["job"]
        if _settled(job) or time.monotonic() >= deadline:
            break
        await asyncio.sleep(min(step.poll, max(0.0, deadline - time.monotonic())))
    parts = measure(ctx, job, await _executions(ctx, job_id))
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
    if not _settled(job):
        raise StepFailed(f"job {job_id} had not ended within {step.timeout:g}s (status "
                         f"{job.get('status')}, {_in_progress(job)} executions in progress)")


def _in_progress(job: dict[str, Any]) -> int:
    return int((job.get("jobProcessDetails") or {}).get("numberOfInProgressThings") or 0)


KIND = StepKind(WaitJobStep, run)
