"""Fixtures shared by integration tests: one local core per module and a boto3 `iot` client of
it. A module that needs a differently started core overrides `core`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fleetsim.localcore.launcher import RunningLocalCore
from tests.conftest import start_core
from tests.helpers import aws_client


@pytest.fixture(scope="module")
def core(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLocalCore]:
    module = request.module.__name__.rpartition(".")[2]
    running = start_core(tmp_path_factory.mktemp(module) / "core")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def iot(core: RunningLocalCore) -> Any:
    return aws_client(core.api_url)
