"""Pacing many devices: a start rate (constant or ramped), jitter and a concurrency cap.

A `Pacer` hands out start slots: `await pacer.slot()` returns when the next device may start.
Start times follow the rate curve r(t) (linear or stepped ramp), each shifted by a random
jitter, so that thousands of clients never line up on the same instant (aligned starts also
align paho's 1 s housekeeping timers, which shows up as latency spikes).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


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

    def share(self, k: int, n: int) -> tuple[RateCurve, float]:
        """The K-th of N processes' part of this curve, and the seconds its first start waits:
        each paces at 1/N of the rate, shifted by (K-1)/rate, so that their starts together
        follow this curve (and interleave, instead of N starts at each instant)."""
        if n == 1 or self.unlimited:
            return self, 0.0
        end = None if self.end is None else self.end / n
        part = RateCurve(self.start / n, end, self.over, self.profile, self.steps)
        first = self.rate_at(0.0)
        return part, (k - 1) / first if first > 0 else 0.0


class Pacer:
    def __init__(self, curve: RateCurve | None = None, jitter: float = 0.0,
                 clock: Callable[[], float] = time.monotonic, offset: float = 0.0):
        self.curve = curve
        self.jitter = jitter
        self._clock = clock
        self._origin: float | None = None
        self._next = offset  # seconds since origin of the next un-jittered start

    def _reserve(self, elapsed: float) -> float:
        """Seconds since origin at which the next start is due. A start that is late (the
        concurrency cap held it back) does not earn a burst to catch up."""
        due = max(self._next, elapsed)
        if self.curve is not None and not self.curve.unlimited:
            rate = max(self.curve.rate_at(due), 1e-6)
            self._next = due + 1.0 / rate
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
