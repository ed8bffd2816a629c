"""Shared fixtures: a real local core process on 127.0.0.1 with ephemeral ports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from fleetsim.localcore.launcher import RunningLocalCore, spawn_local_core

ROOT = Path(__file__).resolve().parent.parent

# `make test` (and so CI) draws the same examples on every run, so that a red run is about the
# change under test; `make explore` draws new ones, to find what the fixed draws miss.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False, print_blob=True)


def aws_env(core: RunningLocalCore) -> dict[str, str]:
    """Environment for boto3 / the AWS CLI to talk to this core and nothing else."""
    return {
        **os.environ,
        "AWS_ENDPOINT_URL": core.api_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_PAGER": "",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }


def start_core(state_dir: Path, timeout: float = 20.0, api_port: int = 0, mqtt_port: int = 0,
               extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None
               ) -> RunningLocalCore:
    """Start a local core in `state_dir`; `env` adds to this process's environment for it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    return spawn_local_core(state_dir, state_dir.parent / f"{state_dir.name}.log",
                            api_port=api_port, mqtt_port=mqtt_port, extra_args=extra_args,
                            env=env, timeout=timeout)


@pytest.fixture
def local_core(tmp_path: Path) -> Iterator[RunningLocalCore]:
    core = start_core(tmp_path / "core")
    try:
        yield core
    finally:
        core.stop()
