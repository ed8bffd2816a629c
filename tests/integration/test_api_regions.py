"""Resources are regional, as on AWS: the region of the request's credential scope picks the
registry and names the ARNs; the broker serves the configured region. And EXCLUSIVE_THING
attachments."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import aiomqtt
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from fleetsim.localcore.launcher import RunningLocalCore
from fleetsim.target import Target
from tests.conftest import start_core
from tests.helpers import ALLOW_ALL, code_of


def client(core: RunningLocalCore, region: str) -> Any:
    return boto3.client("iot", endpoint_url=core.api_url, region_name=region,
                        aws_access_key_id="x", aws_secret_access_key="x",
                        config=Config(retries={"max_attempts": 1}))


def test_things_are_regional(core: RunningLocalCore) -> None:
    east, west = client(core, "us-east-1"), client(core, "eu-west-1")
    made = west.create_thing(thingName="regional")
    assert made["thingArn"] == "arn:aws:iot:eu-west-1:123456789012:thing/regional"
    with pytest.raises(ClientError) as e:
        east.describe_thing(thingName="regional")
    assert code_of(e) == "ResourceNotFoundException"
    assert "regional" not in {t["thingName"] for t in east.list_things()["things"]}
    other = east.create_thing(thingName="regional", attributePayload={"attributes": {"a": "1"}})
    assert other["thingArn"] == "arn:aws:iot:us-east-1:123456789012:thing/regional"
    assert other["thingId"] != made["thingId"]
    assert west.describe_thing(thingName="regional")["attributes"] == {}
    east.delete_thing(thingName="regional")
    assert west.describe_thing(thingName="regional")["thingName"] == "regional"


def test_certificates_policies_and_codes_are_regional(core: RunningLocalCore) -> None:
    east, west = client(core, "us-east-1"), client(core, "eu-west-1")
    cert = west.create_keys_and_certificate(setAsActive=True)
    assert cert["certificateArn"].startswith("arn:aws:iot:eu-west-1:")
    with pytest.raises(ClientError):
        east.describe_certificate(certificateId=cert["certificateId"])
    west.create_policy(policyName="regional-policy", policyDocument=ALLOW_ALL)
    with pytest.raises(ClientError):
        east.get_policy(policyName="regional-policy")
    assert east.get_registration_code()["registrationCode"] != \
        west.get_registration_code()["registrationCode"]
    west.update_event_configurations(eventConfigurations={"POLICY": {"Enabled": True}})
    assert not east.describe_event_configurations()["eventConfigurations"]["POLICY"]["Enabled"]


def test_exclusive_thing_principal(core: RunningLocalCore) -> None:
    iot = client(core, "us-east-1")
    for name in ("ex-1", "ex-2"):
        iot.create_thing(thingName=name)
    arn = iot.create_keys_and_certificate(setAsActive=True)["certificateArn"]
    iot.attach_thing_principal(thingName="ex-1", principal=arn,
                               thingPrincipalType="EXCLUSIVE_THING")
    with pytest.raises(ClientError) as e:  # an exclusive principal has only one thing
        iot.attach_thing_principal(thingName="ex-2", principal=arn)
    assert code_of(e) == "InvalidRequestException"
    assert iot.list_principal_things_v2(principal=arn)["principalThingObjects"] == [
        {"thingName": "ex-1", "thingPrincipalType": "EXCLUSIVE_THING"}]
    assert iot.list_thing_principals_v2(thingName="ex-1")["thingPrincipalObjects"] == [
        {"principal": arn, "thingPrincipalType": "EXCLUSIVE_THING"}]
    iot.detach_thing_principal(thingName="ex-1", principal=arn)
    iot.attach_thing_principal(thingName="ex-1", principal=arn)
    iot.attach_thing_principal(thingName="ex-2", principal=arn)
    with pytest.raises(ClientError) as e:  # attached to two things: cannot become exclusive
        iot.attach_thing_principal(thingName="ex-1", principal=arn,
                                   thingPrincipalType="EXCLUSIVE_THING")
    assert code_of(e) == "InvalidRequestException"
    assert iot.list_principal_things_v2(principal=arn,
                                        thingPrincipalType="EXCLUSIVE_THING")[
        "principalThingObjects"] == []


async def test_the_broker_serves_the_region_local_core_was_started_for(tmp_path: Path) -> None:
    core = start_core(tmp_path / "core", extra_args=("--region", "eu-west-1"))
    try:
        assert Target.from_local_core(core.info).region == "eu-west-1"
        results = {}
        for region in ("eu-west-1", "us-east-1"):
            iot = client(core, region)
            iot.create_policy(policyName="all", policyDocument=ALLOW_ALL)
            keys = iot.create_keys_and_certificate(setAsActive=True)
            iot.attach_policy(policyName="all", target=keys["certificateArn"])
            (tmp_path / f"{region}.crt").write_text(keys["certificatePem"])
            (tmp_path / f"{region}.key").write_text(keys["keyPair"]["PrivateKey"])
            ctx = ssl.create_default_context(cafile=str(core.root_ca))
            ctx.load_cert_chain(tmp_path / f"{region}.crt", tmp_path / f"{region}.key")
            try:
                async with aiomqtt.Client(core.mqtt_host, core.mqtt_port, identifier=region,
                                          tls_context=ctx, timeout=5):
                    results[region] = "connected"
            except aiomqtt.MqttError:
                results[region] = "refused"
        # A certificate registered in another region is unknown to this endpoint, as on AWS.
        assert results == {"eu-west-1": "connected", "us-east-1": "refused"}
    finally:
        core.stop()
