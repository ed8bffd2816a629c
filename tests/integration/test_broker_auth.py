"""Broker over real TLS sockets: identity, iot:Connect/Publish/Subscribe/Receive as AWS answers
them, presence events, client-id takeover, disconnect_certificate."""

from __future__ import annotations

import asyncio
import json
import ssl

import aiomqtt
import pytest

from fleetsim.localcore.broker import codec
from fleetsim.localcore.principal import ThingInfo
from fleetsim.pki import CertificateAuthority
from tests.mqtt_testing import (
    ACCOUNT_ID,
    REGION,
    Env,
    RawClient,
    issue_device,
    next_publish,
    policy,
    stmt,
    subscribe,
)

ARN = f"arn:aws:iot:{REGION}:{ACCOUNT_ID}"
pytestmark = pytest.mark.timeout(30)


# --- identity ------------------------------------------------------------------------------

async def test_registered_active_certificate_connects_and_qos1_is_acknowledged(env: Env):
    client = await env.raw(env.device("dev-1"))
    await client.send(codec.publish(codec.encode_topic("iot/ws"), b"{}", qos=1, packet_id=7))
    assert await client.read() == (0x40, b"\x00\x07")
    await client.send(b"\xc0\x00")  # PINGREQ
    assert await client.read() == (0xD0, b"")
    await client.close()


@pytest.mark.parametrize("status", ["INACTIVE", "REVOKED", "PENDING_ACTIVATION", None])
async def test_unregistered_or_not_active_certificate_is_closed_without_connack(env: Env, status):
    device = env.device("dev-x", register=status is not None, status=status or "ACTIVE")
    client = await RawClient.open(env.port, device)  # TLS itself succeeds: the CA is trusted
    assert await client.connect("dev-x") is None
    assert not env.broker.clients


async def test_certificate_from_an_unknown_ca_fails_the_tls_handshake(env: Env):
    stranger = CertificateAuthority.create("not registered anywhere")
    device = issue_device(env.tmp, "stranger", stranger, env.ca.root_ca_path)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        client = await RawClient.open(env.port, device)
        # TLS 1.3: the client learns of the rejection on its first read.
        assert await client.connect("stranger") is None
        raise ConnectionError("closed")


async def test_connect_denied_by_policy_closes_without_connack(env: Env):
    only_a = policy(stmt("Allow", ["iot:Connect"], [f"{ARN}:client/a"]))
    device = env.device("dev-2", policies=(only_a,))
    client = await RawClient.open(env.port, device)
    assert await client.connect("b") is None
    client = await RawClient.open(env.port, device)
    assert (await client.connect("a"))[1] == b"\x00\x00"


async def test_aiomqtt_client_sees_a_connect_refusal_as_an_error(env: Env):
    device = env.device("dev-inactive", status="INACTIVE")
    with pytest.raises(aiomqtt.MqttError):
        async with env.aiomqtt(device):
            pass


# --- publish / subscribe / receive -------------------------------------------------------

async def test_allowed_publish_reaches_subscriber_via_aiomqtt(env: Env):
    pub, sub = env.device("pub"), env.device("sub")
    async with env.aiomqtt(sub) as subscriber, env.aiomqtt(pub) as publisher:
        await subscriber.subscribe("iot/#", qos=1)
        await publisher.publish("iot/ws", b'{"prov": "first"}', qos=1)
        message = await asyncio.wait_for(anext(aiter(subscriber.messages)), 5)
        assert message.topic.value == "iot/ws"
        assert message.payload == b'{"prov": "first"}'
        assert message.qos == 1


