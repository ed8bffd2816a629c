"""End to end through the real local core process: provision with boto3 as the workshop does
(thing group policy with ${iot:ClientId}), then publish over MQTT/TLS with aiomqtt."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

import aiomqtt
import boto3
import pytest

from fleetsim.localcore.launcher import RunningLocalCore
from tests.conftest import aws_env
from tests.helpers import ALLOW_ALL

pytestmark = pytest.mark.timeout(90)


def iot_client(core: RunningLocalCore):
    env = aws_env(core)
    return boto3.client("iot", endpoint_url=core.api_url, region_name="us-east-1",
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


def provision(iot, tmp: Path, thing: str, root_ca: Path) -> tuple[ssl.SSLContext, str]:
    iot.create_thing(thingName=thing)
    keys = iot.create_keys_and_certificate(setAsActive=True)
    (tmp / f"{thing}.pem").write_text(keys["certificatePem"])
    (tmp / f"{thing}.key").write_text(keys["keyPair"]["PrivateKey"])
    iot.attach_thing_principal(thingName=thing, principal=keys["certificateArn"])
    ctx = ssl.create_default_context(cafile=str(root_ca))
    ctx.load_cert_chain(tmp / f"{thing}.pem", tmp / f"{thing}.key")
    return ctx, keys["certificateId"]


async def test_provision_with_boto3_then_publish_over_mqtt(local_core: RunningLocalCore,
                                                           tmp_path: Path):
    iot = iot_client(local_core)
    account = "123456789012"
    arn = f"arn:aws:iot:us-east-1:{account}"
    group_arn = iot.create_thing_group(thingGroupName="building-one")["thingGroupArn"]
    iot.create_policy(policyName="SmartBuilding_Policy", policyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["iot:Connect"],
             "Resource": [f"{arn}:client/${{iot:ClientId}}"]},
            {"Effect": "Allow", "Action": ["iot:Publish"],
             "Resource": [f"{arn}:topic/telemetry/building/one/${{iot:ClientId}}"]}]}))
    iot.attach_policy(policyName="SmartBuilding_Policy", target=group_arn)
    member_ctx, member_cert = provision(iot, tmp_path, "group-member", local_core.root_ca)
    iot.add_thing_to_thing_group(thingGroupName="building-one", thingName="group-member")

    iot.create_policy(policyName="watch", policyDocument=ALLOW_ALL)
    watcher_ctx, _ = provision(iot, tmp_path, "watcher", local_core.root_ca)
    watcher_arn = iot.list_thing_principals(thingName="watcher")["principals"][0]
    iot.attach_policy(policyName="watch", target=watcher_arn)

    host, port = local_core.mqtt_host, local_core.mqtt_port
    async with aiomqtt.Client(host, port, identifier="watcher", tls_context=watcher_ctx,
                              timeout=10) as watcher:
        await watcher.subscribe("telemetry/building/one/#", qos=1)
        await watcher.subscribe("$aws/events/presence/+/group-member", qos=1)
        messages = aiter(watcher.messages)
        async with aiomqtt.Client(host, port, identifier="group-member",
                                  tls_context=member_ctx, timeout=10) as member:
            await member.publish("telemetry/building/one/group-member", b'{"group": "test"}',
                                 qos=1)
            got = {}
            while len(got) < 2:
                msg = await asyncio.wait_for(anext(messages), 10)
                got[msg.topic.value] = msg.payload
            assert got["telemetry/building/one/group-member"] == b'{"group": "test"}'
            presence = json.loads(got["$aws/events/presence/connected/group-member"])
            assert presence["principalIdentifier"] == member_cert
            # Deactivating the certificate drops the live connection.
            await asyncio.to_thread(iot.update_certificate, certificateId=member_cert,
                                    newStatus="INACTIVE")
            msg = await asyncio.wait_for(anext(messages), 10)
            assert msg.topic.value == "$aws/events/presence/disconnected/group-member"
            assert json.loads(msg.payload)["disconnectReason"] == "AUTH_ERROR"


async def test_group_policy_follows_the_thing_association(local_core: RunningLocalCore,
                                                          tmp_path: Path):
    """AWS applies thing-group policies only for the connection's thing: the attached thing
    named like the client id, or, with EXCLUSIVE_THING, the certificate's thing whatever the
    client id ("Thing policy variables"; "Associating an AWS IoT thing to an MQTT client
    connection")."""
    iot = iot_client(local_core)
    arn = "arn:aws:iot:us-east-1:123456789012"
    group_arn = iot.create_thing_group(thingGroupName="fleet")["thingGroupArn"]
    iot.create_policy(policyName="by_thing", policyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["iot:Connect"], "Resource": [f"{arn}:client/*"]},
            {"Effect": "Allow", "Action": ["iot:Publish"],
             "Resource": [f"{arn}:topic/dt/${{iot:Connection.Thing.ThingName}}"]}]}))
    iot.attach_policy(policyName="by_thing", target=group_arn)
    host, port = local_core.mqtt_host, local_core.mqtt_port

    shared_ctx, _ = provision(iot, tmp_path, "shared", local_core.root_ca)
    iot.add_thing_to_thing_group(thingGroupName="fleet", thingName="shared")
    async with aiomqtt.Client(host, port, identifier="shared", tls_context=shared_ctx,
                              timeout=10) as client:
        await client.publish("dt/shared", b"1", qos=1)  # PUBACK: allowed
    with pytest.raises(aiomqtt.MqttError):  # no policy applies: iot:Connect denied
        async with aiomqtt.Client(host, port, identifier="another-id", tls_context=shared_ctx,
                                  timeout=5):
            pass

    iot.create_thing(thingName="solo")
    iot.add_thing_to_thing_group(thingGroupName="fleet", thingName="solo")
    keys = iot.create_keys_and_certificate(setAsActive=True)
    (tmp_path / "solo.pem").write_text(keys["certificatePem"])
    (tmp_path / "solo.key").write_text(keys["keyPair"]["PrivateKey"])
    iot.attach_thing_principal(thingName="solo", principal=keys["certificateArn"],
                               thingPrincipalType="EXCLUSIVE_THING")
    solo_ctx = ssl.create_default_context(cafile=str(local_core.root_ca))
    solo_ctx.load_cert_chain(tmp_path / "solo.pem", tmp_path / "solo.key")
    async with aiomqtt.Client(host, port, identifier="any-client-id", tls_context=solo_ctx,
                              timeout=10) as client:
        await client.publish("dt/solo", b"1", qos=1)  # the thing comes from the certificate
