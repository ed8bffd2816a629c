"""The JITR lab against a local core process with the workshop's AWS CLI commands verbatim where
they apply (register-ca-certificate with the verification certificate, `aws lambda
create-function --zip-file fileb://...`, create-topic-rule with the rule file, add-permission),
devices over mutual TLS; then what goes wrong: a function that raises, a rule without the
function's permission, a certificate from a CA that is not registered."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from pathlib import Path
from typing import Any

import pytest

from fleetsim.engine.steps.deploy_function import package
from fleetsim.localcore.launcher import RunningLocalCore
from fleetsim.pki import CertificateAuthority
from tests.awscli import aws, aws_json
from tests.conftest import ROOT
from tests.integration.test_jit import (
    ACCEPTED,
    attempt,
    device,
    log_text,
    observer,
    register_ca,
    wait_for_log,
)
from tests.mqtt_testing import Device, RawClient, next_publish, pub

pytestmark = pytest.mark.timeout(120)

WORKSHOP_RULE = ROOT / "scenarios" / "workshop" / "jitr-topic-rule.json"
ROLE = "arn:aws:iam::123456789012:role/JITRLambdaRole"
RAISING = '''
def lambda_handler(event, context):
    print("registration event for", event["certificateId"])
    raise RuntimeError("no thing for " + event["certificateId"][:12])
'''


def deploy(core: RunningLocalCore, folder: Path, name: str, source: Path) -> str:
    """`zip`, then the lab's create-function (python3.12: Lambda refuses the lab's python2.7);
    returns the function's ARN as the lab reads it (get-function)."""
    (folder / "lambda_function.zip").write_bytes(package(source))
    aws(core, folder, "lambda", "create-function", "--function-name", name,
        "--zip-file", "fileb://lambda_function.zip", "--role", ROLE,
        "--handler", "lambda_function.lambda_handler", "--runtime", "python3.12",
        "--timeout", "30", "--memory-size", "128")
    arn: str = aws_json(core, folder, "lambda", "get-function", "--function-name",
                        name)["Configuration"]["FunctionArn"]
    return arn


def create_rule(core: RunningLocalCore, folder: Path, rule: str, function_arn: str,
                ca_id: str | None = None) -> str:
    """The workshop's rule file, ${ARN_LAMBDA} filled as its shell does; on one CA's events
    when `ca_id` is given. Returns the rule's ARN (get-topic-rule, as the lab)."""
    payload = json.loads(WORKSHOP_RULE.read_text().replace("${ARN_LAMBDA}", function_arn))
    if ca_id is not None:
        payload["sql"] = payload["sql"].replace("registered/#", f"registered/{ca_id}")
    (folder / f"{rule}.json").write_text(json.dumps(payload))
    aws(core, folder, "iot", "create-topic-rule", "--rule-name", rule,
        "--topic-rule-payload", f"file://{rule}.json")
    arn: str = aws_json(core, folder, "iot", "get-topic-rule", "--rule-name", rule)["ruleArn"]
    return arn


def allow(core: RunningLocalCore, folder: Path, name: str, rule_arn: str) -> None:
    account = aws_json(core, folder, "sts", "get-caller-identity")["Account"]
    aws(core, folder, "lambda", "add-permission", "--function-name", name,
        "--region", "us-east-1", "--principal", "iot.amazonaws.com",
        "--source-arn", rule_arn, "--source-account", account,
        "--statement-id", "Id-123", "--action", "lambda:InvokeFunction")


def remove(core: RunningLocalCore, folder: Path, rule: str, name: str) -> None:
    aws(core, folder, "iot", "delete-topic-rule", "--rule-name", rule)
    aws(core, folder, "lambda", "delete-function", "--function-name", name)


async def until_admitted(core: RunningLocalCore, dev: Device, client_id: str,
                         seconds: float = 30) -> RawClient:
    """The device's retries, as the lab's mosquitto_pub run again: until CONNACK 0."""
    deadline = time.monotonic() + seconds
    while True:
        client = await RawClient.open(core.mqtt_port, dev, host="localhost")
        if await client.connect(client_id) == ACCEPTED:
            return client
        await client.close()
        assert time.monotonic() < deadline, f"{client_id} not admitted in {seconds} s"
        await asyncio.sleep(0.3)


def status(iot: Any, cert_id: str) -> str:
    return str(iot.describe_certificate(certificateId=cert_id)["certificateDescription"]
               ["status"])


