"""The job agent: a device that runs the AWS IoT jobs it is sent, in one of two flows.

    agent = JobAgent(session, "sensor-1", metrics, plan=lambda job_id: JobPlan("succeed", 2.0))
    session.on_message(lambda m: agent.on_message(str(m.topic), m.payload))
    await agent.start()        # runs in the background until close()

Flows (`flow`):
- `workshop`: the workshop's sample job agent (job-agent.py of the "IoT Jobs" lab). It
  subscribes to `jobs/get/accepted`, `jobs/get/rejected`, `jobs/+/get/accepted` and
  `jobs/notify-next`, publishes `jobs/get` (GetPendingJobExecutions) every `poll` seconds, takes
  a job from the answer, describes it (`jobs/<jobId>/get`, DescribeJobExecution, with its
  document), sets it IN_PROGRESS (`jobs/<jobId>/update`), runs the document's operation
  (`sys-info` publishes `{"thing-id", "uptime"}` to the document's `topic`), then SUCCEEDED.
  Unlike the lab's script, it also takes back a job found IN_PROGRESS (after a reconnect).
- `notify-next`: what the AWS IoT Device Client and the AWS IoT Device SDK's jobs sample do.
  It subscribes to `jobs/notify-next`, `jobs/start-next/accepted|rejected` and
  `jobs/+/update/accepted|rejected`, publishes `jobs/start-next`
  (StartNextPendingJobExecution: the next execution, IN_PROGRESS first, set IN_PROGRESS), runs
  it and reports its end, then asks for the next one; with none pending it waits for a
  `notify-next` naming an execution.

What each job does is the `plan` for it (`JobPlan`): the outcome (`succeed`, `fail`,
`reject`, `timeout`: go IN_PROGRESS, then never answer again, so the step timer or the job's
in-progress timeout ends it as TIMED_OUT; `disconnect`: lose the connection half-way, and once
the session has reconnected, take the job back and finish it as SUCCEEDED), the execution time
and how many IN_PROGRESS `statusDetails` progress updates it sends meanwhile. Every update
carries `expectedVersion` (the version last seen); a `VersionMismatch` answer carries the
current state, whose version the agent adopts before trying once more.

What it measures, besides the requests of `jobs_mqtt`: `jobs.execution` (from the moment the
device first heard of the execution to its terminal update accepted), counters
`jobs.outcome.<outcome>` (per execution the device finished its plan for), `jobs.dropped`
(connections it dropped mid-job), `jobs.resumed` (executions taken back IN_PROGRESS) and
`jobs.retried` (executions the service handed out again after the device had ended or
abandoned them: a `jobExecutionsRetryConfig` retry, run as a new attempt with the same plan).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from fleetsim.device.behaviours.jobs_mqtt import (
    DESCRIBE,
    GET_PENDING,
    NOTIFY_NEXT,
    START_NEXT,
    TERMINAL,
    UPDATE,
    JobRejected,
    JobsClient,
    JobsSession,
)
from fleetsim.device.errors import DeviceError
from fleetsim.metrics import Metrics

Outcome = Literal["succeed", "fail", "reject", "timeout", "disconnect"]
OUTCOMES: tuple[Outcome, ...] = ("succeed", "fail", "reject", "timeout", "disconnect")
Flow = Literal["workshop", "notify-next"]
EXECUTION_OP = "jobs.execution"
DROPPED = "dropped_mid_job"
WORKSHOP_SUBSCRIPTIONS = ["get/accepted", "get/rejected", "+/get/accepted", "notify-next"]
NOTIFY_NEXT_SUBSCRIPTIONS = ["notify-next", "start-next/accepted", "start-next/rejected",
                             "+/update/accepted", "+/update/rejected"]


class AgentSession(JobsSession, Protocol):
    """A session that can lose its connection on purpose and reconnect (`DeviceSession`)."""

    def drop(self) -> None: ...

    async def wait_connected(self) -> bool: ...


@dataclass(frozen=True)
class JobPlan:
    outcome: Outcome = "succeed"
    seconds: float = 0.0  # execution time
    progress: int = 0  # IN_PROGRESS statusDetails updates during the execution


@dataclass
class _Execution:
    job_id: str
    seen_at: float  # monotonic: when the device first heard of it
    version: int | None = None
    started_at: int | None = None  # the service's startedAt of the attempt the device runs
    dropped: bool = False  # the connection was dropped during it (outcome `disconnect`)


def uptime(seconds: float) -> str:
    """As the lab's agent reports it: `str(timedelta)` of the system's uptime."""
    return str(datetime.timedelta(seconds=round(seconds, 2)))


def document_of(execution: dict[str, Any]) -> dict[str, Any]:
    """The job document of a JobExecution (an object over MQTT, a string over HTTP)."""
    doc = execution.get("jobDocument")
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except ValueError:
            return {}
    return doc if isinstance(doc, dict) else {}


class JobAgent:
    def __init__(self, session: AgentSession, thing: str, metrics: Metrics,
                 plan: Callable[[str], JobPlan], flow: Flow = "notify-next",
                 step_timeout: int | None = None, poll: float = 15.0, timeout: float = 10.0,
                 qos: int = 0, clock: Callable[[], float] = time.monotonic):
        self.session = session
        self.thing = thing
        self.metrics = metrics
        self.plan = plan
        self.flow = flow
        self.step_timeout = step_timeout  # stepTimeoutInMinutes sent with IN_PROGRESS
        self.poll = poll
        self.timeout = timeout
        self.jobs = JobsClient(session, thing, metrics, qos, self._notified)
        self.finished: dict[str, str] = {}  # job id -> the terminal status the device set
        self.abandoned: set[str] = set()  # outcome `timeout`: never answered again
        self._clock = clock
        self._booted = clock()
        self._executions: dict[str, _Execution] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def on_message(self, topic: str, payload: bytes) -> None:
        self.jobs.on_message(topic, payload)

    async def start(self) -> None:
        """Subscribe as the flow's agent does, then run it in the background."""
        subscriptions = (WORKSHOP_SUBSCRIPTIONS if self.flow == "workshop"
                         else NOTIFY_NEXT_SUBSCRIPTIONS)
        await self.jobs.subscribe(subscriptions)
        loop = self._workshop if self.flow == "workshop" else self._notify_next
        self._task = asyncio.ensure_future(self._guard(loop))

    def close(self) -> None:
        self.jobs.close()
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _guard(self, loop: Callable[[], Any]) -> None:
        while True:
            try:
                await loop()
                return
            except (DeviceError, TimeoutError) as e:
                # Counted where it happened; a lost connection is waited out, then go on.
                connected = await self.session.wait_connected()
                if not connected or getattr(e, "kind", "") != DROPPED:
                    await asyncio.sleep(min(self.poll, 1.0))

    def _notified(self, where: str, doc: dict[str, Any]) -> None:
        execution = doc.get("execution")
        if where == NOTIFY_NEXT and isinstance(execution, dict) \
                and isinstance(execution.get("jobId"), str):
            self._seen(execution["jobId"])
        if self.flow == "notify-next":  # the lab's agent only logs notifications
            self._wake.set()

    def _seen(self, job_id: str) -> _Execution:
        known = self._executions.get(job_id)
        if known is None:
            known = self._executions[job_id] = _Execution(job_id, self._clock())
        return known

    # --- the flows ---------------------------------------------------------------------------

    async def _workshop(self) -> None:
        while True:
            pending = await self.jobs.request(GET_PENDING, "get", {}, self.timeout)
            job_id = self._pick(pending)
            if job_id is None:
                await asyncio.sleep(self.poll)
                continue
            answer = await self.jobs.request(DESCRIBE, f"{job_id}/get",
                                             {"includeJobDocument": True}, self.timeout)
            execution = answer.get("execution")
            if isinstance(execution, dict):
                await self._run(execution)

    def _pick(self, pending: dict[str, Any]) -> str | None:
        """The next job to take from GetPendingJobExecutions: IN_PROGRESS ones first (ours, to
        take back), then queued ones, each in the order given."""
        for key, status in (("inProgressJobs", "IN_PROGRESS"), ("queuedJobs", "QUEUED")):
            for summary in pending.get(key) or []:
                job_id = summary.get("jobId") if isinstance(summary, dict) else None
                if isinstance(job_id, str) and self._takes(job_id, status,
                                                           summary.get("startedAt")):
                    self._seen(job_id)
                    return job_id
        return None

    def _takes(self, job_id: str, status: Any, started_at: Any) -> bool:
        """Whether to run this pending execution. One the device ended (or abandoned, outcome
        `timeout`) that the service hands out again is a retry ("Job execution timeout and
        retry configurations": a FAILED or TIMED_OUT execution is queued again): a new
        attempt. An abandoned one still IN_PROGRESS since the start the device left it at is
        not (a retry is queued again, then started anew: its startedAt differs)."""
        if status in TERMINAL:
            return False
        if job_id in self.finished:
            retried = True
        elif job_id in self.abandoned:
            known = self._executions.get(job_id)
            retried = status == "QUEUED" or (known is not None and known.started_at is not None
                                              and started_at != known.started_at)
        else:
            return True
        if retried:
            self.finished.pop(job_id, None)
            self.abandoned.discard(job_id)
            self._executions[job_id] = _Execution(job_id, self._clock())
            self.metrics.incr("jobs.retried")
        return retried

    async def _notify_next(self) -> None:
        while True:
            self._wake.clear()
            body: dict[str, Any] = {}
            if self.step_timeout is not None:
                body["stepTimeoutInMinutes"] = self.step_timeout
            answer = await self.jobs.request(START_NEXT, "start-next", body, self.timeout)
            execution = answer.get("execution")
            if isinstance(execution, dict) and self._takes(
                    str(execution.get("jobId")), execution.get("status"),
                    execution.get("startedAt")):
                await self._run(execution)
                continue
            await self._wake.wait()  # a notify-next: the next execution changed

    # --- one execution -----------------------------------------------------------------------

    async def _run(self, execution: dict[str, Any]) -> None:
        job_id = str(execution.get("jobId"))
        status = execution.get("status")
        if status in TERMINAL or job_id in self.finished or job_id in self.abandoned:
            return
        known = self._seen(job_id)
        if isinstance(execution.get("versionNumber"), int):
            known.version = execution["versionNumber"]
        if isinstance(execution.get("startedAt"), int):
            known.started_at = execution["startedAt"]
        plan = self.plan(job_id)
        if plan.outcome == "reject":
            await self._finish(known, plan, "REJECTED", {"reason": "rejected by the device"})
            return
        if status == "QUEUED":
            await self._update(known, "IN_PROGRESS", None, self.step_timeout)
        elif known.dropped:
            self.metrics.incr("jobs.resumed")
        if plan.outcome == "timeout":
            self.abandoned.add(job_id)
            self.metrics.incr("jobs.outcome.timeout")
            return
        await self._execute(known, plan, document_of(execution))
        if plan.outcome == "fail":
            await self._finish(known, plan, "FAILED", {"reason": "simulated failure"})
        else:
            await self._finish(known, plan, "SUCCEEDED", {"result": "ok"})

    async def _execute(self, known: _Execution, plan: JobPlan, document: dict[str, Any]
                       ) -> None:
        """The document's operation, then the execution time with progress updates; outcome
        `disconnect` drops the connection half-way once (the rest runs after the resume)."""
        if document.get("operation") == "sys-info" and isinstance(document.get("topic"), str):
            payload = {"thing-id": self.thing, "uptime": uptime(self._clock() - self._booted)}
            await self.session.publish(document["topic"], json.dumps(payload), qos=0)
        slices = plan.progress + 1
        for k in range(slices):
            if plan.outcome == "disconnect" and not known.dropped and k >= slices // 2:
                known.dropped = True
                self.metrics.incr("jobs.dropped")
                self.session.drop()
                raise DeviceError(DROPPED, f"{self.thing} dropped its connection mid-job")
            await asyncio.sleep(plan.seconds / slices)
            if k < plan.progress:
                await self._update(known, "IN_PROGRESS",
                                   {"progress": f"{k + 1}/{plan.progress}"}, None)

    async def _finish(self, known: _Execution, plan: JobPlan, status: str,
                      details: dict[str, str]) -> None:
        await self._update(known, status, details, None)
        self.finished[known.job_id] = status
        self.metrics.record(EXECUTION_OP, (self._clock() - known.seen_at) * 1e6)
        self.metrics.incr(f"jobs.outcome.{plan.outcome}")

    async def _update(self, known: _Execution, status: str, details: dict[str, str] | None,
                      step_timeout: int | None) -> None:
        """UpdateJobExecution with the version last seen; on VersionMismatch, once more with
        the version the rejection carries. A terminal execution (canceled meanwhile) stops."""
        for attempt in (1, 2):
            body: dict[str, Any] = {"status": status, "includeJobExecutionState": True}
            if details is not None:
                body["statusDetails"] = details
            if known.version is not None:
                body["expectedVersion"] = known.version
            if step_timeout is not None:
                body["stepTimeoutInMinutes"] = step_timeout
            try:
                answer = await self.jobs.request(UPDATE, f"{known.job_id}/update", body,
                                                 self.timeout)
            except JobRejected as e:
                state = e.execution_state or {}
                if e.code == "VersionMismatch" and attempt == 1 and \
                        state.get("status") not in TERMINAL and \
                        isinstance(state.get("versionNumber"), int):
                    known.version = state["versionNumber"]
                    continue
                if state.get("status") in TERMINAL:
                    self.finished[known.job_id] = str(state["status"])
                raise
            now = answer.get("executionState")
            if isinstance(now, dict) and isinstance(now.get("versionNumber"), int):
                known.version = now["versionNumber"]
            elif known.version is not None:
                known.version += 1
            return
