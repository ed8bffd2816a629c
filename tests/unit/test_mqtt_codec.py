"""MQTT 3.1.1 framing and packet codec."""

from __future__ import annotations

import pytest

from fleetsim.localcore.broker import codec
from fleetsim.localcore.broker.codec import MalformedPacket
from tests.mqtt_testing import split_packet as split


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


# --- what MQTT 3.1.1 says a server MUST close the connection for (issue 8) -------------------

def connect_body(flags: int, tail: bytes = b"") -> bytes:
    return codec.encode_topic("MQTT") + bytes((4, flags)) + b"\x00\x3c" + codec.encode_topic(
        "c") + tail


def test_password_flag_without_user_name_flag_is_malformed():  # [MQTT-3.1.2-22]
    with pytest.raises(MalformedPacket, match="password flag"):
        codec.decode_connect(connect_body(0x42, codec.encode_topic("secret")))
    connect = codec.decode_connect(connect_body(0xC2, codec.encode_topic("u")
                                                + codec.encode_topic("secret")))
    assert connect.username == "u"


def test_packet_id_zero_is_malformed_where_a_packet_id_is_required():  # [MQTT-2.3.1-1]
    with pytest.raises(MalformedPacket):
        codec.decode_publish(0x02, codec.encode_topic("a") + b"\x00\x00payload")
    assert codec.decode_publish(0x00, codec.encode_topic("a") + b"\x00\x00")[4] == 0  # QoS 0
    with pytest.raises(MalformedPacket):
        codec.decode_subscribe(b"\x00\x00" + codec.encode_topic("a") + b"\x00")
    with pytest.raises(MalformedPacket):
        codec.decode_unsubscribe(b"\x00\x00" + codec.encode_topic("a"))


@pytest.mark.parametrize("requested", [3, 0x04, 0x81])
def test_subscribe_with_qos_3_or_reserved_bits_is_malformed(requested):  # [MQTT-3.8.3-4]
    with pytest.raises(MalformedPacket):
        codec.decode_subscribe(b"\x00\x01" + codec.encode_topic("a") + bytes((requested,)))


def test_acknowledgements_and_empty_packets_have_exact_lengths():
    assert codec.decode_ack(b"\x00\x07") == 7
    for body in (b"", b"\x00", b"\x00\x01\x02"):
        with pytest.raises(MalformedPacket):
            codec.decode_ack(body)
    codec.expect_empty(b"", "PINGREQ")
    with pytest.raises(MalformedPacket, match="PINGREQ"):
        codec.expect_empty(b"\x00", "PINGREQ")


@pytest.mark.parametrize("raw", [b"\xed\xa0\x80", b"\xc0\x80", b"\xff", b"a\x00b"])
def test_topic_strings_must_be_well_formed_utf8_without_nul(raw):  # [MQTT-1.5.3-1], [-2]
    body = len(raw).to_bytes(2, "big") + raw + b"payload"
    with pytest.raises(MalformedPacket):
        codec.decode_publish(0x00, body)
