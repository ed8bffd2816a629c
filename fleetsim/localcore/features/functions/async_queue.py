"""Asynchronous (Event) invocations: queued, run in the background, and retried on a function
error "two more times, with a one-minute wait between the first two attempts, and two minutes
between the second and third attempts" ("How Lambda handles errors and retries with
asynchronous invocation"). The queue lives in memory: events queued when local core stops are
lost."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from fleetsim.localcore.scope import Scope

log = logging.getLogger(__name__)
RETRY_DELAYS_S = (60.0, 120.0)


@dataclass(frozen=True)
class Event:
    scope: Scope
    name: str
    payload: bytes
    attempt: int = 0


# Runs one attempt: True if the function succeeded; LookupError if it no longer exists.
Attempt = Callable[[Event], Awaitable[bool]]


class EventQueue:
    def __init__(self, attempt: Attempt, retry_delays: Sequence[float] = RETRY_DELAYS_S,
                 consumers: int = 16):
        self._attempt = attempt
        self._delays = tuple(retry_delays)
        self._consumers = consumers
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()

    def put(self, event: Event) -> None:
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._consume()) for _ in range(self._consumers)]
        self._queue.put_nowait(event)

    async def join(self) -> None:
        """Wait until every queued event has had its attempt (retries scheduled later are
        not waited for)."""
        await self._queue.join()

    async def _consume(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                ok = await self._attempt(event)
            except LookupError:
                ok = True  # the function was deleted: the event is dropped
            except Exception:
                log.exception("asynchronous invocation of %s failed", event.name)
                ok = False
            finally:
                self._queue.task_done()
            if not ok and event.attempt < len(self._delays):
                self._retry(event)

    def _retry(self, event: Event) -> None:
        later = Event(event.scope, event.name, event.payload, event.attempt + 1)

        def fire() -> None:
            self._timers.discard(timer)
            self._queue.put_nowait(later)
        timer = asyncio.get_running_loop().call_later(self._delays[event.attempt], fire)
        self._timers.add(timer)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for timer in self._timers:
            timer.cancel()
