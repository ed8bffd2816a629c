"""The workshop's "Enable Logging", "Thing Groups" and "Fine-Grained Logging" labs, run as the
workshop text runs them: the AWS CLI (iam, iot, logs) and mosquitto clients against local core;
then the lab's four filter-log-events searches over what local core logged."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from fleetsim.localcore.launcher import RunningLocalCore
from tests.awscli import AWS, aws, aws_json
from tests.integration.test_workshop_interop import provision, tls

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(not AWS.exists(), reason="AWS CLI not installed (make tools)"),
    pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="mosquitto clients missing"),
]

ACCOUNT = "123456789012"
REGION = "us-east-1"
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "iot.amazonaws.com"},
    "Action": "sts:AssumeRole"}]})
THING = "group-member"


def smart_building_policy() -> str:
    """The lab's policy document, as its shell line expands it."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["iot:Connect"],
         "Resource": [f"arn:aws:iot:{REGION}:{ACCOUNT}:client/${{iot:ClientId}}"]},
        {"Effect": "Allow", "Action": ["iot:Publish"],
         "Resource": [f"arn:aws:iot:{REGION}:{ACCOUNT}:topic/telemetry/building/one/"
                      "${iot:ClientId}"]}]})


def publish(core: RunningLocalCore, cwd: Path, topic: str) -> subprocess.CompletedProcess[str]:
    message = json.dumps({"group": "test", "date": time.ctime()})
    return subprocess.run(["mosquitto_pub", *tls(core, THING), "-q", "0", "-t", topic,
                           "-i", THING, "-m", message, "-d"],
                          cwd=cwd, capture_output=True, text=True, timeout=30)


def search(core: RunningLocalCore, cwd: Path, start: int, pattern: str | None = None
           ) -> list[dict[str, Any]]:
    args = ["logs", "filter-log-events", "--log-group-name", "AWSIotLogsV2",
            "--start-time", str(start)]
    if pattern is not None:
        args += ["--filter-pattern", pattern]
    return [json.loads(e["message"]) for e in aws_json(core, cwd, *args)["events"]]


