"""Registry events reach an MQTT subscriber of `$aws/events/#` on local core's broker, only for
enabled types; deactivating a certificate disconnects its clients."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from fleetsim.localcore.launcher import RunningLocalCore
from tests.helpers import ALLOW_ALL


def provision(iot: Any, core: RunningLocalCore, directory: Path, name: str) -> tuple[ssl.SSLContext,
                                                                               str]:
    """The workshop's provisioning steps; returns the device's TLS context and certificate id."""
    iot.create_thing(thingName=name)
    out = iot.create_keys_and_certificate(setAsActive=True)
    if iot.list_policies()["policies"] == []:
        iot.create_policy(policyName="all", policyDocument=ALLOW_ALL)
    iot.attach_policy(policyName="all", target=out["certificateArn"])
    iot.attach_thing_principal(thingName=name, principal=out["certificateArn"])
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    cert.write_text(out["certificatePem"])
    key.write_text(out["keyPair"]["PrivateKey"])
    ctx = ssl.create_default_context(cafile=str(core.root_ca))
    ctx.load_cert_chain(cert, key)
    return ctx, out["certificateId"]


@asynccontextmanager
async def connected(iot: Any, core: RunningLocalCore, directory: Path,
                    name: str) -> AsyncIterator[tuple[aiomqtt.Client, str]]:
    """A device provisioned as `name`, connected with client id `name`; yields its MQTT client
    and certificate id."""
    tls, cert_id = provision(iot, core, directory, name)
    async with aiomqtt.Client(core.mqtt_host, core.mqtt_port, identifier=name,
                              tls_context=tls, timeout=5) as client:
        yield client, cert_id


async def collect(messages: Any, count: int, timeout: float = 5.0) -> list[tuple[str, dict]]:
    got: list[tuple[str, dict]] = []

    async def take() -> None:
        async for message in messages:
            got.append((str(message.topic), json.loads(message.payload)))
            if len(got) == count:
                return

    await asyncio.wait_for(take(), timeout)
    return got


async def test_enabled_registry_events_are_delivered(iot: Any, core: RunningLocalCore,
                                                     tmp_path: Path) -> None:
    async with connected(iot, core, tmp_path, "watcher") as (client, _):
        await client.subscribe("$aws/events/#", qos=1)
        iot.update_event_configurations(eventConfigurations={
            "THING": {"Enabled": True}, "THING_GROUP_MEMBERSHIP": {"Enabled": True},
            "THING_GROUP": {"Enabled": False}})
        iot.create_thing_group(thingGroupName="quiet-group")  # THING_GROUP disabled
        created = iot.create_thing(thingName="evt-thing")
        iot.update_thing(thingName="evt-thing",
                         attributePayload={"attributes": {"type": "ws-device"}})
        iot.add_thing_to_thing_group(thingGroupName="quiet-group", thingName="evt-thing")
        events = await collect(client.messages, 3)
    topics = [t for t, _ in events]
    assert topics == ["$aws/events/thing/evt-thing/created", "$aws/events/thing/evt-thing/updated",
                      "$aws/events/thingGroupMembership/thingGroup/quiet-group/thing/evt-thing/"
                      "added"]
    created_event, updated_event, membership = (p for _, p in events)
    assert created_event["eventType"] == "THING_EVENT"
    assert created_event["operation"] == "CREATED"
    assert created_event["thingId"] == created["thingId"]
    assert created_event["accountId"] == "123456789012" and created_event["versionNumber"] == 1
    assert updated_event["attributes"] == {"type": "ws-device"}
    assert updated_event["versionNumber"] == 2
    assert membership["operation"] == "ADDED" and membership["thingArn"] == created["thingArn"]


async def test_deactivating_a_certificate_disconnects_its_client(iot: Any, core: RunningLocalCore,
                                                                 tmp_path: Path) -> None:
    async with connected(iot, core, tmp_path, "doomed") as (client, cert_id):
        await client.subscribe("doomed/#", qos=0)
        iot.update_certificate(certificateId=cert_id, newStatus="INACTIVE")
        with pytest.raises(aiomqtt.MqttError):
            async with asyncio.timeout(5):
                async for _ in client.messages:
                    pass
