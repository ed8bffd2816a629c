"""The device side of AWS IoT Jobs over MQTT: topics, requests matched to their replies.

    jobs = JobsClient(session, "sensor-1", metrics)
    session.on_message(lambda m: jobs.on_message(str(m.topic), m.payload))
    pending = await jobs.request(GET_PENDING, "get", {})

As AWS's "Jobs device MQTT API" page documents it: a request is published to
`$aws/things/<thing>/jobs/<operation>` with an optional `clientToken`, which the reply on
`.../<operation>/accepted` or `.../<operation>/rejected` echoes (the broker sends replies to the
requesting client whether it subscribed or not). Operations: `get`
(GetPendingJobExecutions), `start-next` (StartNextPendingJobExecution), `<jobId>/get`
(DescribeJobExecution), `<jobId>/update` (UpdateJobExecution). Notifications arrive on
`.../notify` (JobExecutionsChanged) and `.../notify-next` (NextJobExecutionChanged).

A `/rejected` reply is an ErrorResponse: `code` (InvalidTopic, InvalidJson, InvalidRequest,
InvalidStateTransition, ResourceNotFound, VersionMismatch, InternalError, RequestThrottled,
TerminalStateReached), `message`, `clientToken`, `timestamp`, and for InvalidStateTransition
and VersionMismatch the `executionState` (status, statusDetails, versionNumber).

What it measures (microseconds): `jobs.get`, `jobs.start_next`, `jobs.describe`,
`jobs.update`: request to `/accepted`; a `/rejected` reply counts as an error of its code
(`RequestThrottled` as `throttled`), no reply within the timeout as `timeout`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fleetsim.device.behaviours.replies import PendingRequests, RequestSession, reply_document
from fleetsim.device.errors import DeviceError
from fleetsim.metrics import Metrics

GET_PENDING = "jobs.get"  # GetPendingJobExecutions
START_NEXT = "jobs.start_next"  # StartNextPendingJobExecution
DESCRIBE = "jobs.describe"  # DescribeJobExecution
UPDATE = "jobs.update"  # UpdateJobExecution
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "REMOVED", "CANCELED"})
# Where a notification arrives: what the handler given to `JobsClient` is called with.
NOTIFY, NOTIFY_NEXT = "notify", "notify-next"


JobsSession = RequestSession  # what the Jobs client needs of a device's MQTT session


def jobs_topic(thing: str) -> str:
    return f"$aws/things/{thing}/jobs"


def error_kind(code: Any) -> str:
    if code == "RequestThrottled":
        return "throttled"
    return str(code) if isinstance(code, str) and code else "jobs_rejected"


class JobRejected(DeviceError):
    """The Jobs service answered on `/rejected` (its ErrorResponse)."""

    def __init__(self, doc: dict[str, Any], topic: str):
        self.code = doc.get("code")
        super().__init__(error_kind(self.code), f"{topic}: {self.code} {doc.get('message', '')}")
        state = doc.get("executionState")
        self.execution_state: dict[str, Any] | None = state if isinstance(state, dict) else None


Notification = Callable[[str, dict[str, Any]], None]


class JobsClient:
    def __init__(self, session: JobsSession, thing: str, metrics: Metrics, qos: int = 0,
                 on_notification: Notification | None = None):
        self.session = session
        self.thing = thing
        self.metrics = metrics
        self.qos = qos
        self.prefix = jobs_topic(thing)
        self.on_notification = on_notification
        self._pending = PendingRequests(metrics)

    async def subscribe(self, suffixes: list[str]) -> None:
        for suffix in suffixes:
            await self.session.subscribe(f"{self.prefix}/{suffix}", self.qos)

    async def request(self, op: str, suffix: str, body: dict[str, Any],
                      timeout: float = 10.0) -> dict[str, Any]:
        """Publish `body` (with a fresh clientToken) to `<prefix>/<suffix>` and wait for its
        `/accepted` document; `/rejected` raises `JobRejected`, no answer `TimeoutError`."""
        topic = f"{self.prefix}/{suffix}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        token, payload = self._pending.add(op, topic, body, future)
        try:
            if self.qos == 0:
                self.session.publish_nowait(topic, payload)
            else:
                await self.session.publish(topic, payload, qos=1)
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            self.metrics.error("timeout", op)
            raise TimeoutError(f"no answer on {topic}/accepted or /rejected within "
                               f"{timeout:g}s") from None
        finally:
            self._pending.pop(token)

    def on_message(self, topic: str, payload: bytes) -> None:
        """Every message the device receives; those on other topics are ignored."""
        reply = reply_document(self.prefix, topic, payload)
        if reply is None:
            return
        suffix, doc = reply
        if suffix in (NOTIFY, NOTIFY_NEXT):
            if self.on_notification is not None:
                self.on_notification(suffix, doc)
            return
        request = self._pending.answered(doc)
        if request is None or request.future is None or request.future.done():
            return  # not ours (another client of the thing), or answered already
        if suffix.endswith("/accepted"):
            self._pending.record_latency(request)
            request.future.set_result(doc)
        elif suffix.endswith("/rejected"):
            self.metrics.error(error_kind(doc.get("code")), request.op, request.step)
            request.future.set_exception(JobRejected(doc, request.topic))

    def close(self) -> None:
        self._pending.cancel()
