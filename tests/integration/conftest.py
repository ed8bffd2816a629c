"""Fixtures shared by integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import RunningCore, start_core


@pytest.fixture(scope="module")
def cli_core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCore]:
    running = start_core(tmp_path_factory.mktemp("cli") / "core")
    yield running
    running.stop()
