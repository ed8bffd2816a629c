"""Thing types and thing groups through boto3 against a real local core."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from fleetsim.localcore.features.registry.service import THING_TYPE_DELETE_DELAY_ENV
from fleetsim.localcore.launcher import RunningLocalCore
from tests.conftest import start_core
from tests.helpers import code_of

DELETE_DELAY_S = 1.0


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLocalCore]:
    running = start_core(tmp_path_factory.mktemp("groups") / "core",
                         env={THING_TYPE_DELETE_DELAY_ENV: str(DELETE_DELAY_S)})
    yield running
    running.stop()


def test_thing_type_lifecycle(iot: Any) -> None:
    created = iot.create_thing_type(thingTypeName="bulk-type", thingTypeProperties={
        "thingTypeDescription": "bulk", "searchableAttributes": ["serial"]})
    assert created["thingTypeArn"].endswith(":thingtype/bulk-type")
    desc = iot.describe_thing_type(thingTypeName="bulk-type")
    assert desc["thingTypeProperties"] == {"thingTypeDescription": "bulk",
                                           "searchableAttributes": ["serial"]}
    assert desc["thingTypeMetadata"]["deprecated"] is False
    iot.create_thing(thingName="typed", thingTypeName="bulk-type")
    assert iot.describe_thing(thingName="typed")["thingTypeName"] == "bulk-type"
    assert [t["thingName"] for t in iot.list_things(thingTypeName="bulk-type")["things"]] == [
        "typed"]
    assert "bulk-type" in [t["thingTypeName"] for t in iot.list_thing_types()["thingTypes"]]
    with pytest.raises(ClientError) as e:
        iot.create_thing(thingName="untyped", thingTypeName="no-such-type")
    assert code_of(e) == "ResourceNotFoundException"
    iot.deprecate_thing_type(thingTypeName="bulk-type")
    assert iot.describe_thing_type(thingTypeName="bulk-type")["thingTypeMetadata"]["deprecated"]
    with pytest.raises(ClientError) as e:
        iot.create_thing(thingName="late", thingTypeName="bulk-type")
    assert code_of(e) == "InvalidRequestException"
    with pytest.raises(ClientError) as e:  # deprecated too recently
        iot.delete_thing_type(thingTypeName="bulk-type")
    assert code_of(e) == "InvalidRequestException"
    time.sleep(DELETE_DELAY_S + 0.1)
    with pytest.raises(ClientError) as e:  # a thing still has the type
        iot.delete_thing_type(thingTypeName="bulk-type")
    assert code_of(e) == "InvalidRequestException"
    iot.update_thing(thingName="typed", removeThingType=True)
    assert "thingTypeName" not in iot.describe_thing(thingName="typed")
    iot.delete_thing_type(thingTypeName="bulk-type")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_thing_type(thingTypeName="bulk-type")


def test_undeprecate(iot: Any) -> None:
    iot.create_thing_type(thingTypeName="flip")
    iot.deprecate_thing_type(thingTypeName="flip")
    iot.deprecate_thing_type(thingTypeName="flip", undoDeprecate=True)
    assert not iot.describe_thing_type(thingTypeName="flip")["thingTypeMetadata"]["deprecated"]
    iot.create_thing(thingName="flip-thing", thingTypeName="flip")


def test_thing_group_hierarchy_and_membership(iot: Any) -> None:
    building = iot.create_thing_group(thingGroupName="building-one", thingGroupProperties={
        "thingGroupDescription": "b1", "attributePayload": {"attributes": {"city": "x"}}})
    assert building["thingGroupArn"].endswith(":thinggroup/building-one")
    again = iot.create_thing_group(thingGroupName="building-one", thingGroupProperties={
        "thingGroupDescription": "b1", "attributePayload": {"attributes": {"city": "x"}}})
    assert again["thingGroupId"] == building["thingGroupId"]
    iot.create_thing_group(thingGroupName="floor-1", parentGroupName="building-one")
    iot.create_thing_group(thingGroupName="room-101", parentGroupName="floor-1")
    desc = iot.describe_thing_group(thingGroupName="room-101")
    assert desc["thingGroupMetadata"]["parentGroupName"] == "floor-1"
    assert [g["groupName"] for g in desc["thingGroupMetadata"]["rootToParentThingGroups"]] == [
        "building-one", "floor-1"]
    with pytest.raises(ClientError) as e:
        iot.create_thing_group(thingGroupName="orphan", parentGroupName="missing")
    assert code_of(e) == "ResourceNotFoundException"
    iot.create_thing(thingName="sensor")
    iot.create_thing(thingName="lamp")
    iot.add_thing_to_thing_group(thingGroupName="room-101", thingName="sensor")
    iot.add_thing_to_thing_group(thingGroupArn=building["thingGroupArn"], thingName="lamp")
    assert iot.list_things_in_thing_group(thingGroupName="building-one")["things"] == ["lamp"]
    assert iot.list_things_in_thing_group(thingGroupName="building-one",
                                          recursive=True)["things"] == ["lamp", "sensor"]
    assert [g["groupName"] for g in iot.list_thing_groups_for_thing(
        thingName="sensor")["thingGroups"]] == ["room-101"]
    children = iot.list_thing_groups(parentGroup="building-one", recursive=False)["thingGroups"]
    assert [g["groupName"] for g in children] == ["floor-1"]
    assert [g["groupName"] for g in iot.list_thing_groups(
        parentGroup="building-one", recursive=True)["thingGroups"]] == ["floor-1", "room-101"]
    with pytest.raises(ClientError) as e:
        iot.delete_thing_group(thingGroupName="floor-1")
    assert code_of(e) == "InvalidRequestException"
    iot.remove_thing_from_thing_group(thingGroupName="room-101", thingName="sensor")
    assert iot.list_things_in_thing_group(thingGroupName="room-101")["things"] == []
    iot.update_thing_groups_for_thing(thingName="sensor", thingGroupsToAdd=["floor-1"])
    assert iot.list_things_in_thing_group(thingGroupName="floor-1")["things"] == ["sensor"]


def test_update_thing_group_versions(iot: Any) -> None:
    iot.create_thing_group(thingGroupName="versioned", thingGroupProperties={
        "attributePayload": {"attributes": {"a": "1"}}})
    out = iot.update_thing_group(thingGroupName="versioned", thingGroupProperties={
        "attributePayload": {"attributes": {"b": "2"}, "merge": True}})
    assert out["version"] == 2
    props = iot.describe_thing_group(thingGroupName="versioned")["thingGroupProperties"]
    assert props["attributePayload"]["attributes"] == {"a": "1", "b": "2"}
    with pytest.raises(ClientError) as e:
        iot.update_thing_group(thingGroupName="versioned", expectedVersion=1,
                               thingGroupProperties={"thingGroupDescription": "x"})
    assert code_of(e) == "VersionConflictException"
    iot.delete_thing_group(thingGroupName="versioned")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_thing_group(thingGroupName="versioned")
