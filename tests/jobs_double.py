"""A small double of the AWS IoT Jobs device API over `tests.fakes.FakeSession`, answering as
AWS's "Jobs device MQTT API" page documents it: GetPendingJobExecutions (`jobs/get`),
StartNextPendingJobExecution (`jobs/start-next`), DescribeJobExecution (`jobs/<id>/get`),
UpdateJobExecution (`jobs/<id>/update`), replies on `/accepted` and `/rejected` (ErrorResponse:
`code`, `message`, `clientToken`, `timestamp`, and `executionState` for
InvalidStateTransition and VersionMismatch), NextJobExecutionChanged on `jobs/notify-next`.

    jobs = FakeJobsService()
    session = FakeSession("t1", jobs)
    jobs.queue("t1", "job-1", {"operation": "sys-info", "topic": "sys/info"})
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from tests.fakes import FakeSession

TERMINAL = {"SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "REMOVED", "CANCELED"}
# UpdateJobExecution: the statuses a device may set, from each status it may set them from.
DEVICE_STATUSES = {"IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED"}


@dataclass
class FakeExecution:
    job_id: str
    thing: str
    document: dict[str, Any]
    status: str = "QUEUED"
    status_details: dict[str, str] = field(default_factory=dict)
    version: int = 1
    execution_number: int = 1
    queued_at: int = field(default_factory=lambda: int(time.time()))
    started_at: int | None = None
    updated_at: int = field(default_factory=lambda: int(time.time()))
    history: list[str] = field(default_factory=list)  # statuses set, in order

    def summary(self) -> dict[str, Any]:
        out = {"jobId": self.job_id, "queuedAt": self.queued_at,
               "lastUpdatedAt": self.updated_at, "versionNumber": self.version,
               "executionNumber": self.execution_number}
        if self.started_at is not None:
            out["startedAt"] = self.started_at
        return out

    def state(self) -> dict[str, Any]:
        return {"status": self.status, "statusDetails": dict(self.status_details),
                "versionNumber": self.version}

    def data(self, document: bool = True) -> dict[str, Any]:
        out = {**self.summary(), "thingName": self.thing, "status": self.status,
               "statusDetails": dict(self.status_details)}
        if document:
            out["jobDocument"] = self.document
        return out

    def set(self, status: str, details: dict[str, str] | None) -> None:
        self.status = status
        if details is not None:
            self.status_details = dict(details)
        if status == "IN_PROGRESS" and self.started_at is None:
            self.started_at = int(time.time())
        self.version += 1
        self.updated_at = int(time.time())
        self.history.append(status)


class FakeJobsService:
    def __init__(self) -> None:
        self.executions: dict[tuple[str, str], FakeExecution] = {}
        self.sessions: dict[str, FakeSession] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []  # (topic, payload)
        self.silent: set[str] = set()  # operations ("get", "update", ...) left unanswered

    # --- the control plane's side --------------------------------------------------------

    def queue(self, thing: str, job_id: str, document: dict[str, Any]) -> FakeExecution:
        """A new execution of `job_id` for `thing`, QUEUED; notify-next if it became next."""
        before = self._next(thing)
        execution = self.executions[(thing, job_id)] = FakeExecution(job_id, thing, document)
        self._notify_if_changed(thing, before)
        return execution

    def retry(self, thing: str, job_id: str) -> None:
        """A FAILED or TIMED_OUT execution queued again (jobExecutionsRetryConfig)."""
        before = self._next(thing)
        e = self.executions[(thing, job_id)]
        e.started_at = None
        e.set("QUEUED", None)
        self._notify_if_changed(thing, before)

    def cancel(self, thing: str, job_id: str) -> None:
        before = self._next(thing)
        self.executions[(thing, job_id)].set("CANCELED", None)
        self._notify_if_changed(thing, before)

    def _pending(self, thing: str) -> list[FakeExecution]:
        return [e for (t, _), e in self.executions.items()
                if t == thing and e.status not in TERMINAL]

    def _next(self, thing: str) -> FakeExecution | None:
        pending = self._pending(thing)
        for status in ("IN_PROGRESS", "QUEUED"):  # IN_PROGRESS first, then by creation
            for e in pending:
                if e.status == status:
                    return e
        return None

    def _notify_if_changed(self, thing: str, before: FakeExecution | None) -> None:
        after = self._next(thing)
        session = self.sessions.get(thing)
        if after is before or session is None or session._handler is None:
            return
        doc: dict[str, Any] = {"timestamp": int(time.time())}
        if after is not None:
            doc["execution"] = after.data()
        session.deliver(f"$aws/things/{thing}/jobs/notify-next", doc)

    # --- the device's side ---------------------------------------------------------------

    def __call__(self, session: FakeSession, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) < 4 or parts[:2] != ["$aws", "things"] or parts[3] != "jobs":
            return
        thing, rest = parts[2], parts[4:]
        self.sessions[thing] = session
        request = json.loads(payload) if payload else {}
        self.requests.append((topic, request))
        if rest and rest[-1] in self.silent:
            return
        token = request.get("clientToken")

        def reply(ok: bool, body: dict[str, Any]) -> None:
            body = {**body, "timestamp": int(time.time())}
            if token is not None:
                body["clientToken"] = token
            session.deliver(f"{topic}/{'accepted' if ok else 'rejected'}", body)

        def reject(code: str, message: str, execution: FakeExecution | None = None) -> None:
            body: dict[str, Any] = {"code": code, "message": message}
            if execution is not None:
                body["executionState"] = execution.state()
            reply(False, body)

        if rest == ["get"]:
            pending = self._pending(thing)
            reply(True, {
                "inProgressJobs": [e.summary() for e in pending if e.status == "IN_PROGRESS"],
                "queuedJobs": [e.summary() for e in pending if e.status == "QUEUED"]})
        elif rest == ["start-next"]:
            execution = self._next(thing)
            if execution is None:
                reply(True, {})
                return
            if execution.status == "QUEUED":
                execution.set("IN_PROGRESS", request.get("statusDetails"))
            reply(True, {"execution": execution.data()})
        elif len(rest) == 2 and rest[1] == "get":
            execution = self._find(thing, rest[0])
            if execution is None:
                reject("ResourceNotFound", f"Job execution of {rest[0]} for {thing} not found")
                return
            reply(True, {"execution": execution.data(request.get("includeJobDocument", True))})
        elif len(rest) == 2 and rest[1] == "update":
            self._update(thing, rest[0], request, reply, reject)
        else:
            reject("InvalidTopic", f"{topic} maps to no Jobs API")

    def _find(self, thing: str, job_id: str) -> FakeExecution | None:
        if job_id == "$next":
            return self._next(thing)
        return self.executions.get((thing, job_id))

    def _update(self, thing: str, job_id: str, request: dict[str, Any], reply: Any,
                reject: Any) -> None:
        execution = self.executions.get((thing, job_id))
        status = request.get("status")
        if execution is None:
            reject("ResourceNotFound", f"Job execution of {job_id} for {thing} not found")
        elif status not in DEVICE_STATUSES:
            reject("InvalidRequest", f"status {status!r} cannot be set by a device")
        elif "expectedVersion" in request and request["expectedVersion"] != execution.version:
            reject("VersionMismatch", "expectedVersion does not match", execution)
        elif execution.status in TERMINAL:
            reject("InvalidStateTransition",
                   f"cannot update from {execution.status} to {status}", execution)
        else:
            before = self._next(thing)
            execution.set(status, request.get("statusDetails"))
            body: dict[str, Any] = {}
            if request.get("includeJobExecutionState"):
                body["executionState"] = execution.state()
            if request.get("includeJobDocument"):
                body["jobDocument"] = execution.document
            reply(True, body)
            self._notify_if_changed(thing, before)
