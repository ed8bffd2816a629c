"""The shadow reporter: a device that keeps its Device Shadow's reported state up to date.

    reporter = ShadowReporter(session, "sensor-1", metrics)        # classic shadow
    session.on_message(lambda m: reporter.on_message(str(m.topic), m.payload))
    await reporter.start(report={"temp": 21}, get=True)

It subscribes to its shadow's response topics (`$aws/things/<thing>/shadow[/name/<shadow>]/`
`update/delta`, `update/accepted`, `update/rejected`, `get/accepted`, `get/rejected`), reports
an initial state (`{"state": {"reported": ...}}` to `.../update`), asks for the document
(`.../get`, answering a delta found there) and answers each delta by reporting the desired
values it names, as AWS's sample devices do.

What it measures (microseconds, like every operation in `fleetsim.metrics`):
- `shadow.update`, `shadow.get`: request to `/accepted` (matched by `clientToken`); a
  `/rejected` answer counts as an error of its kind (`SHADOW_ERROR_KINDS`, by AWS's code);
- `shadow.converge`: from the moment the desired state was accepted (the control plane's
  `UpdateThingShadow` returned, see `expect`) to the `/update/accepted` of this device's report
  holding those values;
- counters `shadow.deltas` (received), `shadow.deltas.stale` (older than one answered).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fleetsim.device.behaviours.replies import (
    PendingRequests,
    Request,
    RequestSession,
    reply_document,
)
from fleetsim.device.errors import DeviceError
from fleetsim.metrics import Metrics

UPDATE_OP = "shadow.update"
GET_OP = "shadow.get"
CONVERGE_OP = "shadow.converge"
# /rejected payloads carry an HTTP-like code (AWS IoT "Device Shadow error messages").
SHADOW_ERROR_KINDS = {
    400: "shadow_bad_request", 401: "shadow_unauthorized", 403: "shadow_forbidden",
    404: "shadow_not_found", 409: "shadow_version_conflict", 413: "shadow_payload_too_large",
    415: "shadow_unsupported_encoding", 429: "throttled", 500: "shadow_internal_error",
}


def error_kind(code: Any) -> str:
    return SHADOW_ERROR_KINDS.get(code, f"shadow_{code}") if isinstance(code, int) \
        else "shadow_rejected"


class ShadowRejected(DeviceError):
    """The Device Shadow service answered on `/rejected`."""

    def __init__(self, code: Any, message: str, topic: str):
        super().__init__(error_kind(code), f"{topic}: {code} {message}")
        self.code = code


ShadowSession = RequestSession  # what the reporter needs of a device's MQTT session


def shadow_topic(thing: str, shadow: str | None = None) -> str:
    """The topic prefix of a classic (`shadow` None) or named shadow."""
    return f"$aws/things/{thing}/shadow" + (f"/name/{shadow}" if shadow else "")


def merge_state(into: dict[str, Any], update: dict[str, Any]) -> None:
    """Apply a state update as the Device Shadow service does: objects merge key by key, a
    `null` removes the key, anything else replaces."""
    for key, value in update.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            merge_state(into[key], value)
        elif isinstance(value, dict):
            into[key] = {}
            merge_state(into[key], value)
        else:
            into[key] = value


def contains(state: Any, wanted: Any) -> bool:
    """Whether `state` holds every value of `wanted` (objects compared key by key; a `null`
    in `wanted` means the key is absent)."""
    if isinstance(wanted, dict):
        if not isinstance(state, dict):
            return False
        return all((key not in state) if value is None else
                   (key in state and contains(state[key], value))
                   for key, value in wanted.items())
    return bool(state == wanted)


@dataclass
class Convergence:
    """One desired state the device is expected to reach (see `ShadowReporter.expect`)."""

    desired: dict[str, Any]
    step: str
    future: asyncio.Future[float]  # the convergence time in seconds
    accepted_at: float | None = None  # monotonic: the desired update was accepted
    reached_at: float | None = None  # monotonic: a report holding it was accepted
    _metrics: Metrics | None = field(default=None, repr=False)

    def desired_accepted(self, at: float | None = None) -> None:
        """The control plane's update of the desired state returned (was accepted)."""
        self.accepted_at = time.monotonic() if at is None else at
        self._settle()

    def _reached(self, at: float) -> None:
        if self.reached_at is None:
            self.reached_at = at
            self._settle()

    def _settle(self) -> None:
        if self.accepted_at is None or self.reached_at is None or self.future.done():
            return
        # The report may be accepted before the API call returns: that is no time at all.
        seconds = max(0.0, self.reached_at - self.accepted_at)
        if self._metrics is not None:
            self._metrics.record(CONVERGE_OP, seconds * 1e6, step=self.step)
        self.future.set_result(seconds)

    async def wait(self, timeout: float) -> float:
        return await asyncio.wait_for(asyncio.shield(self.future), timeout)


