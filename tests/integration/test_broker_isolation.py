"""No single policy, subscriber or connection can break delivery to others: an exception while
authorizing, handling or delivering to one client closes that client's connection only (issue 8).
Policies the evaluator cannot handle stand in for any such fault."""

from __future__ import annotations

import random
import ssl

import pytest

from fleetsim.localcore.broker.session import Session
from tests.mqtt_fuzz import CLIENT_IDS, chunks, mutate, valid_stream
from tests.mqtt_testing import (
    BREAKS_EVALUATOR,
    Env,
    RawClient,
    next_publish,
    pub,
    subscribe,
)

pytestmark = pytest.mark.timeout(30)

async def assert_delivered(publisher: RawClient, *subscribers: RawClient) -> None:
    await publisher.send(pub("fleet/x", b"hello", qos=1, pid=9))
    assert await publisher.read() == (0x40, b"\x00\x09")  # the publisher keeps its PUBACK
    for subscriber in subscribers:
        got = await next_publish(subscriber)
        assert got is not None and got[:2] == ("fleet/x", b"hello")


async def test_a_subscriber_whose_policy_breaks_the_evaluator_costs_only_its_connection(
        env: Env):
    early = await env.raw(env.device("early"))
    await subscribe(early, ("fleet/#", 1))
    bad_device = env.device("bad")
    bad = await env.raw(bad_device)
    await subscribe(bad, ("fleet/#", 1))
    late = await env.raw(env.device("late"))
    await subscribe(late, ("fleet/#", 1))
    env.authority.update(bad_device, certificate_policies=(BREAKS_EVALUATOR,))
    publisher = await env.raw(env.device("publisher"))
    await assert_delivered(publisher, early, late)
    assert await bad.read() is None  # closed, without the message
    assert "bad" not in env.broker.clients
    await assert_delivered(publisher, early, late)  # and the next message too


async def test_a_device_whose_policy_breaks_the_evaluator_is_refused_and_others_connect(
        env: Env):
    bad = await RawClient.open(env.port, env.device("bad", policies=(BREAKS_EVALUATOR,)))
    assert await bad.connect("bad") is None  # no CONNACK, closed
    subscriber = await env.raw(env.device("subscriber"))
    await subscribe(subscriber, ("fleet/x", 1))
    await assert_delivered(await env.raw(env.device("publisher")), subscriber)


async def test_a_publisher_whose_policy_breaks_the_evaluator_is_disconnected_alone(env: Env):
    subscriber = await env.raw(env.device("subscriber"))
    await subscribe(subscriber, ("fleet/x", 1))
    bad_device = env.device("bad")
    bad = await env.raw(bad_device)
    env.authority.update(bad_device, certificate_policies=(BREAKS_EVALUATOR,))
    await bad.send(pub("fleet/x", b"from bad", qos=1, pid=3))
    assert await bad.read() is None  # no PUBACK: closed
    assert await next_publish(subscriber, timeout=0.3) is None
    await assert_delivered(await env.raw(env.device("publisher")), subscriber)


async def test_a_failure_delivering_to_one_subscriber_does_not_reach_the_others(
        env: Env, monkeypatch: pytest.MonkeyPatch):
    send_qos1 = Session.send_qos1

    def failing_for_bad(self: Session, topic: bytes, payload: bytes,
                        retain: bool = False) -> None:
        if self.client_id == "bad":
            raise RuntimeError("a bug delivering to one subscriber")
        send_qos1(self, topic, payload, retain)

    monkeypatch.setattr(Session, "send_qos1", failing_for_bad)
    early = await env.raw(env.device("early"))
    await subscribe(early, ("fleet/x", 1))
    bad = await env.raw(env.device("bad"))
    await subscribe(bad, ("fleet/x", 1))
    late = await env.raw(env.device("late"))
    await subscribe(late, ("fleet/x", 1))
    await assert_delivered(await env.raw(env.device("publisher")), early, late)
    assert await bad.read() is None
    assert set(env.broker.clients) == {"early", "late", "publisher"}


async def test_fuzzed_streams_over_tls_leave_the_server_serving_others(env: Env):
    """A few of the fuzzer's mutated streams (tests/mqtt_fuzz.py) from real TLS clients, each
    followed by a message between two healthy devices."""
    subscriber = await env.raw(env.device("subscriber"))
    await subscribe(subscriber, ("fleet/x", 1))
    publisher = await env.raw(env.device("publisher"))
    fuzzed = [env.device(f"fuzz-{i}") for i in range(3)]
    for case in range(12):
        rng = random.Random(f"tls:{case}")
        packets = valid_stream(rng, rng.choice(CLIENT_IDS))
        data = mutate(rng, packets, b"".join(valid_stream(rng, "donor")))
        client = await RawClient.open(env.port, fuzzed[case % 3])
        for chunk in chunks(rng, data):
            try:
                await client.send(chunk)
            except (ConnectionError, ssl.SSLError):
                break  # the broker closed it: fine
        await client.close()
        await assert_delivered(publisher, subscriber)
    assert {"subscriber", "publisher"} <= set(env.broker.clients)
