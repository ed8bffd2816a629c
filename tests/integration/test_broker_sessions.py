"""Persistent sessions, QoS 1 redelivery, retained messages, last will, keepalive, and clients
that misbehave (each costs its own connection, never the broker)."""

from __future__ import annotations

import asyncio
import json
import ssl

import pytest

from fleetsim.localcore.broker import codec
from tests.mqtt_testing import (
    Env,
    RawClient,
    next_publish,
    policy,
    pub,
    stmt,
    subscribe,
)

pytestmark = pytest.mark.timeout(30)


async def test_persistent_session_resumes_subscriptions_and_redelivers_with_dup(env: Env):
    device, sender = env.device("sub"), await env.raw(env.device("pub"))
    client = await env.raw(device, clean=False)
    assert await subscribe(client, ("cmd/#", 1)) == b"\x01"
    await sender.send(pub("cmd/1", b"first", qos=1))
    got = await next_publish(client)
    assert got is not None and got[:3] == ("cmd/1", b"first", 1) and not got[4]
    first_id = got[5]
    await client.close()  # never acknowledged
    await asyncio.sleep(0.2)
    await sender.send(pub("cmd/2", b"while offline", qos=1, pid=2))
    await sender.send(pub("cmd/3", b"qos0 is not stored", qos=0))
    await asyncio.sleep(0.2)

    client = await RawClient.open(env.port, device)
    assert await client.connect("sub", clean=False) == (0x20, b"\x01\x00")  # session present
    again = await next_publish(client)
    assert again is not None and again[:2] == ("cmd/1", b"first")
    assert again[4] is True and again[5] == first_id  # DUP, same packet id
    queued = await next_publish(client)
    assert queued is not None and queued[:3] == ("cmd/2", b"while offline", 1)
    await client.send(codec.puback(first_id))
    await client.send(codec.puback(queued[5]))
    assert await next_publish(client, timeout=0.3) is None
    # Subscriptions were resumed too: no new SUBSCRIBE needed.
    await sender.send(pub("cmd/4", b"live", qos=1, pid=3))
    assert (await next_publish(client))[:2] == ("cmd/4", b"live")


async def test_clean_session_discards_the_persistent_one(env: Env):
    device, sender = env.device("sub"), await env.raw(env.device("pub"))
    client = await env.raw(device, clean=False)
    await subscribe(client, ("a", 1))
    await client.close()
    await asyncio.sleep(0.2)
    client = await RawClient.open(env.port, device)
    assert await client.connect("sub", clean=True) == (0x20, b"\x00\x00")
    await sender.send(pub("a", b"x", qos=1))
    assert await next_publish(client, timeout=0.3) is None


async def test_persistent_session_expires(env: Env):
    env.broker.session_expiry = 0.2
    env.broker.sweep_interval = 0.1
    device = env.device("sub")
    client = await env.raw(device, clean=False)
    await subscribe(client, ("a", 1))
    await client.close()
    await asyncio.sleep(1.4)  # the first sweep runs at the default interval (1 s)
    client = await RawClient.open(env.port, device)
    assert await client.connect("sub", clean=False) == (0x20, b"\x00\x00")


async def test_retained_message_goes_to_exact_subscribers_only_and_can_be_cleared(env: Env):
    sender = await env.raw(env.device("pub"))
    await sender.send(pub("config/device", b"v1", qos=1, retain=True))
    assert (await sender.read())[0] == 0x40
    exact, wild = await env.raw(env.device("exact")), await env.raw(env.device("wild"))
    await subscribe(exact, ("config/device", 1))
    await subscribe(wild, ("config/#", 1))
    got = await next_publish(exact)
    assert got is not None and got[:4] == ("config/device", b"v1", 1, True)
    assert await next_publish(wild, timeout=0.3) is None
    await sender.send(pub("config/device", b"", retain=True, pid=2))  # clears it...
    live = await next_publish(wild)
    assert live is not None and live[:2] == ("config/device", b"") and live[3] is False
    late = await env.raw(env.device("late"))
    await subscribe(late, ("config/device", 0))
    assert await next_publish(late, timeout=0.3) is None  # ...for good


async def test_last_will_on_lost_connection_but_not_on_disconnect(env: Env):
    watcher = await env.raw(env.device("watcher"))
    await subscribe(watcher, ("status/+", 0))
    device = env.device("dev")
    for client_id, graceful in (("polite", True), ("rude", False)):
        client = await RawClient.open(env.port, device)
        will = codec.Will(f"status/{client_id}", b"offline", 0, False)
        assert (await client.connect(client_id, will=will))[1] == b"\x00\x00"
        if graceful:
            await client.send(b"\xe0\x00")
        else:
            client.writer.transport.abort()
        await asyncio.sleep(0.2)
    got = await next_publish(watcher)
    assert got is not None and got[:2] == ("status/rude", b"offline")
    assert await next_publish(watcher, timeout=0.3) is None


