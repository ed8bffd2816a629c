"""The Jobs device MQTT API ("Jobs device MQTT API operations"): `$aws/things/<thing>/jobs/get`,
`start-next`, `<jobId>/get` and `<jobId>/update`, answered on `<request topic>/accepted` or
`/rejected`.

Registered with `requester` delivery: AWS IoT publishes the responses "to the client that
published the command message, whether or not your client has subscribed to the response
message topics. These response messages don't pass through the message broker and can't be
subscribed to by other clients or rules." Which of these topics a device may use is its
policy's decision (the broker checks iot:Publish on the request and iot:Receive on the reply).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from fleetsim.localcore.broker.router import Reply, Request, Router
from fleetsim.localcore.features.jobs import payloads
from fleetsim.localcore.features.jobs.service import DeviceError, JobsService, Update
from fleetsim.localcore.features.jobs.states import TERMINAL

Body = dict[str, Any]
log = logging.getLogger(__name__)


def _parse(payload: bytes) -> Body:
    """The request's JSON object (an empty payload is an empty request)."""
    if not payload.strip():
        return {}
    try:
        value = json.loads(payload.decode())
    except (UnicodeDecodeError, ValueError):
        raise DeviceError("InvalidJson", "The request is not valid UTF-8 encoded JSON.") from None
    if not isinstance(value, dict):
        raise DeviceError("InvalidJson", "The request must be a JSON object.")
    return value


def _token(body: Body) -> str | None:
    token = body.get("clientToken")
    return token if isinstance(token, str) else None


def _int(body: Body, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise DeviceError("InvalidRequest", f"{name} must be a number.")
    try:
        return int(value)
    except ValueError:
        raise DeviceError("InvalidRequest", f"{name} must be a number.") from None


def _flag(body: Body, name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise DeviceError("InvalidRequest", f"{name} must be true or false.")
    return value


class JobsTopics:
    def __init__(self, service: JobsService, region: str,
                 clock: Callable[[], float] = time.time):
        self._service = service
        self._region = region
        self._clock = clock

    def register(self, router: Router) -> None:
        base = "$aws/things/{thingName}/jobs"
        router.register(f"{base}/get", self._wrap(self._get), "requester")
        router.register(f"{base}/start-next", self._wrap(self._start_next), "requester")
        router.register(f"{base}/{{jobId}}/get", self._wrap(self._describe), "requester")
        router.register(f"{base}/{{jobId}}/update", self._wrap(self._update), "requester")
        # No InvalidTopic: the broker refuses a publish to any other reserved topic (it is not
        # among the topics "Reserved topics" lets clients publish to), so none arrives here.

    def _wrap(self, answer: Callable[[Request, Body], Body]
              ) -> Callable[[Request, Reply], Any]:
        async def handle(request: Request, reply: Reply) -> None:
            body: Body = {}
            try:
                body = _parse(request.payload)
                accepted = answer(request, body)
            except DeviceError as e:
                self._reject(request, reply, body, e)
                return
            except Exception:  # this request fails; the connection and local core carry on
                log.exception("jobs: %s failed", request.topic)
                self._reject(request, reply, body, DeviceError(
                    "InternalError", "There was an internal error during the processing of "
                    "the request."))
                return
            accepted = {"timestamp": int(self._clock()), **accepted}
            token = _token(body)
            if token is not None:
                accepted["clientToken"] = token
            reply.publish(f"{request.topic}/accepted", json.dumps(accepted).encode())
        return handle

    def _reject(self, request: Request, reply: Reply, body: Body, e: DeviceError) -> None:
        state = payloads.state(e.execution) if e.execution is not None else None
        reply.publish(f"{request.topic}/rejected", json.dumps(payloads.error(
            e.code, e.message, _token(body), self._clock(), state)).encode())

    def _get(self, request: Request, body: Body) -> Body:
        in_progress, queued = self._service.pending(self._region, request.params["thingName"])
        return {"inProgressJobs": [payloads.summary(e) for e in in_progress],
                "queuedJobs": [payloads.summary(e) for e in queued]}

    def _execution(self, e: Any, include_document: bool) -> Body:
        document = None
        if include_document:
            document = self._service.document_for_device(self._service.job_of(e))
        return payloads.execution(e, document, self._clock())

    def _start_next(self, request: Request, body: Body) -> Body:
        e = self._service.start_next(self._region, request.params["thingName"],
                                     body.get("statusDetails"),
                                     _int(body, "stepTimeoutInMinutes"))
        return {} if e is None else {"execution": self._execution(e, True)}

    def _describe(self, request: Request, body: Body) -> Body:
        job_id = request.params["jobId"]
        include = _flag(body, "includeJobDocument", True)
        e = self._service.device_describe(self._region, request.params["thingName"], job_id,
                                          _int(body, "executionNumber"))
        if e is None:
            return {}
        if job_id != "$next" and e.status in TERMINAL:
            raise DeviceError("TerminalStateReached", f"The job execution of job {job_id} is "
                              f"{e.status}, a terminal state.")
        return {"execution": self._execution(e, include)}

    def _update(self, request: Request, body: Body) -> Body:
        if "status" not in body:
            raise DeviceError("InvalidRequest", "status is required: IN_PROGRESS, SUCCEEDED, "
                              "FAILED or REJECTED.")
        include_state = _flag(body, "includeJobExecutionState", False)
        include_document = _flag(body, "includeJobDocument", False)
        e = self._service.update(self._region, request.params["thingName"],
                                 request.params["jobId"], Update(
                                     body["status"], body.get("statusDetails"),
                                     _int(body, "expectedVersion"),
                                     _int(body, "executionNumber"),
                                     _int(body, "stepTimeoutInMinutes")))
        out: Body = {}
        if include_state:
            out["executionState"] = payloads.state(e)
        if include_document:
            out["jobDocument"] = json.loads(
                self._service.document_for_device(self._service.job_of(e)))
        return out
