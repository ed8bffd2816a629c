"""scenarios/jitp.yaml end to end with `fleetsim run` against a real local core: the CA made
on first use (key 0600), registered with its verification certificate and the workshop's JITP
template, 20 devices powering up at once, each admitted after its provisioning connect, the
per-phase latencies in the summary, and clean-up removing the CA, certificates and things."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetsim.localcore.launcher import RunningLocalCore
from tests.conftest import ROOT, start_core
from tests.helpers import aws_client
from tests.integration.test_provisioning_scenarios import checks, ops, run

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLocalCore]:
    running = start_core(tmp_path_factory.mktemp("jit") / "state" / "localcore")
    yield running
    running.stop()


def test_jitp_lab_with_twenty_devices_at_once(core: RunningLocalCore, tmp_path: Path) -> None:
    lab = tmp_path / "scenarios"
    shutil.copytree(ROOT / "scenarios" / "workshop", lab / "workshop")
    shutil.copy(ROOT / "scenarios" / "jitp.yaml", lab / "jitp.yaml")

    out, summary = run(core, lab / "jitp.yaml", tmp_path, "--devices", "20")
    assert out.returncode == 0, out.stdout + out.stderr
    assert summary["passed"] is True
    assert all(checks(summary).values())
    counts = ops(summary)
    for phase in ("jit.first_attempt", "jit.registration", "jit.admitted", "jit.first_publish"):
        assert counts[phase] == 20, phase
    key = tmp_path / "certs" / "jit-ca" / "ca.key"
    assert key.stat().st_mode & 0o777 == 0o600

    iot = aws_client(core.api_url)
    assert iot.list_ca_certificates()["certificates"] == []
    assert iot.list_things()["things"] == []
    assert iot.list_certificates()["certificates"] == [] or all(
        not c.get("caCertificateId") for c in iot.list_certificates()["certificates"])
