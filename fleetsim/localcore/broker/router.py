"""The reserved-topic router: local-core features answer requests clients publish to `$aws/...`.

A feature registers an exact topic pattern whose `{name}` levels capture one non-empty level,
with an async handler and how its replies are delivered (AWS IoT developer guide, "Reserved
topics"):

- `broadcast` (shadows): the request is an ordinary message (its topics are Publish/Subscribe:
  subscribers and rules see it too) and replies go through the broker to every subscriber
  allowed to receive them, and to `Broker.on_message`.
- `requester` (jobs): "the message broker will publish response message topics to the client
  that published the command message, whether or not your client has subscribed to the
  response message topics. These response messages don't pass through the message broker and
  can't be subscribed to by other clients or rules" ("Jobs device MQTT API operations"). The
  request topics are Publish-only, so the request reaches the handler alone: no subscriber and
  no rule sees it.
- `subscribed_requester` (fleet provisioning): as `requester`, but a reply reaches the
  requesting connection only if it subscribed to the reply topic before ("Device provisioning
  MQTT API": subscribe to the response topics before publishing a request; the replies carry
  private keys, so nobody else ever gets them).

Handlers never run inside routing: `submit` queues the request and a task per client runs that
client's requests one after another, in arrival order. `Request.in_flight` counts the client's
requests to the same registration accepted and not yet finished, this one included (the
shadow service's limit is 10 per connection).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from fleetsim.runtime import cancel_and_wait

log = logging.getLogger(__name__)

Delivery = Literal["broadcast", "requester", "subscribed_requester"]
DELIVERIES = ("broadcast", "requester", "subscribed_requester")
_CAPTURE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Request:
    """One client publish to a registered reserved topic, as its handler sees it."""

    topic: str
    payload: bytes
    qos: int
    client_id: str
    certificate_id: str
    thing_name: str | None  # the connection's thing, as thing policy variables resolve it
    params: Mapping[str, str]  # the pattern's {captures}
    in_flight: int = 1


class Reply(Protocol):
    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Send a reply as local core: through the broker (`broadcast`) or to the requesting
        connection only (`requester`). QoS 1 by default: each receiver gets
        min(1, the QoS it subscribed with), as MQTT delivers any QoS 1 publish."""
        ...


Handler = Callable[[Request, Reply], Awaitable[None]]


@dataclass(frozen=True, eq=False)
class Route:
    pattern: str
    handler: Handler
    delivery: Delivery
    levels: tuple[str, ...]  # literal levels; "" where the pattern captures
    names: tuple[str | None, ...]  # capture name per level, None for literals
    specificity: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "specificity", sum(n is None for n in self.names))

    def match(self, levels: list[str]) -> dict[str, str] | None:
        params: dict[str, str] = {}
        for level, literal, name in zip(levels, self.levels, self.names, strict=True):
            if name is None:
                if level != literal:
                    return None
            elif level:
                params[name] = level
            else:
                return None
        return params


def parse_pattern(pattern: str) -> tuple[tuple[str, ...], tuple[str | None, ...]]:
    """(literal levels, capture names) of a pattern; ValueError if it is not one."""
    if not pattern.startswith("$aws/"):
        raise ValueError(f"{pattern!r}: reserved-topic patterns start with $aws/")
    levels: list[str] = []
    names: list[str | None] = []
    for level in pattern.split("/"):
        m = _CAPTURE.fullmatch(level)
        if m is not None:
            if m.group(1) in names:
                raise ValueError(f"{pattern!r}: capture {{{m.group(1)}}} appears twice")
            levels.append("")
            names.append(m.group(1))
        elif not level or any(c in level for c in "{}+#"):
            raise ValueError(f"{pattern!r}: level {level!r} is neither literal nor {{name}}")
        else:
            levels.append(level)
            names.append(None)
    return tuple(levels), tuple(names)


class Router:
    def __init__(self) -> None:
        self._by_depth: dict[int, list[Route]] = {}
        self._queues: dict[Hashable, deque[tuple[Route, Request, Reply]]] = {}
        self._in_flight: dict[tuple[Hashable, Route], int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def register(self, pattern: str, handler: Handler,
                 delivery: Delivery = "broadcast") -> Route:
        """Route client publishes to topics matching `pattern` to `handler`."""
        if delivery not in DELIVERIES:
            raise ValueError(f"delivery must be one of {DELIVERIES}, not {delivery!r}")
        levels, names = parse_pattern(pattern)
        routes = self._by_depth.setdefault(len(levels), [])
        if any(r.levels == levels for r in routes):  # same literals, captures in same places
            raise ValueError(f"{pattern!r}: a registration already covers these topics")
        route = Route(pattern, handler, delivery, levels, names)
        routes.append(route)
        routes.sort(key=lambda r: -r.specificity)  # the most literal pattern wins
        return route

    def match(self, topic: str) -> tuple[Route, dict[str, str]] | None:
        """The registration for `topic` (the most literal one if several match) and its
        captures, or None."""
        if not topic.startswith("$aws/"):
            return None
        levels = topic.split("/")
        for route in self._by_depth.get(len(levels), ()):
            params = route.match(levels)
            if params is not None:
                return route, params
        return None

    def submit(self, route: Route, origin: Hashable, request: Request, reply: Reply) -> None:
        """Accept a request from `origin` (a connection): its handler runs later, after the
        earlier requests of the same origin."""
        key = (origin, route)
        in_flight = self._in_flight.get(key, 0) + 1
        self._in_flight[key] = in_flight
        queue = self._queues.get(origin)
        if queue is None:
            queue = self._queues[origin] = deque()
            task = asyncio.get_running_loop().create_task(self._drain(origin, queue))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        queue.append((route, replace(request, in_flight=in_flight), reply))

    async def _drain(self, origin: Hashable,
                     queue: deque[tuple[Route, Request, Reply]]) -> None:
        try:
            while queue:
                route, request, reply = queue[0]
                try:
                    await route.handler(request, reply)
                except Exception:  # costs this request only: later ones still run
                    log.exception("client %r: handler for %s failed on %s", request.client_id,
                                  route.pattern, request.topic)
                finally:
                    queue.popleft()
                    self._finished((origin, route))
        finally:
            for route, _, _ in queue:  # cancelled: nothing left will run
                self._finished((origin, route))
            queue.clear()
            del self._queues[origin]

    def _finished(self, key: tuple[Hashable, Route]) -> None:
        left = self._in_flight[key] - 1
        if left:
            self._in_flight[key] = left
        else:
            del self._in_flight[key]

    async def close(self) -> None:
        """Cancel every queued and running request."""
        for task in list(self._tasks):
            await cancel_and_wait(task)
