"""Pacing many devices: a start rate (constant or ramped), jitter and a concurrency cap.

A `Pacer` hands out start slots: `await pacer.slot()` returns when the next device may start.
Start times follow the rate curve r(t) (linear or stepped ramp), each shifted by a random
jitter, so that thousands of clients never line up on the same instant (aligned starts also
align paho's 1 s housekeeping timers, which shows up as latency spikes).

The pacer wakes once per `tick` (50 ms by default, `pacing.tick`) and starts together every
start that fell due during it, never one before its time: at 100 connects/s that is 5 every
50 ms instead of one every 10 ms. A start alone on an idle process pays for its own loop
wake-ups on cold caches: a connect cost 3.25 ms of CPU at 100/s started one by one, 2.90 ms
with a 20 ms tick, 2.30 ms with 50 ms and 2.24 ms with 100 ms (`python -m bench.connect_ramp
--rate 100`, openssl, issue 9). Any window of a tick or more sees the rate; `tick: 0` spaces
every start exactly, and `jitter` spreads a tick's starts again.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
# A loop that stops for up to this many ticks (a full collection, a batch of handshakes) still
# keeps the rate: 20,000 devices at 500/s, `python -m bench.fleet --devices 20000 --rate 500
# --concurrency 500`: 487 connects/s with one tick, 496 / 496 with three (p99 103-136 ms).
# Catching up in full (1 s behind, before the connect path left the kernel's port search:
# `device/source_ports.py`) queued the bursts in both processes, p99 1.77 s.
CATCH_UP_TICKS = 3


@dataclass(frozen=True)
class RateCurve:
    """Starts per second as a function of seconds since the first start."""

    start: float  # per second; 0 or less means "no limit"
    end: float | None = None  # with `over`: ramp from start to end
    over: float = 0.0
    profile: str = "linear"  # linear | step
    steps: int = 4

    def rate_at(self, t: float) -> float:
        if self.end is None or self.over <= 0 or t >= self.over:
            return self.end if self.end is not None and t >= self.over else self.start
        fraction = t / self.over
        if self.profile == "step":
            # `steps` equal plateaus from start to end, the last reached at `over`.
            fraction = min(int(fraction * self.steps) + 1, self.steps) / self.steps
        return self.start + (self.end - self.start) * fraction

    @property
    def unlimited(self) -> bool:
        return self.start <= 0 and (self.end is None or self.end <= 0)


class Pacer:
    """`share` (K, N): this pacer is the K-th of N processes that together keep to `curve`
    (a distributed run): it takes the K-th start of the curve's schedule and every N-th
    after it, so that their starts together are exactly one process's, interleaved, when
    they count from one `origin`."""

    def __init__(self, curve: RateCurve | None = None, jitter: float = 0.0,
                 clock: Callable[[], float] = time.monotonic, share: tuple[int, int] = (1, 1),
                 origin: float | None = None, tick: float = 0.0):
        self.curve = curve
        self.jitter = jitter
        self.tick = tick
        self._clock = clock
        # Shards of a distributed run share an origin (epoch seconds, made a `clock` time
        # here), so that their interleaved schedules make one; otherwise the first start.
        self._origin: float | None = (None if origin is None
                                      else clock() + origin - time.time())
        # A shard keeps to the shared schedule: what it could not start in time (it reached
        # the origin late, or its process was busy) starts at once, or the shards' schedules
        # would drift apart by its delays.
        self._catching_up = origin is not None
        k, self._stride = share
        self._next = self._advance(0.0, k - 1)  # seconds since origin of the next start

    def _advance(self, t: float, starts: int) -> float:
        """When the curve's schedule is `starts` starts after one at `t`."""
        if self.curve is None or self.curve.unlimited:
            return t
        for _ in range(starts):
            t += 1.0 / max(self.curve.rate_at(t), 1e-6)
        return t

    def _reserve(self, elapsed: float) -> float:
        """Seconds since origin at which the next start is due: the tick its place in the
        schedule falls in. Alone, a start that is late (the concurrency cap held it back, or
        the loop was busy) earns a burst to catch up of at most `CATCH_UP_TICKS` ticks; on a
        shared schedule it catches up in full (see `_catching_up`)."""
        due = self._next if self._catching_up else max(
            self._next, elapsed - CATCH_UP_TICKS * self.tick)
        self._next = self._advance(due, self._stride)
        if self.tick > 0:  # the end of its tick (the epsilon: 0.05 / 0.05 is not exactly 1)
            due = math.ceil(due / self.tick - 1e-9) * self.tick
        return due

    async def slot(self) -> float:
        """Wait until the next start is due; returns the jitter (seconds) the started action
        should wait on its own, so that jitter never slows the schedule itself."""
        now = self._clock()
        if self._origin is None:
            self._origin = now
        delay = self._origin + self._reserve(now - self._origin) - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)
        return random.uniform(0, self.jitter) if self.jitter else 0.0


async def paced(items: Iterable[T], action: Callable[[T], Awaitable[None]], pacer: Pacer,
                concurrency: int) -> None:
    """Start `action(item)` for each item at the pacer's slots, at most `concurrency` at once.
    Exceptions are the action's business: it must catch what it wants to count."""
    limit = asyncio.Semaphore(max(1, concurrency))

    async def run(item: T, jitter: float) -> None:
        try:
            if jitter:
                await asyncio.sleep(jitter)
            await action(item)
        finally:
            limit.release()

    tasks = []
    try:
        for item in items:
            await limit.acquire()
            jitter = await pacer.slot()
            tasks.append(asyncio.ensure_future(run(item, jitter)))
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
