"""`scenarios/group-policy.yaml`, `group-policy-fleet.yaml` and `logging.yaml` end to end with
`fleetsim run` against a real local core: thing-group policies (inherited down nested groups,
explicit denies winning) checked device by device, AWS IoT logging set up as the labs do it,
the lab's filter-log-events searches, and clean-up putting the account's settings back."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fleetsim.localcore.launcher import RunningLocalCore
from tests.helpers import aws_client
from tests.integration.test_provisioning_scenarios import (
    SCENARIOS,
    checks,
    core,
    counters,
    run,
)

__all__ = ["core"]  # one local core for this module's tests

pytestmark = pytest.mark.timeout(150)


def variant(tmp_path: Path, name: str, old: str, new: str) -> Path:
    """A copy of a ready scenario with one passage changed."""
    text = (SCENARIOS / name).read_text()
    assert old in text
    scenario = tmp_path / name
    scenario.write_text(text.replace(old, new))
    return scenario


def test_thing_groups_lab(core: RunningLocalCore, tmp_path: Path) -> None:
    out, summary = run(core, SCENARIOS / "group-policy.yaml", tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert summary["passed"] is True
    assert checks(summary) == {
        "fleet 'members': publish telemetry/building/one/{client_id}: allowed": True,
        "fleet 'members': publish telemetry/building/one/{client_id}_foo: denied": True}
    counted = counters(summary)
    assert counted["policy.publish.allowed"] == 1 and counted["policy.publish.denied"] == 1
    assert counted["policy.reconnects"] == 1  # MQTT 3.1.1: the denial closed the connection
    iot = aws_client(core.api_url)
    assert iot.list_thing_groups()["thingGroups"] == []  # removed at clean-up
    assert "SmartBuilding_Policy" not in [p["policyName"] for p in iot.list_policies()["policies"]]


def test_thing_groups_lab_over_mqtt5(core: RunningLocalCore, tmp_path: Path) -> None:
    """On MQTT 5 the denied publish is a PUBACK with reason code 0x87: no reconnect needed."""
    scenario = variant(tmp_path, "group-policy.yaml", '    thing_name: "{prefix}"',
                       '    thing_name: "{prefix}"\n    protocol: mqtt5')
    out, summary = run(core, scenario, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    counted = counters(summary)
    assert counted["policy.publish.allowed"] == 1 and counted["policy.publish.denied"] == 1
    assert "policy.reconnects" not in counted


def test_group_policies_at_fleet_scale(core: RunningLocalCore, tmp_path: Path) -> None:
    out, summary = run(core, SCENARIOS / "group-policy-fleet.yaml", tmp_path, "--devices", "10")
    assert out.returncode == 0, out.stdout + out.stderr
    assert summary["passed"] is True
    results = checks(summary)
    assert len(results) == 6 + 5 + 4 and all(results.values()), results
    counted = counters(summary)
    # lobby: 2 allowed, 2 denied publishes; floor: 1 and 2; annex: 1 and 1 (10 devices each)
    assert counted["policy.publish.allowed"] == 40 and counted["policy.publish.denied"] == 50
    assert counted["policy.subscribe.allowed"] == 40
    assert counted["policy.subscribe.denied"] == 20
    assert counted["policy.reconnects"] == 50
    assert aws_client(core.api_url).list_thing_groups()["thingGroups"] == []


def test_a_policy_design_that_differs_fails_the_run(core: RunningLocalCore,
                                                    tmp_path: Path) -> None:
    """The same fleet scenario with one expectation the design does not meet: floor devices
    publishing to building/a are said to be allowed, but floor-a1's Deny wins."""
    scenario = variant(
        tmp_path, "group-policy-fleet.yaml",
        '        allowed: ["campus/{client_id}/temp"]\n'
        '        denied: ["building/a/{client_id}", "campus/{client_id}/secret"]',
        '        allowed: ["campus/{client_id}/temp", "building/a/{client_id}"]\n'
        '        denied: ["campus/{client_id}/secret"]')
    out, summary = run(core, scenario, tmp_path, "--devices", "2")
    assert out.returncode == 1
    failed = {name for name, passed in checks(summary).items() if not passed}
    assert failed == {"fleet 'floor': publish building/a/{client_id}: allowed"}
    detail = next(c["detail"] for c in summary["metrics"]["checks"]
                  if c["name"] in failed)
    assert detail.count(": denied") == 2


def test_logging_labs(core: RunningLocalCore, tmp_path: Path) -> None:
    iot = aws_client(core.api_url)
    iam = aws_client(core.api_url, "iam")
    start = int(time.time() * 1000)
    out, summary = run(core, SCENARIOS / "logging.yaml", tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert summary["passed"] is True
    results = checks(summary)
    assert results["filter-log-events AWSIotLogsV2 {$.logLevel = ERROR}: exactly 2, each with "
                   "{'eventType': 'Publish-In', 'status': 'Failure', 'reason': "
                   "'AUTHORIZATION_FAILURE', 'clientId': 'group-member'}"] is True
    # logging.yaml is made of labs (enable-logging.yaml, thing-groups-logging.yaml): their
    # checks, and the Clean Up lab's "nothing the run created is left"
    assert len(summary["metrics"]["checks"]) == 4 + 4 + 1 and all(results.values()), results
    assert [lab["status"] for lab in summary["labs"]] == ["pass", "pass", "pass"]
    # Everything the run logged (nothing else logs here: logging is off outside this run).
    # At WARN: the denied publish. At DEBUG for building-one: the allowed publish, the denied
    # one and the disconnection it caused, connecting again, and the final disconnection.
    logs = aws_client(core.api_url, "logs")
    deadline = time.monotonic() + 20
    while True:
        entries = [json.loads(e["message"]) for e in logs.filter_log_events(
            logGroupName="AWSIotLogsV2", startTime=start)["events"]]
        if len(entries) >= 6 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted((e["eventType"], e["logLevel"]) for e in entries) == [
        ("Connect", "INFO"), ("Disconnect", "INFO"), ("Disconnect", "INFO"),
        ("Publish-In", "ERROR"), ("Publish-In", "ERROR"), ("Publish-In", "INFO")]
    assert {e["clientId"] for e in entries} == {"group-member"}
    # Clean-up put back what the account had before: logging never configured, no levels,
    # and the role it made is gone.
    assert iot.list_v2_logging_levels()["logTargetConfigurations"] == []
    assert iot.get_v2_logging_options()["disableAllLogs"] is True
    assert "AWSIoTAccessServices" not in [r["RoleName"] for r in iam.list_roles()["Roles"]]
