"""What devices get, over MQTT and HTTP ("Jobs device MQTT API operations", "Jobs device HTTP
API", "Jobs notifications"): execution summaries, executions, execution states, the error
response, the notify and notify-next messages. Pure: records and a clock's reading in, JSON
values out. Times are whole seconds since the epoch, as the Jobs data plane sends them
(botocore `iot-jobs-data`: `QueuedAt`, `LastUpdatedAt` are longs)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from fleetsim.localcore.features.jobs.records import ExecutionRecord
from fleetsim.localcore.features.jobs.states import IN_PROGRESS, QUEUED

MAX_LISTED = 15  # "A ListNotification contains a list of no more than 15 pending job executions"


def seconds(t: float | None) -> int | None:
    return None if t is None else int(t)


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def summary(e: ExecutionRecord) -> dict[str, Any]:
    """JobExecutionSummary (data plane)."""
    return _clean({"jobId": e.job_id, "queuedAt": seconds(e.queued_at),
                   "startedAt": seconds(e.started_at), "lastUpdatedAt": seconds(e.updated_at),
                   "versionNumber": e.version, "executionNumber": e.execution_number})


def state(e: ExecutionRecord) -> dict[str, Any]:
    """JobExecutionState."""
    out: dict[str, Any] = {"status": e.status, "versionNumber": e.version}
    if e.status_details:
        out["statusDetails"] = dict(e.status_details)
    return out


def execution(e: ExecutionRecord, document: str | None, now: float) -> dict[str, Any]:
    """JobExecution (data plane); `document` None leaves jobDocument out."""
    out = _clean({
        "jobId": e.job_id, "thingName": e.thing_name, "status": e.status,
        "statusDetails": dict(e.status_details) if e.status_details else None,
        "queuedAt": seconds(e.queued_at), "startedAt": seconds(e.started_at),
        "lastUpdatedAt": seconds(e.updated_at), "versionNumber": e.version,
        "executionNumber": e.execution_number,
        "approximateSecondsBeforeTimedOut": seconds_left(e, now)})
    if document is not None:
        out["jobDocument"] = json.loads(document)
    return out


def seconds_left(e: ExecutionRecord, now: float) -> int | None:
    if e.status != IN_PROGRESS or e.timeout_at is None:
        return None
    return max(0, int(e.timeout_at - now))


def pending_lists(executions: Iterable[ExecutionRecord]) -> tuple[list[ExecutionRecord],
                                                                  list[ExecutionRecord]]:
    """(IN_PROGRESS, QUEUED), each in the order they were queued."""
    ordered = sorted(executions, key=lambda e: (e.queued_at, e.seq))
    return ([e for e in ordered if e.status == IN_PROGRESS],
            [e for e in ordered if e.status == QUEUED])


def next_pending(executions: Iterable[ExecutionRecord]) -> ExecutionRecord | None:
    """The execution `$next` names: IN_PROGRESS ones first, then QUEUED, oldest first."""
    in_progress, queued = pending_lists(executions)
    listed = in_progress or queued
    return listed[0] if listed else None


def notify(executions: Iterable[ExecutionRecord], now: float) -> dict[str, Any]:
    """`$aws/things/<thing>/jobs/notify`: the pending executions (IN_PROGRESS before QUEUED,
    then by queue time), at most 15."""
    in_progress, queued = pending_lists(executions)
    listed = (in_progress + queued)[:MAX_LISTED]
    jobs: dict[str, list[dict[str, Any]]] = {}
    for e in listed:
        jobs.setdefault(e.status, []).append(summary(e))
    return {"timestamp": int(now), "jobs": jobs}


def notify_next(e: ExecutionRecord | None, document: str | None, now: float) -> dict[str, Any]:
    """`$aws/things/<thing>/jobs/notify-next`: the next pending execution, or none."""
    out: dict[str, Any] = {"timestamp": int(now)}
    if e is not None:
        out["execution"] = execution(e, document, now)
    return out


def error(code: str, message: str, client_token: str | None, now: float,
          execution_state: dict[str, Any] | None = None) -> dict[str, Any]:
    """ErrorResponse ("AWS IoT jobs API operations"); executionState only with
    InvalidStateTransition and VersionMismatch."""
    out: dict[str, Any] = {"code": code, "message": message, "timestamp": int(now)}
    if client_token is not None:
        out["clientToken"] = client_token
    if execution_state is not None:
        out["executionState"] = execution_state
    return out
