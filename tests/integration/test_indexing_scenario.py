"""`scenarios/fleet-indexing.yaml` end to end with `fleetsim run` against a real local core:
indexing turned on, room numbers and reported temperatures set, and the lab's search answering
exactly the rooms above 20 (checked by the scenario's search_index step), then clean-up
restoring the indexing configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetsim.localcore.launcher import RunningLocalCore
from tests.helpers import aws_client
from tests.integration.test_provisioning_scenarios import SCENARIOS, core, ops, run

__all__ = ["core"]
pytestmark = pytest.mark.timeout(120)


def test_fleet_indexing_lab(core: RunningLocalCore, tmp_path: Path) -> None:
    out, summary = run(core, SCENARIOS / "fleet-indexing.yaml", tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert summary["passed"] is True
    assert ops(summary)["api.SearchIndex"] >= 2
    iot = aws_client(core.api_url)
    config = iot.get_indexing_configuration()["thingIndexingConfiguration"]
    assert config["thingIndexingMode"] == "OFF"  # restored at clean-up
