"""Requests over MQTT matched to their replies by `clientToken`, as AWS IoT's Device Shadow
and Jobs MQTT APIs do: a request carries a `clientToken` of the device's choosing (at most 64
bytes), and the `/accepted` or `/rejected` reply echoes it.

    pending = PendingRequests(metrics)
    token, payload = pending.add(op, topic, body, future)   # publish payload to topic
    request = pending.answered(reply_doc)                    # on the reply: ours, or None
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Protocol

from fleetsim.metrics import Metrics


class RequestSession(Protocol):
    """What a client of such an API needs of a device's MQTT session (`DeviceSession` has
    it)."""

    async def subscribe(self, topic_filter: str, qos: int = 0) -> int: ...

    async def publish(self, topic: str, payload: bytes | str | None = None, qos: int = 0,
                      retain: bool = False) -> None: ...

    def publish_nowait(self, topic: str, payload: bytes | str | None = None,
                       retain: bool = False) -> None: ...


@dataclass
class Request:
    op: str  # the metrics operation
    topic: str  # where it was published
    step: str  # the metrics step active when it was sent
    started_ns: int
    future: asyncio.Future[dict[str, Any]] | None  # None: nobody waits for the reply


class PendingRequests:
    """The requests sent and not answered yet, by clientToken."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics
        self._prefix = secrets.token_hex(4)
        self._seq = 0
        self._requests: dict[str, Request] = {}

    def add(self, op: str, topic: str, body: dict[str, Any],
            future: asyncio.Future[dict[str, Any]] | None) -> tuple[str, bytes]:
        """(clientToken, payload): `body` with a fresh clientToken, as JSON."""
        self._seq += 1
        token = f"{self._prefix}-{self._seq}"  # at most 64 bytes, as AWS requires
        payload = json.dumps({**body, "clientToken": token}, separators=(",", ":")).encode()
        self._requests[token] = Request(op, topic, self.metrics.active_step,
                                        time.perf_counter_ns(), future)
        return token, payload

    def pop(self, token: str) -> Request | None:
        return self._requests.pop(token, None)

    def answered(self, doc: dict[str, Any]) -> Request | None:
        """The request of ours the reply `doc` echoes the clientToken of (no longer pending),
        or None (another client's, or answered already)."""
        token = doc.get("clientToken")
        return self._requests.pop(token, None) if isinstance(token, str) else None

    def record_latency(self, request: Request) -> None:
        """Record the time from `request` to its `/accepted` reply (microseconds)."""
        micros = (time.perf_counter_ns() - request.started_ns) / 1000
        self.metrics.record(request.op, micros, step=request.step)

    def cancel(self) -> None:
        """Cancel every request still waiting for its reply."""
        for request in self._requests.values():
            if request.future is not None:
                request.future.cancel()
        self._requests.clear()


def reply_document(prefix: str, topic: str, payload: bytes) -> tuple[str, dict[str, Any]] | None:
    """(topic suffix after `prefix/`, JSON object) of a message on a topic below `prefix`;
    None for another topic or a payload that is not a JSON object."""
    if not topic.startswith(prefix + "/"):
        return None
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    return topic[len(prefix) + 1:], doc
