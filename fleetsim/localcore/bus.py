"""The internal bus: features announce what happened (a thing was created, a certificate
changed state, a message was published) and other features react, without calling each other.

    unsubscribe = bus.subscribe(ThingDeleted, on_thing_deleted)
    bus.publish(ThingDeleted(scope, thing))

`publish` only enqueues: handlers run later, on the loop, in publication order, never inside
the publisher's call (so a handler that publishes to the broker cannot re-enter the broker's
routing). With `after_commit` (the database's), an event published inside a transaction is
queued only when the outermost transaction commits, and dropped if it rolls back: nobody
reacts to what did not happen. A handler's
exception is logged and the next handler runs. Announcements are frozen dataclasses; a handler
subscribes to one exact type. `drain()` waits until the queue is empty (tests, shutdown).
Delivery yields to the loop every `YIELD_EVERY` events: a handler whose events lead to more
events (a topic rule republishing to a topic its own filter matches) must not starve the
broker and the API while the queue never empties.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fleetsim.runtime import cancel_and_wait

log = logging.getLogger(__name__)

E = TypeVar("E")
Handler = Callable[[Any], Awaitable[None] | None]

YIELD_EVERY = 256  # events delivered between two turns of the loop for everything else


@dataclass(frozen=True, slots=True)
class MessagePublished:
    """A message the broker routed (after authorization), as rules and services see it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    client_id: str | None  # None for messages local core published itself
    principal_id: str | None


class Bus:
    def __init__(self, after_commit: Callable[[Callable[[], None]], None] | None = None):
        self._after_commit = after_commit
        self._handlers: dict[type, list[Handler]] = {}
        self._queue: deque[Any] = deque()
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, event_type: type[E], handler: Callable[[E], Awaitable[None] | None]
                  ) -> Callable[[], None]:
        """Call `handler` with every published event of exactly `event_type`; returns a
        function that removes the subscription."""
        handlers = self._handlers.setdefault(event_type, [])
        handlers.append(handler)

        def unsubscribe() -> None:
            if handler in handlers:
                handlers.remove(handler)
        return unsubscribe

    def publish(self, event: object) -> None:
        """Queue `event` for delivery on the running loop (once the transaction it belongs to
        commits); never runs a handler now."""
        if type(event) not in self._handlers:
            return
        if self._after_commit is None:
            self._enqueue(event)
        else:
            self._after_commit(lambda: self._enqueue(event))

    def _enqueue(self, event: object) -> None:
        self._queue.append(event)
        self._ensure_task().set()

    async def drain(self) -> None:
        """Return once every event published so far (and those their handlers publish) has
        been delivered."""
        while self._queue or (self._idle is not None and not self._idle.is_set()):
            assert self._idle is not None
            await self._idle.wait()

    async def close(self) -> None:
        await self.drain()
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    def _ensure_task(self) -> asyncio.Event:
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._idle = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._deliver())
        assert self._wake is not None and self._idle is not None
        self._idle.clear()
        return self._wake

    async def _deliver(self) -> None:
        assert self._wake is not None and self._idle is not None
        while True:
            delivered = 0
            while self._queue:
                if delivered == YIELD_EVERY:
                    delivered = 0
                    await asyncio.sleep(0)
                    continue  # the queue may have changed meanwhile
                delivered += 1
                event = self._queue.popleft()
                for handler in list(self._handlers.get(type(event), ())):
                    try:
                        result = handler(event)
                        if result is not None:
                            await result
                    except Exception:
                        log.exception("bus handler %r failed on %r", handler, event)
            self._idle.set()
            self._wake.clear()
            await self._wake.wait()
