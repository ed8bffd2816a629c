"""MQTT 5 packets and properties: round trips, malformed and forbidden input, and hypothesis
over properties."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetsim.localcore.broker import codec, codec5
from fleetsim.localcore.broker import properties as P
from fleetsim.localcore.broker.codec import MalformedPacket, ProtocolError
from tests.mqtt_testing import split_packet as split


def test_connect_round_trip_with_properties_and_will():
    will = codec.Will("last/will", b"gone", 1, False)
    packet = codec5.encode_connect(
        "dev-1", 45, clean_start=False,
        props={P.SESSION_EXPIRY: 600, P.RECEIVE_MAXIMUM: 10,
               P.USER_PROPERTY: [("a", "1"), ("a", "2")]},
        will=will, will_props={P.WILL_DELAY: 5, P.MESSAGE_EXPIRY: 30, P.CONTENT_TYPE: "text"})
    _first, body = split(packet)
    c = codec5.decode_any_connect(body)
    assert (c.protocol_level, c.client_id, c.clean_session, c.keepalive) == (5, "dev-1", False, 45)
    assert c.properties[P.SESSION_EXPIRY] == 600
    assert c.properties[P.USER_PROPERTY] == [("a", "1"), ("a", "2")]
    assert c.will is not None and (c.will.delay, c.will.expiry) == (5, 30)
    assert c.will.forwarded == b"\x03\x00\x04text"  # content type forwarded, the rest not


def test_a_3_1_1_connect_still_decodes_through_the_mqtt5_entry_point():
    c = codec5.decode_any_connect(split(codec.encode_connect("x"))[1])
    assert (c.protocol_level, c.properties) == (4, {})


def test_publish_keeps_forwarded_properties_and_drops_alias_and_expiry():
    packet = codec5.encode_publish("t", b"hi", 1, packet_id=7, props={
        P.PAYLOAD_FORMAT: 1, P.MESSAGE_EXPIRY: 9, P.TOPIC_ALIAS: 2, P.RESPONSE_TOPIC: "r",
        P.CORRELATION_DATA: b"\x01\x02", P.USER_PROPERTY: [("k", "v")]})
    first, body = split(packet)
    p = codec5.decode_publish(first & 0x0F, body)
    assert (p.topic, p.payload, p.qos, p.packet_id) == ("t", b"hi", 1, 7)
    assert (p.props[P.MESSAGE_EXPIRY], p.props[P.TOPIC_ALIAS]) == (9, 2)
    forwarded, _, _ = P.decode(P.encode_length_prefixed(p.forwarded), 0, 3)
    assert forwarded == {P.PAYLOAD_FORMAT: 1, P.RESPONSE_TOPIC: "r",
                         P.CORRELATION_DATA: b"\x01\x02", P.USER_PROPERTY: [("k", "v")]}


def test_message_expiry_is_clamped_and_counts_down():
    props = P.message_props(b"", 0, now=100.0)
    assert props is not None and props.expires_at == 101.0  # AWS: 0 counts as 1
    props = P.message_props(b"", 10**9, now=0.0)
    assert props is not None and props.expires_at == P.MAX_MESSAGE_EXPIRY
    props = P.message_props(b"", 30, now=0.0)
    assert props is not None
    assert props.block(20.5) == b"\x05\x02\x00\x00\x00\x09"  # 9.5 s left: 9
    assert props.block(30.0) is None and props.expired(30.0)
    assert P.message_props(b"", None, 0.0) is None


@pytest.mark.parametrize("props, error", [
    (b"\x02\x01\x02", ProtocolError),  # payload format indicator 2
    (b"\x04\x01\x00\x01\x00", ProtocolError),  # payload format indicator twice
    (b"\x02\x11\x00", MalformedPacket),  # session expiry is not allowed in PUBLISH
    (b"\x02\x7f\x00", MalformedPacket),  # unknown property
    (b"\x05\x02\x00\x00", MalformedPacket),  # property length past the end
    (b"\x02\x0b\x01", ProtocolError),  # subscription identifier from a client
    (b"\x03\x08\x00\x05", MalformedPacket),  # string past the property length
])
def test_malformed_or_forbidden_publish_properties(props, error):
    body = codec.encode_topic("t") + props
    with pytest.raises(error):
        codec5.decode_publish(0, body)


def test_receive_maximum_zero_is_a_protocol_error():
    packet = codec5.encode_connect("x", props={P.RECEIVE_MAXIMUM: 1})
    body = bytearray(split(packet)[1])
    body[body.index(b"\x21\x00\x01") + 2] = 0
    with pytest.raises(ProtocolError):
        codec5.decode_any_connect(bytes(body))


def test_subscribe_options_and_reserved_bits():
    packet = codec5.encode_subscribe(3, [("a/#", 0x01 | 0x04 | 0x08 | 0x20)])
    packet_id, props, subs = codec5.decode_subscribe(split(packet)[1])
    assert packet_id == 3 and props == {}
    assert subs == [codec5.Subscription("a/#", 1, True, True, 2)]
    for bad in (0x40, 0x03, 0x30):  # reserved bit, QoS 3, Retain Handling 3
        with pytest.raises(MalformedPacket):
            codec5.decode_subscribe(split(codec5.encode_subscribe(3, [("a", bad)]))[1])


def test_acks_and_disconnect_short_and_long_forms():
    assert codec5.decode_ack(b"\x00\x05") == (5, 0)
    assert codec5.decode_ack(b"\x00\x05\x10") == (5, 0x10)
    assert codec5.decode_ack(b"\x00\x05\x87\x00") == (5, 0x87)
    with pytest.raises(MalformedPacket):
        codec5.decode_ack(b"\x00\x05\x87\x00\x00")
    assert codec5.decode_disconnect(b"") == (0, {})
    assert codec5.decode_disconnect(b"\x04\x05\x11\x00\x00\x00\x3c") == (4, {P.SESSION_EXPIRY: 60})


def test_server_packets_encode_reason_codes_and_strings():
    assert codec5.puback(9) == b"\x40\x02\x00\x09"
    _, body = split(codec5.puback(9, 0x87, "no"))
    assert body[:3] == b"\x00\x09\x87"
    assert P.decode(body, 3, 4)[0] == {P.REASON_STRING: "no"}
    _first, body = split(codec5.connack(True, 0, {P.MAXIMUM_QOS: 1, P.TOPIC_ALIAS_MAXIMUM: 8}))
    assert body[:2] == b"\x01\x00"
    assert P.decode(body, 2, 2)[0] == {P.MAXIMUM_QOS: 1, P.TOPIC_ALIAS_MAXIMUM: 8}
    assert split(codec5.disconnect(0x8E)) == (0xE0, b"\x8e\x00")
    assert split(codec5.suback(1, [0, 0x87])) == (0x90, b"\x00\x01\x00\x00\x87")


def test_oversized_frames_are_packet_too_large():
    with pytest.raises(codec.PacketTooLarge) as info:
        codec.frame_header(b"\x30" + codec.encode_length(200_000), 0, 131072)
    assert info.value.code == 0x95


_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=20)
_props = st.fixed_dictionaries({}, optional={
    P.PAYLOAD_FORMAT: st.integers(0, 1),
    P.MESSAGE_EXPIRY: st.integers(0, 2**32 - 1),
    P.CONTENT_TYPE: _text,
    P.RESPONSE_TOPIC: _text,
    P.CORRELATION_DATA: st.binary(max_size=20),
    P.TOPIC_ALIAS: st.integers(0, 65535),
    P.USER_PROPERTY: st.lists(st.tuples(_text, _text), min_size=1, max_size=4),
})


@given(_props)
def test_publish_properties_round_trip(props):
    block = P.encode(props)
    decoded, end, forwarded = P.decode(block, 0, 3)
    assert decoded == props and end == len(block)
    kept = {k: v for k, v in props.items() if k not in (P.MESSAGE_EXPIRY, P.TOPIC_ALIAS)}
    assert P.decode(P.encode_length_prefixed(forwarded), 0, 3)[0] == kept


@given(st.binary(max_size=64), st.sampled_from([1, 2, 3, 4, 8, 14, P.WILL]))
def test_decoding_arbitrary_bytes_raises_only_malformed(data, packet):
    try:
        props, end, _ = P.decode(data, 0, packet)
    except MalformedPacket:
        return
    assert end <= len(data)
    assert isinstance(props, dict)


@given(st.binary(max_size=80), st.integers(0, 15))
def test_mqtt5_packet_decoders_raise_only_malformed(body, flags):
    for decode in (lambda: codec5.decode_publish(flags & 0x07, body),
                   lambda: codec5.decode_subscribe(body),
                   lambda: codec5.decode_unsubscribe(body),
                   lambda: codec5.decode_ack(body),
                   lambda: codec5.decode_disconnect(body),
                   lambda: codec5.decode_any_connect(b"\x00\x04MQTT\x05" + body)):
        with contextlib.suppress(MalformedPacket):
            decode()
