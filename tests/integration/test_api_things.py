"""Things and thing principals through boto3 against a real local core process."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from fleetsim.localcore.launcher import RunningLocalCore

ARN_PREFIX = "arn:aws:iot:us-east-1:123456789012:"



def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    err = excinfo.value.response
    return err["Error"]["Code"], err["Error"]["Message"], err["ResponseMetadata"]["HTTPStatusCode"]


def test_create_describe_thing(iot: Any) -> None:
    created = iot.create_thing(thingName="alpha", attributePayload={"attributes": {"a": "1"}})
    assert created["thingArn"] == f"{ARN_PREFIX}thing/alpha"
    described = iot.describe_thing(thingName="alpha")
    assert described["thingId"] == created["thingId"]
    assert described["attributes"] == {"a": "1"} and described["version"] == 1
    assert described["defaultClientId"] == "alpha"
    assert "thingTypeName" not in described


def test_create_thing_is_idempotent_only_with_the_same_configuration(iot: Any) -> None:
    first = iot.create_thing(thingName="idem", attributePayload={"attributes": {"k": "v"}})
    again = iot.create_thing(thingName="idem", attributePayload={"attributes": {"k": "v"}})
    assert again["thingId"] == first["thingId"]
    with pytest.raises(ClientError) as e:
        iot.create_thing(thingName="idem", attributePayload={"attributes": {"k": "other"}})
    code, message, status = error_of(e)
    assert (code, status) == ("ResourceAlreadyExistsException", 409)
    assert message == "Thing idem already exists in account with different attributes"
    assert e.value.response["resourceId"] == first["thingId"]
    assert e.value.response["resourceArn"] == f"{ARN_PREFIX}thing/idem"


def test_unknown_thing_is_resource_not_found(iot: Any) -> None:
    with pytest.raises(ClientError) as e:
        iot.describe_thing(thingName="does-not-exist")
    assert error_of(e) == ("ResourceNotFoundException", "Thing does-not-exist cannot be found.",
                           404)
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.update_thing(thingName="does-not-exist", attributePayload={"attributes": {}})


def test_update_thing_replaces_or_merges_attributes(iot: Any) -> None:
    iot.create_thing(thingName="upd", attributePayload={"attributes": {"a": "1", "b": "2"}})
    iot.update_thing(thingName="upd", attributePayload={"attributes": {"c": "3"}})
    assert iot.describe_thing(thingName="upd")["attributes"] == {"c": "3"}
    iot.update_thing(thingName="upd",
                     attributePayload={"attributes": {"d": "4", "c": ""}, "merge": True})
    described = iot.describe_thing(thingName="upd")
    assert described["attributes"] == {"d": "4"} and described["version"] == 3
    with pytest.raises(ClientError) as e:
        iot.update_thing(thingName="upd", expectedVersion=1,
                         attributePayload={"attributes": {"x": "y"}})
    assert error_of(e) == ("VersionConflictException",
                           "The version for thing upd does not match the expected version.", 409)
    iot.update_thing(thingName="upd", expectedVersion=3, attributePayload={"attributes": {}})
    assert iot.describe_thing(thingName="upd")["attributes"] == {}


def test_list_things_paginates_and_filters(iot: Any) -> None:
    for i in range(12):
        iot.create_thing(thingName=f"fleet-{i:02}",
                         attributePayload={"attributes": {"batch": "b1" if i < 5 else "b2"}})
    page = iot.list_things(maxResults=4, attributeName="batch", attributeValue="b2")
    assert len(page["things"]) == 4 and "nextToken" in page
    names = [t["thingName"] for t in page["things"]]
    while "nextToken" in page:
        page = iot.list_things(maxResults=4, attributeName="batch", attributeValue="b2",
                               nextToken=page["nextToken"])
        names += [t["thingName"] for t in page["things"]]
    assert names == [f"fleet-{i:02}" for i in range(5, 12)]
    everything = [t["thingName"] for p in iot.get_paginator("list_things").paginate(
        PaginationConfig={"PageSize": 5}) for t in p["things"]]
    assert {f"fleet-{i:02}" for i in range(12)} <= set(everything)
    assert len(everything) == len(set(everything))
    prefixed = iot.list_things(attributeName="batch", attributeValue="b",
                               usePrefixAttributeValue=True, maxResults=250)["things"]
    assert len(prefixed) == 12
    thing = next(t for t in iot.list_things(maxResults=250)["things"]
                 if t["thingName"] == "fleet-00")
    assert thing == {"thingName": "fleet-00", "thingArn": f"{ARN_PREFIX}thing/fleet-00",
                     "attributes": {"batch": "b1"}, "version": 1}


def test_invalid_thing_name_fails_validation(iot: Any) -> None:
    with pytest.raises(ClientError) as e:
        iot.create_thing(thingName="has space")
    code, message, status = error_of(e)
    assert (code, status) == ("InvalidRequestException", 400)
    assert message.startswith("1 validation error detected: Value 'has space' at 'thingName'")


def test_thing_principals_lifecycle(iot: Any) -> None:
    iot.create_thing(thingName="dev")
    cert = iot.create_keys_and_certificate(setAsActive=True)
    arn = cert["certificateArn"]
    iot.attach_thing_principal(thingName="dev", principal=arn)
    assert iot.list_thing_principals(thingName="dev")["principals"] == [arn]
    assert iot.list_principal_things(principal=arn)["things"] == ["dev"]
    v2 = iot.list_thing_principals_v2(thingName="dev")["thingPrincipalObjects"]
    assert v2 == [{"principal": arn, "thingPrincipalType": "NON_EXCLUSIVE_THING"}]
    with pytest.raises(ClientError) as e:
        iot.delete_thing(thingName="dev")
    assert error_of(e) == ("InvalidRequestException",
                           "Cannot delete. Thing dev is still attached to one or more "
                           "principals", 400)
    iot.detach_thing_principal(thingName="dev", principal=arn)
    assert iot.list_thing_principals(thingName="dev")["principals"] == []
    iot.delete_thing(thingName="dev")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_thing(thingName="dev")
    iot.delete_thing(thingName="dev")  # deleting a missing thing succeeds, as on AWS


def test_attach_unknown_certificate_is_not_found(iot: Any) -> None:
    iot.create_thing(thingName="lonely")
    with pytest.raises(ClientError) as e:
        iot.attach_thing_principal(thingName="lonely", principal=f"{ARN_PREFIX}cert/{'0' * 64}")
    assert error_of(e)[0] == "ResourceNotFoundException"


def test_describe_endpoint_names_the_mqtt_endpoint(iot: Any, core: RunningLocalCore) -> None:
    expected = f"{core.mqtt_host}:{core.mqtt_port}"
    assert iot.describe_endpoint()["endpointAddress"] == expected
    assert iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"] == expected


def test_attribute_values_are_validated_like_aws(iot: Any) -> None:
    with pytest.raises(ClientError) as e:
        iot.create_thing(thingName="spaced", attributePayload={"attributes": {"k": "a b"}})
    code, message, _ = error_of(e)
    assert code == "InvalidRequestException"
    assert "at 'attributePayload.attributes' failed to satisfy constraint: Map value" in message
    iot.create_thing(thingName="okattrs",
                     attributePayload={"attributes": {"k": "a,b@c/d:#=[x]-_."}})
