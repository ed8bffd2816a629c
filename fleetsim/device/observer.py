"""An observer: a device session subscribed to topic filters that keeps what arrives, so that
checks can wait for "a message on topic X matching P within T seconds"."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiomqtt
from paho.mqtt.client import topic_matches_sub

from fleetsim.device.errors import DeviceError
from fleetsim.device.payload import SENT_FIELD
from fleetsim.device.session import DeviceSession
from fleetsim.metrics import Metrics
from fleetsim.runtime import cancel_and_wait

Predicate = Callable[["Observed"], bool]


@dataclass(frozen=True)
class Observed:
    seq: int  # arrival order, from 0
    topic: str
    payload: bytes
    data: Any  # the payload parsed as JSON, None if it is not JSON
    received_ns: int  # wall clock
    qos: int
    retain: bool

    @property
    def e2e_us(self) -> float | None:
        """Send-to-arrival time, if the sender stamped the payload."""
        sent = self.data.get(SENT_FIELD) if isinstance(self.data, dict) else None
        if not isinstance(sent, int):
            return None
        return (self.received_ns - sent) / 1000


def _parse(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None


@dataclass
class _Waiter:
    topic_filter: str
    predicate: Predicate | None
    future: asyncio.Future[Observed]

    def matches(self, item: Observed) -> bool:
        return topic_matches_sub(self.topic_filter, item.topic) and (
            self.predicate is None or bool(self.predicate(item)))


class Observer:
    """`async with Observer(session, ["iot/ws", "$aws/events/#"]) as obs:` subscribes and
    records; stamped payloads add their send-to-arrival time to `metrics` as "e2e"."""

    def __init__(self, session: DeviceSession, topic_filters: Sequence[str],
                 metrics: Metrics | None = None, qos: int = 0, keep: int = 100_000):
        self.session = session
        self.topic_filters = list(topic_filters)
        self.metrics = metrics if metrics is not None else session.metrics
        self.qos = qos
        self.received: deque[Observed] = deque(maxlen=keep)
        self._count = 0
        self._waiters: list[_Waiter] = []
        self._task: asyncio.Task[None] | None = None
        self._ended: str | None = None

    async def __aenter__(self) -> Observer:
        # Straight from the read callback: no queue and no task per message.
        self.session.on_message(self._on_message)
        for topic_filter in self.topic_filters:
            await self.session.subscribe(topic_filter, self.qos)
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self.session.on_message(None)
        self._end("observer closed")

    async def _watch(self) -> None:
        try:
            await self.session.wait_ended()
        finally:
            self._end("connection closed")

    def _on_message(self, message: aiomqtt.Message) -> None:
        payload = message.payload if isinstance(message.payload, bytes) else (
            str(message.payload).encode() if message.payload is not None else b"")
        self.add(str(message.topic), payload, message.qos, message.retain)

    def _end(self, reason: str) -> None:
        self._ended = self._ended or reason
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.set_exception(DeviceError("observer_closed", reason))
        self._waiters.clear()

    def add(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> Observed:
        """Record one arrival (called by the reader; public for tests and replays)."""
        item = Observed(self._count, topic, payload, _parse(payload), time.time_ns(), qos,
                        retain)
        self._count += 1
        self.received.append(item)
        self.metrics.incr("messages.received")
        e2e = item.e2e_us
        if e2e is not None:
            self.metrics.record("e2e", e2e, step=self.metrics.active_step or None)
        if self._waiters:
            for waiter in [w for w in self._waiters if w.matches(item)]:
                if not waiter.future.done():
                    waiter.future.set_result(item)
                self._waiters.remove(waiter)
        return item

    def mark(self) -> int:
        """A position: pass it as `since` to consider only later arrivals."""
        return self._count

    def matching(self, topic_filter: str = "#", predicate: Predicate | None = None,
                 since: int = 0) -> list[Observed]:
        return [m for m in self.received if m.seq >= since
                and topic_matches_sub(topic_filter, m.topic)
                and (predicate is None or predicate(m))]

    async def wait_for(self, topic_filter: str, predicate: Predicate | None = None,
                       timeout: float = 10.0, since: int = 0) -> Observed:
        """The first message (from position `since`) on `topic_filter` that satisfies
        `predicate`, already received or arriving within `timeout` seconds."""
        found = self.matching(topic_filter, predicate, since)
        if found:
            return found[0]
        if self._ended:
            raise DeviceError("observer_closed", self._ended)
        waiter = _Waiter(topic_filter, predicate, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(asyncio.shield(waiter.future), timeout)
        except TimeoutError:
            seen = sorted({m.topic for m in self.received if m.seq >= since})
            raise TimeoutError(
                f"no message on {topic_filter!r} matching within {timeout}s; "
                f"seen since then: {', '.join(seen[:10]) or 'nothing'}") from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    async def wait_for_count(self, topic_filter: str, count: int,
                             predicate: Predicate | None = None, timeout: float = 10.0,
                             since: int = 0) -> list[Observed]:
        """`count` matching messages, waiting up to `timeout` seconds in all."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.matching(topic_filter, predicate, since)
            left = deadline - time.monotonic()
            if len(found) >= count:
                return found[:count]
            try:
                if left <= 0:
                    raise TimeoutError
                await self.wait_for(topic_filter, predicate, left, since=self._count)
            except TimeoutError:
                raise TimeoutError(f"{len(found)} of {count} messages on {topic_filter!r} "
                                   f"within {timeout}s") from None
