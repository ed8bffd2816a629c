"""A paho client made smaller for a device that holds it for its life (issue 9): ~1.2 KB of
the ~9 KB of Python objects a connected device holds (tracemalloc of `python -m
bench.device_memory --tracemalloc`), at no cost per packet.

- paho's queue of packets to write (`_out_packet`) is a `collections.deque`, which allocates a
  64-slot block even empty (~0.7 KB); it holds a packet only while the kernel buffer is full,
  so a list, which is empty at 56 bytes, does (popleft/appendleft on a list of one or two).
- paho makes seven threading locks per client (~0.1 KB each). FleetClient drives its paho
  client on one thread, the event loop's; six of them become one re-entrant lock (paho takes
  them nested, and only ever within one client). `_in_callback_mutex` stays a lock of its
  own: paho tests it with a non-blocking acquire to tell whether it is inside a callback.
"""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as paho

_SHARED_MUTEXES = ("_callback_mutex", "_msgtime_mutex", "_out_message_mutex",
                   "_in_message_mutex", "_reconnect_delay_mutex", "_mid_generate_mutex")


class Outbox(list[Any]):
    """paho's `_out_packet` as far as paho uses it (append, popleft, appendleft, clear, len,
    iteration)."""

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)

    def appendleft(self, item: Any) -> None:
        self.insert(0, item)


def compact(client: paho.Client) -> None:
    """Make a new, unconnected paho client smaller (module docstring)."""
    client._out_packet = Outbox(client._out_packet)  # type: ignore[assignment]
    mutex = threading.RLock()
    for name in _SHARED_MUTEXES:
        setattr(client, name, mutex)
