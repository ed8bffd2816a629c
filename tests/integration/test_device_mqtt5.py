"""fleetsim's devices on MQTT 5 against a local core process: reason codes become error kinds
named by packet and code, telemetry uses topic aliases, properties reach other clients, and a
fleet of 100 devices runs the load scenario on MQTT 5."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fleetsim.device import DeviceError, DeviceSession
from fleetsim.metrics import Metrics
from tests.conftest import ROOT, aws_env
from tests.integration.test_device_session import Provisioner
from tests.integration.test_fleet_run import ops

pytestmark = pytest.mark.timeout(180)

RESTRICTED = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"},
    {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "*:topic/ok/*"},
    {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "*:topicfilter/ok/*"}]}


@pytest.fixture
def prov(local_core: Any, tmp_path: Path) -> Provisioner:
    return Provisioner(local_core, tmp_path)


async def test_refused_publish_and_subscribe_are_counted_by_reason_code(prov: Provisioner):
    metrics = Metrics()
    identity = prov.device("five", RESTRICTED)
    async with DeviceSession(identity, prov.target, metrics, protocol="mqtt5") as s:
        with pytest.raises(DeviceError) as refused:
            await s.publish("denied/x", b"x", qos=1)
        assert refused.value.kind == "puback_not_authorized"
        with pytest.raises(DeviceError) as suback:
            await s.subscribe("denied/#", 1)
        assert suback.value.kind == "suback_not_authorized"
        await s.publish("ok/x", b"x", qos=1)  # the connection stayed open
    errors = {e["op"]: e["errors"] for e in metrics.snapshot()["ops"] if e["errors"]}
    assert errors["mqtt.publish"] == {"puback_not_authorized": 1}
    assert errors["mqtt.subscribe"] == {"suback_not_authorized": 1}


async def test_takeover_is_counted_as_disconnect_session_taken_over(prov: Provisioner):
    metrics = Metrics()
    identity = prov.device("twin")
    first = DeviceSession(identity, prov.target, metrics, protocol="mqtt5")
    await first.__aenter__()
    async with DeviceSession(identity, prov.target, Metrics(), protocol="mqtt5"):
        assert await first.wait_closed() == "disconnect_session_taken_over"
    await first.__aexit__(None, None, None)


async def test_telemetry_with_topic_aliases_reaches_a_3_1_1_subscriber(
        prov: Provisioner, monkeypatch: pytest.MonkeyPatch):
    got: list[tuple[str, bytes]] = []
    packs: list[object] = []  # paho's Properties.pack costs tens of microseconds each time
    pack = Properties.pack
    monkeypatch.setattr(Properties, "pack", lambda self: packs.append(self) or pack(self))
    async with DeviceSession(prov.device("watcher"), prov.target, Metrics()) as watcher, \
            DeviceSession(prov.device("sensor"), prov.target, Metrics(), protocol="mqtt5",
                          session_expiry=60) as sensor:
        watcher.on_message(lambda m: got.append((str(m.topic), bytes(m.payload))))
        await watcher.subscribe("tele/#", 1)
        for i in range(5):
            sensor.publish_nowait("tele/sensor", str(i).encode())
        client: Any = sensor.client
        assert client._aliases["tele/sensor"][0] == 1  # sent once, then by alias
        publish_packs = [p for p in packs if getattr(p, "packetType", None) == PacketTypes.PUBLISH]
        assert len(publish_packs) == 1  # packed once for the five publishes
        for _ in range(100):
            if len(got) == 5:
                break
            await asyncio.sleep(0.05)
    assert got == [("tele/sensor", str(i).encode()) for i in range(5)]


def test_a_fleet_of_100_devices_runs_the_load_scenario_on_mqtt5(local_core: Any,
                                                                 tmp_path: Path) -> None:
    scenario = tmp_path / "load.yaml"
    text = (ROOT / "scenarios" / "load-telemetry-mqtt5.yaml").read_text()
    scenario.write_text(text.replace("duration: 30s", "duration: 6s"))
    summary = tmp_path / "s.json"
    proc = subprocess.run(
        [sys.executable, "-m", "fleetsim", "run", str(scenario), "--devices", "100",
         "--json", str(summary), "--state-dir", str(local_core.state_dir.parent)],
        cwd=tmp_path, capture_output=True, text=True, timeout=170,
        env={**aws_env(local_core), "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(summary.read_text())
    hist = ops(data)
    assert hist["mqtt.connect"].count == 100 + 1  # the devices and the observer
    published = hist["mqtt.publish"].count
    assert published >= 100
    assert data["metrics"]["counters"]["messages.received"] == published
    assert not [e for e in data["metrics"]["ops"] if e["errors"]]
