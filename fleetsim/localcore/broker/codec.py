"""MQTT 3.1.1 packets: framing, decoding of what clients send, encoding of what the broker sends;
the framing and primitives here serve MQTT 5 (`codec5.py`) too.

Everything the OASIS MQTT 3.1.1 standard says a server MUST close the network connection for is
a `MalformedPacket` here (the connection drops it); the comments cite the normative statement,
e.g. [MQTT-3.8.3-4]. Section 4.8: "Unless stated otherwise, if either the Server or Client
encounters a protocol violation, it MUST close the Network Connection" [MQTT-4.8.0-1].
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

# CONNACK return codes
ACCEPTED = 0x00
UNACCEPTABLE_PROTOCOL_VERSION = 0x01
IDENTIFIER_REJECTED = 0x02
SUBACK_FAILURE = 0x80

PINGRESP_PACKET = b"\xd0\x00"

# Fixed-header flags each packet a client may send must carry (PUBLISH's are its own): "Where a
# flag bit is marked as 'Reserved' ... If invalid flags are received, the receiver MUST close
# the Network Connection" [MQTT-2.2.2-1], [MQTT-2.2.2-2].
CLIENT_FLAGS = {CONNECT: 0x0, PUBACK: 0x0, PUBREC: 0x0, PUBREL: 0x2, PUBCOMP: 0x0,
                SUBSCRIBE: 0x2, UNSUBSCRIBE: 0x2, PINGREQ: 0x0, DISCONNECT: 0x0}
_U16 = struct.Struct(">H")


class MalformedPacket(ValueError):
    """The peer broke the MQTT wire format; the connection must be closed. `code` is the MQTT 5
    reason code an MQTT 5 client is told (CONNACK or DISCONNECT) before it is closed."""

    code = 0x81  # Malformed Packet


class ProtocolError(MalformedPacket):
    """Well-formed bytes the standard forbids (MQTT 5: reason code 0x82)."""

    code = 0x82


class PacketTooLarge(MalformedPacket):
    """A packet above the broker's Maximum Packet Size (MQTT 5: reason code 0x95)."""

    code = 0x95


