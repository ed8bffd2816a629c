"""Abort, retry and timeout rules ("Job rollout, scheduling, and abort configurations", "Job
execution timeout and retry configurations"), as pure functions of a job's configuration and
its executions' counts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetsim.localcore.features.jobs.states import FAILED, REJECTED, TERMINAL, TIMED_OUT

FAILURES = {"FAILED": (FAILED,), "REJECTED": (REJECTED,), "TIMED_OUT": (TIMED_OUT,),
            "ALL": (FAILED, REJECTED, TIMED_OUT)}
MAX_RETRIES = 10  # "jobExecutionsRetryConfig": at most 10 retries in all
MIN_TIMEOUT_MIN, MAX_TIMEOUT_MIN = 1, 10080  # 1 minute to 7 days


def abort_triggered(abort_config: Mapping[str, Any] | None,
                    counts: Mapping[str, int]) -> bool:
    """Whether a criterion of `abortConfig.criteriaList` is met: at least
    `minNumberOfExecutedThings` executions have run to a terminal status and the share of
    them that ended in `failureType` is at least `thresholdPercentage`."""
    if not abort_config:
        return False
    executed = sum(n for status, n in counts.items() if status in TERMINAL)
    for criterion in abort_config.get("criteriaList") or ():
        if executed < int(criterion["minNumberOfExecutedThings"]) or executed == 0:
            continue
        failed = sum(counts.get(s, 0) for s in FAILURES[criterion["failureType"]])
        if failed * 100.0 >= float(criterion["thresholdPercentage"]) * executed:
            return True
    return False


def retries_allowed(retry_config: Mapping[str, Any] | None, status: str) -> int:
    """How many retries `jobExecutionsRetryConfig` allows an execution that ended in `status`
    (FAILED or TIMED_OUT; ALL covers both)."""
    if not retry_config:
        return 0
    allowed = 0
    for criterion in retry_config.get("criteriaList") or ():
        if status in FAILURES.get(criterion["failureType"], ()):
            allowed = max(allowed, int(criterion["numberOfRetries"]))
    return allowed if status in (FAILED, TIMED_OUT) else 0


def timeout_deadline(started: float | None, in_progress_minutes: int | None,
                     step_started: float | None, step_minutes: int | None,
                     minute: float = 60.0) -> float | None:
    """When an IN_PROGRESS execution times out: its in-progress timer (from when it went
    IN_PROGRESS) or its step timer, whichever ends first; a step timer cannot extend past
    the in-progress timer."""
    deadlines = []
    if started is not None and in_progress_minutes:
        deadlines.append(started + in_progress_minutes * minute)
    if step_started is not None and step_minutes and step_minutes > 0:
        deadlines.append(step_started + step_minutes * minute)
    return min(deadlines) if deadlines else None