async def test_denied_publish_disconnects_publisher_and_is_not_delivered(env: Env):
    limited = policy(stmt("Allow", ["iot:Connect"], ["*"]),
                     stmt("Allow", ["iot:Publish"], [f"{ARN}:topic/ok"]))
    pub = await env.raw(env.device("pub", policies=(limited,)))
    sub = await env.raw(env.device("sub"))
    await subscribe(sub, ("#", 0), ("$aws/events/presence/disconnected/pub", 0))
    await pub.send(codec.publish(codec.encode_topic("ok"), b"1"))
    await pub.send(codec.publish(codec.encode_topic("forbidden"), b"2"))
    assert await pub.read() is None  # disconnected
    assert (await next_publish(sub))[:2] == ("ok", b"1")
    event = await next_publish(sub)  # the next thing the subscriber gets is pub's disconnect
    assert event is not None and event[0] == "$aws/events/presence/disconnected/pub"
    assert json.loads(event[1])["disconnectReason"] == "AUTH_ERROR"


async def test_retained_publish_needs_retain_publish_permission(env: Env):
    no_retain = policy(stmt("Allow", ["iot:Connect", "iot:Publish"], ["*"]))
    pub = await env.raw(env.device("pub", policies=(no_retain,)))
    await pub.send(codec.publish(codec.encode_topic("state"), b"on", retain=True))
    assert await pub.read() is None


async def test_subscribe_denied_gets_0x80_per_filter(env: Env):
    p = policy(stmt("Allow", ["iot:Connect"], ["*"]),
               stmt("Allow", ["iot:Subscribe"], [f"{ARN}:topicfilter/allowed/*"]))
    client = await env.raw(env.device("dev", policies=(p,)))
    codes = await subscribe(client, ("allowed/x", 1), ("denied/x", 0), ("allowed/+", 0),
                            ("bad/#/x", 0))
    assert codes == bytes([1, 0x80, 0, 0x80])


async def test_subscribe_qos2_gets_no_suback(env: Env):
    client = await env.raw(env.device("dev"))
    await client.send(codec.encode_subscribe(1, [("a", 2)]))
    with pytest.raises(TimeoutError):
        await client.read(timeout=0.5)


async def test_receive_denied_is_not_delivered_to_that_subscriber(env: Env):
    no_receive = policy(stmt("Allow", ["iot:Connect", "iot:Subscribe"], ["*"]),
                        stmt("Allow", ["iot:Receive"], [f"{ARN}:topic/open/*"]))
    blind = await env.raw(env.device("blind", policies=(no_receive,)))
    seer = await env.raw(env.device("seer"))
    pub = await env.raw(env.device("pub"))
    for client in (blind, seer):
        assert await subscribe(client, ("secret/#", 0), ("open/#", 0)) == b"\x00\x00"
    await pub.send(codec.publish(codec.encode_topic("secret/1"), b"s"))
    await pub.send(codec.publish(codec.encode_topic("open/1"), b"o"))
    assert (await next_publish(seer))[:2] == ("secret/1", b"s")
    assert (await next_publish(seer))[:2] == ("open/1", b"o")
    assert (await next_publish(blind))[:2] == ("open/1", b"o")  # secret/1 skipped


async def test_workshop_client_id_policy_on_a_group(env: Env):
    smart_building = policy(
        stmt("Allow", ["iot:Connect"], [f"{ARN}:client/${{iot:ClientId}}"]),
        stmt("Allow", ["iot:Publish"], [f"{ARN}:topic/telemetry/building/one/${{iot:ClientId}}"]))
    member = env.device("group-member", policies=(smart_building,),
                        things=(ThingInfo("group-member"),))
    watcher = await env.raw(env.device("watcher"))
    await subscribe(watcher, ("telemetry/building/one/#", 0))
    impostor = await env.raw(member, "someone-else")  # the topic follows the client id
    await impostor.send(codec.publish(codec.encode_topic("telemetry/building/one/group-member"),
                                      b"x"))
    assert await impostor.read() is None
    client = await env.raw(member)
    await client.send(codec.publish(codec.encode_topic("telemetry/building/one/group-member"),
                                    b'{"group": "test"}'))
    got = await next_publish(watcher)
    assert got is not None and got[0] == "telemetry/building/one/group-member"
    await client.send(codec.publish(
        codec.encode_topic("telemetry/building/one/group-member_foo"), b"no"))
    assert await client.read() is None
    assert await next_publish(watcher, timeout=0.3) is None


