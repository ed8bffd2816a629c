"""MQTT 5 properties (OASIS MQTT 5.0, section 2.2.2): decoding what clients send, encoding what
the broker sends, and the properties a message carries from its publisher to its receivers.

A property that is unknown or not allowed in the packet that carries it, or whose bytes run past
the property length, makes the packet malformed (reason code 0x81); one that appears twice when
it may not, or has a value the standard forbids (a Receive Maximum of 0, a Payload Format
Indicator other than 0 or 1, ...), is a protocol error (0x82) [MQTT-2.2.2-2], section 4.13.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from fleetsim.localcore.broker.codec import (
    MalformedPacket,
    ProtocolError,
    decode_varint,
    encode_length,
    read_binary,
    read_string,
)

PAYLOAD_FORMAT = 0x01
MESSAGE_EXPIRY = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_ID = 0x0B
SESSION_EXPIRY = 0x11
ASSIGNED_CLIENT_ID = 0x12
SERVER_KEEP_ALIVE = 0x13
AUTH_METHOD = 0x15
AUTH_DATA = 0x16
REQUEST_PROBLEM_INFO = 0x17
WILL_DELAY = 0x18
REQUEST_RESPONSE_INFO = 0x19
RESPONSE_INFO = 0x1A
SERVER_REFERENCE = 0x1C
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
RETAIN_AVAILABLE = 0x25
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27
WILDCARD_AVAILABLE = 0x28
SUBSCRIPTION_IDS_AVAILABLE = 0x29
SHARED_AVAILABLE = 0x2A

# Where each property may appear (section 2.2.2.2). "WILL" stands for the Will Properties of
# CONNECT's payload; the numbers are packet types.
WILL = 0
_CONNECT, _CONNACK, _PUBLISH, _PUBACK, _SUBSCRIBE, _SUBACK = 1, 2, 3, 4, 8, 9
_UNSUBSCRIBE, _UNSUBACK, _DISCONNECT, _AUTH = 10, 11, 14, 15
_ACKS = frozenset((4, 5, 6, 7))
_ALL = frozenset(range(16))

_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
_SPEC: dict[int, tuple[int, frozenset[int]]] = {
    PAYLOAD_FORMAT: (_BYTE, frozenset((_PUBLISH, WILL))),
    MESSAGE_EXPIRY: (_U32, frozenset((_PUBLISH, WILL))),
    CONTENT_TYPE: (_STR, frozenset((_PUBLISH, WILL))),
    RESPONSE_TOPIC: (_STR, frozenset((_PUBLISH, WILL))),
    CORRELATION_DATA: (_BIN, frozenset((_PUBLISH, WILL))),
    SUBSCRIPTION_ID: (_VARINT, frozenset((_PUBLISH, _SUBSCRIBE))),
    SESSION_EXPIRY: (_U32, frozenset((_CONNECT, _CONNACK, _DISCONNECT))),
    ASSIGNED_CLIENT_ID: (_STR, frozenset((_CONNACK,))),
    SERVER_KEEP_ALIVE: (_U16, frozenset((_CONNACK,))),
    AUTH_METHOD: (_STR, frozenset((_CONNECT, _CONNACK, _AUTH))),
    AUTH_DATA: (_BIN, frozenset((_CONNECT, _CONNACK, _AUTH))),
    REQUEST_PROBLEM_INFO: (_BYTE, frozenset((_CONNECT,))),
    WILL_DELAY: (_U32, frozenset((WILL,))),
    REQUEST_RESPONSE_INFO: (_BYTE, frozenset((_CONNECT,))),
    RESPONSE_INFO: (_STR, frozenset((_CONNACK,))),
    SERVER_REFERENCE: (_STR, frozenset((_CONNACK, _DISCONNECT))),
    REASON_STRING: (_STR, frozenset((_CONNACK, _SUBACK, _UNSUBACK, _DISCONNECT, _AUTH))
                    | _ACKS),
    RECEIVE_MAXIMUM: (_U16, frozenset((_CONNECT, _CONNACK))),
    TOPIC_ALIAS_MAXIMUM: (_U16, frozenset((_CONNECT, _CONNACK))),
    TOPIC_ALIAS: (_U16, frozenset((_PUBLISH,))),
    MAXIMUM_QOS: (_BYTE, frozenset((_CONNACK,))),
    RETAIN_AVAILABLE: (_BYTE, frozenset((_CONNACK,))),
    USER_PROPERTY: (_PAIR, _ALL),
    MAXIMUM_PACKET_SIZE: (_U32, frozenset((_CONNECT, _CONNACK))),
    WILDCARD_AVAILABLE: (_BYTE, frozenset((_CONNACK,))),
    SUBSCRIPTION_IDS_AVAILABLE: (_BYTE, frozenset((_CONNACK,))),
    SHARED_AVAILABLE: (_BYTE, frozenset((_CONNACK,))),
}
_REPEATABLE = frozenset((USER_PROPERTY, SUBSCRIPTION_ID))
_BOOLEANS = frozenset((PAYLOAD_FORMAT, REQUEST_PROBLEM_INFO, REQUEST_RESPONSE_INFO))
_NONZERO = frozenset((RECEIVE_MAXIMUM, MAXIMUM_PACKET_SIZE, SUBSCRIPTION_ID))
# What a PUBLISH carries on to its receivers unchanged (section 3.3.2.3): the broker rewrites
# the Message Expiry Interval to what is left of it, and never forwards a Topic Alias or the
# publisher's Subscription Identifier.
_FORWARDED = frozenset((PAYLOAD_FORMAT, CONTENT_TYPE, RESPONSE_TOPIC, CORRELATION_DATA,
                        USER_PROPERTY))
_U16S = struct.Struct(">H")
_U32S = struct.Struct(">I")

Properties = dict[int, Any]  # USER_PROPERTY and SUBSCRIPTION_ID map to lists


def decode(body: bytes, pos: int, packet: int) -> tuple[Properties, int, bytes]:
    """(properties, position after them, the raw bytes of the properties a message forwards)
    of the property block at `pos` of a packet of type `packet` (or WILL)."""
    length, pos = decode_varint(body, pos)
    end = pos + length
    if end > len(body):
        raise MalformedPacket("property length past the end of the packet")
    props: Properties = {}
    forwarded: list[bytes] = []
    while pos < end:
        start = pos
        ident, pos = decode_varint(body, pos)
        spec = _SPEC.get(ident)
        if spec is None or packet not in spec[1]:
            raise MalformedPacket(f"property {ident:#04x} is not allowed here")
        kind = spec[0]
        value: Any
        if kind == _BYTE:
            if pos >= end:
                raise MalformedPacket("truncated property")
            value = body[pos]
            pos += 1
        elif kind == _U16:
            if pos + 2 > end:
                raise MalformedPacket("truncated property")
            (value,) = _U16S.unpack_from(body, pos)
            pos += 2
        elif kind == _U32:
            if pos + 4 > end:
                raise MalformedPacket("truncated property")
            (value,) = _U32S.unpack_from(body, pos)
            pos += 4
        elif kind == _VARINT:
            value, pos = decode_varint(body, pos)
        elif kind == _STR:
            value, pos = read_string(body, pos)
        elif kind == _BIN:
            value, pos = read_binary(body, pos)
        else:
            name, pos = read_string(body, pos)
            text, pos = read_string(body, pos)
            value = (name, text)
        if pos > end:
            raise MalformedPacket("property runs past the property length")
        if ident in _REPEATABLE:
            props.setdefault(ident, []).append(value)
        elif ident in props:
            raise ProtocolError(f"property {ident:#04x} appears twice")
        else:
            props[ident] = value
        if ident in _BOOLEANS and value > 1:
            raise ProtocolError(f"property {ident:#04x} is {value}, not 0 or 1")
        if ident in _NONZERO and not value:
            raise ProtocolError(f"property {ident:#04x} is 0")
        if ident in _FORWARDED:
            forwarded.append(body[start:pos])
    return props, end, b"".join(forwarded)


def encode(props: Properties) -> bytes:
    """A property block (length first) of `props`; lists are written one entry each."""
    out = bytearray()
    for ident, value in props.items():
        for item in value if ident in _REPEATABLE else (value,):
            out += encode_length(ident)
            kind = _SPEC[ident][0]
            if kind == _BYTE:
                out.append(item)
            elif kind == _U16:
                out += _U16S.pack(item)
            elif kind == _U32:
                out += _U32S.pack(item)
            elif kind == _VARINT:
                out += encode_length(item)
            elif kind == _STR:
                out += _prefixed(item.encode())
            elif kind == _BIN:
                out += _prefixed(item)
            else:
                out += _prefixed(item[0].encode()) + _prefixed(item[1].encode())
    return encode_length(len(out)) + out


def encode_length_prefixed(raw: bytes) -> bytes:
    """A property block of already encoded properties."""
    return encode_length(len(raw)) + raw


def _prefixed(raw: bytes) -> bytes:
    return _U16S.pack(len(raw)) + raw


EMPTY = b"\x00"  # a property block with no properties


@dataclass(frozen=True, slots=True)
class MessageProps:
    """What an MQTT 5 message carries to its receivers: the encoded properties it forwards and
    when it expires (loop time; None: never). MQTT 3.1.1 receivers get none of it."""

    forwarded: bytes
    expires_at: float | None = None

    def block(self, now: float) -> bytes | None:
        """The property block for a receiver now, or None if the message has expired. AWS IoT
        ("MQTT 5 supported features", Message expiry): the receiver gets the time left,
        rounded down (0 once 999 ms or less are left)."""
        if self.expires_at is None:
            return encode_length_prefixed(self.forwarded)
        left = self.expires_at - now
        if left <= 0:
            return None
        return encode_length_prefixed(b"\x02" + _U32S.pack(int(left)) + self.forwarded)

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def user_properties(self) -> list[tuple[str, str]]:
        """The user properties, in order (for `Message` consumers such as rules)."""
        props, _, _ = decode(encode_length_prefixed(self.forwarded), 0, _PUBLISH)
        return list(props.get(USER_PROPERTY, ()))


def message_props(forwarded: bytes, expiry: int | None, now: float) -> MessageProps | None:
    """The MessageProps of a PUBLISH or will, None if it carries nothing to forward. AWS IoT
    ("MQTT 5 supported features", Message expiry): a Message Expiry Interval of 0 counts as 1,
    one above 604800 (7 days) as 604800."""
    if expiry is not None:
        expiry = min(max(expiry, 1), MAX_MESSAGE_EXPIRY)
    if not forwarded and expiry is None:
        return None
    return MessageProps(forwarded, None if expiry is None else now + expiry)


MAX_MESSAGE_EXPIRY = 604_800
