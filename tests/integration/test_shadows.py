"""Device shadows through the real local core process: devices over MQTT/TLS (aiomqtt and
mosquitto), applications over HTTP (boto3 `iot-data`), as the Device Shadow service documents
them."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from fleetsim.localcore.launcher import RunningLocalCore
from tests.device_testing import Connect, devices, provision
from tests.helpers import aws_client, code_of

pytestmark = pytest.mark.timeout(90)
ARN = "arn:aws:iot:us-east-1:123456789012"


@pytest.fixture(scope="module")
def data(core: RunningLocalCore) -> Any:
    return aws_client(core.api_url, "iot-data")


@pytest.fixture
async def connect(core: RunningLocalCore) -> AsyncIterator[Connect]:
    async with devices(core) as open_device:
        yield open_device


def shadow_topic(thing: str, suffix: str, name: str | None = None) -> str:
    middle = f"/name/{name}" if name else ""
    return f"$aws/things/{thing}/shadow{middle}/{suffix}"


async def test_desired_delta_reported_round_trip(iot: Any, data: Any, core: RunningLocalCore,
                                                 connect: Any, tmp_path: Path) -> None:
    thing = "lamp-1"
    ctx, _, _ = provision(iot, tmp_path, core.root_ca, thing)
    device = await connect(thing, ctx, shadow_topic(thing, "update/accepted"),
                           shadow_topic(thing, "update/delta"))
    await device.publish(shadow_topic(thing, "update"),
                         {"state": {"reported": {"color": "red", "on": True}},
                          "clientToken": "boot"})
    topic, accepted = await device.next()
    assert topic == shadow_topic(thing, "update/accepted")
    assert accepted["state"] == {"reported": {"color": "red", "on": True}}
    assert accepted["version"] == 1 and accepted["clientToken"] == "boot"
    assert set(accepted["metadata"]["reported"]) == {"color", "on"}

    # The application sets a desired value through the API; the device gets the delta.
    answer = await asyncio.to_thread(
        data.update_thing_shadow, thingName=thing,
        payload=json.dumps({"state": {"desired": {"color": "green"}}}).encode())
    assert json.loads(answer["payload"].read())["version"] == 2
    deltas = [m for m in [await device.next(), await device.next()]
              if m[0] == shadow_topic(thing, "update/delta")]
    assert deltas and deltas[0][1]["state"] == {"color": "green"}
    assert deltas[0][1]["version"] == 2

    await device.publish(shadow_topic(thing, "update"),
                         {"state": {"reported": deltas[0][1]["state"]}})
    topic, accepted = await device.next()
    assert topic == shadow_topic(thing, "update/accepted") and accepted["version"] == 3

    document = json.loads((await asyncio.to_thread(
        data.get_thing_shadow, thingName=thing))["payload"].read())
    assert document["state"] == {"desired": {"color": "green"},
                                 "reported": {"color": "green", "on": True}}
    assert "delta" not in document["state"] and document["version"] == 3


async def test_version_conflict_over_mqtt_and_http(iot: Any, data: Any, core: RunningLocalCore,
                                                   connect: Any, tmp_path: Path) -> None:
    thing = "lamp-2"
    ctx, _, _ = provision(iot, tmp_path, core.root_ca, thing)
    device = await connect(thing, ctx, shadow_topic(thing, "update/accepted"),
                           shadow_topic(thing, "update/rejected"))
    await device.publish(shadow_topic(thing, "update"), {"state": {"reported": {"a": 1}}})
    assert (await device.next())[0] == shadow_topic(thing, "update/accepted")
    await device.publish(shadow_topic(thing, "update"),
                         {"state": {"reported": {"a": 2}}, "version": 7, "clientToken": "t7"})
    topic, rejected = await device.next()
    assert topic == shadow_topic(thing, "update/rejected")
    assert rejected["code"] == 409 and rejected["message"] == "Version conflict"
    assert rejected["clientToken"] == "t7"

    with pytest.raises(ClientError) as e:
        await asyncio.to_thread(data.update_thing_shadow, thingName=thing, payload=json.dumps(
            {"state": {"reported": {"a": 3}}, "version": 99}).encode())
    assert code_of(e) == "ConflictException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409


async def test_oversize_document_is_refused(iot: Any, data: Any, core: RunningLocalCore,
                                            connect: Any, tmp_path: Path) -> None:
    thing = "lamp-3"
    ctx, _, _ = provision(iot, tmp_path, core.root_ca, thing)
    big = {"state": {"reported": {"blob": "x" * 9000}}}
    with pytest.raises(ClientError) as e:
        await asyncio.to_thread(data.update_thing_shadow, thingName=thing,
                                payload=json.dumps(big).encode())
    assert code_of(e) == "RequestEntityTooLargeException"
    device = await connect(thing, ctx, shadow_topic(thing, "update/rejected"))
    await device.publish(shadow_topic(thing, "update"), big)
    _, rejected = await device.next()
    assert rejected["code"] == 413
    with pytest.raises(ClientError) as e:
        await asyncio.to_thread(data.get_thing_shadow, thingName=thing)
    assert code_of(e) == "ResourceNotFoundException"  # nothing was stored


async def test_delta_is_withheld_from_a_client_denied_receive(iot: Any, data: Any,
                                                              core: RunningLocalCore, connect: Any,
                                                              tmp_path: Path) -> None:
    thing = "lamp-4"
    ctx, _, _ = provision(iot, tmp_path, core.root_ca, thing)
    no_delta = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "iot:Receive",
         "Resource": f"{ARN}:topic/$aws/things/{thing}/shadow/update/delta"}]})
    app_ctx, _, _ = provision(iot, tmp_path, core.root_ca, "dashboard", policy=no_delta)
    device = await connect(thing, ctx, shadow_topic(thing, "update/#"))
    dashboard = await connect("dashboard", app_ctx, shadow_topic(thing, "update/#"))
    await asyncio.to_thread(data.update_thing_shadow, thingName=thing,
                            payload=json.dumps({"state": {"desired": {"on": True}}}).encode())
    device_topics = {(await device.next())[0] for _ in range(3)}
    assert device_topics == {shadow_topic(thing, s)
                             for s in ("update/accepted", "update/delta", "update/documents")}
    dashboard_topics = {(await dashboard.next())[0] for _ in range(2)}
    assert dashboard_topics == {shadow_topic(thing, s)
                                for s in ("update/accepted", "update/documents")}
    with pytest.raises(TimeoutError):
        await dashboard.next(timeout=1.0)


async def test_named_shadow(iot: Any, data: Any, core: RunningLocalCore, connect: Any,
                            tmp_path: Path) -> None:
    thing, name = "lamp-5", "config"
    ctx, _, _ = provision(iot, tmp_path, core.root_ca, thing)
    device = await connect(thing, ctx, shadow_topic(thing, "update/accepted", name),
                           shadow_topic(thing, "get/accepted", name),
                           shadow_topic(thing, "update/accepted"))
    await device.publish(shadow_topic(thing, "update", name),
                         {"state": {"reported": {"interval": 5}}})
    topic, _ = await device.next()
    assert topic == shadow_topic(thing, "update/accepted", name)
    await device.publish(shadow_topic(thing, "get", name), b"")
    topic, got = await device.next()
    assert topic == shadow_topic(thing, "get/accepted", name)
    assert got["state"] == {"reported": {"interval": 5}} and got["version"] == 1

    listed = await asyncio.to_thread(data.list_named_shadows_for_thing, thingName=thing)
    assert listed["results"] == [name]
    named = json.loads((await asyncio.to_thread(
        data.get_thing_shadow, thingName=thing, shadowName=name))["payload"].read())
    assert named["state"]["reported"] == {"interval": 5}
    with pytest.raises(ClientError) as e:  # the classic shadow is another document
        await asyncio.to_thread(data.get_thing_shadow, thingName=thing)
    assert code_of(e) == "ResourceNotFoundException"

    await asyncio.to_thread(data.delete_thing_shadow, thingName=thing, shadowName=name)
    assert (await asyncio.to_thread(data.list_named_shadows_for_thing,
                                    thingName=thing))["results"] == []


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="mosquitto clients missing")
def test_mosquitto_reports_and_reads_its_shadow(iot: Any, data: Any, core: RunningLocalCore,
                                                tmp_path: Path) -> None:
    thing = "lamp-6"
    _, cert, key = provision(iot, tmp_path, core.root_ca, thing)
    tls = ["--cafile", str(core.root_ca), "--cert", str(cert), "--key", str(key),
           "-h", core.mqtt_host, "-p", str(core.mqtt_port), "--tls-version", "tlsv1.2"]
    sub = subprocess.Popen(["mosquitto_sub", *tls, "-i", f"{thing}-sub", "-q", "1", "-C", "1",
                            "-W", "10", "-t", shadow_topic(thing, "update/accepted")],
                           stdout=subprocess.PIPE, text=True)
    try:
        # mosquitto_sub may not have subscribed yet: publish until it has one report.
        for _ in range(30):
            subprocess.run(["mosquitto_pub", *tls, "-i", thing, "-q", "1",
                            "-t", shadow_topic(thing, "update"),
                            "-m", '{"state": {"reported": {"temp": 21}}}'],
                           check=True, timeout=10)
            try:
                out, _ = sub.communicate(timeout=0.3)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            pytest.fail("mosquitto_sub received no update/accepted")
    finally:
        if sub.poll() is None:
            sub.kill()
    assert json.loads(out)["state"] == {"reported": {"temp": 21}}
    document = json.loads(data.get_thing_shadow(thingName=thing)["payload"].read())
    assert document["state"]["reported"] == {"temp": 21}