class ShadowReporter:
    def __init__(self, session: ShadowSession, thing: str, metrics: Metrics,
                 shadow: str | None = None, qos: int = 0,
                 clock: Callable[[], float] = time.monotonic):
        self.session = session
        self.thing = thing
        self.shadow = shadow
        self.metrics = metrics
        self.qos = qos
        self.prefix = shadow_topic(thing, shadow)
        self.reported: dict[str, Any] = {}  # as the service accepted it, from our reports
        self.version: int | None = None  # the document's latest version seen
        self.delta_version = -1  # the newest delta answered
        self._clock = clock
        self._pending = PendingRequests(metrics)  # a delta's answer: nobody waits for it
        self._convergences: list[Convergence] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def topics(self) -> list[str]:
        """The response topics the reporter subscribes to."""
        return [f"{self.prefix}/{t}" for t in ("update/delta", "update/accepted",
                                               "update/rejected", "get/accepted",
                                               "get/rejected")]

    # --- requests --------------------------------------------------------------------------

    async def start(self, report: dict[str, Any] | None = None, get: bool = True,
                    timeout: float = 10.0) -> None:
        """Subscribe, report `report` (if any) and ask for the document (if `get`), each
        waiting for its answer; a `/rejected` answer raises `ShadowRejected`."""
        for topic in self.topics:
            await self.session.subscribe(topic, self.qos)
        if report is not None:
            await self.report(report, timeout)
        if get:
            await self.get(timeout)

    async def report(self, state: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Report `state`; returns the `/update/accepted` document."""
        return await self._request(UPDATE_OP, "update", {"state": {"reported": state}},
                                   timeout)

    async def get(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """The shadow document (None if there is none yet); a delta in it is answered."""
        try:
            return await self._request(GET_OP, "get", {}, timeout)
        except ShadowRejected as e:
            if e.code == 404:
                return None
            raise

    async def _request(self, op: str, verb: str, body: dict[str, Any],
                       timeout: float) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        token = self._send(op, verb, body, future)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            if self._pending.pop(token) is not None:
                self.metrics.error("timeout", op)
            raise TimeoutError(f"no answer on {self.prefix}/{verb}/accepted or /rejected "
                               f"within {timeout}s") from None

    def _send(self, op: str, verb: str, body: dict[str, Any],
              future: asyncio.Future[dict[str, Any]] | None) -> str:
        topic = f"{self.prefix}/{verb}"
        token, payload = self._pending.add(op, topic, body, future)
        if self.qos == 0:
            try:
                self.session.publish_nowait(topic, payload)
            except DeviceError as e:
                self._fail(token, e)
        else:
            task = asyncio.ensure_future(self._publish_qos1(token, topic, payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return token

    async def _publish_qos1(self, token: str, topic: str, payload: bytes) -> None:
        try:
            await self.session.publish(topic, payload, qos=1)
        except DeviceError as e:
            self._fail(token, e)

    def _fail(self, token: str, error: DeviceError) -> None:
        request = self._pending.pop(token)
        if request is not None and request.future is not None and not request.future.done():
            request.future.set_exception(error)

    # --- convergence -----------------------------------------------------------------------

    def expect(self, desired: dict[str, Any]) -> Convergence:
        """Start measuring convergence to `desired`: call before setting it through the API
        and call `desired_accepted()` on the result when that returns. It replaces an
        expectation not met yet (the desired state it waited for is no longer wanted)."""
        for old in self._convergences:
            old.future.cancel()
        convergence = Convergence(desired, self.metrics.active_step,
                                  asyncio.get_running_loop().create_future(),
                                  _metrics=self.metrics)
        self._convergences = [convergence]
        if contains(self.reported, desired):  # nothing to change: no delta will come
            convergence._reached(self._clock())
            self._convergences = []
        return convergence

    def _check_convergence(self) -> None:
        if not self._convergences:
            return
        now = self._clock()
        for c in [c for c in self._convergences if contains(self.reported, c.desired)]:
            c._reached(now)
            self._convergences.remove(c)

    # --- what arrives ----------------------------------------------------------------------

    def on_message(self, topic: str, payload: bytes) -> None:
        """Every message the device receives; those on other topics are ignored."""
        reply = reply_document(self.prefix, topic, payload)
        if reply is None:
            return
        suffix, doc = reply
        if isinstance(doc.get("version"), int):
            self.version = max(self.version or 0, doc["version"])
        if suffix == "update/delta":
            self._on_delta(doc)
        elif suffix in ("update/accepted", "get/accepted"):
            self._on_accepted(suffix, doc)
        elif suffix in ("update/rejected", "get/rejected"):
            self._on_rejected(topic, doc)

    def _answered(self, doc: dict[str, Any]) -> Request | None:
        """The request of ours `doc` answers (its latency recorded), if any."""
        request = self._pending.answered(doc)
        if request is not None:
            self._pending.record_latency(request)
        return request

    def _on_accepted(self, suffix: str, doc: dict[str, Any]) -> None:
        request = self._answered(doc)
        if request is None:
            return  # another client's update (the control plane's desired state)
        state = doc.get("state")
        state = state if isinstance(state, dict) else {}
        if suffix == "update/accepted":
            reported = state.get("reported")
            if isinstance(reported, dict):
                merge_state(self.reported, reported)
                self._check_convergence()
        else:
            reported = state.get("reported")
            self.reported = dict(reported) if isinstance(reported, dict) else {}
            delta = state.get("delta")
            if isinstance(delta, dict) and delta:
                self._answer(delta, doc.get("version"))
        if request.future is not None and not request.future.done():
            request.future.set_result(doc)

    def _on_rejected(self, topic: str, doc: dict[str, Any]) -> None:
        request = self._pending.answered(doc)
        if request is None:
            return
        code = doc.get("code")
        if not (request.op == GET_OP and code == 404):  # no document yet: not an error
            self.metrics.error(error_kind(code), request.op, request.step)
        if request.future is not None and not request.future.done():
            request.future.set_exception(ShadowRejected(code, str(doc.get("message", "")),
                                                        topic))

    def _on_delta(self, doc: dict[str, Any]) -> None:
        self.metrics.incr("shadow.deltas")
        state = doc.get("state")
        if not isinstance(state, dict) or not state:
            return
        self._answer(state, doc.get("version"))

    def _answer(self, delta: dict[str, Any], version: Any) -> None:
        """Report the desired values a delta names. A delta older than one already answered
        (deltas may arrive out of order) is not."""
        if isinstance(version, int):
            if version <= self.delta_version:
                self.metrics.incr("shadow.deltas.stale")
                return
            self.delta_version = version
        self._send(UPDATE_OP, "update", {"state": {"reported": delta}}, None)

    def close(self) -> None:
        """Stop: requests waiting for an answer are cancelled."""
        self._pending.cancel()
        for c in self._convergences:
            c.future.cancel()
        self._convergences = []
        for task in list(self._tasks):
            task.cancel()
