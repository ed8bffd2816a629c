"""The wire: SigV4-scope routing, rest-json errors, STS, event configuration."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from fleetsim.localcore.launcher import RunningLocalCore
from tests.helpers import aws_client

AUTH = ("AWS4-HMAC-SHA256 Credential=KEY/20240101/us-east-1/{service}/aws4_request, "
        "SignedHeaders=host, Signature=00")


def raw(core: RunningLocalCore, method: str, path: str, headers: dict[str, str] | None = None,
        body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(core.api_url + path, data=body, method=method,
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_request_without_sigv4_is_rejected(core: RunningLocalCore) -> None:
    status, headers, body = raw(core, "GET", "/things")
    assert status == 403
    assert headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert json.loads(body) == {"message": "Missing Authentication Token"}


def test_routing_by_credential_scope(core: RunningLocalCore) -> None:
    status, _, body = raw(core, "GET", "/things?maxResults=1",
                                {"Authorization": AUTH.format(service="iot")})
    assert status == 200 and "things" in json.loads(body)
    status, headers, body = raw(core, "GET", "/things",
                                {"Authorization": AUTH.format(service="nope")})
    assert status == 501 and headers["x-amzn-ErrorType"] == "NotImplemented"
    assert json.loads(body)["message"].startswith("local core does not serve nope")
    presigned = ("/things?X-Amz-Credential=KEY%2F20240101%2Fus-east-1%2Fiot%2Faws4_request"
                 "&X-Amz-Signature=00")
    status, _, body = raw(core, "GET", presigned)
    assert status == 200 and "things" in json.loads(body)


def test_rest_json_error_shape(core: RunningLocalCore) -> None:
    status, headers, body = raw(core, "GET", "/things/ghost",
                                {"Authorization": AUTH.format(service="iot")})
    assert status == 404
    assert headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
    assert json.loads(body) == {"message": "Thing ghost cannot be found."}
    status, headers, _ = raw(core, "GET", "/no/such/route",
                             {"Authorization": AUTH.format(service="iot")})
    assert status == 404 and headers["x-amzn-ErrorType"] == "UnknownOperationException"
    status, headers, _ = raw(core, "POST", "/things/x", {
        "Authorization": AUTH.format(service="iot"), "Content-Type": "application/json"},
        b"{not json")
    assert status == 400 and headers["x-amzn-ErrorType"] == "SerializationException"


def test_unimplemented_operation_says_so(core: RunningLocalCore) -> None:
    iot = aws_client(core.api_url, "iot")
    with pytest.raises(Exception) as e:
        iot.describe_audit_task(taskId="x")
    assert "local core does not implement iot:DescribeAuditTask" in str(e.value)


def test_sts_get_caller_identity(core: RunningLocalCore) -> None:
    identity = aws_client(core.api_url, "sts").get_caller_identity()
    assert identity["Account"] == "123456789012"
    assert identity["Arn"] == "arn:aws:iam::123456789012:root"


def test_event_configurations_default_off_and_update(core: RunningLocalCore) -> None:
    iot = aws_client(core.api_url, "iot")
    configs = iot.describe_event_configurations()["eventConfigurations"]
    assert set(configs) == {"THING", "THING_GROUP", "THING_TYPE", "THING_GROUP_MEMBERSHIP",
                            "THING_GROUP_HIERARCHY", "THING_TYPE_ASSOCIATION", "JOB",
                            "JOB_EXECUTION", "POLICY", "CERTIFICATE", "CA_CERTIFICATE"}
    assert not any(c["Enabled"] for c in configs.values())
    iot.update_event_configurations(eventConfigurations={"THING": {"Enabled": True},
                                                         "JOB": {"Enabled": True}})
    after = iot.describe_event_configurations()
    enabled = {k for k, v in after["eventConfigurations"].items() if v["Enabled"]}
    assert enabled == {"THING", "JOB"}
    assert after["lastModifiedDate"] >= after["creationDate"]
    iot.update_event_configurations(eventConfigurations={"JOB": {"Enabled": False}})
    configs = iot.describe_event_configurations()["eventConfigurations"]
    assert configs["THING"]["Enabled"] and not configs["JOB"]["Enabled"]