async def test_jitr_lab_with_the_workshop_commands(core: RunningLocalCore, iot: Any,
                                                   tmp_path: Path) -> None:
    ca, ca_id = register_ca(core, tmp_path, "jitr-lab")
    arn = deploy(core, tmp_path, "jitr", ROOT / "lambda" / "jitr")
    allow(core, tmp_path, "jitr", create_rule(core, tmp_path, "JITRRule", arn))
    policy = json.loads(aws_json(core, tmp_path, "lambda", "get-policy", "--function-name",
                                 "jitr")["Policy"])
    assert policy["Statement"][0]["Principal"] == {"Service": "iot.amazonaws.com"}
    obs = await observer(core, iot, tmp_path, "ji/tr")
    dev = device(core, tmp_path, ca, "deviceJITRCert", country="DE")
    thing = f"jitr-{dev.certificate_id}"

    assert await attempt(core, dev) is None  # "The connection was lost ... normal behaviour"
    client = await until_admitted(core, dev, thing)
    await client.send(pub("ji/tr", b'{"hello": "jitr"}', qos=1))
    assert await client.read() == (0x40, b"\x00\x01")  # PUBACK
    received = await next_publish(obs)
    assert received is not None and received[:2] == ("ji/tr", b'{"hello": "jitr"}')
    await client.close()
    await obs.close()

    cert = iot.describe_certificate(certificateId=dev.certificate_id)["certificateDescription"]
    assert (cert["status"], cert["caCertificateId"]) == ("ACTIVE", ca_id)
    assert iot.list_thing_principals(thingName=thing)["principals"] == [cert["certificateArn"]]
    assert [p["policyName"] for p in iot.list_attached_policies(
        target=cert["certificateArn"])["policies"]] == ["JITR_Policy"]
    logged = aws_json(core, tmp_path, "logs", "filter-log-events", "--log-group-name",
                      "/aws/lambda/jitr", "--filter-pattern", f'"{thing}"')
    assert any("created" in e["message"] for e in logged["events"])
    remove(core, tmp_path, "JITRRule", "jitr")


async def test_a_raising_function_leaves_the_certificate_pending_with_its_error_logged(
        core: RunningLocalCore, iot: Any, tmp_path: Path) -> None:
    ca, ca_id = register_ca(core, tmp_path, "jitr-raises")
    source = tmp_path / "raises"
    source.mkdir()
    (source / "lambda_function.py").write_text(RAISING)
    arn = deploy(core, tmp_path, "jitr-raises", source)
    allow(core, tmp_path, "jitr-raises", create_rule(core, tmp_path, "JITRRaises", arn, ca_id))
    dev = device(core, tmp_path, ca, "raises-1")

    assert await attempt(core, dev) is None
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while not events and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        out = aws(core, tmp_path, "logs", "filter-log-events", "--log-group-name",
                  "/aws/lambda/jitr-raises", "--filter-pattern", "RuntimeError", check=False)
        events = json.loads(out.stdout)["events"] if out.returncode == 0 else []
    assert events, "no error in /aws/lambda/jitr-raises"
    assert events[0]["message"].startswith(
        f"[ERROR] RuntimeError: no thing for {dev.certificate_id[:12]}")
    assert status(iot, dev.certificate_id) == "PENDING_ACTIVATION"
    assert await attempt(core, dev) is None  # still refused
    remove(core, tmp_path, "JITRRaises", "jitr-raises")


async def test_a_rule_without_the_permission_does_not_invoke_the_function_and_says_so(
        core: RunningLocalCore, iot: Any, tmp_path: Path) -> None:
    ca, ca_id = register_ca(core, tmp_path, "jitr-noperm")
    arn = deploy(core, tmp_path, "jitr-noperm", ROOT / "lambda" / "jitr")
    rule_arn = create_rule(core, tmp_path, "JITRNoPermission", arn, ca_id)  # no add-permission
    dev = device(core, tmp_path, ca, "noperm-1")

    assert await attempt(core, dev) is None
    log = wait_for_log(core, "rule JITRNoPermission: lambda action failed")
    assert (f"Lambda function {arn} not invoked: its resource policy does not allow "
            f"iot.amazonaws.com from {rule_arn} (add-permission)") in log
    assert status(iot, dev.certificate_id) == "PENDING_ACTIVATION"
    groups = aws_json(core, tmp_path, "logs", "describe-log-groups", "--log-group-name-prefix",
                      "/aws/lambda/jitr-noperm")["logGroups"]
    assert groups == []  # never invoked: nothing logged
    remove(core, tmp_path, "JITRNoPermission", "jitr-noperm")


async def test_a_certificate_from_an_unregistered_ca_is_refused_at_the_handshake_and_logged(
        core: RunningLocalCore, iot: Any, tmp_path: Path) -> None:
    stranger = CertificateAuthority.create("Unregistered CA", "rsa-2048")
    dev = device(core, tmp_path, stranger, "stranger-jitr")
    before = log_text(core).count("certificate signed by an unknown CA")
    try:
        refused = await attempt(core, dev)
    except (ssl.SSLError, ConnectionError):  # the handshake fails on the client's side too
        refused = None
    assert refused is None
    deadline = time.monotonic() + 5
    while log_text(core).count("certificate signed by an unknown CA") == before:
        assert time.monotonic() < deadline, "the refusal was not logged"
        await asyncio.sleep(0.05)
    line = next(x for x in reversed(log_text(core).splitlines())
                if "certificate signed by an unknown CA" in x)
    assert "TLS handshake from 127.0.0.1:" in line
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_certificate(certificateId=dev.certificate_id)
