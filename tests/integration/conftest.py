"""Fixtures shared by integration tests: one local core per module and a boto3 `iot` client of
it. A module that needs a differently started core overrides `core`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import RunningCore, start_core
from tests.helpers import aws_client


@pytest.fixture(scope="module")
def core(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCore]:
    module = request.module.__name__.rpartition(".")[2]
    running = start_core(tmp_path_factory.mktemp(module) / "core")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def iot(core: RunningCore) -> Any:
    return aws_client(core.api_url)
