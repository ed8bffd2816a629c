"""scenarios/jitr.yaml end to end with `fleetsim run` against a real local core: the CA
registered without a registration config, the workshop's JITR function zipped from lambda/jitr
and deployed with its permission, the workshop's topic rule on the CA's registration events,
devices admitted once the function activated them, per-phase latencies in the summary, and
clean-up removing all of it. Then a function that raises: the run fails the phase with the
function's error, read from /aws/lambda/<name>."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetsim.localcore.launcher import RunningLocalCore
from tests.conftest import ROOT, start_core
from tests.helpers import aws_client
from tests.integration.test_provisioning_scenarios import checks, ops, run

pytestmark = pytest.mark.timeout(150)

RAISING = '''
def lambda_handler(event, context):
    print("registration event for", event["certificateId"])
    raise RuntimeError("no thing for " + event["certificateId"][:12])
'''


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLocalCore]:
    running = start_core(tmp_path_factory.mktemp("jitr") / "state" / "localcore")
    yield running
    running.stop()


def lab(tmp_path: Path) -> Path:
    """The scenario, the workshop files and the function as the repository lays them out."""
    scenarios = tmp_path / "scenarios"
    shutil.copytree(ROOT / "scenarios" / "workshop", scenarios / "workshop")
    shutil.copy(ROOT / "scenarios" / "jitr.yaml", scenarios / "jitr.yaml")
    shutil.copytree(ROOT / "lambda" / "jitr", tmp_path / "lambda" / "jitr",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return scenarios / "jitr.yaml"


def test_jitr_lab_with_five_devices_at_once(core: RunningLocalCore, tmp_path: Path) -> None:
    out, summary = run(core, lab(tmp_path), tmp_path, "--devices", "5")
    assert out.returncode == 0, out.stdout + out.stderr
    assert summary["passed"] is True
    assert checks(summary) == {
        "things of fleet 'jitr' exist with a certificate with a policy": True,
        "at least 5 message(s) on ji/tr": True}
    counts = ops(summary)
    for phase in ("jit.first_attempt", "jit.registration", "jit.admitted", "jit.first_publish"):
        assert counts[phase] == 5, phase
    assert counts["api.CreateFunction"] == counts["api.AddPermission"] == 1
    assert counts["api.CreateTopicRule"] == 1

    iot, lam = aws_client(core.api_url), aws_client(core.api_url, "lambda")
    assert iot.list_ca_certificates()["certificates"] == []
    assert iot.list_things()["things"] == []
    assert iot.list_topic_rules()["rules"] == []
    assert lam.list_functions()["Functions"] == []
    assert "JITR_Policy" not in [p["policyName"] for p in iot.list_policies()["policies"]]


def test_a_raising_function_fails_the_phase_with_its_error(core: RunningLocalCore,
                                                           tmp_path: Path) -> None:
    scenario = lab(tmp_path)
    (tmp_path / "lambda" / "jitr" / "lambda_function.py").write_text(RAISING)
    out, summary = run(core, scenario, tmp_path, "--devices", "2")
    assert out.returncode != 0
    assert summary["passed"] is False
    failed = [s for s in summary["metrics"]["steps"] if s["status"] == "failed"]
    assert len(failed) == 1 and "jit_connect" in failed[0]["name"]
    detail = failed[0]["detail"]
    assert "stays PENDING_ACTIVATION" in detail
    assert "RuntimeError: no thing for" in detail and "/aws/lambda/jitr" in detail
