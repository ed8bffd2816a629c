"""One housekeeping task per event loop for every paho client on it.

paho needs `loop_misc()` called regularly (it sends PINGREQ when the keep-alive is due and
drops a connection whose PINGRESP is overdue). aiomqtt runs one task per client waking once a
second: 5,000 clients, 5,000 wake-ups a second, all aligned when devices start in batches.
Here one task visits every client once per `period`, a slice per tick, so the work is spread
evenly and costs one wake-up per tick. A keep-alive ping goes out at most `period` late
(brokers allow 1.5x the keep-alive).
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from typing import Protocol

log = logging.getLogger(__name__)

PERIOD_S = 2.0
TICK_S = 0.1


class Tended(Protocol):
    def loop_misc(self) -> object: ...


class Housekeeper:
    def __init__(self, period: float = PERIOD_S, tick: float = TICK_S):
        self.period = period
        self.tick = tick
        self._clients: dict[int, Tended] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, client: Tended, keepalive: float | None = None) -> None:
        """Visit `client` from now on; a short keep-alive shortens the period for all."""
        if keepalive:
            self.period = min(self.period, max(self.tick, keepalive / 2))
        self._clients[id(client)] = client
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def discard(self, client: Tended) -> None:
        self._clients.pop(id(client), None)

    def __len__(self) -> int:
        return len(self._clients)

    async def _run(self) -> None:
        while self._clients:
            ticks = max(1, round(self.period / self.tick))
            batch = list(self._clients.values())
            per_tick = math.ceil(len(batch) / ticks)
            for i in range(ticks):
                for client in batch[i * per_tick:(i + 1) * per_tick]:
                    if id(client) in self._clients:
                        self._visit(client)
                await asyncio.sleep(self.tick)

    @staticmethod
    def _visit(client: Tended) -> None:
        try:
            client.loop_misc()
        except Exception:  # one broken client must not stop the others' keep-alives
            log.exception("paho loop_misc failed")


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Housekeeper] = (
    weakref.WeakKeyDictionary())


def housekeeper() -> Housekeeper:
    """The running loop's housekeeper."""
    loop = asyncio.get_running_loop()
    keeper = _per_loop.get(loop)
    if keeper is None:
        keeper = _per_loop[loop] = Housekeeper()
    return keeper
