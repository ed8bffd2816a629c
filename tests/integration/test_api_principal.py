"""What the API registers is what the broker enforces: the workshop's thing-group policy lab,
end to end (policy on a thing group, inherited by a member's certificate)."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from fleetsim.localcore.launcher import RunningLocalCore
from tests.helpers import ALLOW_ALL

BUILDING_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["iot:Connect"],
     "Resource": ["arn:aws:iot:us-east-1:123456789012:client/${iot:ClientId}"]},
    {"Effect": "Allow", "Action": ["iot:Publish"],
     "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/telemetry/building/one/"
                  "${iot:ClientId}"]}]})



def device(iot: Any, core: RunningLocalCore, directory: Path, name: str,
           policy: str | None) -> ssl.SSLContext:
    iot.create_thing(thingName=name)
    out = iot.create_keys_and_certificate(setAsActive=True)
    if policy:
        iot.attach_policy(policyName=policy, target=out["certificateArn"])
    iot.attach_thing_principal(thingName=name, principal=out["certificateArn"])
    (directory / f"{name}.pem").write_text(out["certificatePem"])
    (directory / f"{name}.key").write_text(out["keyPair"]["PrivateKey"])
    ctx = ssl.create_default_context(cafile=str(core.root_ca))
    ctx.load_cert_chain(directory / f"{name}.pem", directory / f"{name}.key")
    return ctx


async def test_thing_group_policy_authorises_its_members(iot: Any, core: RunningLocalCore,
                                                         tmp_path: Path) -> None:
    iot.create_policy(policyName="watch-all", policyDocument=ALLOW_ALL)
    iot.create_policy(policyName="SmartBuilding_Policy", policyDocument=BUILDING_POLICY)
    group = iot.create_thing_group(thingGroupName="building-one")
    iot.attach_policy(policyName="SmartBuilding_Policy", target=group["thingGroupArn"])
    watcher_tls = device(iot, core, tmp_path, "watcher", "watch-all")
    member_tls = device(iot, core, tmp_path, "group-member", None)
    with pytest.raises(aiomqtt.MqttError):  # no policy yet: the broker drops the CONNECT
        async with aiomqtt.Client(core.mqtt_host, core.mqtt_port, identifier="group-member",
                                  tls_context=member_tls, timeout=1):
            pass
    iot.add_thing_to_thing_group(thingGroupName="building-one", thingName="group-member")
    async with aiomqtt.Client(core.mqtt_host, core.mqtt_port, identifier="watcher",
                              tls_context=watcher_tls, timeout=5) as watcher:
        await watcher.subscribe("telemetry/#", qos=1)
        async with aiomqtt.Client(core.mqtt_host, core.mqtt_port, identifier="group-member",
                                  tls_context=member_tls, timeout=5) as member:
            await member.publish("telemetry/building/one/group-member", b'{"t": 21}', qos=1)
        async with asyncio.timeout(5):
            message = await anext(aiter(watcher.messages))
    assert str(message.topic) == "telemetry/building/one/group-member"
    assert message.payload == b'{"t": 21}'
