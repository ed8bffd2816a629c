"""MQTT session state, which outlives a connection when clean session is 0 (MQTT 3.1.1) or the
Session Expiry Interval is above 0 (MQTT 5).

AWS IoT ("Using MQTT persistent sessions"): a persistent session keeps subscriptions and QoS 1
messages not yet acknowledged, stores new QoS 1 messages while the client is offline and ends an
hour (default quota) after the client disconnects. The broker keeps at most 100 unacknowledged
QoS 1 messages in flight per client (fewer if an MQTT 5 client's Receive Maximum says so); more
wait until PUBACKs arrive. A message whose Message Expiry Interval has passed is not sent
("MQTT 5 supported features", Message expiry: queued messages).
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from fleetsim.localcore.broker.authz import Authorizer
from fleetsim.localcore.broker.properties import MessageProps

MAX_INFLIGHT = 100
MAX_QUEUED = 1000  # per session; beyond this the oldest queued message is dropped

# (topic already length-prefixed, payload, retain flag, MQTT 5 properties)
Queued = tuple[bytes, bytes, bool, MessageProps | None]


class Outlet(Protocol):
    """What a session needs from the connection it is bound to."""

    v5: bool

    def send(self, data: bytes) -> None: ...

    def send_publish(self, topic: bytes, payload: bytes, qos: int, retain: bool, dup: bool,
                     packet_id: int, props: MessageProps | None) -> bool:
        """Encode for this client and queue; False if not sent (expired, or larger than the
        client's Maximum Packet Size)."""
        ...

    def congested(self) -> bool: ...


class Session:
    __slots__ = ("_next_id", "authz", "client_id", "conn", "expires_at", "expiry", "inflight",
                 "pending", "subscriptions", "window")

    def __init__(self, client_id: str, expiry: float):
        self.client_id = client_id
        self.expiry = expiry  # seconds the session outlives its connection; 0: it ends with it
        self.window = MAX_INFLIGHT
        # topic filter ("$share/<group>/<filter>" included) -> subscription options byte
        self.subscriptions: dict[str, int] = {}
        self.conn: Outlet | None = None
        self.authz: Authorizer | None = None
        self.inflight: dict[int, Queued] = {}
        self.pending: deque[Queued] = deque()
        self.expires_at = 0.0
        self._next_id = 0

    @property
    def persistent(self) -> bool:
        return self.expiry > 0

    def send_qos1(self, topic: bytes, payload: bytes, retain: bool = False,
                  props: MessageProps | None = None) -> None:
        conn = self.conn
        if conn is None or len(self.inflight) >= self.window:
            if len(self.pending) >= MAX_QUEUED:
                self.pending.popleft()
            self.pending.append((topic, payload, retain, props))
            return
        packet_id = self._packet_id()
        if conn.send_publish(topic, payload, 1, retain, False, packet_id, props):
            self.inflight[packet_id] = (topic, payload, retain, props)

    def acknowledge(self, packet_id: int) -> None:
        if self.inflight.pop(packet_id, None) is not None:
            self.drain()

    def resume(self) -> None:
        """After a reconnect: unacknowledged messages again (DUP set), then queued ones."""
        conn = self.conn
        assert conn is not None
        for packet_id, (topic, payload, retain, props) in list(self.inflight.items()):
            if not conn.send_publish(topic, payload, 1, retain, True, packet_id, props):
                del self.inflight[packet_id]  # expired while the client was away
        self.drain()

    def drain(self) -> None:
        while self.pending and self.conn is not None and len(self.inflight) < self.window:
            self.send_qos1(*self.pending.popleft())

    def _packet_id(self) -> int:
        while True:
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self.inflight:
                return self._next_id
