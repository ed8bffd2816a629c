"""MQTT 5 on local core's broker, with a stock client (paho-mqtt's MQTTv5, not fleetsim's) and
raw packets where the exact bytes matter: CONNACK properties, properties end to end, AWS's
reason codes, shared subscriptions, topic aliases, session expiry, will delay, and MQTT 3.1.1
and 5 clients on one broker."""

from __future__ import annotations

import asyncio
import queue
import time
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fleetsim.localcore.broker import codec, codec5
from fleetsim.localcore.broker import properties as P
from tests.mqtt_testing import (
    ACCOUNT_ID,
    REGION,
    Device,
    Env,
    RawClient,
    next_packet,
    next_publish,
    policy,
    pub,
    stmt,
    subscribe,
)

_ARN = f"arn:aws:iot:{REGION}:{ACCOUNT_ID}"


class Paho5:
    """paho-mqtt's client on MQTT 5, its network loop in a thread; what arrives goes to queues."""

    def __init__(self, env: Env, device: Device, client_id: str | None = None):
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                                  client_id=client_id if client_id is not None else device.name,
                                  protocol=paho.MQTTv5)
        self.client.tls_set_context(device.ssl_context())
        self.port = env.port
        self.connack: queue.Queue[tuple[Any, Any, Any]] = queue.Queue()
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.acks: queue.Queue[tuple[int, Any]] = queue.Queue()
        self.subacks: queue.Queue[list[Any]] = queue.Queue()
        self.disconnects: queue.Queue[Any] = queue.Queue()
        c = self.client
        c.on_connect = lambda cl, ud, flags, rc, props: self.connack.put((flags, rc, props))
        c.on_message = lambda cl, ud, msg: self.messages.put(msg)
        c.on_publish = lambda cl, ud, mid, rc, props: self.acks.put((mid, rc))
        c.on_subscribe = lambda cl, ud, mid, rcs, props: self.subacks.put(rcs)
        c.on_disconnect = lambda cl, ud, flags, rc, props: self.disconnects.put(rc)

    async def connect(self, clean_start: bool = True, **props: Any) -> tuple[Any, Any, Any]:
        properties = Properties(PacketTypes.CONNECT)
        for name, value in props.items():
            setattr(properties, name, value)
        # In a thread: paho's TLS handshake blocks, and the broker runs on this loop.
        await asyncio.to_thread(self.client.connect, "127.0.0.1", self.port, 60,
                                clean_start=clean_start,
                                properties=properties if props else None)
        self.client.loop_start()
        return await self.get(self.connack)

    async def subscribe(self, topic_filter: str, qos: int = 1) -> list[Any]:
        self.client.subscribe(topic_filter, qos)
        return await self.get(self.subacks)

    def publish(self, topic: str, payload: bytes, qos: int = 1, **props: Any) -> Any:
        properties = Properties(PacketTypes.PUBLISH)
        for name, value in props.items():
            setattr(properties, name, value)
        return self.client.publish(topic, payload, qos, properties=properties if props else None)

    @staticmethod
    async def get(q: queue.Queue[Any], timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return q.get_nowait()
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise TimeoutError("nothing arrived") from None
                await asyncio.sleep(0.02)

    @staticmethod
    async def nothing(q: queue.Queue[Any], wait: float = 0.4) -> bool:
        await asyncio.sleep(wait)
        return q.empty()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def raw5(env: Env, device: Device, props: dict[int, Any] | None = None
               ) -> tuple[RawClient, dict[int, Any]]:
    """A raw MQTT 5 client, CONNACKed with success (asserted), and the CONNACK's properties."""
    client = await RawClient.open(env.port, device)
    await client.send(codec5.encode_connect(device.name, props=props))
    reply = await client.read()
    assert reply is not None and reply[0] == 0x20 and reply[1][1] == 0, reply
    return client, P.decode(reply[1], 2, 2)[0]


async def next_publish5(client: RawClient, timeout: float = 3.0) -> codec5.Publish | None:
    packet = await next_packet(client, codec.PUBLISH, timeout)
    if packet is None:
        return None
    return codec5.decode_server_publish(packet[0] & 0x0F, packet[1])


async def test_connack_announces_what_aws_supports(env: Env):
    _, props = await raw5(env, env.device("d"))
    assert props == {P.RECEIVE_MAXIMUM: 100, P.MAXIMUM_QOS: 1, P.RETAIN_AVAILABLE: 1,
                     P.MAXIMUM_PACKET_SIZE: 131072, P.TOPIC_ALIAS_MAXIMUM: 8,
                     P.WILDCARD_AVAILABLE: 1, P.SUBSCRIPTION_IDS_AVAILABLE: 0,
                     P.SHARED_AVAILABLE: 1}


async def test_session_expiry_above_the_account_maximum_is_lowered_in_connack(env: Env):
    _, props = await raw5(env, env.device("d"))
    assert P.SESSION_EXPIRY not in props
    client = await RawClient.open(env.port, env.device("e"))
    await client.send(codec5.encode_connect("e", props={P.SESSION_EXPIRY: 0xFFFFFFFF}))
    reply = await client.read()
    assert reply is not None
    assert P.decode(reply[1], 2, 2)[0][P.SESSION_EXPIRY] == 3600


async def test_empty_client_id_gets_an_assigned_one(env: Env):
    client = await RawClient.open(env.port, env.device("anon"))
    await client.send(codec5.encode_connect("", clean_start=False))
    reply = await client.read()
    assert reply is not None and reply[1][1] == 0
    assigned = P.decode(reply[1], 2, 2)[0][P.ASSIGNED_CLIENT_ID]
    assert assigned in env.broker.clients


async def test_stock_client_publishes_and_subscribes_with_properties(env: Env):
    sub, pub_ = Paho5(env, env.device("sub")), Paho5(env, env.device("pub"))
    try:
        _, rc, props = await sub.connect()
        assert rc == 0 and props.TopicAliasMaximum == 8 and props.MaximumQoS == 1
        assert [r.value for r in await sub.subscribe("fleet/+/data")] == [1]
        await pub_.connect()
        pub_.publish("fleet/a/data", b'{"t": 1}', qos=1, PayloadFormatIndicator=1,
                     ContentType="application/json", ResponseTopic="fleet/a/reply",
                     CorrelationData=b"\x00\x01", MessageExpiryInterval=60,
                     UserProperty=[("origin", "test"), ("origin", "twice")])
        assert (await Paho5.get(pub_.acks))[1].value == 0
        message = await Paho5.get(sub.messages)
        got = message.properties
        assert message.payload == b'{"t": 1}' and message.qos == 1
        assert (got.PayloadFormatIndicator, got.ContentType) == (1, "application/json")
        assert (got.ResponseTopic, got.CorrelationData) == ("fleet/a/reply", b"\x00\x01")
        assert got.UserProperty == [("origin", "test"), ("origin", "twice")]
        assert 58 <= got.MessageExpiryInterval <= 60  # what is left of it
    finally:
        sub.close()
        pub_.close()


async def test_request_response_between_two_mqtt5_clients(env: Env):
    requester, responder = Paho5(env, env.device("req")), Paho5(env, env.device("resp"))
    try:
        await requester.connect()
        await responder.connect()
        await requester.subscribe("svc/reply/req")
        await responder.subscribe("svc/request")
        requester.publish("svc/request", b"ping", ResponseTopic="svc/reply/req",
                          CorrelationData=b"id-7")
        request = await Paho5.get(responder.messages)
        responder.publish(request.properties.ResponseTopic, b"pong",
                          CorrelationData=request.properties.CorrelationData)
        reply = await Paho5.get(requester.messages)
        assert (reply.topic, reply.payload, reply.properties.CorrelationData) == (
            "svc/reply/req", b"pong", b"id-7")
    finally:
        requester.close()
        responder.close()


RESTRICTED = policy(stmt("Allow", ["iot:Connect"], ["*"]),
                    stmt("Allow", ["iot:Publish"], [f"{_ARN}:topic/allowed"]))


async def test_denied_qos1_publish_gets_puback_not_authorized_and_the_connection_stays(env: Env):
    client, _ = await raw5(env, env.device("d", policies=(RESTRICTED,)),
                           {P.REQUEST_PROBLEM_INFO: 1})
    await client.send(codec5.encode_publish("denied", b"x", 1, packet_id=4))
    first, body = await client.read() or (0, b"")
    assert first == 0x40 and body[:3] == b"\x00\x04\x87"  # PUBACK 0x87 Not authorized
    assert "not authorized" in P.decode(body, 3, 4)[0][P.REASON_STRING]
    await client.send(codec5.encode_publish("allowed", b"x", 1, packet_id=5))
    assert await client.read() == (0x40, b"\x00\x05")  # still connected


async def test_denied_qos0_publish_gets_disconnect_not_authorized(env: Env):
    client, _ = await raw5(env, env.device("d", policies=(RESTRICTED,)))
    await client.send(codec5.encode_publish("denied", b"x", 0))
    assert await client.read() == (0xE0, b"\x87\x00")
    assert await client.read() is None


async def test_no_reason_string_without_request_problem_information(env: Env):
    client, _ = await raw5(env, env.device("d", policies=(RESTRICTED,)),
                           {P.REQUEST_PROBLEM_INFO: 0})
    await client.send(codec5.encode_publish("denied", b"x", 1, packet_id=4))
    assert await client.read() == (0x40, b"\x00\x04\x87\x00")


async def test_connect_denied_gets_connack_not_authorized(env: Env):
    client = await RawClient.open(env.port, env.device("d", policies=(policy(),)))
    await client.send(codec5.encode_connect("d"))
    assert await client.read() == (0x20, b"\x00\x87\x00")
    assert await client.read() is None


async def test_client_id_takeover_sends_session_taken_over(env: Env):
    device = env.device("twin")
    first, _ = await raw5(env, device)
    await raw5(env, device)
    assert await first.read() == (0xE0, b"\x8e\x00")


async def test_subscribe_reason_codes_and_subscription_identifiers_refused(env: Env):
    device = env.device("d", policies=(policy(
        stmt("Allow", ["iot:Connect"], ["*"]),
        stmt("Allow", ["iot:Subscribe"], [f"{_ARN}:topicfilter/ok/*"])),))
    client, _ = await raw5(env, device)
    filters = [("ok/a", 1), ("no/a", 1), ("ok/#/x", 0)] + [(f"ok/{i}", 0) for i in range(6)]
    await client.send(codec5.encode_subscribe(1, filters))
    first, body = await client.read() or (0, b"")
    assert first == 0x90 and body[3:] == bytes([1, 0x87, 0x8F, 0, 0, 0, 0, 0, 0x97])
    await client.send(codec5.encode_subscribe(2, [("ok/b", 0)], {P.SUBSCRIPTION_ID: [3]}))
    assert await client.read() == (0xE0, b"\xa1\x00")


async def test_subscriptions_beyond_the_per_connection_quota_are_refused(env: Env):
    """"AWS IoT Core message broker and protocol limits and quotas": 50 subscriptions per
    connection. MQTT 5 gets 0x97 per filter over it, MQTT 3.1.1 0x80; replacing a filter
    held already is not a new subscription."""
    device5, device3 = env.device("quota5"), env.device("quota3")
    client5, _ = await raw5(env, device5)
    client3 = await RawClient.open(env.port, device3)
    assert (await client3.connect("quota3") or (0, b""))[1] == b"\x00\x00"
    for k in range(6):  # 48 subscriptions, 8 per SUBSCRIBE
        filters = [(f"q/{k}/{i}", 0) for i in range(8)]
        await client5.send(codec5.encode_subscribe(k + 1, filters))
        assert (await client5.read() or (0, b""))[1][3:] == bytes(8)
        await client3.send(codec.encode_subscribe(k + 1, filters))
        assert (await client3.read() or (0, b""))[1][2:] == bytes(8)
    filters = [("q/0/0", 1), ("q/x", 0), ("q/y", 0), ("q/z", 0), ("q/x", 0)]
    await client5.send(codec5.encode_subscribe(9, filters))
    assert (await client5.read() or (0, b""))[1][3:] == bytes([1, 0, 0, 0x97, 0])
    await client3.send(codec.encode_subscribe(9, filters))
    assert (await client3.read() or (0, b""))[1][2:] == bytes([1, 0, 0, 0x80, 0])
    unsubscribe = (10).to_bytes(2, "big") + b"\x00" + codec.encode_topic("q/x")
    await client5.send(b"\xa2" + codec.encode_length(len(unsubscribe)) + unsubscribe)
    assert (await client5.read() or (0, b""))[0] == 0xB0
    await client5.send(codec5.encode_subscribe(11, [("q/z", 0)]))  # room again
    assert (await client5.read() or (0, b""))[1][3:] == bytes([0])
    await client5.close()
    await client3.close()


async def test_qos2_publish_gets_disconnect_qos_not_supported(env: Env):
    client, _ = await raw5(env, env.device("d"))
    await client.send(codec5.encode_publish("a", b"x", 2, packet_id=1))
    assert await client.read() == (0xE0, b"\x9b\x00")


async def test_malformed_properties_close_with_malformed_packet(env: Env):
    client, _ = await raw5(env, env.device("d"))
    body = codec.encode_topic("a") + b"\x02\x7f\x00"  # unknown property 0x7f
    await client.send(b"\x30" + codec.encode_length(len(body)) + body)
    assert await client.read() == (0xE0, b"\x81\x00")
    assert await client.read() is None


async def test_packet_too_large(env: Env):
    client, _ = await raw5(env, env.device("d"))
    await client.send(codec5.encode_publish("a", b"x" * 131072, 0))
    assert await client.read() == (0xE0, b"\x95\x00")


async def test_auth_method_is_refused_in_connack(env: Env):
    client = await RawClient.open(env.port, env.device("d"))
    await client.send(codec5.encode_connect("d", props={P.AUTH_METHOD: "SCRAM-SHA-1"}))
    assert await client.read() == (0x20, b"\x00\x8c\x00")


async def test_topic_aliases_round_trip(env: Env):
    sub, _ = await raw5(env, env.device("sub"))
    await sub.send(codec5.encode_subscribe(1, [("tele/#", 1)]))
    await sub.read()
    client, _ = await raw5(env, env.device("pub"))
    await client.send(codec5.encode_publish("tele/a", b"1", 1, packet_id=1,
                                            props={P.TOPIC_ALIAS: 3}))
    await client.send(codec5.encode_publish("", b"2", 1, packet_id=2, props={P.TOPIC_ALIAS: 3}))
    await client.send(codec5.encode_publish("tele/b", b"3", 1, packet_id=3,
                                            props={P.TOPIC_ALIAS: 3}))  # remapped
    await client.send(codec5.encode_publish("", b"4", 1, packet_id=4, props={P.TOPIC_ALIAS: 3}))
    got = [await next_publish5(sub) for _ in range(4)]
    assert [(p.topic, p.payload) for p in got if p] == [
        ("tele/a", b"1"), ("tele/a", b"2"), ("tele/b", b"3"), ("tele/b", b"4")]
    assert all(P.TOPIC_ALIAS not in p.props for p in got if p)  # never forwarded
    await client.send(codec5.encode_publish("", b"5", 0, props={P.TOPIC_ALIAS: 9}))
    assert await client.read() == (0x40, b"\x00\x01")  # the PUBACKs, then...
    while (packet := await client.read()) is not None and packet[0] == 0x40:
        pass
    assert packet == (0xE0, b"\x94\x00")  # alias above the maximum of 8


async def test_unset_topic_alias_is_a_protocol_error(env: Env):
    client, _ = await raw5(env, env.device("pub"))
    await client.send(codec5.encode_publish("", b"x", 0, props={P.TOPIC_ALIAS: 1}))
    assert await client.read() == (0xE0, b"\x82\x00")


async def test_shared_subscription_spreads_messages_across_the_group(env: Env):
    members = [await env.raw(env.device(f"m{i}")) for i in range(3)]  # MQTT 3.1.1 members
    five, _ = await raw5(env, env.device("m5"))
    for m in members:
        assert await subscribe(m, ("$share/workers/jobs/+", 1)) == b"\x01"
    await five.send(codec5.encode_subscribe(1, [("$share/workers/jobs/+", 1)]))
    await five.read()
    other, _ = await raw5(env, env.device("other-group"))
    await other.send(codec5.encode_subscribe(1, [("$share/audit/jobs/#", 1)]))
    await other.read()
    sender = await env.raw(env.device("sender"))
    for i in range(40):
        await sender.send(pub(f"jobs/{i}", str(i).encode(), qos=1, pid=i + 1))
    counts = []
    for m in members:
        n = 0
        while await next_publish(m, timeout=0.5) is not None:
            n += 1
        counts.append(n)
    n = 0
    while await next_publish5(five, timeout=0.5) is not None:
        n += 1
    counts.append(n)
    audit = 0
    while await next_publish5(other, timeout=0.5) is not None:
        audit += 1
    assert sum(counts) == 40  # each message to one member of the group
    assert sum(1 for c in counts if c) >= 2  # spread, not all to one
    assert audit == 40  # and to one member of every other matching group


async def test_shared_subscription_gets_no_retained_message(env: Env):
    sender = await env.raw(env.device("sender"))
    await sender.send(pub("cfg", b"v1", qos=1, retain=True))
    await sender.read()
    member = await env.raw(env.device("m"))
    await subscribe(member, ("$share/g/cfg", 1))
    assert await next_publish(member, timeout=0.4) is None
    direct = await env.raw(env.device("direct"))
    await subscribe(direct, ("cfg", 1))
    assert (await next_publish(direct) or ("",))[0] == "cfg"


async def test_session_expiry_removes_the_session_after_its_interval(env: Env):
    env.broker.sweep_interval = 0.1
    device = env.device("sub")
    client, _ = await raw5(env, device, {P.SESSION_EXPIRY: 1})
    await client.send(codec5.encode_subscribe(1, [("a", 1)]))
    await client.read()
    await client.close()
    await asyncio.sleep(0.3)
    client = await RawClient.open(env.port, device)
    await client.send(codec5.encode_connect("sub", clean_start=False,
                                            props={P.SESSION_EXPIRY: 1}))
    assert (await client.read() or (0, b""))[1][:2] == b"\x01\x00"  # session present
    await client.close()
    await asyncio.sleep(2.5)  # the first sweep runs at the default interval (1 s)
    client = await RawClient.open(env.port, device)
    await client.send(codec5.encode_connect("sub", clean_start=False,
                                            props={P.SESSION_EXPIRY: 1}))
    assert (await client.read() or (0, b""))[1][:2] == b"\x00\x00"  # expired
    assert "sub" not in env.broker._offline


async def test_session_expiry_zero_ends_the_session_with_the_connection(env: Env):
    device = env.device("sub")
    client, _ = await raw5(env, device)
    await client.send(codec5.encode_subscribe(1, [("a", 1)]))
    await client.read()
    await client.close()
    await asyncio.sleep(0.2)
    assert "sub" not in env.broker._offline


async def test_will_delay_interval_defers_the_will_and_a_reconnect_cancels_it(env: Env):
    env.broker.sweep_interval = 0.1
    watcher = await env.raw(env.device("watcher"))
    await subscribe(watcher, ("wills/#", 0))
    device = env.device("dying")
    will = codec.Will("wills/dying", b"gone", 0, False)
    for reconnect in (True, False):
        client = await RawClient.open(env.port, device)
        await client.send(codec5.encode_connect("dying", props={P.SESSION_EXPIRY: 60},
                                                will=will, will_props={P.WILL_DELAY: 2}))
        await client.read()
        client.writer.transport.abort()  # connection lost: the will is due, after 2 s
        assert await next_publish(watcher, timeout=1.0) is None
        if reconnect:
            client, _ = await raw5(env, device, {P.SESSION_EXPIRY: 60})
            assert await next_publish(watcher, timeout=2.5) is None  # cancelled
            client.writer.transport.abort()
            await asyncio.sleep(2.5)  # ... that connection had no will
        else:
            assert (await next_publish(watcher, timeout=3.0) or ("",))[0] == "wills/dying"


async def test_disconnect_with_will_message_sends_the_will(env: Env):
    watcher = await env.raw(env.device("watcher"))
    await subscribe(watcher, ("wills/#", 0))
    client = await RawClient.open(env.port, env.device("d"))
    await client.send(codec5.encode_connect("d", will=codec.Will("wills/d", b"bye", 0, False)))
    await client.read()
    await client.send(b"\xe0\x01\x04")  # DISCONNECT 0x04: Disconnect with Will Message
    assert (await next_publish(watcher) or ("",))[0] == "wills/d"


async def test_mqtt3_and_mqtt5_clients_exchange_messages(env: Env):
    three = await env.raw(env.device("three"))
    await subscribe(three, ("x/#", 1))
    five = Paho5(env, env.device("five"))
    try:
        await five.connect()
        await five.subscribe("x/#")
        five.publish("x/from5", b"hello 3", UserProperty=[("k", "v")], MessageExpiryInterval=30)
        got = await next_publish(three)  # parses as MQTT 3.1.1: properties dropped
        assert got is not None and got[:2] == ("x/from5", b"hello 3")
        await three.send(pub("x/from3", b"hello 5", qos=1, retain=False, pid=9))
        messages = [await Paho5.get(five.messages), await Paho5.get(five.messages)]
        assert {(m.topic, m.payload) for m in messages} == {
            ("x/from5", b"hello 3"), ("x/from3", b"hello 5")}
    finally:
        five.close()


async def test_no_local_and_retain_handling(env: Env):
    sender = await env.raw(env.device("sender"))
    await sender.send(pub("cfg", b"v1", qos=1, retain=True))
    await sender.read()
    client, _ = await raw5(env, env.device("d"))
    # No Local, Retain Handling 2 (never send retained messages)
    await client.send(codec5.encode_subscribe(1, [("cfg", 0x01 | 0x04 | 0x20)]))
    await client.read()
    await client.send(codec5.encode_publish("cfg", b"own", 1, packet_id=2))
    assert await client.read() == (0x40, b"\x00\x02")
    assert await next_publish5(client, timeout=0.4) is None


async def test_retained_message_expires(env: Env):
    sender, _ = await raw5(env, env.device("sender"))
    await sender.send(codec5.encode_publish("cfg", b"v1", 1, retain=True,
                                            props={P.MESSAGE_EXPIRY: 1}))
    await sender.read()
    await asyncio.sleep(1.1)
    late = await env.raw(env.device("late"))
    await subscribe(late, ("cfg", 1))
    assert await next_publish(late, timeout=0.4) is None


@pytest.mark.parametrize("level", [5])
async def test_malformed_mqtt5_connect_gets_connack_malformed(env: Env, level: int):
    client = await RawClient.open(env.port, env.device("d"))
    packet = bytearray(codec.encode_connect("d"))
    packet[8] = level  # a 3.1.1 body (no properties) under level 5
    await client.send(bytes(packet))
    reply = await client.read()
    assert reply is not None and reply[0] == 0x20 and reply[1][1] in (0x81, 0x82)