async def test_will_on_a_topic_the_client_may_not_publish_is_not_sent(env: Env):
    connect_only = policy(stmt("Allow", ["iot:Connect"], ["*"]))
    watcher = await env.raw(env.device("watcher"))
    await subscribe(watcher, ("status/+", 0))
    client = await RawClient.open(env.port, env.device("dev", policies=(connect_only,)))
    await client.connect("dev", will=codec.Will("status/dev", b"offline", 0, False))
    client.writer.transport.abort()
    assert await next_publish(watcher, timeout=0.5) is None


async def test_keepalive_timeout_is_one_and_a_half_times_keepalive(env: Env):
    env.broker.min_keepalive = 1
    env.broker.sweep_interval = 0.1
    watcher = await env.raw(env.device("watcher"))
    await subscribe(watcher, ("$aws/events/presence/disconnected/+", 0))
    client = await RawClient.open(env.port, env.device("sleepy"))
    assert (await client.connect("sleepy", keepalive=1))[1] == b"\x00\x00"
    started = asyncio.get_running_loop().time()
    assert await client.read(timeout=5) is None
    assert 1.4 <= asyncio.get_running_loop().time() - started < 2.5
    event = await next_publish(watcher)
    assert json.loads(event[1])["disconnectReason"] == "MQTT_KEEP_ALIVE_TIMEOUT"


async def assert_broker_still_serves(env: Env) -> None:
    client = await env.raw(env.device("healthy"))
    await client.send(b"\xc0\x00")
    assert await client.read() == (0xD0, b"")


@pytest.mark.parametrize("garbage", [
    b"\x30\xff\xff\xff\xff\x7f",  # remaining length of 5 bytes
    b"\x30" + codec.encode_length(129 * 1024 + 2000) + b"\x00",  # oversize frame, by header
    b"\x82\x02\x00\x01",  # SUBSCRIBE without filters
    b"\x30\x03\x00\x05a",  # topic length beyond the packet
    b"\xf0\x00",  # reserved packet type 15
])
async def test_malformed_packets_cost_their_connection_only(env: Env, garbage: bytes):
    client = await env.raw(env.device("bad"))
    await client.send(garbage)
    assert await client.read() is None
    await assert_broker_still_serves(env)


async def test_payload_over_128_kib_disconnects(env: Env):
    client = await env.raw(env.device("big"))
    await client.send(pub("big", b"x" * (128 * 1024 + 1)))
    assert await client.read() is None
    await assert_broker_still_serves(env)


async def test_publish_before_connect_is_refused(env: Env):
    client = await RawClient.open(env.port, env.device("eager"))
    await client.send(pub("a", b"x"))
    assert await client.read() is None


async def test_plain_tcp_on_the_tls_port_and_silent_clients_are_cut_off(env: Env):
    env.broker.connect_timeout = 0.5
    env.broker.sweep_interval = 0.1
    reader, writer = await asyncio.open_connection("127.0.0.1", env.port)
    writer.write(codec.encode_connect("plain"))
    await writer.drain()
    received = await asyncio.wait_for(reader.read(), 5)  # until the broker closes
    assert not received.startswith(b"\x20")  # at most a TLS alert, never a CONNACK
    writer.close()
    # TLS done, then nothing: closed after the CONNECT timeout.
    silent = await RawClient.open(env.port, env.device("silent"))
    assert await silent.read(timeout=5) is None
    await assert_broker_still_serves(env)


@pytest.mark.parametrize("level, answer", [
    (3, b"\x00\x01"),  # MQTT 3.1.1 [MQTT-3.1.2-2]: return code 0x01
    (6, b"\x00\x84\x00"),  # MQTT 5 section 3.1.2.2: reason code 0x84 in an MQTT 5 CONNACK
])
async def test_unsupported_protocol_level_gets_what_the_standard_prescribes(
        env: Env, level: int, answer: bytes):
    client = await RawClient.open(env.port, env.device("old"))
    packet = bytearray(codec.encode_connect("old"))
    packet[8] = level  # protocol level byte
    await client.send(bytes(packet))
    assert await client.read() == (0x20, answer)
    assert await client.read() is None


async def test_tls_client_certificate_is_required(env: Env):
    ctx = ssl.create_default_context(cafile=str(env.ca.root_ca_path))
    with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
        reader, writer = await asyncio.open_connection("127.0.0.1", env.port, ssl=ctx)
        writer.write(codec.encode_connect("anon"))
        await writer.drain()
        data = await asyncio.wait_for(reader.read(10), 5)
        raise ConnectionError(f"closed, read {data!r}")