@dataclass(slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    # MQTT 5 only: the will's forwarded properties (encoded), Message Expiry and Will Delay.
    forwarded: bytes = b""
    expiry: int | None = None
    delay: int = 0


@dataclass(slots=True)
class Connect:
    protocol_name: str
    protocol_level: int
    client_id: str
    clean_session: bool
    keepalive: int
    will: Will | None
    username: str | None
    properties: dict[int, Any] = field(default_factory=dict)  # MQTT 5 only


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
        if shift > 21:  # section 2.2.3: at most four bytes
            raise MalformedPacket("remaining length longer than 4 bytes")
        if length > max_length:
            raise PacketTooLarge(f"packet of more than {max_length} bytes")
    if length > max_length:
        raise PacketTooLarge(f"packet of {length} bytes, more than {max_length}")
    return i, length


def decode_varint(body: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of a Variable Byte Integer (MQTT 5 section 1.5.5): at most
    four bytes [MQTT-1.5.5-1]."""
    value = shift = 0
    while True:
        if pos >= len(body):
            raise MalformedPacket("truncated variable byte integer")
        byte = body[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 21:
            raise MalformedPacket("variable byte integer longer than 4 bytes")


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


def read_string(body: bytes, pos: int) -> tuple[str, int]:
    raw, pos = read_binary(body, pos)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MalformedPacket("string is not valid UTF-8") from e
    # Ill-formed UTF-8 (surrogates included: Python refuses them) [MQTT-1.5.3-1], U+0000
    # [MQTT-1.5.3-2]: the receiver MUST close the network connection.
    if "\x00" in text:
        raise MalformedPacket("string contains U+0000")
    return text, pos


def read_binary(body: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 2 > len(body):
        raise MalformedPacket("truncated length-prefixed field")
    (n,) = _U16.unpack_from(body, pos)
    pos += 2
    if pos + n > len(body):
        raise MalformedPacket("truncated length-prefixed field")
    return bytes(body[pos:pos + n]), pos + n


def connect_header(body: bytes, pos: int) -> tuple[int, int, int, int]:
    """(protocol level, connect flags, keep alive, position after them) of a CONNECT whose
    protocol level is at `pos` (the same in MQTT 3.1.1 and MQTT 5)."""
    if pos + 4 > len(body):
        raise MalformedPacket("truncated CONNECT")
    level = body[pos]
    flags = body[pos + 1]
    (keepalive,) = _U16.unpack_from(body, pos + 2)
    if flags & 0x01:  # [MQTT-3.1.2-3]
        raise MalformedPacket("reserved CONNECT flag set")
    return level, flags, keepalive, pos + 4


def read_credentials(body: bytes, pos: int, flags: int) -> tuple[str | None, int]:
    """(user name or None, position after the password) at the end of a CONNECT payload: the
    password, if its flag is set, is read and left aside."""
    username = None
    if flags & 0x80:
        username, pos = read_string(body, pos)
    if flags & 0x40:
        _, pos = read_binary(body, pos)
    return username, pos


def decode_connect(body: bytes) -> Connect:
    name, pos = read_string(body, 0)
    level, flags, keepalive, pos = connect_header(body, pos)
    if flags & 0x40 and not flags & 0x80:  # [MQTT-3.1.2-22]
        raise MalformedPacket("password flag without user name flag")
    client_id, pos = read_string(body, pos)
    will = None
    will_qos = (flags >> 3) & 0x03
    if flags & 0x04:
        if will_qos == 3:  # [MQTT-3.1.2-14]
            raise MalformedPacket("will QoS 3")
        topic, pos = read_string(body, pos)
        payload, pos = read_binary(body, pos)
        will = Will(topic, payload, will_qos, bool(flags & 0x20))
    elif will_qos or flags & 0x20:  # [MQTT-3.1.2-13], [MQTT-3.1.2-15]
        raise MalformedPacket("will QoS/retain without will flag")
    username, pos = read_credentials(body, pos, flags)
    return Connect(name, level, client_id, bool(flags & 0x02), keepalive, will, username)


def decode_publish_head(flags: int, body: bytes) -> tuple[str, int, int, int]:
    """(topic, qos, packet id or 0, position after them) of a PUBLISH a client sent: the
    fixed-header flags and variable header MQTT 3.1.1 and MQTT 5 share."""
    qos = (flags >> 1) & 0x03
    if qos == 3:  # [MQTT-3.3.1-4]
        raise MalformedPacket("PUBLISH with QoS 3")
    topic, pos = read_string(body, 0)
    packet_id = 0
    if qos:
        if pos + 2 > len(body):
            raise MalformedPacket("PUBLISH without packet id")
        (packet_id,) = _U16.unpack_from(body, pos)
        pos += 2
        if not packet_id:  # [MQTT-2.3.1-1] (MQTT 5: [MQTT-2.2.1-3])
            raise MalformedPacket("PUBLISH with QoS > 0 and packet id 0")
    return topic, qos, packet_id, pos


def decode_publish(flags: int, body: bytes) -> tuple[str, bytes, int, bool, int]:
    """(topic, payload, qos, retain, packet id or 0)."""
    topic, qos, packet_id, pos = decode_publish_head(flags, body)
    return topic, body[pos:], qos, bool(flags & 0x01), packet_id


def decode_subscribe(body: bytes) -> tuple[int, list[tuple[str, int]]]:
    packet_id, pos = nonzero_packet_id(body), 2
    filters: list[tuple[str, int]] = []
    while pos < len(body):
        topic_filter, pos = read_string(body, pos)
        if pos >= len(body):
            raise MalformedPacket("SUBSCRIBE filter without QoS")
        requested = body[pos]
        pos += 1
        # "The Server MUST treat a SUBSCRIBE packet as malformed and close the Network
        # Connection if any of Reserved bits in the payload are non-zero, or QoS is not 0,1
        # or 2" [MQTT-3.8.3-4]
        if requested & 0xFC or requested == 3:
            raise MalformedPacket("SUBSCRIBE reserved bits set or QoS 3")
        filters.append((topic_filter, requested))
    if not filters:  # [MQTT-3.8.3-3]
        raise MalformedPacket("SUBSCRIBE without filters")
    return packet_id, filters


def decode_unsubscribe(body: bytes) -> tuple[int, list[str]]:
    packet_id = nonzero_packet_id(body)
    filters = read_strings(body, 2)
    if not filters:  # [MQTT-3.10.3-2]
        raise MalformedPacket("UNSUBSCRIBE without filters")
    return packet_id, filters


def read_strings(body: bytes, pos: int) -> list[str]:
    """The strings from `pos` to the end of `body` (an UNSUBSCRIBE's topic filters)."""
    strings: list[str] = []
    while pos < len(body):
        text, pos = read_string(body, pos)
        strings.append(text)
    return strings


def packet_id_of(body: bytes) -> int:
    if len(body) < 2:
        raise MalformedPacket("missing packet id")
    return _U16.unpack_from(body, 0)[0]


def nonzero_packet_id(body: bytes) -> int:
    """The packet id of a SUBSCRIBE or UNSUBSCRIBE: never 0 [MQTT-2.3.1-1]."""
    packet_id = packet_id_of(body)
    if not packet_id:
        raise MalformedPacket("packet id 0")
    return packet_id


def decode_ack(body: bytes) -> int:
    """The packet id of a PUBACK (or PUBREC, PUBREL, PUBCOMP): a remaining length of exactly 2
    (sections 3.4.1 to 3.7.1)."""
    if len(body) != 2:
        raise MalformedPacket(f"acknowledgement with a remaining length of {len(body)}, not 2")
    return packet_id_of(body)


def expect_empty(body: bytes, name: str) -> None:
    """PINGREQ and DISCONNECT have neither variable header nor payload (sections 3.12, 3.14):
    a remaining length other than 0 is a malformed packet [MQTT-4.8.0-1]."""
    if body:
        raise MalformedPacket(f"{name} with a body of {len(body)} bytes")


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


def packet(first: int, body: bytes) -> bytes:
    """A packet: its first byte (type and flags), the remaining length, `body`."""
    return bytes((first,)) + encode_length(len(body)) + body


def publish(topic: bytes, payload: bytes, qos: int = 0, retain: bool = False, dup: bool = False,
            packet_id: int = 0, block: bytes = b"") -> bytes:
    """A PUBLISH packet; `topic` is already length-prefixed (see `encode_topic`), `block` is
    MQTT 5's property block (none in MQTT 3.1.1)."""
    first = 0x30 | (qos << 1) | (0x01 if retain else 0) | (0x08 if dup else 0)
    head = topic + _U16.pack(packet_id) if qos else topic
    return b"".join((bytes((first,)), encode_length(len(head) + len(block) + len(payload)),
                     head, block, payload))


def encode_connect(client_id: str, keepalive: int = 60, clean_session: bool = True,
                   will: Will | None = None, *, level: int = 4, props: bytes = b"",
                   will_props: bytes = b"") -> bytes:
    """A CONNECT packet (for tests and tools: the broker never sends one); `props` and
    `will_props` are MQTT 5's property blocks (level 5; none in MQTT 3.1.1)."""
    flags = 0x02 if clean_session else 0
    tail = encode_topic(client_id)
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        tail += (will_props + encode_topic(will.topic) + _U16.pack(len(will.payload))
                 + will.payload)
    body = encode_topic("MQTT") + bytes((level, flags)) + _U16.pack(keepalive) + props + tail
    return packet(0x10, body)


def encode_subscribe(packet_id: int, filters: list[tuple[str, int]], props: bytes = b"") -> bytes:
    """A SUBSCRIBE packet (for tests and tools); `filters`: (topic filter, QoS or MQTT 5's
    options byte); `props` MQTT 5's property block (none in MQTT 3.1.1)."""
    body = (_U16.pack(packet_id) + props
            + b"".join(encode_topic(f) + bytes((q,)) for f, q in filters))
    return packet(0x82, body)
