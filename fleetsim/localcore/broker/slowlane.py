"""Connections whose CONNECT is still incomplete after a read take turns to be read again.

Each waits at least its interval (`PRE_CONNECT_READ_INTERVAL_S`), as one alone always did,
and the broker reads at most `per_interval` of them in each interval, oldest first: a client
that opens connection after connection and dribbles one-byte TLS records on each (its kernel
send buffer lets it move on while they drain) makes dozens of such connections; read each on
its own timer, they had the broker decrypt a third of its time (`preconnect.py` bounds what
one read costs, this bounds how many reads there are). A CONNECT that fits in one read is
never queued.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class SlowLane:
    def __init__(self, loop: Callable[[], asyncio.AbstractEventLoop], interval: float,
                 per_interval: int):
        self._loop = loop
        self.interval = interval
        self.gap = interval / per_interval
        self._queue: deque[tuple[float, Callable[[], bool]]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def wait(self, read_again: Callable[[], bool]) -> None:
        """Call `read_again` in turn, `interval` from now at the earliest; it says whether it
        read (False: the connection had gone meanwhile, and the turn passes on)."""
        loop = self._loop()
        self._queue.append((loop.time() + self.interval, read_again))
        if self._timer is None:
            self._timer = loop.call_later(self.interval, self._turn)

    def _turn(self) -> None:
        self._timer = None
        loop = self._loop()
        now = loop.time()
        while self._queue and self._queue[0][0] <= now:
            if self._queue.popleft()[1]():
                break
        if self._queue:
            self._timer = loop.call_later(max(self.gap, self._queue[0][0] - now), self._turn)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()
