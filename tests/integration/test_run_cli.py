"""`fleetsim run / validate / cleanup` end to end, as a user runs them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, aws_env, start_core
from tests.helpers import aws_client

SCENARIO = ROOT / "scenarios" / "api-provisioning.yaml"


def fleetsim(*args: str, cwd: Path, env: dict[str, str] | None = None,
             timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleetsim", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def ephemeral_env() -> dict[str, str]:
    return {**os.environ, "FLEETSIM_LOCAL_API_PORT": "0", "FLEETSIM_LOCAL_MQTT_PORT": "0",
            "PYTHONPATH": str(ROOT)}


def run_scenario(tmp_path: Path, name: str,
                 text: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`fleetsim run` of scenario `text` (written to `name`) with its own local core; returns the
    process and the path of its JSON summary."""
    scenario = tmp_path / name
    scenario.write_text(text)
    summary = tmp_path / "s.json"
    out = fleetsim("run", str(scenario), "--json", str(summary), "--state-dir",
                   str(tmp_path / "state"), cwd=tmp_path, env=ephemeral_env())
    return out, summary


def test_validate_reports_position_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nfleets:\n  - name: a\n    prefix: p\n    colour: red\n"
                   "steps:\n  - create_things: b\n  - wait: soon\n")
    out = fleetsim("validate", str(bad), cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert lines[0] == f"{bad}:5:5: fleets[0].colour: unknown key 'colour'"
    assert lines[1].startswith(f"{bad}:8:11: steps[1].wait.seconds: 'soon' is not a duration")
    assert "Traceback" not in out.stderr


def test_validate_names_unknown_fleet_and_template(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nfleets:\n  - {name: a, prefix: p, count: 2}\nsteps:\n"
                   "  - create_things: b\n  - connect: a\n"
                   "  - publish: {fleet: a, topic: 'x/{nope}', payload: {}}\n")
    out = fleetsim("validate", str(bad), cwd=tmp_path)
    assert out.returncode == 2
    assert f"{bad}:5:20: steps[0].create_things.fleet: no fleet named 'b'" in out.stderr
    assert f"{bad}:7:32: steps[2].publish.topic: unknown placeholder {{nope}}" in out.stderr


def test_api_provisioning_demo_end_to_end(tmp_path: Path) -> None:
    """The workshop lab, with fleetsim starting (and stopping) local core itself."""
    summary = tmp_path / "summary.json"
    out = fleetsim("run", str(SCENARIO), "--json", str(summary), "--state-dir",
                   str(tmp_path / "state"), cwd=tmp_path, env=ephemeral_env())
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads(summary.read_text())
    assert data["passed"] is True
    checks = {c["name"]: c for c in data["metrics"]["checks"]}
    assert checks["at least 1 message(s) on $aws/events/thing/my-first-thing/created"]["passed"]
    assert checks["at least 1 message(s) on $aws/events/thing/my-first-thing/updated"]["passed"]
    assert checks["at least 1 message(s) on iot/ws"]["passed"]
    assert checks["things of fleet 'first' exist with attributes {'type': 'ws-device'}"]["passed"]
    ops = {o["op"] for o in data["metrics"]["ops"]}
    assert {"api.CreateThing", "api.CreateKeysAndCertificate", "mqtt.connect"} <= ops
    # local core was started for the run and stopped after it
    assert "started for this run" in out.stdout
    assert not (tmp_path / "state" / "localcore" / "localcore.json").exists()
    # everything the run created was removed
    assert data["cleanup"]["failed"] == []
    assert data["cleanup"]["removed"]["thing"] == 1


def test_kept_resources_are_removed_by_cleanup(tmp_path: Path) -> None:
    state = tmp_path / "state"
    core = start_core(state / "localcore")
    try:
        env = {**aws_env(core), "PYTHONPATH": str(ROOT)}
        out = fleetsim("run", str(SCENARIO), "--keep", "--state-dir", str(state), cwd=tmp_path,
                       env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "already running" in out.stdout
        iot = aws_client(core.api_url, max_attempts=None)
        assert [t["thingName"] for t in iot.list_things()["things"]] == ["my-first-thing"]
        out = fleetsim("cleanup", "--state-dir", str(state), cwd=tmp_path, env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        assert iot.list_things()["things"] == []
        assert iot.list_policies()["policies"] == []
        assert iot.list_certificates()["certificates"] == []
        again = fleetsim("cleanup", "--state-dir", str(state), cwd=tmp_path, env=env)
        assert "Nothing to clean up" in again.stdout
    finally:
        core.stop()


DENIED = """\
name: denied-publish
fleets:
  - {name: d, prefix: denied, count: 2}
steps:
  - create_things: d
  - create_keys_and_certificate: d
  - create_policy:
      policy: connect-only
      document:
        Version: "2012-10-17"
        Statement: [{Effect: Allow, Action: "iot:Connect", Resource: "*"}]
  - attach_policy: {fleet: d, policy: connect-only}
  - connect: d
  - publish: {fleet: d, topic: iot/ws, payload: {x: 1}, qos: 1}
"""
MALFORMED = """\
name: malformed-policy
fleets:
  - {name: d, prefix: mal}
steps:
  - create_things: d
  - create_policy:
      policy: broken
      document: '{"Version": "2012-10-17", "Statement": [}'
"""


def test_denied_publish_fails_the_run_with_one_sentence(tmp_path: Path) -> None:
    out, summary = run_scenario(tmp_path, "denied.yaml", DENIED)
    assert out.returncode == 1
    assert "Traceback" not in out.stdout + out.stderr
    # whichever of the two devices failed first is named
    assert re.search(r"denied-[01] could not publish to iot/ws \(disconnected_by_server\): "
                     r"the broker closed", out.stdout), out.stdout
    data = json.loads(summary.read_text())
    publish = next(o for o in data["metrics"]["ops"] if o["op"] == "mqtt.publish")
    assert publish["errors"] == {"disconnected_by_server": 2}
    assert data["cleanup"]["removed"] == {"certificate": 2, "policy": 1,
                                          "policy_attachment": 2, "thing": 2}


def test_malformed_policy_reports_aws_error_and_cleans_up(tmp_path: Path) -> None:
    out, summary = run_scenario(tmp_path, "malformed.yaml", MALFORMED)
    assert out.returncode == 1
    assert "Traceback" not in out.stdout + out.stderr
    assert "CreatePolicy for broken failed: MalformedPolicyException:" in out.stdout
    data = json.loads(summary.read_text())
    assert [s["status"] for s in data["metrics"]["steps"]] == ["ok", "failed"]
    assert data["cleanup"]["removed"] == {"thing": 1}


def test_aws_target_without_credentials_says_so(tmp_path: Path) -> None:
    scenario = tmp_path / "aws.yaml"
    scenario.write_text("name: aws\ntarget: {kind: aws, region: eu-west-1}\n"
                        "steps: [{wait: 1s}]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
               AWS_EC2_METADATA_DISABLED="true", PYTHONPATH=str(ROOT))
    out = fleetsim("run", str(scenario), "--state-dir", str(tmp_path / "state"),
                   cwd=tmp_path, env=env)
    assert out.returncode == 1
    assert out.stderr.strip() == ("fleetsim: no AWS credentials found: configure a profile "
                                  "(target.profile) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")


INACTIVE_AND_UNKNOWN = """\
name: inactive
fleets:
  - {name: d, prefix: inactive, count: 1}
steps:
  - create_things: d
  - create_keys_and_certificate: {fleet: d, set_as_active: false}
  - update_things: {fleet: d, attributes: {a: b}}
  - connect: d
"""


def test_inactive_certificate_cannot_connect(tmp_path: Path) -> None:
    out, summary = run_scenario(tmp_path, "inactive.yaml", INACTIVE_AND_UNKNOWN)
    assert out.returncode == 1
    assert "Traceback" not in out.stdout + out.stderr
    assert ("inactive-0 could not connect to 127.0.0.1:" in out.stdout
            and "(closed_before_connack): the broker closed the connection before accepting "
                "it" in out.stdout), out.stdout
    data = json.loads(summary.read_text())
    connect = next(o for o in data["metrics"]["ops"] if o["op"] == "mqtt.connect")
    assert connect["errors"] == {"closed_before_connack": 1}


def test_unknown_thing_is_named_with_awss_error(tmp_path: Path) -> None:
    text = ("name: unknown\nfleets: [{name: d, prefix: ghost}]\nsteps:\n"
            "  - update_things: {fleet: d, attributes: {a: b}}\n")
    out, _ = run_scenario(tmp_path, "unknown.yaml", text)
    assert out.returncode == 1
    assert "UpdateThing for ghost-0 failed: ResourceNotFoundException:" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
