"""`kill -9` of `fleetsim run` in the middle of provisioning, then `fleetsim cleanup`: nothing is
left, whatever calls were in flight at the kill (the issue's 2,000 devices x 20 kills is
`python -m bench cleanup`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetsim.localcore.launcher import RunningLocalCore
from tests.conftest import start_core
from tests.crash_drill import kill_and_clean, kill_moments, resources

DEVICES = 120
KILLS = 3


@pytest.fixture(scope="module")
def drill_core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLocalCore]:
    running = start_core(tmp_path_factory.mktemp("drill") / "state" / "localcore")
    yield running
    running.stop()


@pytest.mark.parametrize("at_entries", kill_moments(DEVICES, KILLS, seed=8))
def test_cleanup_after_kill_9_during_provisioning_leaves_nothing(
        drill_core: RunningLocalCore, tmp_path: Path, at_entries: int) -> None:
    assert sum(resources(drill_core).values()) == 0
    kill = kill_and_clean(drill_core, tmp_path, DEVICES, at_entries)
    assert kill.cleanup_exit == 0
    assert kill.left == {"things": 0, "certificates": 0, "policies": 0}
