"""Lambda on a real local core over HTTP: the AWS CLI as the JITR lab uses it, boto3 and
aioboto3; functions that answer, raise, time out, exit, call local core's IoT API, and run
asynchronously."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aioboto3
import pytest
from botocore.exceptions import ClientError

from fleetsim.localcore.launcher import RunningLocalCore
from tests.awscli import aws, aws_json
from tests.helpers import aws_client, code_of
from tests.lambda_testing import ROLE, package


@pytest.fixture(scope="module")
def lam(core: RunningLocalCore) -> Any:
    return aws_client(core.api_url, "lambda")


@pytest.fixture(scope="module")
def fn(lam: Any) -> Iterator[str]:
    """One function the invocation tests share (its environments stay warm between them)."""
    lam.create_function(FunctionName="probe", Runtime="python3.12", Role=ROLE,
                        Handler="lambda_function.lambda_handler", Timeout=1,
                        Code={"ZipFile": package()},
                        Environment={"Variables": {"GREETING": "hi"}})
    yield "probe"
    lam.delete_function(FunctionName="probe")


def invoke(lam: Any, name: str, event: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], Any]:
    r = lam.invoke(FunctionName=name, Payload=json.dumps(event), **kw)
    return r, json.loads(r["Payload"].read())


@pytest.mark.interop
def test_the_jitr_lab_commands(core: RunningLocalCore, tmp_path: Path) -> None:
    (tmp_path / "lambda_function.zip").write_bytes(package())
    created = aws_json(core, tmp_path, "lambda", "create-function", "--function-name", "jitr",
                       "--zip-file", "fileb://lambda_function.zip", "--role", ROLE,
                       "--handler", "lambda_function.lambda_handler",
                       "--runtime", "python3.12", "--timeout", "30", "--memory-size", "128")
    assert created["FunctionName"] == "jitr" and created["Timeout"] == 30
    listed = aws_json(core, tmp_path, "lambda", "list-functions")
    assert "jitr" in [f["FunctionName"] for f in listed["Functions"]]
    arn = aws_json(core, tmp_path, "lambda", "get-function", "--function-name",
                   "jitr")["Configuration"]["FunctionArn"]
    assert arn == "arn:aws:lambda:us-east-1:123456789012:function:jitr"
    rule = "arn:aws:iot:us-east-1:123456789012:rule/JITRRule"
    added = aws_json(core, tmp_path, "lambda", "add-permission", "--function-name", "jitr",
                     "--principal", "iot.amazonaws.com", "--source-arn", rule,
                     "--source-account", "123456789012", "--statement-id", "Id-123",
                     "--action", "lambda:InvokeFunction")
    assert json.loads(added["Statement"])["Sid"] == "Id-123"
    again = aws(core, tmp_path, "lambda", "add-permission", "--function-name", "jitr",
                "--principal", "iot.amazonaws.com", "--statement-id", "Id-123",
                "--action", "lambda:InvokeFunction", check=False)
    assert again.returncode != 0 and "ResourceConflictException" in again.stderr
    policy = json.loads(aws_json(core, tmp_path, "lambda", "get-policy", "--function-name",
                                 "jitr")["Policy"])
    assert policy["Statement"] == [{
        "Sid": "Id-123", "Effect": "Allow", "Principal": {"Service": "iot.amazonaws.com"},
        "Action": "lambda:InvokeFunction", "Resource": arn,
        "Condition": {"StringEquals": {"AWS:SourceAccount": "123456789012"},
                      "ArnLike": {"AWS:SourceArn": rule}}}]
    out = aws_json(core, tmp_path, "lambda", "invoke", "--function-name", "jitr",
                   "--payload", '{"a": 1}', "out.json")  # CLI v1: a raw payload
    assert out["StatusCode"] == 200
    assert json.loads((tmp_path / "out.json").read_text())["name"] == "jitr"
    aws(core, tmp_path, "lambda", "delete-function", "--function-name", "jitr")
    gone = aws(core, tmp_path, "lambda", "get-function", "--function-name", "jitr", check=False)
    assert "ResourceNotFoundException" in gone.stderr


def test_the_lab_runtime_python27_is_refused_as_aws_refuses_it(lam: Any) -> None:
    with pytest.raises(ClientError) as e:
        lam.create_function(FunctionName="old", Runtime="python2.7", Role=ROLE,
                            Handler="lambda_function.lambda_handler",
                            Code={"ZipFile": package()})
    assert code_of(e) == "InvalidParameterValueException"
    assert "python2.7 is no longer supported" in str(e.value)
    with pytest.raises(ClientError) as e:
        lam.create_function(FunctionName="node", Runtime="nodejs20.x", Role=ROLE,
                            Handler="index.handler", Code={"ZipFile": package()})
    assert code_of(e) == "InvalidParameterValueException"


def test_invoke_answers_with_the_context_and_environment_lambda_documents(lam: Any, fn: str
                                                                          ) -> None:
    r, body = invoke(lam, fn, {"x": 1}, LogType="Tail")
    assert r["StatusCode"] == 200 and "FunctionError" not in r
    assert r["ExecutedVersion"] == "$LATEST"
    assert body["name"] == fn and body["version"] == "$LATEST" and body["memory"] == "128"
    assert body["arn"] == f"arn:aws:lambda:us-east-1:123456789012:function:{fn}"
    assert body["group"] == f"/aws/lambda/{fn}" and "/[$LATEST]" in body["stream"]
    assert 0 < body["remaining"] <= 1000
    env = body["env"]
    assert env["AWS_REGION"] == "us-east-1" and env["AWS_LAMBDA_FUNCTION_NAME"] == fn
    assert env["_HANDLER"] == "lambda_function.lambda_handler" and env["GREETING"] == "hi"
    log = base64.b64decode(r["LogResult"]).decode()
    assert f"START RequestId: {body['request_id']} Version: $LATEST" in log
    assert 'event {"x": 1}' in log and f"END RequestId: {body['request_id']}" in log
    assert f"REPORT RequestId: {body['request_id']}\tDuration: " in log
    # the next invocation reuses the warm environment: same stream, no Init Duration
    r2, again = invoke(lam, fn, {}, LogType="Tail")
    assert again["stream"] == body["stream"]
    assert "Init Duration" not in base64.b64decode(r2["LogResult"]).decode()


def test_a_raised_exception_is_an_unhandled_function_error(lam: Any, fn: str) -> None:
    r, body = invoke(lam, fn, {"mode": "raise"})
    assert r["StatusCode"] == 200 and r["FunctionError"] == "Unhandled"
    assert body["errorType"] == "ValueError" and body["errorMessage"] == "boom"
    assert body["requestId"] and any("lambda_handler" in s for s in body["stackTrace"])
    _, ok = invoke(lam, fn, {})  # the environment survives it
    assert ok["name"] == fn


def test_a_timeout_fails_the_invocation_and_replaces_the_environment(lam: Any, fn: str) -> None:
    _, before = invoke(lam, fn, {})
    r, body = invoke(lam, fn, {"mode": "sleep", "seconds": 30})
    assert r["FunctionError"] == "Unhandled"
    assert body["errorMessage"].endswith("Task timed out after 1.00 seconds")
    _, after = invoke(lam, fn, {})
    assert after["stream"] != before["stream"]


def test_a_runtime_that_exits_fails_that_invocation_only(lam: Any, fn: str) -> None:
    r, body = invoke(lam, fn, {"mode": "exit"})
    assert r["FunctionError"] == "Unhandled" and body["errorType"] == "Runtime.ExitError"
    assert body["errorMessage"].endswith("Runtime exited with error: exit status 3")
    assert invoke(lam, fn, {})[1]["name"] == fn


def test_boto3_inside_the_function_reaches_local_core(lam: Any, fn: str,
                                                      iot: Any) -> None:
    iot.create_thing(thingName="seen-from-lambda")
    r, body = invoke(lam, fn, {"mode": "iot", "thing": "seen-from-lambda"})
    assert "FunctionError" not in r and body == "seen-from-lambda"


def test_event_invocations_are_accepted_and_run(lam: Any, fn: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    r = lam.invoke(FunctionName=fn, InvocationType="Event",
                   Payload=json.dumps({"mode": "touch", "path": str(marker)}))
    assert r["StatusCode"] == 202
    deadline = time.monotonic() + 20
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "x"
    assert lam.invoke(FunctionName=fn, InvocationType="DryRun")["StatusCode"] == 204


def test_api_errors_are_lambdas(lam: Any, fn: str) -> None:
    with pytest.raises(ClientError) as e:
        lam.get_function(FunctionName="nope")
    assert code_of(e) == "ResourceNotFoundException"
    assert "Function not found: arn:aws:lambda:us-east-1:123456789012:function:nope" in \
        str(e.value)
    with pytest.raises(ClientError) as e:
        lam.create_function(FunctionName=fn, Runtime="python3.12", Role=ROLE,
                            Handler="lambda_function.lambda_handler",
                            Code={"ZipFile": package()})
    assert code_of(e) == "ResourceConflictException"
    with pytest.raises(ClientError) as e:
        lam.get_policy(FunctionName=fn)
    assert code_of(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        lam.invoke(FunctionName=fn, Payload=b"{not json")
    assert code_of(e) == "InvalidRequestContentException"
    with pytest.raises(ClientError) as e:
        lam.update_function_configuration(FunctionName=fn,
                                          Environment={"Variables": {"AWS_REGION": "x"}})
    assert code_of(e) == "InvalidParameterValueException"
    assert "Reserved keys used in this request: AWS_REGION" in str(e.value)


def test_updates_change_what_runs(lam: Any) -> None:
    lam.create_function(FunctionName="changing", Runtime="python3.12", Role=ROLE,
                        Handler="lambda_function.lambda_handler", Code={"ZipFile": package()})
    assert invoke(lam, "changing", {})[1]["env"]["GREETING"] is None
    lam.update_function_configuration(FunctionName="changing", MemorySize=256,
                                      Environment={"Variables": {"GREETING": "new"}})
    body = invoke(lam, "changing", {})[1]
    assert body["env"]["GREETING"] == "new" and body["memory"] == "256"
    source = "def lambda_handler(event, context):\n    return 'v2'\n"
    lam.update_function_code(FunctionName="changing", ZipFile=package(source))
    assert invoke(lam, "changing", {})[1] == "v2"
    config = lam.get_function_configuration(FunctionName="changing")
    assert config["MemorySize"] == 256 and config["State"] == "Active"
    lam.delete_function(FunctionName="changing")


def test_list_functions_pages(lam: Any) -> None:
    for i in range(3):
        lam.create_function(FunctionName=f"page-{i}", Runtime="python3.12", Role=ROLE,
                            Handler="lambda_function.lambda_handler",
                            Code={"ZipFile": package()})
    names = [f["FunctionName"] for page in lam.get_paginator("list_functions").paginate(
        PaginationConfig={"PageSize": 1}) for f in page["Functions"]]
    assert [n for n in names if n.startswith("page-")] == ["page-0", "page-1", "page-2"]
    for i in range(3):
        lam.delete_function(FunctionName=f"page-{i}")


async def test_aioboto3_invokes(core: RunningLocalCore, fn: str) -> None:
    session = aioboto3.Session(aws_access_key_id="x", aws_secret_access_key="x",
                               region_name="us-east-1")
    async with session.client("lambda", endpoint_url=core.api_url) as client:
        r = await client.invoke(FunctionName=fn, Payload=b'{"a": 2}')
        body = json.loads(await r["Payload"].read())
    assert body["name"] == fn
