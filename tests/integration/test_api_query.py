"""The query protocol front (IAM) over HTTP to a real local core: input is validated against the
operation's input shape before the handler runs, with IAM's `ValidationError` wording (member
paths in lower camel case, as IAM writes them: "Value '...' at 'roleName' failed to satisfy
constraint: ..."); errors carry the code and status the model gives each error shape; a known
operation local core does not implement is a 501, as for every other served service; signed
requests (credentials configured) keep their form body."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlparse

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from fleetsim.localcore.launcher import RunningLocalCore
from tests.conftest import start_core
from tests.helpers import aws_client, code_of

AUTH = ("AWS4-HMAC-SHA256 Credential=KEY/20240101/us-east-1/iam/aws4_request, "
        "SignedHeaders=host, Signature=00")
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "iot.amazonaws.com"},
    "Action": "sts:AssumeRole"}]})


def post(core: RunningLocalCore, action: str, **params: str) -> tuple[int, str]:
    """(status, XML answer) of one IAM query request."""
    url = urlparse(core.api_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        conn.request("POST", "/", body=urlencode(
            {"Action": action, "Version": "2010-05-08", **params}).encode(),
            headers={"Authorization": AUTH,
                     "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def error_of(answer: str) -> tuple[str, str, str]:
    """(Type, Code, Message) of an `ErrorResponse`."""
    found = re.search(r"<Type>(.*)</Type><Code>(.*)</Code><Message>(.*)</Message>", answer)
    assert found is not None, answer
    return found.group(1), found.group(2), found.group(3)


@pytest.mark.parametrize(("action", "params", "message"), [
    ("GetRole", {"RoleName": "r" * 65},
     f"1 validation error detected: Value '{'r' * 65}' at 'roleName' failed to satisfy "
     "constraint: Member must have length less than or equal to 64"),
    ("GetRole", {"RoleName": "a b"},
     "1 validation error detected: Value 'a b' at 'roleName' failed to satisfy constraint: "
     "Member must satisfy regular expression pattern: [\\w+=,.@-]+"),
    ("GetRole", {},
     "1 validation error detected: Value null at 'roleName' failed to satisfy constraint: "
     "Member must not be null"),
    ("ListRoles", {"MaxItems": "0"},
     "1 validation error detected: Value '0' at 'maxItems' failed to satisfy constraint: "
     "Member must have value greater than or equal to 1"),
    ("ListRoles", {"MaxItems": "many"},
     "1 validation error detected: Value 'many' at 'maxItems' failed to satisfy constraint: "
     "Member must be an integer"),
    ("CreateRole", {"RoleName": "ok", "AssumeRolePolicyDocument": TRUST,
                    "MaxSessionDuration": "60", "Path": "no-slash"},
     "2 validation errors detected: Value 'no-slash' at 'path' failed to satisfy constraint: "
     "Member must satisfy regular expression pattern: (\\u002F)|(\\u002F[\\u0021-\\u007E]+"
     "\\u002F); Value '60' at 'maxSessionDuration' failed to satisfy constraint: Member must "
     "have value greater than or equal to 3600"),
])
def test_bad_input_is_a_validation_error_naming_the_member(
        core: RunningLocalCore, action: str, params: dict[str, str], message: str) -> None:
    status, answer = post(core, action, **params)
    assert status == 400
    assert error_of(answer) == ("Sender", "ValidationError",
                                message.replace("&", "&amp;").replace("<", "&lt;"))


def test_bad_marker_is_a_validation_error(core: RunningLocalCore) -> None:
    status, answer = post(core, "ListRoles", Marker="not a marker")
    assert status == 400
    assert error_of(answer)[1] == "ValidationError"


def test_modelled_errors_keep_their_code_and_status(core: RunningLocalCore) -> None:
    iam = aws_client(core.api_url, "iam")
    with pytest.raises(ClientError) as e:
        iam.get_role(RoleName="nobody")
    assert code_of(e) == "NoSuchEntity"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert e.value.response["Error"]["Message"] == "The role with name nobody cannot be found."
    with pytest.raises(ClientError) as e:
        iam.create_role(RoleName="bad-trust", AssumeRolePolicyDocument="[1]")
    assert code_of(e) == "MalformedPolicyDocument"


def test_unknown_and_unimplemented_operations(core: RunningLocalCore) -> None:
    status, answer = post(core, "Frobnicate")
    assert status == 400
    assert error_of(answer) == ("Sender", "ValidationError",
                                "Could not find operation Frobnicate")
    status, answer = post(core, "CreateUser", UserName="u")
    assert status == 501
    assert error_of(answer) == ("Receiver", "NotImplementedException",
                                "local core does not implement iam:CreateUser")


@pytest.fixture(scope="module")
def signed_core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLocalCore]:
    running = start_core(tmp_path_factory.mktemp("signed-iam") / "core",
                         extra_args=("--credentials", "AKIDLOCAL:s3cret"))
    yield running
    running.stop()


def test_signed_requests_keep_their_form(signed_core: RunningLocalCore) -> None:
    """The SigV4 check reads the body before the service does; IAM still sees the form."""
    iam: Any = boto3.client("iam", endpoint_url=signed_core.api_url, region_name="us-east-1",
                            aws_access_key_id="AKIDLOCAL", aws_secret_access_key="s3cret",
                            config=Config(retries={"max_attempts": 1}))
    iam.create_role(RoleName="signed", AssumeRolePolicyDocument=TRUST)
    assert iam.get_role(RoleName="signed")["Role"]["RoleName"] == "signed"
