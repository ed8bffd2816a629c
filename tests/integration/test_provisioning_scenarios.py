"""The three provisioning scenarios end to end with `fleetsim run` against a real local core:
the workshop's "Single Device Provisioning" and "Bulk Device Provisioning" labs and fleet
provisioning by claim, each asserting what the lab asserts (thing with its type, group and
attributes; an ACTIVE certificate with a policy; every device publishing to iot/ws and the
observer receiving it), the per-phase operations in the summary, and clean-up removing what
the run made; plus a claim the template rejects."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetsim.localcore.launcher import RunningLocalCore
from tests.conftest import ROOT, aws_env, start_core
from tests.helpers import aws_client

pytestmark = pytest.mark.timeout(120)
SCENARIOS = ROOT / "scenarios"


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLocalCore]:
    running = start_core(tmp_path_factory.mktemp("prov") / "state" / "localcore")
    yield running
    running.stop()


def run(core: RunningLocalCore, scenario: Path, tmp_path: Path, *args: str,
        env: dict[str, str] | None = None
        ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    summary = tmp_path / "summary.json"
    out = subprocess.run([sys.executable, "-m", "fleetsim", "run", str(scenario), *args,
                          "--json", str(summary), "--state-dir", str(core.state_dir.parent)],
                         cwd=tmp_path,
                         env={**aws_env(core), "PYTHONPATH": str(ROOT), **(env or {})},
                         capture_output=True, text=True, timeout=110)
    return out, json.loads(summary.read_text()) if summary.exists() else {}


def ops(summary: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in summary["metrics"]["ops"]:
        counts[entry["op"]] = counts.get(entry["op"], 0) + entry["latency_us"]["count"]
    return counts


def counters(summary: dict[str, Any]) -> dict[str, int]:
    return dict(summary["metrics"]["counters"])


def checks(summary: dict[str, Any]) -> dict[str, bool]:
    return {c["name"]: c["passed"] for c in summary["metrics"]["checks"]}


def test_single_device_provisioning_lab(core: RunningLocalCore, tmp_path: Path) -> None:
    out, summary = run(core, SCENARIOS / "single-provisioning.yaml", tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert summary["passed"] is True
    assert checks(summary) == {
        "things of fleet 'second' exist with attributes {'version': 'v1', 'serialNumber': "
        "'{index}'}, type bulk-type, groups ['bulk-group'], a certificate with a policy": True,
        "at least 1 message(s) on iot/ws": True}
    counted = ops(summary)
    assert counted["api.RegisterThing"] == counted["provision.keys"] == 1
    assert counted["provision.certificate"] == 1 and counted["mqtt.publish"] >= 1
    key = core.state_dir.parent / "identities" / "single-provisioning" / "second" / \
        "my-second-thing.key"
    assert not key.exists()  # the run's clean-up removed it with its certificate
    # Clean-up removed the thing, its certificate and the template's policy; the thing type
    # is deprecated (AWS deletes a type only five minutes after that).
    iot = aws_client(core.api_url)
    assert "my-second-thing" not in {t["thingName"] for t in iot.list_things()["things"]}
    assert iot.describe_thing_type(thingTypeName="bulk-type")["thingTypeMetadata"]["deprecated"]
    assert "bulk-group" not in {g["groupName"] for g in iot.list_thing_groups()["thingGroups"]}


def test_bulk_provisioning_lab(core: RunningLocalCore, tmp_path: Path) -> None:
    iot = aws_client(core.api_url)
    certificates_before = len(iot.list_certificates()["certificates"])
    out, summary = run(core, SCENARIOS / "bulk-provisioning.yaml", tmp_path, "--devices", "4")
    assert out.returncode == 0, out.stdout + out.stderr
    assert all(checks(summary).values()) and len(checks(summary)) == 2
    assert "at least 4 message(s) on iot/ws" in checks(summary)
    counted = ops(summary)
    assert counted["provision.task"] == 1 and counted["api.StartThingRegistrationTask"] == 1
    assert counted["provision.keys"] == counted["provision.certificate"] == 4
    assert summary["metrics"]["counters"]["bulk.provisioned"] == 4
    # The task ran from the file in S3; the run removed the bucket, things and certificates.
    assert iot.list_thing_registration_tasks()["taskIds"]
    s3 = aws_client(core.api_url, "s3")
    assert not [b for b in s3.list_buckets()["Buckets"] if b["Name"].startswith("fleetsim-bulk")]
    assert not [t for t in iot.list_things()["things"] if t["thingName"].startswith("bulky")]
    assert len(iot.list_certificates()["certificates"]) == certificates_before
    assert summary["cleanup"]["failed"] == []


def test_fleet_provisioning_by_claim(core: RunningLocalCore, tmp_path: Path) -> None:
    out, summary = run(core, SCENARIOS / "fleet-provisioning.yaml", tmp_path, "--devices", "3")
    assert out.returncode == 0, out.stdout + out.stderr
    assert checks(summary) == {
        "things of fleet 'lamps' exist with attributes {'serial': '{index}'}, groups "
        "['claimed-lamps'], a certificate with a policy": True,
        "at least 3 message(s) on iot/ws": True}
    counted = ops(summary)
    assert counted["claim.certificate"] == counted["claim.register"] == 3
    assert counted["provision.certificate"] == 3
    iot = aws_client(core.api_url)
    assert "fleetsim-lamps" not in {t["templateName"] for t in
                                    iot.list_provisioning_templates()["templates"]}
    assert not [t for t in iot.list_things()["things"] if t["thingName"].startswith("lamp-")]


def test_a_claim_the_template_rejects_fails_with_its_reason(core: RunningLocalCore,
                                                            tmp_path: Path) -> None:
    text = (SCENARIOS / "fleet-provisioning.yaml").read_text()
    text = text.replace("      role_arn: arn:aws:iam::123456789012:role/IoTProvisioningRole\n",
                        "      role_arn: arn:aws:iam::123456789012:role/IoTProvisioningRole\n"
                        "      enabled: false\n", 1)
    assert "enabled: false" in text
    (tmp_path / "fleet-provisioning").mkdir()
    shutil.copy(SCENARIOS / "fleet-provisioning" / "template.json",
                tmp_path / "fleet-provisioning" / "template.json")
    (tmp_path / "disabled.yaml").write_text(text)
    out, summary = run(core, tmp_path / "disabled.yaml", tmp_path, "--devices", "2")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    step = next(s for s in summary["metrics"]["steps"] if s["name"] == "5.fleet_provision")
    assert step["status"] == "failed"
    assert "InvalidRequest" in step["detail"] and "disabled" in step["detail"]
    errors = [e["errors"] for e in summary["metrics"]["ops"] if e["op"] == "claim.register"]
    assert errors == [{"claim_InvalidRequest": 2}]
    assert summary["cleanup"]["failed"] == []