def settled(core: RunningLocalCore, cwd: Path, start: int, expected: int) -> list[Any]:
    """The log's entries once `expected` of them arrived (local core batches its writes)."""
    deadline = time.monotonic() + 30
    while True:
        found = search(core, cwd, start)
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def test_logging_labs(core: RunningLocalCore, tmp_path: Path) -> None:
    # --- Enable Logging: the role (IAM), registered with AWS IoT, verbosity "Warnings".
    role = aws_json(core, tmp_path, "iam", "create-role", "--role-name", "AWSIoTAccessServices",
                    "--assume-role-policy-document", TRUST)["Role"]
    aws(core, tmp_path, "iam", "attach-role-policy", "--role-name", "AWSIoTAccessServices",
        "--policy-arn", "arn:aws:iam::aws:policy/service-role/AWSIoTLogging")
    assert aws_json(core, tmp_path, "iam", "get-role", "--role-name", "AWSIoTAccessServices"
                    )["Role"]["AssumeRolePolicyDocument"] == json.loads(TRUST)
    aws(core, tmp_path, "iot", "set-v2-logging-options", "--role-arn", role["Arn"],
        "--default-log-level", "WARN")
    starttime = (int(time.time()) - 3600) * 1000

    # --- Thing Groups: the group policy is the thing's only policy.
    group_arn = aws_json(core, tmp_path, "iot", "create-thing-group", "--thing-group-name",
                         "building-one")["thingGroupArn"]
    aws(core, tmp_path, "iot", "create-policy", "--policy-name", "SmartBuilding_Policy",
        "--policy-document", smart_building_policy())
    aws(core, tmp_path, "iot", "attach-policy", "--target", group_arn,
        "--policy-name", "SmartBuilding_Policy")
    assert [p["policyName"] for p in aws_json(core, tmp_path, "iot", "list-attached-policies",
                                              "--target", group_arn)["policies"]
            ] == ["SmartBuilding_Policy"]
    aws(core, tmp_path, "iot", "create-thing", "--thing-name", THING)
    cert = aws_json(core, tmp_path, "iot", "create-keys-and-certificate", "--set-as-active",
                    "--public-key-outfile", f"{THING}.public.key",
                    "--private-key-outfile", f"{THING}.private.key",
                    "--certificate-pem-outfile", f"{THING}.certificate.pem")
    aws(core, tmp_path, "iot", "attach-thing-principal", "--thing-name", THING,
        "--principal", cert["certificateArn"])
    aws(core, tmp_path, "iot", "add-thing-to-thing-group", "--thing-name", THING,
        "--thing-group-name", "building-one")
    provision(core, tmp_path, "console")
    sub = subprocess.Popen(["stdbuf", "-oL", "mosquitto_sub", *tls(core, "console"),
                            "-i", "console", "-v", "-t", "telemetry/building/one/#",
                            "-W", "60", "-d"], cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        assert sub.stdout is not None
        lines: list[str] = []
        while not any("received SUBACK" in line for line in lines):
            line = sub.stdout.readline()
            assert line, f"mosquitto_sub ended before subscribing: {lines}"
            lines.append(line)
        assert publish(core, tmp_path, f"telemetry/building/one/{THING}").returncode == 0
        publish(core, tmp_path, f"telemetry/building/one/{THING}_foo")

        # --- Fine-Grained Logging: DEBUG for the group, then the same publishes again.
        options = aws_json(core, tmp_path, "iot", "get-v2-logging-options")
        assert options == {"roleArn": role["Arn"], "defaultLogLevel": "WARN",
                           "disableAllLogs": False}
        aws(core, tmp_path, "iot", "set-v2-logging-level", "--log-level", "DEBUG",
            "--log-target", '{"targetType": "THING_GROUP", "targetName": "building-one"}')
        assert aws_json(core, tmp_path, "iot", "list-v2-logging-levels") == {
            "logTargetConfigurations": [{"logTarget": {
                "targetType": "THING_GROUP", "targetName": "building-one"},
                "logLevel": "DEBUG"}]}
        assert publish(core, tmp_path, f"telemetry/building/one/{THING}").returncode == 0
        publish(core, tmp_path, f"telemetry/building/one/{THING}_foo")
        # Two denied publishes (ERROR, logged at WARN and DEBUG) and, at DEBUG only, two
        # connections' Connect and Disconnect and one allowed Publish-In (INFO).
        everything = settled(core, tmp_path, starttime, 7)
    finally:
        sub.kill()
    received = [line for line in (sub.stdout.read() if sub.stdout else "").splitlines()
                if line.startswith("telemetry/")]
    assert [line.split(" ", 1)[0] for line in received] == [
        f"telemetry/building/one/{THING}"] * 2

    assert len(everything) == 7, everything
    info = search(core, tmp_path, starttime, "{$.logLevel = INFO}")
    errors = search(core, tmp_path, starttime, "{$.logLevel = ERROR}")
    mine = search(core, tmp_path, starttime, f"{{$.clientId = {THING}}}")
    assert sorted(e["eventType"] for e in info) == [
        "Connect", "Connect", "Disconnect", "Disconnect", "Publish-In"]
    assert [(e["eventType"], e["status"], e["topicName"], e["reason"]) for e in errors] == [
        ("Publish-In", "Failure", f"telemetry/building/one/{THING}_foo",
         "AUTHORIZATION_FAILURE")] * 2
    assert len(mine) == 7 and {e["clientId"] for e in mine} == {THING}
    assert {e["principalId"] for e in mine} == {cert["certificateId"]}
    denied_disconnect = [e for e in info if e["eventType"] == "Disconnect"
                         and e.get("disconnectReason") == "AUTH_ERROR"]
    assert len(denied_disconnect) == 1


def test_iam_roles_as_the_labs_use_them(core: RunningLocalCore, tmp_path: Path) -> None:
    aws(core, tmp_path, "iam", "create-role", "--role-name", "lab-role",
        "--assume-role-policy-document", TRUST)
    again = aws(core, tmp_path, "iam", "create-role", "--role-name", "lab-role",
                "--assume-role-policy-document", TRUST, check=False)
    assert "EntityAlreadyExists" in again.stderr
    inline = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "logs:*", "Resource": "*"}]}
    aws(core, tmp_path, "iam", "put-role-policy", "--role-name", "lab-role", "--policy-name",
        "logs", "--policy-document", json.dumps(inline))
    got = aws_json(core, tmp_path, "iam", "get-role-policy", "--role-name", "lab-role",
                   "--policy-name", "logs")
    assert got["PolicyDocument"] == inline
    arn = "arn:aws:iam::aws:policy/service-role/AWSIoTLogging"
    aws(core, tmp_path, "iam", "attach-role-policy", "--role-name", "lab-role",
        "--policy-arn", arn)
    assert aws_json(core, tmp_path, "iam", "list-attached-role-policies", "--role-name",
                    "lab-role")["AttachedPolicies"] == [
        {"PolicyName": "AWSIoTLogging", "PolicyArn": arn}]
    assert "lab-role" in [r["RoleName"] for r in aws_json(core, tmp_path, "iam",
                                                          "list-roles")["Roles"]]
    refused = aws(core, tmp_path, "iam", "delete-role", "--role-name", "lab-role", check=False)
    assert "DeleteConflict" in refused.stderr
    aws(core, tmp_path, "iam", "detach-role-policy", "--role-name", "lab-role",
        "--policy-arn", arn)
    aws(core, tmp_path, "iam", "delete-role-policy", "--role-name", "lab-role",
        "--policy-name", "logs")
    aws(core, tmp_path, "iam", "delete-role", "--role-name", "lab-role")
    gone = aws(core, tmp_path, "iam", "get-role", "--role-name", "lab-role", check=False)
    assert "NoSuchEntity" in gone.stderr
