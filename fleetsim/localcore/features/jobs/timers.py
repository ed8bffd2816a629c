"""One task that fires keyed deadlines: the jobs feature's rollout ticks, scheduled starts and
ends, and execution timeouts. Re-arming a key replaces its deadline; the handler re-reads the
state it acts on, so a deadline armed twice or left over from before a restart does no harm.
The clock is injected: unit tests call `run_due(now)` instead of sleeping."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Callable, Hashable

from fleetsim.runtime import cancel_and_wait

log = logging.getLogger(__name__)


class Timers:
    def __init__(self, clock: Callable[[], float], fire: Callable[[Hashable], None]):
        self._clock = clock
        self._fire = fire
        self._heap: list[tuple[float, int, Hashable]] = []
        self._armed: dict[Hashable, float] = {}
        self._order = itertools.count()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def arm(self, key: Hashable, when: float) -> None:
        earliest = self.next_at()
        self._armed[key] = when
        heapq.heappush(self._heap, (when, next(self._order), key))
        if self._task is None:
            with contextlib.suppress(RuntimeError):  # no loop runs: `run_due` drives them
                asyncio.get_running_loop()
                self.start()
        if self._wake is not None and (earliest is None or when < earliest):
            self._wake.set()

    def cancel(self, key: Hashable) -> None:
        self._armed.pop(key, None)

    def next_at(self) -> float | None:
        while self._heap and self._armed.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # superseded or cancelled
        return self._heap[0][0] if self._heap else None

    def run_due(self, now: float) -> int:
        """Fire every deadline at or before `now`; how many fired."""
        fired = 0
        while True:
            when = self.next_at()
            if when is None or when > now:
                return fired
            _, _, key = heapq.heappop(self._heap)
            del self._armed[key]
            fired += 1
            try:
                self._fire(key)
            except Exception:  # one job's fault does not stop the others' timers
                log.exception("jobs: timer %r failed", key)

    def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            when = self.next_at()
            timeout = None if when is None else max(0.0, when - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            self.run_due(self._clock())

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
