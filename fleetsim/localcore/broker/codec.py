"""MQTT 3.1.1 packets: framing, decoding of what clients send, encoding of what the broker sends."""

from __future__ import annotations

import struct
from dataclasses import dataclass

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

# CONNACK return codes
ACCEPTED = 0x00
UNACCEPTABLE_PROTOCOL_VERSION = 0x01
IDENTIFIER_REJECTED = 0x02
SUBACK_FAILURE = 0x80

PINGRESP_PACKET = b"\xd0\x00"
_U16 = struct.Struct(">H")


class MalformedPacket(ValueError):
    """The peer broke the MQTT 3.1.1 wire format; the connection must be closed."""


@dataclass(slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(slots=True)
class Connect:
    protocol_name: str
    protocol_level: int
    client_id: str
    clean_session: bool
    keepalive: int
    will: Will | None
    username: str | None


def frame_header(data: bytes | bytearray, pos: int, max_length: int) -> tuple[int, int] | None:
    """(offset of the body, body length) of the packet starting at `pos`, or None if more bytes
    are needed. Raises MalformedPacket for a bad length or one above `max_length`."""
    length = 0
    shift = 0
    i = pos + 1
    end = len(data)
    while True:
        if i >= end:
            return None
        byte = data[i]
        i += 1
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift > 21:
            raise MalformedPacket("remaining length longer than 4 bytes")
        if length > max_length:
            raise MalformedPacket(f"packet of more than {max_length} bytes")
    if length > max_length:
        raise MalformedPacket(f"packet of {length} bytes, more than {max_length}")
    return i, length


def encode_length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        if length:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _string(body: bytes, pos: int) -> tuple[str, int]:
    raw, pos = _binary(body, pos)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MalformedPacket("string is not valid UTF-8") from e
    if "\x00" in text:
        raise MalformedPacket("string contains U+0000")
    return text, pos


def _binary(body: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 2 > len(body):
        raise MalformedPacket("truncated length-prefixed field")
    (n,) = _U16.unpack_from(body, pos)
    pos += 2
    if pos + n > len(body):
        raise MalformedPacket("truncated length-prefixed field")
    return bytes(body[pos:pos + n]), pos + n


def decode_connect(body: bytes) -> Connect:
    name, pos = _string(body, 0)
    if pos + 4 > len(body):
        raise MalformedPacket("truncated CONNECT")
    level = body[pos]
    flags = body[pos + 1]
    (keepalive,) = _U16.unpack_from(body, pos + 2)
    pos += 4
    if flags & 0x01:
        raise MalformedPacket("reserved CONNECT flag set")
    client_id, pos = _string(body, pos)
    will = None
    will_qos = (flags >> 3) & 0x03
    if flags & 0x04:
        if will_qos == 3:
            raise MalformedPacket("will QoS 3")
        topic, pos = _string(body, pos)
        payload, pos = _binary(body, pos)
        will = Will(topic, payload, will_qos, bool(flags & 0x20))
    elif will_qos or flags & 0x20:
        raise MalformedPacket("will QoS/retain without will flag")
    username = None
    if flags & 0x80:
        username, pos = _string(body, pos)
    if flags & 0x40:
        _, pos = _binary(body, pos)
    return Connect(name, level, client_id, bool(flags & 0x02), keepalive, will, username)


def decode_publish(flags: int, body: bytes) -> tuple[str, bytes, int, bool, int]:
    """(topic, payload, qos, retain, packet id or 0)."""
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise MalformedPacket("PUBLISH with QoS 3")
    topic, pos = _string(body, 0)
    packet_id = 0
    if qos:
        if pos + 2 > len(body):
            raise MalformedPacket("PUBLISH without packet id")
        (packet_id,) = _U16.unpack_from(body, pos)
        pos += 2
    return topic, body[pos:], qos, bool(flags & 0x01), packet_id


def decode_subscribe(body: bytes) -> tuple[int, list[tuple[str, int]]]:
    packet_id, pos = packet_id_of(body), 2
    filters: list[tuple[str, int]] = []
    while pos < len(body):
        topic_filter, pos = _string(body, pos)
        if pos >= len(body):
            raise MalformedPacket("SUBSCRIBE filter without QoS")
        requested = body[pos]
        pos += 1
        if requested & 0xFC:
            raise MalformedPacket("SUBSCRIBE reserved bits set")
        filters.append((topic_filter, requested))
    if not filters:
        raise MalformedPacket("SUBSCRIBE without filters")
    return packet_id, filters


def decode_unsubscribe(body: bytes) -> tuple[int, list[str]]:
    packet_id, pos = packet_id_of(body), 2
    filters: list[str] = []
    while pos < len(body):
        topic_filter, pos = _string(body, pos)
        filters.append(topic_filter)
    if not filters:
        raise MalformedPacket("UNSUBSCRIBE without filters")
    return packet_id, filters


def packet_id_of(body: bytes) -> int:
    if len(body) < 2:
        raise MalformedPacket("missing packet id")
    return _U16.unpack_from(body, 0)[0]


def connack(session_present: bool, code: int) -> bytes:
    return bytes((0x20, 2, 1 if session_present else 0, code))


def puback(packet_id: int) -> bytes:
    return b"\x40\x02" + _U16.pack(packet_id)


def unsuback(packet_id: int) -> bytes:
    return b"\xb0\x02" + _U16.pack(packet_id)


def suback(packet_id: int, codes: list[int]) -> bytes:
    return b"\x90" + encode_length(2 + len(codes)) + _U16.pack(packet_id) + bytes(codes)


def encode_topic(topic: str) -> bytes:
    raw = topic.encode()
    return _U16.pack(len(raw)) + raw


def publish(topic: bytes, payload: bytes, qos: int = 0, retain: bool = False, dup: bool = False,
            packet_id: int = 0) -> bytes:
    """A PUBLISH packet; `topic` is already length-prefixed (see `encode_topic`)."""
    first = 0x30 | (qos << 1) | (0x01 if retain else 0) | (0x08 if dup else 0)
    if qos:
        return b"".join((bytes((first,)), encode_length(len(topic) + 2 + len(payload)), topic,
                         _U16.pack(packet_id), payload))
    return b"".join((bytes((first,)), encode_length(len(topic) + len(payload)), topic, payload))


def encode_connect(client_id: str, keepalive: int = 60, clean_session: bool = True,
                   will: Will | None = None) -> bytes:
    """A CONNECT packet (for tests and tools: the broker never sends one)."""
    flags = 0x02 if clean_session else 0
    body = encode_topic("MQTT") + bytes((4,))
    tail = encode_topic(client_id)
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        tail += encode_topic(will.topic) + _U16.pack(len(will.payload)) + will.payload
    body += bytes((flags,)) + _U16.pack(keepalive) + tail
    return b"\x10" + encode_length(len(body)) + body


def encode_subscribe(packet_id: int, filters: list[tuple[str, int]]) -> bytes:
    """A SUBSCRIBE packet (for tests and tools)."""
    body = _U16.pack(packet_id) + b"".join(encode_topic(f) + bytes((q,)) for f, q in filters)
    return b"\x82" + encode_length(len(body)) + body
