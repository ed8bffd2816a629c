"""Fixtures shared by integration tests: one local core per module and a boto3 `iot` client of
it (a module that needs a differently started core overrides `core`), and `env`, a broker in
this process for the broker's own tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetsim.localcore.launcher import RunningLocalCore
from tests.conftest import start_core
from tests.helpers import aws_client
from tests.mqtt_testing import Env, running_broker


@pytest.fixture(scope="module")
def core(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLocalCore]:
    module = request.module.__name__.rpartition(".")[2]
    running = start_core(tmp_path_factory.mktemp(module) / "core")
    yield running
    running.stop()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    """A broker in this process on 127.0.0.1, for the broker's tests (`tests/mqtt_testing.py`)."""
    async with running_broker(tmp_path) as running:
        yield running


@pytest.fixture(scope="module")
def iot(core: RunningLocalCore) -> Any:
    return aws_client(core.api_url)
