"""The telemetry behaviour: every device of a fleet publishes at its own rate, spread out.

One ticker drives the whole fleet (a heap of next-publish times) rather than a task per
device: at thousands of devices the per-task wake-ups cost more than the publishes
(measured with bench/fleet.py: 0.26 vs 0.19 ms CPU per message at 2,000 devices).
`publish_periodically` is that ticker; the `telemetry` step (fleetsim/engine/steps) runs it
for a fleet, and bench/fleet.py measures it as the engine runs it."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from fleetsim.device.errors import DeviceError
from fleetsim.device.session import DeviceSession

# A message is sent up to this share of its period late (at most MAX_SLACK_S): the ticker
# sleeps until the next message is due plus that slack, then sends all that fell due. At 200
# msg/s over 1,000 devices (period 5 s) that is one wake-up per 50 ms for ~10 messages,
# where a wake-up per message (or per 10 ms) cost more than the messages.
SLACK_SHARE = 0.01
MAX_SLACK_S = 0.05


@dataclass
class Stream:
    """One device's telemetry: where it goes and what the n-th message (from 1) says."""

    session: Callable[[], DeviceSession | None]  # None once the device is disconnected
    topic: str
    body: Callable[[int], bytes]


async def _qos1(session: DeviceSession, topic: str, body: bytes) -> None:
    with contextlib.suppress(DeviceError):  # counted by the session under mqtt.publish
        await session.publish(topic, body, qos=1)


async def publish_periodically(streams: list[Stream], period: float, until: float,
                               qos: int = 0) -> int:
    """Every stream publishes once per `period` seconds, each at a random phase within the
    first period, until the monotonic time `until`; returns how many messages were sent."""
    start = time.monotonic()
    heap = [(start + random.uniform(0, period), i) for i in range(len(streams))]
    heapq.heapify(heap)
    seqs = [0] * len(streams)
    pending: set[asyncio.Task[None]] = set()
    sent = 0
    slack = min(period * SLACK_SHARE, MAX_SLACK_S)
    try:
        while heap:
            delay = heap[0][0] - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay + slack)
            now = time.monotonic()
            if now >= until:
                return sent
            while heap and heap[0][0] <= now:
                due, i = heapq.heappop(heap)
                stream = streams[i]
                session = stream.session()
                if session is None:
                    continue  # disconnected: this stream is done
                seqs[i] += 1
                body = stream.body(seqs[i])
                if qos == 0:
                    # A failure is counted by the session under mqtt.publish; the device
                    # goes on (and reconnects, if its session does).
                    with contextlib.suppress(DeviceError):
                        session.publish_nowait(stream.topic, body)
                        sent += 1
                else:
                    task = asyncio.ensure_future(_qos1(session, stream.topic, body))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                    sent += 1
                heapq.heappush(heap, (due + period, i))
        return sent
    finally:
        if pending:
            await asyncio.wait(pending, timeout=5)
