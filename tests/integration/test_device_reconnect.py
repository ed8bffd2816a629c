"""Sessions that survive: reconnect with back-off after local core drops a session (client-id
takeover, certificate deactivated), a device that cannot connect counted and not fatal, and
closing many sessions at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleetsim.device import (
    DeviceError,
    DeviceSession,
    Observer,
    ReconnectPolicy,
    close_many,
    connect_many,
)
from fleetsim.device.session import CONNECTED_GAUGE
from fleetsim.metrics import Metrics
from tests.integration.test_device_session import Provisioner

pytestmark = pytest.mark.timeout(60)
FAST = ReconnectPolicy(base=0.05, cap=0.2)


@pytest.fixture
def prov(local_core: Any, tmp_path: Path) -> Provisioner:
    return Provisioner(local_core, tmp_path)


def session(prov: Provisioner, name: str, metrics: Metrics, **kwargs: Any) -> DeviceSession:
    return DeviceSession(prov.store.load(name), prov.target, metrics, timeout=5, **kwargs)


def errors(metrics: Metrics, op: str) -> dict[str, int]:
    return next((e["errors"] for e in metrics.snapshot()["ops"] if e["op"] == op), {})


async def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_taken_over_session_reconnects_and_keeps_its_subscriptions(
        prov: Provisioner) -> None:
    prov.device("watcher")
    prov.device("sender")
    metrics, other = Metrics(), Metrics()
    async with session(prov, "watcher", metrics, reconnect=FAST) as watcher, \
            Observer(watcher, ["dt/#"]) as seen, session(prov, "sender", other) as sender:
        # A second client with the watcher's client id: the broker drops the first one.
        intruder = session(prov, "watcher", other)
        await intruder.__aenter__()
        await until(lambda: watcher.reconnects >= 1 and watcher.connected)
        # The watcher took its client id back in turn; the intruder has no policy and ends.
        assert await asyncio.wait_for(intruder.wait_ended(), 10) == "disconnected_by_server"

        await sender.publish("dt/after", b'{"n": 1}', qos=1)
        message = await seen.wait_for("dt/after", timeout=10)  # subscription restored
        assert message.data == {"n": 1}
        assert not seen._ended

    assert metrics.histogram("mqtt.reconnect").count == watcher.reconnects
    assert errors(metrics, "mqtt.subscribe").get("disconnected_by_server", 0) \
        + errors(metrics, "mqtt.connect").get("disconnected_by_server", 0) >= 1
    assert metrics.gauges[CONNECTED_GAUGE] == 0


async def test_deactivated_certificate_gives_up_after_max_attempts(prov: Provisioner) -> None:
    identity = prov.device("device-1")
    metrics = Metrics()
    policy = ReconnectPolicy(base=0.05, cap=0.1, max_attempts=2)
    async with session(prov, "device-1", metrics, reconnect=policy) as s:
        cert_id = identity.certificate_id
        prov.iot.update_certificate(certificateId=cert_id, newStatus="INACTIVE")
        assert await asyncio.wait_for(s.wait_ended(), 15) == "reconnect_gave_up"
        assert not s.connected
        with pytest.raises(DeviceError):
            await s.publish("dt/x", b"{}")
    tries = errors(metrics, "mqtt.reconnect")
    assert tries.pop("reconnect_gave_up") == 1
    assert sum(tries.values()) == 2  # each refused attempt, by kind
    assert set(tries) <= {"closed_before_connack", "tls_refused", "connack_5"}
    assert metrics.histogram("mqtt.reconnect").count == 0
    assert metrics.gauges[CONNECTED_GAUGE] == 0


async def test_reactivated_certificate_reconnects(prov: Provisioner) -> None:
    identity = prov.device("device-2")
    metrics = Metrics()
    async with session(prov, "device-2", metrics, reconnect=FAST) as s:
        prov.iot.update_certificate(certificateId=identity.certificate_id, newStatus="INACTIVE")
        await until(lambda: sum(errors(metrics, "mqtt.reconnect").values()) >= 2)
        assert not s.connected
        prov.iot.update_certificate(certificateId=identity.certificate_id, newStatus="ACTIVE")
        await until(lambda: s.connected)
        assert s.reconnects == 1
        await s.publish("dt/back", b"{}", qos=1)
    assert metrics.gauges[CONNECTED_GAUGE] == 0


async def test_initial_connect_retries_only_when_asked(prov: Provisioner) -> None:
    prov.device("device-3", active=False)
    metrics = Metrics()
    with pytest.raises(DeviceError):
        await session(prov, "device-3", metrics, reconnect=FAST).__aenter__()
    assert sum(errors(metrics, "mqtt.connect").values()) == 1

    retrying = ReconnectPolicy(base=0.01, cap=0.02, max_attempts=3, retry_initial=True)
    s = session(prov, "device-3", metrics, reconnect=retrying)
    with pytest.raises(DeviceError):
        await s.__aenter__()
    assert sum(errors(metrics, "mqtt.connect").values()) == 1 + 3
    assert s.ended


async def test_connect_many_counts_failures_and_close_many_closes_all(
        prov: Provisioner) -> None:
    for i in range(12):
        prov.device(f"fleet-{i}", active=i % 4 != 0)  # every fourth cannot connect
    metrics = Metrics()
    sessions = [session(prov, f"fleet-{i}", metrics, reconnect=FAST) for i in range(12)]
    connected = await connect_many(sessions, concurrency=5)
    assert [s.client_id for s in connected] == [f"fleet-{i}" for i in range(12) if i % 4]
    assert sum(errors(metrics, "mqtt.connect").values()) == 3
    assert metrics.gauges[CONNECTED_GAUGE] == 9

    assert await close_many(sessions) == 0
    assert metrics.gauges[CONNECTED_GAUGE] == 0
    assert all(s.ended and not s.connected for s in sessions)
    for s in connected:  # closed on our side: no reconnect starts
        assert await asyncio.wait_for(s.wait_ended(), 1) == "closed"
        assert not await s.wait_connected()
    # The broker let go of the client ids: each connects again without a takeover.
    again = [session(prov, s.client_id, Metrics()) for s in connected[:3]]
    assert len(await connect_many(again)) == 3
    await close_many(again)


async def test_a_dropped_connection_reconnects_on_the_same_client(prov: Provisioner) -> None:
    prov.device("watcher")
    prov.device("sender")
    metrics = Metrics()
    got: list[tuple[str, bytes]] = []
    async with session(prov, "watcher", metrics, reconnect=FAST) as watcher, \
            session(prov, "sender", Metrics()) as sender:
        watcher.on_message(lambda m: got.append((str(m.topic), bytes(m.payload))))
        await watcher.subscribe("dt/#", 1)
        first = watcher.client
        watcher.drop()
        await until(lambda: watcher.reconnects == 1 and watcher.connected)
        assert watcher.client is first  # made ready again, not built anew
        await watcher.publish("dt/own", b"1", qos=1)  # PUBACK on the reused client
        await sender.publish("dt/after", b"2", qos=1)
        await until(lambda: ("dt/after", b"2") in got)  # subscription and handler kept
    assert errors(metrics, "mqtt.publish") == {}


async def test_mqtt5_topic_aliases_start_afresh_on_a_new_connection(prov: Provisioner) -> None:
    # A Topic Alias mapping lasts one network connection (MQTT 5 §3.3.2.3.4): after a
    # reconnect an alias sent without its topic would be a protocol error.
    prov.device("watcher")
    prov.device("sensor")
    got: list[tuple[str, bytes]] = []
    async with session(prov, "watcher", Metrics()) as watcher, \
            session(prov, "sensor", Metrics(), reconnect=FAST, protocol="mqtt5") as sensor:
        watcher.on_message(lambda m: got.append((str(m.topic), bytes(m.payload))))
        await watcher.subscribe("tele/#", 1)
        sensor.publish_nowait("tele/a", b"before")
        await until(lambda: len(got) == 1)
        client: Any = sensor.client
        assert client._aliases
        sensor.drop()
        await until(lambda: sensor.reconnects == 1 and sensor.connected)
        assert sensor.client is client and not client._aliases
        sensor.publish_nowait("tele/a", b"after")
        sensor.publish_nowait("tele/a", b"again")  # by the new connection's alias
        await until(lambda: len(got) == 3)
        assert sensor.connected
    assert got == [("tele/a", b"before"), ("tele/a", b"after"), ("tele/a", b"again")]
