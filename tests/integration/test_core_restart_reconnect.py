"""`kill -9` local core and start it again on the same state directory and ports: the
registry is intact and connected devices come back by themselves (reconnect with back-off)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from fleetsim.device import DeviceIdentity, DeviceSession
from fleetsim.device.reconnect import ReconnectPolicy
from fleetsim.metrics import Metrics
from fleetsim.target import Target
from tests.conftest import start_core
from tests.helpers import ALLOW_ALL, aws_client

DEVICES = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_devices_reconnect_after_kill_9(tmp_path: Path) -> None:
    ports = {"api_port": free_port(), "mqtt_port": free_port()}
    ec_keys = ("--keys-and-certificate-key-type", "ec-p256")
    core = start_core(tmp_path / "core", extra_args=ec_keys, **ports)
    iot = aws_client(core.api_url, max_attempts=None)
    iot.create_policy(policyName="restart", policyDocument=ALLOW_ALL)
    identities = []
    for i in range(DEVICES):
        name = f"restart-{i}"
        iot.create_thing(thingName=name)
        out = iot.create_keys_and_certificate(setAsActive=True)
        assert "BEGIN EC PRIVATE KEY" in out["keyPair"]["PrivateKey"]
        iot.attach_policy(policyName="restart", target=out["certificateArn"])
        iot.attach_thing_principal(thingName=name, principal=out["certificateArn"])
        identities.append(DeviceIdentity("restart", i, name, "ec-p256",
                                         out["keyPair"]["PrivateKey"].encode()
                                         ).with_certificate(out["certificatePem"]))
    target = Target.local(core.api_url, core.mqtt_host, core.mqtt_port, core.root_ca)
    metrics = Metrics()
    policy = ReconnectPolicy(base=0.2, cap=1.0)
    sessions = [DeviceSession(ident, target, metrics, reconnect=policy, timeout=5)
                for ident in identities]
    try:
        for session in sessions:
            await session.__aenter__()
        core.stop(kill=True)
        await asyncio.sleep(0.5)
        assert not any(s.connected for s in sessions)  # every device saw the loss
        core = start_core(tmp_path / "core", extra_args=ec_keys, **ports)
        reconnected = await asyncio.wait_for(
            asyncio.gather(*(s.wait_connected() for s in sessions)), 30)
        assert all(reconnected)
        for session in sessions:
            await session.publish("restart/ok", b"{}", qos=1)  # PUBACK from the new broker
        assert metrics.histogram("mqtt.reconnect").count >= DEVICES
        # and the registry came back whole
        assert len(iot.list_things()["things"]) == DEVICES
        assert len(iot.list_certificates()["certificates"]) == DEVICES
        assert iot.get_policy(policyName="restart")["policyName"] == "restart"
    finally:
        for session in sessions:
            await session.__aexit__(None, None, None)
        core.stop()
