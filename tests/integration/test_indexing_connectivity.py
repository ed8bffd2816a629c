"""Fleet indexing against a local core process: connectivity indexing following a device's MQTT
connection over TLS ("Manage thing indexing": `connectivity.connected`, `.timestamp`,
`.disconnectReason`), the index and dynamic group membership after a restart, and search of
the `AWS_ThingGroups` index ("Managing thing group indexing")."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from fleetsim.localcore.launcher import RunningLocalCore
from tests.conftest import start_core
from tests.helpers import ALLOW_ALL, aws_client
from tests.integration.test_indexing import eventually, names

pytestmark = pytest.mark.timeout(120)


def _device(iot: Any, core: RunningLocalCore, tmp: Path, thing: str) -> ssl.SSLContext:
    """A thing with an ACTIVE certificate allowed everything, as a TLS context."""
    iot.create_thing(thingName=thing)
    keys = iot.create_keys_and_certificate(setAsActive=True)
    (tmp / f"{thing}.pem").write_text(keys["certificatePem"])
    key = tmp / f"{thing}.key"
    key.write_text(keys["keyPair"]["PrivateKey"])
    key.chmod(0o600)
    iot.attach_thing_principal(thingName=thing, principal=keys["certificateArn"])
    if "conn-all" not in {p["policyName"] for p in iot.list_policies()["policies"]}:
        iot.create_policy(policyName="conn-all", policyDocument=ALLOW_ALL)
    iot.attach_policy(policyName="conn-all", target=keys["certificateArn"])
    ctx = ssl.create_default_context(cafile=str(core.root_ca))
    ctx.load_cert_chain(tmp / f"{thing}.pem", key)
    return ctx


def _connectivity(iot: Any, thing: str) -> dict[str, Any]:
    return dict(iot.search_index(queryString=f"thingName:{thing}")["things"][0]
                .get("connectivity", {}))


async def test_connectivity_follows_the_device_connection(core: RunningLocalCore, iot: Any,
                                                          tmp_path: Path) -> None:
    iot.update_indexing_configuration(thingIndexingConfiguration={
        "thingIndexingMode": "REGISTRY", "thingConnectivityIndexingMode": "STATUS"})
    ctx = _device(iot, core, tmp_path, "conn-1")
    eventually(lambda: iot.search_index(queryString="thingName:conn-1"),
               lambda a: len(a["things"]) == 1)
    never = _connectivity(iot, "conn-1")
    assert never["connected"] is False  # a thing never connected is not connected
    offline = "thingName:conn-1 AND connectivity.connected:false"
    assert names(iot.search_index(queryString=offline)) == {"conn-1"}

    async with aiomqtt.Client(core.mqtt_host, core.mqtt_port, identifier="conn-1",
                              tls_context=ctx, timeout=10):
        online = eventually(
            lambda: iot.search_index(queryString="connectivity.connected:true"),
            lambda a: "conn-1" in names(a))
        conn = next(t for t in online["things"] if t["thingName"] == "conn-1")["connectivity"]
        assert conn["connected"] is True and conn["timestamp"] > 0
        assert "disconnectReason" not in conn
    after = eventually(lambda: iot.search_index(queryString=offline),
                       lambda a: names(a) == {"conn-1"})
    conn = after["things"][0]["connectivity"]
    assert conn["connected"] is False
    assert conn["disconnectReason"] == "CLIENT_INITIATED_DISCONNECT"
    reason = "connectivity.disconnectReason:CLIENT_INITIATED_DISCONNECT"
    assert "conn-1" in names(iot.search_index(queryString=reason))


def test_thing_group_index_search(iot: Any) -> None:
    iot.update_indexing_configuration(thingGroupIndexingConfiguration={
        "thingGroupIndexingMode": "ON"})
    iot.create_thing_group(thingGroupName="building-9", thingGroupProperties={
        "thingGroupDescription": "the ninth", "attributePayload": {
            "attributes": {"city": "Berlin"}}})
    iot.create_thing_group(thingGroupName="floor-9a", parentGroupName="building-9",
                           thingGroupProperties={"attributePayload": {
                               "attributes": {"level": "1"}}})
    iot.create_thing_group(thingGroupName="floor-9b", parentGroupName="building-9")

    def groups(query: str) -> set[str]:
        answer = iot.search_index(indexName="AWS_ThingGroups", queryString=query)
        return {g["thingGroupName"] for g in answer["thingGroups"]}

    assert groups("thingGroupName:floor-9*") == {"floor-9a", "floor-9b"}
    assert groups("parentGroupNames:building-9") == {"floor-9a", "floor-9b"}
    assert groups("attributes.city:berlin") == {"building-9"}  # values: any case
    found = iot.search_index(indexName="AWS_ThingGroups",
                             queryString="thingGroupName:floor-9a")["thingGroups"]
    assert len(found) == 1
    assert found[0]["attributes"] == {"level": "1"}
    assert found[0]["parentGroupNames"] == ["building-9"]
    assert found[0]["thingGroupId"]


def test_restart_rebuilds_the_index_and_replaces_dynamic_members(tmp_path: Path) -> None:
    state = tmp_path / "core"
    core = start_core(state)
    try:
        iot, data = aws_client(core.api_url), aws_client(core.api_url, "iot-data")
        iot.update_indexing_configuration(thingIndexingConfiguration={
            "thingIndexingMode": "REGISTRY_AND_SHADOW"})
        for thing, temperature in (("warm-1", 35), ("cool-1", 5)):
            iot.create_thing(thingName=thing)
            data.update_thing_shadow(thingName=thing, payload=json.dumps(
                {"state": {"reported": {"temperature": temperature}}}).encode())
        iot.create_dynamic_thing_group(thingGroupName="hot-rooms",
                                       queryString="shadow.reported.temperature>30")
        eventually(lambda: iot.list_things_in_thing_group(thingGroupName="hot-rooms"),
                   lambda a: a["things"] == ["warm-1"])
    finally:
        core.stop()

    core = start_core(state)
    try:
        iot, data = aws_client(core.api_url), aws_client(core.api_url, "iot-data")
        rebuilt = eventually(lambda: iot.search_index(queryString="shadow.reported.temperature>30"),
                             lambda a: names(a) == {"warm-1"})
        assert json.loads(rebuilt["things"][0]["shadow"])["reported"] == {"temperature": 35}
        assert iot.list_things_in_thing_group(thingGroupName="hot-rooms")["things"] == ["warm-1"]
        # The rebuilt index drives the group: membership follows changes made after restart.
        data.update_thing_shadow(thingName="cool-1", payload=json.dumps(
            {"state": {"reported": {"temperature": 40}}}).encode())
        data.update_thing_shadow(thingName="warm-1", payload=json.dumps(
            {"state": {"reported": {"temperature": 20}}}).encode())
        eventually(lambda: iot.list_things_in_thing_group(thingGroupName="hot-rooms"),
                   lambda a: a["things"] == ["cool-1"])
        groups = iot.list_thing_groups_for_thing(thingName="cool-1")["thingGroups"]
        assert [g["groupName"] for g in groups] == ["hot-rooms"]
    finally:
        core.stop()
