"""MQTT 5 packets (OASIS MQTT 5.0): decoding what clients send, encoding what the broker sends.

Framing, strings and the MQTT 3.1.1 packets are `codec.py`; properties are `properties.py`. A
malformed packet raises `MalformedPacket` (reason code 0x81), a well-formed one the standard
forbids `ProtocolError` (0x82); the connection tells an MQTT 5 client the code and closes
(section 4.13). Comments cite the normative statements, e.g. [MQTT-3.8.3-5].
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from fleetsim.localcore.broker import properties as P
from fleetsim.localcore.broker.codec import (
    Connect,
    MalformedPacket,
    ProtocolError,
    Will,
    connect_header,
    decode_connect,
    decode_publish_head,
    encode_topic,
    nonzero_packet_id,
    packet,
    read_binary,
    read_credentials,
    read_string,
    read_strings,
)
from fleetsim.localcore.broker.codec import encode_connect as _encode_connect
from fleetsim.localcore.broker.codec import encode_subscribe as _encode_subscribe

# MQTT 5's PUBLISH is MQTT 3.1.1's with a property block (`block`).
from fleetsim.localcore.broker.codec import publish as publish

VERSION = 5
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")

# Reason codes (section 2.4) the broker sends.
SUCCESS = 0x00
NORMAL_DISCONNECTION = 0x00
DISCONNECT_WITH_WILL = 0x04
UNSPECIFIED_ERROR = 0x80
MALFORMED_PACKET = 0x81
PROTOCOL_ERROR = 0x82
UNSUPPORTED_PROTOCOL_VERSION = 0x84
CLIENT_IDENTIFIER_NOT_VALID = 0x85
NOT_AUTHORIZED = 0x87
SERVER_SHUTTING_DOWN = 0x8B
BAD_AUTHENTICATION_METHOD = 0x8C
KEEP_ALIVE_TIMEOUT = 0x8D
SESSION_TAKEN_OVER = 0x8E
TOPIC_FILTER_INVALID = 0x8F
TOPIC_NAME_INVALID = 0x90
NO_SUBSCRIPTION_EXISTED = 0x11
TOPIC_ALIAS_INVALID = 0x94
PACKET_TOO_LARGE = 0x95
QUOTA_EXCEEDED = 0x97
ADMINISTRATIVE_ACTION = 0x98
QOS_NOT_SUPPORTED = 0x9B
SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
SUBSCRIPTION_IDS_NOT_SUPPORTED = 0xA1


@dataclass(slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    packet_id: int
    props: P.Properties
    forwarded: bytes  # encoded properties the receivers get (see properties.decode)


@dataclass(slots=True)
class Subscription:
    topic_filter: str
    qos: int
    no_local: bool
    retain_as_published: bool
    retain_handling: int


def decode_any_connect(body: bytes) -> Connect:
    """A CONNECT of any protocol level: MQTT 5's layout at level 5, MQTT 3.1.1's otherwise (the
    caller refuses levels it does not serve)."""
    name, pos = read_string(body, 0)
    if pos < len(body) and body[pos] == VERSION and name == "MQTT":
        return _decode_connect5(body, pos)
    return decode_connect(body)


def _decode_connect5(body: bytes, pos: int) -> Connect:
    _, flags, keepalive, pos = connect_header(body, pos)
    props, pos, _ = P.decode(body, pos, 1)
    client_id, pos = read_string(body, pos)
    will = None
    will_qos = (flags >> 3) & 0x03
    if flags & 0x04:
        if will_qos == 3:  # [MQTT-3.1.2-12]
            raise MalformedPacket("will QoS 3")
        will_props, pos, forwarded = P.decode(body, pos, P.WILL)
        topic, pos = read_string(body, pos)
        payload, pos = read_binary(body, pos)
        will = Will(topic, payload, will_qos, bool(flags & 0x20), forwarded,
                    will_props.get(P.MESSAGE_EXPIRY), will_props.get(P.WILL_DELAY, 0))
    elif will_qos or flags & 0x20:  # [MQTT-3.1.2-11], [MQTT-3.1.2-13]
        raise MalformedPacket("will QoS/retain without will flag")
    # MQTT 5 allows a password without a user name.
    username, pos = read_credentials(body, pos, flags)
    if pos != len(body):
        raise MalformedPacket("bytes after the CONNECT payload")
    return Connect("MQTT", VERSION, client_id, bool(flags & 0x02), keepalive, will, username,
                   props)


def decode_publish(flags: int, body: bytes) -> Publish:
    topic, qos, packet_id, pos = decode_publish_head(flags, body)
    props, pos, forwarded = P.decode(body, pos, 3)
    if P.SUBSCRIPTION_ID in props:  # [MQTT-3.3.4-6]: only servers send it
        raise ProtocolError("PUBLISH from a client with a Subscription Identifier")
    return Publish(topic, body[pos:], qos, bool(flags & 0x01), packet_id, props, forwarded)


def decode_subscribe(body: bytes) -> tuple[int, P.Properties, list[Subscription]]:
    packet_id = nonzero_packet_id(body)
    props, pos, _ = P.decode(body, 2, 8)
    subscriptions: list[Subscription] = []
    while pos < len(body):
        topic_filter, pos = read_string(body, pos)
        if pos >= len(body):
            raise MalformedPacket("SUBSCRIBE filter without options")
        options = body[pos]
        pos += 1
        # Reserved bits set, QoS 3 or Retain Handling 3: malformed [MQTT-3.8.3-5].
        if options & 0xC0 or options & 0x03 == 3 or (options >> 4) & 0x03 == 3:
            raise MalformedPacket("SUBSCRIBE options with reserved values")
        subscriptions.append(Subscription(topic_filter, options & 0x03, bool(options & 0x04),
                                          bool(options & 0x08), (options >> 4) & 0x03))
    if not subscriptions:  # [MQTT-3.8.3-2]
        raise ProtocolError("SUBSCRIBE without filters")
    return packet_id, props, subscriptions


def decode_unsubscribe(body: bytes) -> tuple[int, list[str]]:
    packet_id = nonzero_packet_id(body)
    _, pos, _ = P.decode(body, 2, 10)
    filters = read_strings(body, pos)
    if not filters:  # [MQTT-3.10.3-2]
        raise ProtocolError("UNSUBSCRIBE without filters")
    return packet_id, filters


def decode_ack(body: bytes, packet: int = 4) -> tuple[int, int]:
    """(packet id, reason code) of a PUBACK (or PUBREC, PUBREL, PUBCOMP): the reason code and
    the properties may be left out (section 3.4.2.1)."""
    if len(body) < 2:
        raise MalformedPacket("acknowledgement without packet id")
    (packet_id,) = _U16.unpack_from(body, 0)
    if len(body) == 2:
        return packet_id, SUCCESS
    reason = body[2]
    if len(body) > 3:
        _, end, _ = P.decode(body, 3, packet)
        if end != len(body):
            raise MalformedPacket("bytes after the acknowledgement's properties")
    return packet_id, reason


def decode_disconnect(body: bytes) -> tuple[int, P.Properties]:
    """(reason code, properties) of a DISCONNECT: both may be left out (section 3.14.2.1)."""
    if not body:
        return NORMAL_DISCONNECTION, {}
    reason = body[0]
    if len(body) == 1:
        return reason, {}
    props, end, _ = P.decode(body, 1, 14)
    if end != len(body):
        raise MalformedPacket("bytes after DISCONNECT's properties")
    return reason, props


# --- what the broker sends ------------------------------------------------------------------

def _reason_props(reason: str | None) -> bytes:
    return P.encode({P.REASON_STRING: reason}) if reason else P.EMPTY


def connack(session_present: bool, code: int, props: P.Properties | None = None) -> bytes:
    return packet(0x20, bytes((1 if session_present else 0, code))
                   + (P.encode(props) if props else P.EMPTY))


def puback(packet_id: int, code: int = SUCCESS, reason: str | None = None) -> bytes:
    if code == SUCCESS and not reason:  # the short form (section 3.4.2.1)
        return b"\x40\x02" + _U16.pack(packet_id)
    return packet(0x40, _U16.pack(packet_id) + bytes((code,)) + _reason_props(reason))


def suback(packet_id: int, codes: list[int], reason: str | None = None) -> bytes:
    return packet(0x90, _U16.pack(packet_id) + _reason_props(reason) + bytes(codes))


def unsuback(packet_id: int, codes: list[int]) -> bytes:
    return packet(0xB0, _U16.pack(packet_id) + P.EMPTY + bytes(codes))


def disconnect(code: int, reason: str | None = None) -> bytes:
    return packet(0xE0, bytes((code,)) + _reason_props(reason))


# --- what clients send (for tests and tools) ------------------------------------------------

def encode_connect(client_id: str, keepalive: int = 60, clean_start: bool = True,
                   props: P.Properties | None = None, will: Will | None = None,
                   will_props: P.Properties | None = None) -> bytes:
    return _encode_connect(client_id, keepalive, clean_start, will, level=VERSION,
                           props=P.encode(props or {}), will_props=P.encode(will_props or {}))


def encode_subscribe(packet_id: int, filters: list[tuple[str, int]],
                     props: P.Properties | None = None) -> bytes:
    """`filters`: (topic filter, options byte)."""
    return _encode_subscribe(packet_id, filters, P.encode(props or {}))


def encode_publish(topic: str, payload: bytes, qos: int = 0, retain: bool = False,
                   packet_id: int = 1, props: P.Properties | None = None) -> bytes:
    return publish(encode_topic(topic), payload, qos, retain, False, packet_id,
                   P.encode(props or {}))


def decode_server_publish(flags: int, body: bytes) -> Publish:
    """A PUBLISH as the broker sends it (for tests): it may carry a Subscription Identifier."""
    qos = (flags >> 1) & 0x03
    topic, pos = read_string(body, 0)
    packet_id = 0
    if qos:
        (packet_id,) = _U16.unpack_from(body, pos)
        pos += 2
    props, pos, forwarded = P.decode(body, pos, 3)
    return Publish(topic, body[pos:], qos, bool(flags & 0x01), packet_id, props, forwarded)
