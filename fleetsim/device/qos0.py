"""QoS 0 PUBLISH of MQTT 3.1.1 written straight to a device's socket.

paho's `publish` builds an MQTTMessage, an MQTTMessageInfo and a queue entry under three locks
for every message, then a write loop takes it off the queue: ~26 µs of Python per message
here, most of what a telemetry message costs the device side besides TLS. For QoS 0 nothing of
that outlives the write, so when nothing is queued before it, the packet (MQTT 3.1.1 §3.3:
fixed header 0x30 | RETAIN, remaining length, topic, payload) goes to the socket at once; what
the socket does not take joins paho's queue, as paho would have left it.
"""

from __future__ import annotations

import ssl
import struct
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import _ConnectionState

PUBLISH = 0x30
_CONNECTED = _ConnectionState.MQTT_CS_CONNECTED


def remaining_length(n: int) -> bytes:
    """MQTT's variable-length integer (1-4 bytes, 7 bits each, low first)."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def publish_packet(topic: bytes, payload: bytes, retain: bool) -> bytes:
    body = len(topic) + 2 + len(payload)
    return b"".join((bytes((PUBLISH | retain,)), remaining_length(body),
                     struct.pack("!H", len(topic)), topic, payload))


def as_bytes(payload: Any) -> bytes | None:
    """The payload as paho would send it, or None for a type left to paho."""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    if payload is None:
        return b""
    return None


def try_write(client: paho.Client, topic: str, payload: Any, retain: bool) -> bool:
    """Write the PUBLISH if paho has nothing queued before it; False: left to paho (not
    connected, something queued, or a topic or payload paho must check or convert).
    OSError: the connection broke."""
    sock = client._sock
    if sock is None or client._out_packet or client._state != _CONNECTED:
        return False
    body = as_bytes(payload)
    if body is None or len(body) > 268_435_455 - 65_537 or "+" in topic or "#" in topic:
        return False
    name = topic.encode()
    if not name or len(name) > 65_535:
        return False
    packet = publish_packet(name, body, retain)
    try:
        sent = sock.send(packet)
    except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
        sent = 0
    client._last_msg_out = paho.time_func()  # paho's keep-alive counts outgoing packets
    if sent < len(packet):
        # OpenSSL wants the same bytes again: queued whole, as paho queues its own.
        info = paho.MQTTMessageInfo(0)
        client._out_packet.append({"command": PUBLISH, "mid": 0, "qos": 0, "pos": sent,
                                   "to_process": len(packet) - sent, "packet": packet,
                                   "info": info})
    return True
