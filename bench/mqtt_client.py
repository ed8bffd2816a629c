"""A raw MQTT 3.1.1 load client: one asyncio Protocol per connection, shared counters, no per-
message objects. Publishers count PUBACKs by bytes; subscribers parse frames, count PUBLISHes
and answer QoS 1 with PUBACKs batched into one write per read."""

from __future__ import annotations

import asyncio
import ssl
import struct
from dataclasses import dataclass, field

from fleetsim.localcore.broker import codec

_U16 = struct.Struct(">H")
KEEPALIVE_S = 1200  # no PINGREQ during a benchmark: publishers' input is PUBACKs only


@dataclass(slots=True)
class Counters:
    """Shared by every connection of one client process."""

    sent: int = 0
    acked: int = 0  # PUBACKs received by publishers
    delivered: int = 0  # PUBLISHes received by subscribers
    low_mark: int = 0  # wake the pump when sent - delivered falls to this
    waiter: asyncio.Future[None] | None = field(default=None, repr=False)

    def outstanding(self, qos: int) -> int:
        return self.sent - min(self.delivered, self.acked) if qos else self.sent - self.delivered

    def maybe_wake(self, qos: int) -> None:
        waiter = self.waiter
        if waiter is not None and self.outstanding(qos) <= self.low_mark and not waiter.done():
            waiter.set_result(None)


class LoadConnection(asyncio.Protocol):
    __slots__ = ("_buf", "_pending", "closed", "connack", "counters", "qos", "suback",
                 "subscriber", "transport")

    def __init__(self, counters: Counters, subscriber: bool = False):
        loop = asyncio.get_running_loop()
        self.counters = counters
        self.subscriber = subscriber
        self.qos = 0  # of the current load phase, for waking the pump
        self.transport: asyncio.Transport | None = None
        self.connack: asyncio.Future[int] = loop.create_future()
        self.suback: asyncio.Future[bytes] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._buf = b""
        self._pending = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if not self.connack.done():
            self.connack.set_exception(ConnectionError("closed before CONNACK"))

    def data_received(self, data: bytes) -> None:
        if not self.connack.done():
            data = self._buf + data
            if len(data) < 4:
                self._buf = data
                return
            self._buf = b""
            self.connack.set_result(data[3] if data[0] == 0x20 else -1)
            data = data[4:]
            if not data:
                return
        if self.subscriber:
            self._subscriber_data(data)
            return
        # A publisher only ever receives 4-byte PUBACKs.
        total = self._pending + len(data)
        self.counters.acked += total >> 2
        self._pending = total & 3
        if self.qos:
            self.counters.maybe_wake(1)

    def _subscriber_data(self, data: bytes) -> None:
        if self._buf:
            data = self._buf + data
        frames, self._buf = split_frames(data)
        acks: list[bytes] = []
        delivered = 0
        for first, start, length in frames:
            kind = first >> 4
            if kind == codec.PUBLISH:
                delivered += 1
                if first & 0x06:
                    (topic_len,) = _U16.unpack_from(data, start)
                    pid_at = start + 2 + topic_len
                    acks.append(b"\x40\x02" + data[pid_at:pid_at + 2])
            elif kind == codec.SUBACK and not self.suback.done():
                self.suback.set_result(data[start + 2:start + length])
        if acks and self.transport is not None:
            self.transport.write(b"".join(acks))
        if delivered:
            self.counters.delivered += delivered
            self.counters.maybe_wake(self.qos)

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"\xe0\x00")  # DISCONNECT
            self.transport.close()


def split_frames(data: bytes) -> tuple[list[tuple[int, int, int]], bytes]:
    """The complete MQTT packets at the start of `data`, each as (first byte, where its body
    starts, body length), and the bytes left over (an incomplete packet)."""
    frames: list[tuple[int, int, int]] = []
    pos, end = 0, len(data)
    while end - pos >= 2:
        header = codec.frame_header(data, pos, 1 << 28)
        if header is None:
            break
        start, length = header
        if start + length > end:
            break
        frames.append((data[pos], start, length))
        pos = start + length
    return frames, data[pos:] if pos < end else b""


async def read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(first byte, body) of the next packet on a stream."""
    first = (await reader.readexactly(1))[0]
    length, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
    return first, await reader.readexactly(length)


def client_context(root_ca: str, cert_path: str, key_path: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=root_ca)
    ctx.load_cert_chain(cert_path, key_path)
    return ctx


async def open_mqtt(port: int, ctx: ssl.SSLContext, client_id: str, counters: Counters,
                    subscriber: bool = False, timeout: float = 15.0) -> LoadConnection:
    """TLS connect, CONNECT, wait for CONNACK 0."""
    loop = asyncio.get_running_loop()
    _, conn = await asyncio.wait_for(loop.create_connection(
        lambda: LoadConnection(counters, subscriber), "127.0.0.1", port, ssl=ctx,
        server_hostname="127.0.0.1"), timeout)
    conn.write(codec.encode_connect(client_id, KEEPALIVE_S))
    code = await asyncio.wait_for(conn.connack, timeout)
    if code != 0:
        conn.close()
        raise ConnectionError(f"{client_id}: CONNACK {code}")
    return conn


async def subscribe(conn: LoadConnection, topic_filter: str, qos: int = 1) -> None:
    conn.write(codec.encode_subscribe(1, [(topic_filter, qos)]))
    codes = await asyncio.wait_for(conn.suback, 10)
    if codes != bytes((qos,)):
        raise ConnectionError(f"SUBACK {codes!r} for {topic_filter}")


def publish_packet(topic: str, payload: bytes, qos: int, packet_id: int = 0) -> bytes:
    return codec.publish(codec.encode_topic(topic), payload, qos, packet_id=packet_id)
