"""The broker's feature hooks over real TLS: the reserved-topic router (broadcast and requester
delivery, order, in-flight counts), on_message, the unknown-certificate hook, RETAIN refused on
reserved topics, and which thing (and so which group policies) a connection gets."""

from __future__ import annotations

import asyncio
import json

import pytest

from fleetsim.localcore.broker import codec
from fleetsim.localcore.broker.router import Reply, Request
from fleetsim.localcore.broker.server import Message
from fleetsim.localcore.policy_document import ALLOW_ALL_DOCUMENT
from fleetsim.localcore.principal import Principal, ThingInfo, UnknownCertificate
from tests.mqtt_testing import (
    ACCOUNT_ID,
    REGION,
    Env,
    RawClient,
    next_publish,
    policy,
    pub,
    stmt,
    subscribe,
)

ARN = f"arn:aws:iot:{REGION}:{ACCOUNT_ID}"
SHADOW_UPDATE = "$aws/things/{thingName}/shadow/name/{shadowName}/update"
JOBS_GET = "$aws/things/{thingName}/jobs/get"
pytestmark = pytest.mark.timeout(30)


def not_presence(messages: list[Message]) -> list[Message]:
    return [m for m in messages if not m.topic.startswith("$aws/events/presence/")]


class Recorder:
    """A feature handler that records requests and answers each on `<topic>/accepted`."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.done = asyncio.Event()

    async def __call__(self, request: Request, reply: Reply) -> None:
        self.requests.append(request)
        reply.publish(f"{request.topic}/accepted",
                      json.dumps({"echo": request.payload.decode()}).encode())
        self.done.set()


# --- broadcast delivery (shadows) -----------------------------------------------------------

async def test_broadcast_request_reaches_handler_and_reply_reaches_allowed_subscribers(env: Env):
    handler = Recorder()
    env.broker.router.register(SHADOW_UPDATE, handler, delivery="broadcast")
    seen: list[Message] = []
    env.broker.on_message = seen.append
    topic = "$aws/things/lamp/shadow/name/cfg/update"
    no_receive = policy(stmt("Allow", ["iot:Connect", "iot:Subscribe"], ["*"]))
    watcher = await env.raw(env.device("watcher"))
    blind = await env.raw(env.device("blind", policies=(no_receive,)))
    for client in (watcher, blind):
        assert await subscribe(client, (topic, 1), (f"{topic}/accepted", 1)) == b"\x01\x01"
    lamp = env.device("lamp", things=(ThingInfo("lamp"),))
    requester = await env.raw(lamp)
    await requester.send(pub(topic, b'{"state": {}}', qos=1, pid=5))
    assert await requester.read() == (0x40, b"\x00\x05")

    got = await next_publish(watcher)  # the request is an ordinary message (Publish/Subscribe)
    assert got is not None and got[:3] == (topic, b'{"state": {}}', 1)
    got = await next_publish(watcher)
    assert got is not None and got[0] == f"{topic}/accepted"
    assert json.loads(got[1]) == {"echo": '{"state": {}}'} and got[2] == 1
    assert await next_publish(blind, timeout=0.3) is None  # iot:Receive denied: nothing
    assert await next_publish(requester, timeout=0.3) is None  # not subscribed: nothing

    [request] = handler.requests
    assert request.topic == topic and request.payload == b'{"state": {}}' and request.qos == 1
    assert request.client_id == "lamp" and request.certificate_id == lamp.certificate_id
    assert request.thing_name == "lamp" and request.in_flight == 1
    assert request.params == {"thingName": "lamp", "shadowName": "cfg"}
    assert [(m.topic, m.client_id) for m in not_presence(seen)] == [
        (topic, "lamp"), (f"{topic}/accepted", None)]


async def test_thing_name_is_none_when_the_client_id_is_not_the_thing(env: Env):
    handler = Recorder()
    env.broker.router.register(SHADOW_UPDATE, handler)
    client = await env.raw(env.device("lamp", things=(ThingInfo("lamp"),)), "app-1")
    await client.send(pub("$aws/things/lamp/shadow/name/cfg/update", b"{}"))
    await asyncio.wait_for(handler.done.wait(), 5)
    assert handler.requests[0].thing_name is None and handler.requests[0].client_id == "app-1"


# --- requester delivery (jobs) --------------------------------------------------------------

async def test_requester_reply_reaches_only_the_requester_without_subscription(env: Env):
    handler = Recorder()
    env.broker.router.register(JOBS_GET, handler, delivery="requester")
    seen: list[Message] = []
    env.broker.on_message = seen.append
    watcher = await env.raw(env.device("watcher"))
    assert await subscribe(watcher, ("$aws/things/+/jobs/#", 1)) == b"\x01"
    requester = await env.raw(env.device("robot"))
    await requester.send(pub("$aws/things/robot/jobs/get", b"{}", qos=1, pid=9))
    assert await requester.read() == (0x40, b"\x00\x09")
    got = await next_publish(requester)
    assert got is not None and got[0] == "$aws/things/robot/jobs/get/accepted"
    assert got[2] == 1  # no subscription: the request's QoS
    await requester.send(codec.puback(got[5]))
    assert handler.requests[0].params == {"thingName": "robot"}
    # Neither the request nor the reply passes through the message broker.
    assert await next_publish(watcher, timeout=0.3) is None
    assert not_presence(seen) == []


async def test_requester_reply_uses_the_qos_of_a_matching_subscription(env: Env):
    handler = Recorder()
    env.broker.router.register(JOBS_GET, handler, delivery="requester")
    requester = await env.raw(env.device("robot"))
    assert await subscribe(requester, ("$aws/things/robot/jobs/get/accepted", 0)) == b"\x00"
    await requester.send(pub("$aws/things/robot/jobs/get", b"{}", qos=1, pid=3))
    got = await next_publish(requester)
    assert got is not None and got[0] == "$aws/things/robot/jobs/get/accepted" and got[2] == 0


async def test_requester_reply_needs_iot_receive(env: Env):
    handler = Recorder()
    env.broker.router.register(JOBS_GET, handler, delivery="requester")
    no_receive = policy(stmt("Allow", ["iot:Connect", "iot:Publish"], ["*"]))
    requester = await env.raw(env.device("robot", policies=(no_receive,)))
    await requester.send(pub("$aws/things/robot/jobs/get", b"{}"))
    await asyncio.wait_for(handler.done.wait(), 5)
    assert await next_publish(requester, timeout=0.3) is None


# --- asynchrony, order, in-flight -----------------------------------------------------------

async def test_handlers_run_later_in_arrival_order_with_in_flight_counts(env: Env):
    release = asyncio.Event()
    started: list[tuple[bytes, int]] = []

    async def slow(request: Request, reply: Reply) -> None:
        started.append((request.payload, request.in_flight))
        await release.wait()
        reply.publish(f"{request.topic}/accepted", request.payload)

    env.broker.router.register(SHADOW_UPDATE, slow)
    topic = "$aws/things/lamp/shadow/name/cfg/update"
    client = await env.raw(env.device("lamp"))
    assert await subscribe(client, (f"{topic}/accepted", 1)) == b"\x01"
    for pid in (1, 2, 3):
        await client.send(pub(topic, b"%d" % pid, qos=1, pid=pid))
    for pid in (1, 2, 3):  # every request acknowledged while the first handler still waits
        assert await client.read() == (0x40, bytes([0, pid]))
    assert started == [(b"1", 1)]
    release.set()
    payloads = []
    for _ in range(3):
        got = await next_publish(client)
        assert got is not None
        payloads.append(got[1])
        await client.send(codec.puback(got[5]))
    assert payloads == [b"1", b"2", b"3"]
    assert started == [(b"1", 1), (b"2", 2), (b"3", 3)]


async def test_a_failing_handler_does_not_stop_the_next_request(env: Env):
    handler = Recorder()

    async def flaky(request: Request, reply: Reply) -> None:
        if request.payload == b"boom":
            raise RuntimeError("feature bug")
        await handler(request, reply)

    env.broker.router.register(JOBS_GET, flaky, delivery="requester")
    client = await env.raw(env.device("robot"))
    await client.send(pub("$aws/things/robot/jobs/get", b"boom"))
    await client.send(pub("$aws/things/robot/jobs/get", b"fine"))
    got = await next_publish(client)
    assert got is not None and json.loads(got[1]) == {"echo": "fine"}


# --- RETAIN on reserved topics --------------------------------------------------------------

@pytest.mark.parametrize("topic", ["$aws/things/lamp/shadow/update", "$aws/rules/my_rule/x"])
async def test_retain_to_a_reserved_topic_disconnects(env: Env, topic: str):
    handler = Recorder()
    env.broker.router.register("$aws/things/{thingName}/shadow/update", handler)
    watcher = await env.raw(env.device("watcher"))
    await subscribe(watcher, ("$aws/things/lamp/shadow/update", 0))
    client = await env.raw(env.device("lamp"))
    await client.send(pub(topic, b"{}", qos=1, retain=True))
    assert await client.read() is None  # no PUBACK: the connection is closed
    assert await next_publish(watcher, timeout=0.3) is None and handler.requests == []
    late = await env.raw(env.device("late"))  # nothing was retained either
    await subscribe(late, ("$aws/things/lamp/shadow/update", 0))
    assert await next_publish(late, timeout=0.3) is None


async def test_will_with_retain_on_a_reserved_topic_is_refused(env: Env):
    client = await RawClient.open(env.port, env.device("lamp"))
    will = codec.Will("$aws/things/lamp/shadow/update", b"{}", 0, True)
    assert await client.connect("lamp", will=will) is None


# --- unknown-certificate hook ---------------------------------------------------------------

async def test_unknown_certificate_hook_can_register_and_admit(env: Env):
    offered: list[UnknownCertificate] = []
    device = env.device("jit", register=False)

    async def register(unknown: UnknownCertificate) -> Principal | None:
        offered.append(unknown)
        await asyncio.sleep(0)  # really asynchronous
        return env.authority.register(device)

    env.broker.unknown_certificate = register
    client = await env.raw(device)  # CONNACK accepted (asserted by env.raw)
    [unknown] = offered
    assert unknown.cert_der == device.cert_der and unknown.client_id == "jit"
    assert unknown.peer_ip == "127.0.0.1"
    await client.send(pub("iot/ws", b"x", qos=1, pid=4))  # the connection works as usual
    assert await client.read() == (0x40, b"\x00\x04")


async def test_packets_sent_with_connect_wait_for_the_hook(env: Env):
    device = env.device("eager", register=False)

    async def register(unknown: UnknownCertificate) -> Principal | None:
        await asyncio.sleep(0.05)
        return env.authority.register(device)

    env.broker.unknown_certificate = register
    client = await RawClient.open(env.port, device)
    await client.send(codec.encode_connect("eager", 60, True, None) + b"\xc0\x00")  # + PINGREQ
    assert await client.read() == (0x20, b"\x00\x00")
    assert await client.read() == (0xD0, b"")


async def test_unknown_certificate_hook_returning_none_refuses_like_today(env: Env):
    device = env.device("jitr", register=False)
    calls = []

    async def register_pending_then_refuse(unknown: UnknownCertificate) -> Principal | None:
        calls.append(unknown.client_id)
        env.authority.register(device)  # JITR: registered now, the device retries
        return None

    env.broker.unknown_certificate = register_pending_then_refuse
    client = await RawClient.open(env.port, device)
    assert await client.connect("jitr") is None
    assert not env.broker.clients
    again = await env.raw(device)  # the retry finds the certificate registered
    assert calls == ["jitr"]
    await again.close()


async def test_unknown_certificate_hook_that_fails_refuses(env: Env):
    async def broken(unknown: UnknownCertificate) -> Principal | None:
        raise RuntimeError("registry down")

    env.broker.unknown_certificate = broken
    client = await RawClient.open(env.port, env.device("x", register=False))
    assert await client.connect("x") is None


# --- which thing a connection is: group policies and thing variables ------------------------

CONNECT_ONLY = policy(stmt("Allow", ["iot:Connect"], ["*"]))
GROUP_PUBLISH = policy(stmt("Allow", ["iot:Publish"],
                            [f"{ARN}:topic/dt/${{iot:Connection.Thing.ThingName}}"]))


async def test_group_policy_applies_only_with_client_id_equal_to_the_thing(env: Env):
    member = env.device("member", policies=(CONNECT_ONLY,),
                        things=(ThingInfo("member", group_policies=(GROUP_PUBLISH,)),))
    client = await env.raw(member)
    await client.send(pub("dt/member", b"ok", qos=1, pid=1))
    assert await client.read() == (0x40, b"\x00\x01")
    other = await env.raw(member, "not-the-thing")
    await other.send(pub("dt/member", b"denied", qos=1, pid=2))
    assert await other.read() is None  # group policy not applied: publish denied


async def test_exclusive_thing_applies_group_policy_whatever_the_client_id(env: Env):
    solo = env.device("solo", policies=(CONNECT_ONLY,), things=(ThingInfo(
        "solo", principal_type="EXCLUSIVE_THING", group_policies=(GROUP_PUBLISH,)),))
    client = await env.raw(solo, "any-client-id")
    await client.send(pub("dt/solo", b"ok", qos=1, pid=1))
    assert await client.read() == (0x40, b"\x00\x01")
    await client.send(pub("dt/any-client-id", b"denied", qos=1, pid=2))
    assert await client.read() is None


async def test_on_message_failure_does_not_break_routing(env: Env):
    def broken(message: Message) -> None:
        raise RuntimeError("bus full")

    env.broker.on_message = broken
    sink = await env.raw(env.device("sink", policies=(ALLOW_ALL_DOCUMENT,)))
    await subscribe(sink, ("t", 0))
    client = await env.raw(env.device("src"))
    await client.send(pub("t", b"still delivered", qos=1))
    assert await client.read() == (0x40, b"\x00\x01")
    got = await next_publish(sink)
    assert got is not None and got[1] == b"still delivered"
