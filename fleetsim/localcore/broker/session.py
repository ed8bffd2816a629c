"""MQTT session state, which outlives a connection when clean session is 0.

AWS IoT ("Using MQTT persistent sessions"): a persistent session keeps subscriptions and QoS 1
messages not yet acknowledged, stores new QoS 1 messages while the client is offline and ends an
hour (default quota) after the client disconnects. The broker keeps at most 100 unacknowledged
QoS 1 messages in flight per client; more wait until PUBACKs arrive.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from fleetsim.localcore.broker import codec
from fleetsim.localcore.broker.authz import Authorizer

MAX_INFLIGHT = 100
MAX_QUEUED = 1000  # per session; beyond this the oldest queued message is dropped

# (topic already length-prefixed, payload, retain flag)
Queued = tuple[bytes, bytes, bool]


class Outlet(Protocol):
    """What a session needs from the connection it is bound to."""

    def send(self, data: bytes) -> None: ...

    def congested(self) -> bool: ...


class Session:
    __slots__ = ("_next_id", "authz", "client_id", "conn", "expires_at", "inflight", "pending",
                 "persistent", "subscriptions")

    def __init__(self, client_id: str, persistent: bool):
        self.client_id = client_id
        self.persistent = persistent
        self.subscriptions: dict[str, int] = {}
        self.conn: Outlet | None = None
        self.authz: Authorizer | None = None
        self.inflight: dict[int, Queued] = {}
        self.pending: deque[Queued] = deque()
        self.expires_at = 0.0
        self._next_id = 0

    def send_qos1(self, topic: bytes, payload: bytes, retain: bool = False) -> None:
        conn = self.conn
        if conn is None or len(self.inflight) >= MAX_INFLIGHT:
            if len(self.pending) >= MAX_QUEUED:
                self.pending.popleft()
            self.pending.append((topic, payload, retain))
            return
        packet_id = self._packet_id()
        self.inflight[packet_id] = (topic, payload, retain)
        conn.send(codec.publish(topic, payload, 1, retain, False, packet_id))

    def acknowledge(self, packet_id: int) -> None:
        if self.inflight.pop(packet_id, None) is not None:
            self.drain()

    def resume(self) -> None:
        """After a reconnect: unacknowledged messages again (DUP set), then queued ones."""
        conn = self.conn
        assert conn is not None
        for packet_id, (topic, payload, retain) in self.inflight.items():
            conn.send(codec.publish(topic, payload, 1, retain, True, packet_id))
        self.drain()

    def drain(self) -> None:
        while self.pending and self.conn is not None and len(self.inflight) < MAX_INFLIGHT:
            self.send_qos1(*self.pending.popleft())

    def _packet_id(self) -> int:
        while True:
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self.inflight:
                return self._next_id
