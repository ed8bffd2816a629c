"""Registry event payloads: topics and shapes as the AWS IoT developer guide gives them, and
publication only while the type is enabled."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from fleetsim.localcore.bus import Bus
from fleetsim.localcore.db import Database
from fleetsim.localcore.features.events import payloads as events
from fleetsim.localcore.features.events.service import EventsService
from fleetsim.localcore.features.registry.announcements import ThingCreated, ThingGroupCreated
from fleetsim.localcore.features.registry.records import (
    ThingGroupRecord,
    ThingRecord,
    ThingTypeRecord,
)
from fleetsim.localcore.scope import Scope

ACCOUNT = "123456789012"
THING = ThingRecord(1, "MyThing", "b604f69c", "MyType", {"a": "1"}, 3, None, 0.0)
GROUP = ThingGroupRecord(1, "Child", "g-child", "Parent", "desc", {"x": "y"}, 2, 0.0)
PARENT = ThingGroupRecord(2, "Parent", "g-parent", None, None, {}, 1, 0.0)


def _common(payload: dict, event_type: str, operation: str, account: bool = True) -> None:
    assert payload["eventType"] == event_type
    assert payload["operation"] == operation
    uuid.UUID(payload["eventId"])
    assert abs(payload["timestamp"] - time.time() * 1000) < 5000  # milliseconds
    assert ("accountId" in payload) is account
    json.dumps(payload)


def test_thing_event() -> None:
    topic, payload = events.thing_event(ACCOUNT, "UPDATED", THING)
    assert topic == "$aws/events/thing/MyThing/updated"
    _common(payload, "THING_EVENT", "UPDATED")
    assert {k: payload[k] for k in ("accountId", "thingId", "thingName", "versionNumber",
                                    "thingTypeName", "attributes")} == {
        "accountId": ACCOUNT, "thingId": "b604f69c", "thingName": "MyThing",
        "versionNumber": 3, "thingTypeName": "MyType", "attributes": {"a": "1"}}


def test_thing_without_type_has_null_type() -> None:
    plain = ThingRecord(1, "t", "id", None, {}, 1, None, 0.0)
    assert events.thing_event(ACCOUNT, "CREATED", plain)[1]["thingTypeName"] is None


def test_thing_type_event() -> None:
    tt = ThingTypeRecord("T", "tid", "d", ["a1"], True, 1700000000.5, 0.0)
    topic, payload = events.thing_type_event(ACCOUNT, "UPDATED", tt)
    assert topic == "$aws/events/thingType/T/updated"
    _common(payload, "THING_TYPE_EVENT", "UPDATED")
    assert payload["isDeprecated"] is True
    assert payload["deprecationDate"] == 1700000000500
    assert payload["searchableAttributes"] == ["a1"] and payload["description"] == "d"
    assert payload["thingTypeId"] == "tid" and payload["thingTypeName"] == "T"


def test_thing_type_association_event() -> None:
    topic, payload = events.thing_type_association_event("CREATED", THING, "MyType")
    assert topic == "$aws/events/thingTypeAssociation/thing/MyThing/MyType"
    _common(payload, "THING_TYPE_ASSOCIATION_EVENT", "CREATED", account=False)
    assert (payload["thingId"], payload["thingName"], payload["thingTypeName"]) == (
        "b604f69c", "MyThing", "MyType")


def test_thing_group_event_lists_root_to_parent() -> None:
    chain = [("arn:root", "g-root"), ("arn:parent", "g-parent")]
    topic, payload = events.thing_group_event(ACCOUNT, "CREATED", GROUP, PARENT, chain)
    assert topic == "$aws/events/thingGroup/Child/created"
    _common(payload, "THING_GROUP_EVENT", "CREATED")
    assert payload["parentGroupName"] == "Parent" and payload["parentGroupId"] == "g-parent"
    assert payload["rootToParentThingGroups"] == [
        {"groupArn": "arn:root", "groupId": "g-root"},
        {"groupArn": "arn:parent", "groupId": "g-parent"}]
    assert payload["versionNumber"] == 2 and payload["attributes"] == {"x": "y"}
    assert payload["dynamicGroupMappingId"] is None and payload["description"] == "desc"


def test_membership_and_hierarchy_events() -> None:
    topic, payload = events.thing_group_membership_event(
        ACCOUNT, "ADDED", GROUP, "arn:g", THING, "arn:t", "m-1")
    assert topic == "$aws/events/thingGroupMembership/thingGroup/Child/thing/MyThing/added"
    _common(payload, "THING_GROUP_MEMBERSHIP_EVENT", "ADDED")
    assert {k: payload[k] for k in ("groupArn", "groupId", "thingArn", "thingId",
                                    "membershipId")} == {
        "groupArn": "arn:g", "groupId": "g-child", "thingArn": "arn:t", "thingId": "b604f69c",
        "membershipId": "m-1"}
    topic, payload = events.thing_group_hierarchy_event(ACCOUNT, "REMOVED", PARENT, GROUP)
    assert topic == ("$aws/events/thingGroupHierarchy/thingGroup/Parent/childThingGroup/Child/"
                     "removed")
    _common(payload, "THING_GROUP_HIERARCHY_EVENT", "REMOVED")
    assert (payload["thingGroupName"], payload["childGroupName"]) == ("Parent", "Child")


def test_job_events() -> None:
    topic, payload = events.job_event("completed", "j1", {"status": "SUCCEEDED"})
    assert topic == "$aws/events/job/j1/completed"
    assert payload["eventType"] == "JOB" and payload["status"] == "SUCCEEDED"
    topic, payload = events.job_execution_event("failed", "j1", "arn:t", "FAILED", {"k": "v"})
    assert topic == "$aws/events/jobExecution/j1/failed"
    assert payload["statusDetails"] == {"k": "v"} and payload["thingArn"] == "arn:t"


class Sink:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, int]] = []

    def publish_internal(self, topic: str, payload: bytes, qos: int = 0,
                         retain: bool = False) -> None:
        self.published.append((topic, payload, qos))


async def test_publisher_honours_event_configuration(tmp_path: Path) -> None:
    db, bus, sink = Database(tmp_path / "s.db", "us-east-1"), Bus(), Sink()
    scope, elsewhere = Scope(ACCOUNT, "us-east-1"), Scope(ACCOUNT, "eu-west-1")
    service = EventsService(db, bus, sink, scope)
    bus.publish(ThingCreated(scope, THING))
    await bus.drain()
    assert sink.published == []  # disabled by default, as on AWS
    service.update(scope, {"THING": True})
    service.update(elsewhere, {"THING": True})
    bus.publish(ThingCreated(scope, THING))
    bus.publish(ThingCreated(elsewhere, THING))  # the broker serves us-east-1 only
    bus.publish(ThingGroupCreated(scope, PARENT, ()))
    await bus.drain()
    assert [t for t, _, _ in sink.published] == ["$aws/events/thing/MyThing/created"]
    assert json.loads(sink.published[0][1])["thingName"] == "MyThing"
    await bus.close()
    db.close()


def test_certificate_registered_event() -> None:
    topic, payload = events.certificate_registered_event(ACCOUNT, "c1", "ca1",
                                                         "PENDING_ACTIVATION", 1700000000.25)
    assert topic == "$aws/events/certificates/registered/ca1"
    assert payload["certificateId"] == "c1" and payload["caCertificateId"] == "ca1"
    assert payload["certificateStatus"] == "PENDING_ACTIVATION"
    assert payload["awsAccountId"] == ACCOUNT
    assert payload["certificateRegistrationTimestamp"] == "1700000000250"
    assert isinstance(payload["timestamp"], int)
