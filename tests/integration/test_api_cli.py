"""The workshop's "Device Provisioning with the API" lab, run verbatim with the AWS CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleetsim.localcore.launcher import RunningLocalCore
from tests.awscli import AWS, aws, aws_json

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(not AWS.exists(), reason="AWS CLI not installed (make tools)")]

ENABLE_ALL = json.dumps({"eventConfigurations": {t: {"Enabled": True} for t in (
    "THING_TYPE", "JOB_EXECUTION", "THING_GROUP_HIERARCHY", "CERTIFICATE",
    "THING_TYPE_ASSOCIATION", "THING_GROUP_MEMBERSHIP", "CA_CERTIFICATE", "THING", "JOB",
    "POLICY", "THING_GROUP")}}, indent=4)


def test_workshop_provisioning_lab(core: RunningLocalCore, tmp_path: Path) -> None:
    thing = "my-first-thing"
    aws(core, tmp_path, "iot", "update-event-configurations", "--cli-input-json", ENABLE_ALL)
    configs = aws_json(core, tmp_path, "iot", "describe-event-configurations")
    assert all(c["Enabled"] for c in configs["eventConfigurations"].values())
    created = aws_json(core, tmp_path, "iot", "create-thing", "--thing-name", thing)
    assert created["thingName"] == thing
    response = aws_json(core, tmp_path, "iot", "create-keys-and-certificate", "--set-as-active",
                        "--public-key-outfile", f"{thing}.public.key",
                        "--private-key-outfile", f"{thing}.private.key",
                        "--certificate-pem-outfile", f"{thing}.certificate.pem")
    assert (tmp_path / f"{thing}.private.key").read_text().startswith(
        "-----BEGIN RSA PRIVATE KEY-----")
    assert (tmp_path / f"{thing}.certificate.pem").read_text() == response["certificatePem"]
    cert_arn = response["certificateArn"]
    policy = f"{thing}_Policy"
    aws(core, tmp_path, "iot", "create-policy", "--policy-name", policy, "--policy-document",
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action": "iot:*",'
        '"Resource":"*"}]}')
    aws(core, tmp_path, "iot", "attach-policy", "--policy-name", policy, "--target", cert_arn)
    aws(core, tmp_path, "iot", "attach-thing-principal", "--thing-name", thing,
        "--principal", cert_arn)
    def listed() -> list[Any]:  # the module's other tests make things of their own
        things = aws_json(core, tmp_path, "iot", "list-things")["things"]
        return [t for t in things if t["thingName"] == thing]

    assert len(listed()) == 1
    aws(core, tmp_path, "iot", "update-thing", "--thing-name", thing, "--attribute-payload",
        '{"attributes": {"type": "ws-device"}}')
    things = listed()
    assert things[0]["attributes"] == {"type": "ws-device"} and things[0]["version"] == 2
    endpoint = aws_json(core, tmp_path, "iot", "describe-endpoint")["endpointAddress"]
    assert endpoint == f"{core.mqtt_host}:{core.mqtt_port}"
    account = aws_json(core, tmp_path, "sts", "get-caller-identity")["Account"]
    assert account == "123456789012"
    attached = aws_json(core, tmp_path, "iot", "list-attached-policies", "--target", cert_arn)
    assert [p["policyName"] for p in attached["policies"]] == [policy]


def test_cli_reports_aws_errors(core: RunningLocalCore, tmp_path: Path) -> None:
    result = aws(core, tmp_path, "iot", "describe-thing", "--thing-name", "ghost", check=False)
    assert result.returncode != 0
    assert "ResourceNotFoundException" in result.stderr and "ghost" in result.stderr
    result = aws(core, tmp_path, "iot", "create-policy", "--policy-name", "bad",
                 "--policy-document", "{oops", check=False)
    assert "MalformedPolicyException" in result.stderr


def test_workshop_thing_group_lab_and_cleanup(core: RunningLocalCore, tmp_path: Path) -> None:
    group = aws_json(core, tmp_path, "iot", "create-thing-group", "--thing-group-name",
                     "building-one")
    group_arn = group["thingGroupArn"]
    policy_doc = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["iot:Connect"],
         "Resource": ["arn:aws:iot:us-east-1:123456789012:client/${iot:ClientId}"]},
        {"Effect": "Allow", "Action": ["iot:Publish"],
         "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/telemetry/building/one/"
                      "${iot:ClientId}"]}]})
    aws(core, tmp_path, "iot", "create-policy", "--policy-name", "SmartBuilding_Policy",
        "--policy-document", policy_doc)
    aws(core, tmp_path, "iot", "attach-policy", "--target", group_arn, "--policy-name",
        "SmartBuilding_Policy")
    attached = aws_json(core, tmp_path, "iot", "list-attached-policies", "--target", group_arn)
    assert [p["policyName"] for p in attached["policies"]] == ["SmartBuilding_Policy"]
    aws(core, tmp_path, "iot", "create-thing", "--thing-name", "group-member")
    aws(core, tmp_path, "iot", "add-thing-to-thing-group", "--thing-name", "group-member",
        "--thing-group-name", "building-one")
    members = aws_json(core, tmp_path, "iot", "list-things-in-thing-group",
                       "--thing-group-name", "building-one")
    assert members["things"] == ["group-member"]
    aws(core, tmp_path, "iot", "create-thing-type", "--thing-type-name", "bulk-type")
    aws(core, tmp_path, "iot", "deprecate-thing-type", "--thing-type-name", "bulk-type")
    result = aws(core, tmp_path, "iot", "delete-thing-type", "--thing-type-name", "bulk-type",
                 check=False)  # "If this command is not successful, wait and try again"
    assert result.returncode != 0 and "InvalidRequestException" in result.stderr
    aws(core, tmp_path, "iot", "delete-thing-group", "--thing-group-name", "building-one")
    result = aws(core, tmp_path, "iot", "delete-policy", "--policy-name", "SmartBuilding_Policy",
                 check=False)
    assert result.returncode == 0, result.stderr  # deleting the group detached its policy
    assert aws_json(core, tmp_path, "iot", "list-ca-certificates")["certificates"] == []
