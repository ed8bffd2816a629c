"""MQTT 3.1.1 framing and packet codec."""

from __future__ import annotations

import pytest

from fleetsim.localcore.broker import codec
from fleetsim.localcore.broker.codec import MalformedPacket


def split(packet: bytes) -> tuple[int, bytes]:
    header = codec.frame_header(packet, 0, 1 << 20)
    assert header is not None
    start, length = header
    assert start + length == len(packet)
    return packet[0], packet[start:]


@pytest.mark.parametrize("length", [0, 127, 128, 16383, 16384, 2097151, 2097152])
def test_remaining_length_round_trip(length):
    encoded = codec.encode_length(length)
    assert codec.frame_header(b"\x30" + encoded, 0, 1 << 28) == (1 + len(encoded), length)


def test_frame_header_needs_more_bytes_and_rejects_bad_lengths():
    assert codec.frame_header(b"\x30", 0, 100) is None
    assert codec.frame_header(b"\x30\x80", 0, 1000) is None
    with pytest.raises(MalformedPacket):
        codec.frame_header(b"\x30\xff\xff\xff\xff\x01", 0, 1 << 30)
    with pytest.raises(MalformedPacket):  # oversize is refused from the header alone
        codec.frame_header(b"\x30" + codec.encode_length(200_000), 0, 140_000)


def test_connect_round_trip_with_will():
    will = codec.Will("last/will", b"gone", 1, True)
    first, body = split(codec.encode_connect("dev-1", 45, clean_session=False, will=will))
    assert first == 0x10
    c = codec.decode_connect(body)
    assert (c.protocol_name, c.protocol_level, c.client_id) == ("MQTT", 4, "dev-1")
    assert (c.clean_session, c.keepalive, c.will) == (False, 45, will)


def test_connect_rejects_reserved_flag_and_truncation():
    _, body = split(codec.encode_connect("x"))
    flags_at = 2 + 4 + 1
    bad = bytearray(body)
    bad[flags_at] |= 0x01
    with pytest.raises(MalformedPacket):
        codec.decode_connect(bytes(bad))
    with pytest.raises(MalformedPacket):
        codec.decode_connect(body[:-2])


def test_publish_round_trip_qos0_and_qos1_with_flags():
    topic = codec.encode_topic("a/b")
    first, body = split(codec.publish(topic, b"payload"))
    assert first == 0x30
    assert codec.decode_publish(first & 0x0F, body) == ("a/b", b"payload", 0, False, 0)
    first, body = split(codec.publish(topic, b"p", qos=1, retain=True, dup=True, packet_id=513))
    assert first == 0x30 | 0x08 | 0x02 | 0x01
    assert codec.decode_publish(first & 0x0F, body) == ("a/b", b"p", 1, True, 513)
    with pytest.raises(MalformedPacket):
        codec.decode_publish(0x06, body)  # QoS 3


def test_strings_must_be_utf8_without_nul():
    with pytest.raises(MalformedPacket):
        codec.decode_publish(0, b"\x00\x02\xff\xfe")
    with pytest.raises(MalformedPacket):
        codec.decode_publish(0, b"\x00\x02a\x00")


def test_subscribe_unsubscribe_and_acks():
    first, body = split(codec.encode_subscribe(9, [("a/+", 1), ("b/#", 0)]))
    assert first == 0x82
    assert codec.decode_subscribe(body) == (9, [("a/+", 1), ("b/#", 0)])
    with pytest.raises(MalformedPacket):
        codec.decode_subscribe(b"\x00\x01")
    with pytest.raises(MalformedPacket):
        codec.decode_subscribe(b"\x00\x01\x00\x01a\x04")
    assert codec.decode_unsubscribe(b"\x00\x05\x00\x01a") == (5, ["a"])
    assert codec.suback(9, [1, 0x80]) == b"\x90\x04\x00\x09\x01\x80"
    assert codec.connack(True, 0) == b"\x20\x02\x01\x00"
    assert codec.puback(258) == b"\x40\x02\x01\x02"
    assert codec.unsuback(1) == b"\xb0\x02\x00\x01"