async def test_policy_change_applies_to_live_connection_on_epoch_bump(env: Env):
    device = env.device("dev")
    client = await env.raw(device)
    sink = await env.raw(env.device("sink"))
    await subscribe(sink, ("t", 0))
    await client.send(codec.publish(codec.encode_topic("t"), b"before"))
    assert (await next_publish(sink))[1] == b"before"
    connect_only = policy(stmt("Allow", ["iot:Connect"], ["*"]))
    env.authority.update(device, certificate_policies=(connect_only,))
    await client.send(codec.publish(codec.encode_topic("t"), b"after"))
    assert await client.read() is None


# --- presence, takeover, certificate disconnects -------------------------------------------

async def test_presence_events_connected_and_disconnected(env: Env):
    watcher = await env.raw(env.device("watcher"))
    await subscribe(watcher, ("$aws/events/presence/+/+", 1))
    device = env.device("thing-1")
    client = await env.raw(device)
    got = await next_publish(watcher)
    assert got is not None and got[0] == "$aws/events/presence/connected/thing-1"
    connected = json.loads(got[1])
    assert connected["eventType"] == "connected" and connected["clientId"] == "thing-1"
    assert connected["principalIdentifier"] == device.certificate_id
    assert connected["ipAddress"] == "127.0.0.1" and got[2] == 1
    await client.send(b"\xe0\x00")  # DISCONNECT
    got = await next_publish(watcher)
    assert got is not None and got[0] == "$aws/events/presence/disconnected/thing-1"
    gone = json.loads(got[1])
    assert gone["clientInitiatedDisconnect"] is True
    assert gone["disconnectReason"] == "CLIENT_INITIATED_DISCONNECT"
    assert gone["sessionIdentifier"] == connected["sessionIdentifier"]
    assert gone["versionNumber"] == connected["versionNumber"]
    assert isinstance(gone["timestamp"], int)


async def test_same_client_id_takes_over_and_old_connection_is_dropped(env: Env):
    watcher = await env.raw(env.device("watcher"))
    await subscribe(watcher, ("$aws/events/presence/disconnected/+", 0))
    device = env.device("dup")
    first = await env.raw(device)
    second = await env.raw(device)
    assert await first.read() is None
    got = await next_publish(watcher)
    assert got is not None and json.loads(got[1])["disconnectReason"] == "DUPLICATE_CLIENTID"
    await second.send(b"\xc0\x00")
    assert await second.read() == (0xD0, b"")


async def test_disconnect_certificate_drops_its_sessions_only(env: Env):
    doomed, other = env.device("doomed"), env.device("other")
    a, b = await env.raw(doomed, "a"), await env.raw(doomed, "b")
    c = await env.raw(other)
    env.broker.disconnect_certificate(doomed.certificate_id)
    assert await a.read() is None and await b.read() is None
    await c.send(b"\xc0\x00")
    assert await c.read() == (0xD0, b"")
    assert set(env.broker.clients) == {"other"}


async def test_internal_publish_skips_publish_policy_but_not_receive(env: Env):
    no_receive = policy(stmt("Allow", ["iot:Connect", "iot:Subscribe"], ["*"]))
    blind = await env.raw(env.device("blind", policies=(no_receive,)))
    seer = await env.raw(env.device("seer"))
    for client in (blind, seer):
        await subscribe(client, ("$aws/events/thing/+/created", 0))
    env.broker.publish_internal("$aws/events/thing/t1/created", b'{"x": 1}')
    assert (await next_publish(seer))[:2] == ("$aws/events/thing/t1/created", b'{"x": 1}')
    assert await next_publish(blind, timeout=0.3) is None
