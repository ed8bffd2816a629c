"""`fleetsim run` talks to local core over sockets (in its own process): building the command
line and loading the run command import none of local core's own modules (its API, broker,
features and their dependencies cost ~40 MB of RSS before the first device)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# What the run command may use of `fleetsim.localcore`: its options, its start-up settings,
# and the launcher that starts it in a process of its own.
ALLOWED = {"fleetsim.localcore", "fleetsim.localcore.allocator", "fleetsim.localcore.arguments",
           "fleetsim.localcore.config", "fleetsim.localcore.launcher",
           "fleetsim.localcore.statelock"}


def test_the_run_command_imports_no_module_of_local_core_itself() -> None:
    code = ("import json, sys, fleetsim.cli; fleetsim.cli.build_parser(); "
            "import fleetsim.commands.run; print(json.dumps(sorted("
            "m for m in sys.modules if m.startswith('fleetsim.localcore'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    imported = set(json.loads(out.stdout))
    assert imported - ALLOWED == set()


def test_loading_a_scenario_and_the_run_command_imports_no_aws_client() -> None:
    """The AWS client (~45 MB) is imported where a client is made: a split run's device
    process (engine/split.py) parses the scenario and runs its device steps without it."""
    code = ("import json, sys, fleetsim.cli; fleetsim.cli.build_parser(); "
            "import fleetsim.commands.run, fleetsim.engine.split; "
            "from fleetsim.engine.steps import load_scenario; "
            "load_scenario(__import__('pathlib').Path('scenarios/api-provisioning.yaml')); "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('aioboto3', 'aiobotocore', 'aiohttp', 'boto3') "
            "or m in ('botocore.session', 'botocore.client'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120, cwd=ROOT)
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize("backend", ["stdlib", "openssl"])
def test_a_run_imports_its_tls_backend_with_the_scenario(tmp_path: Path, backend: str) -> None:
    """The openssl backend (pyOpenSSL, cryptography: ~10 MB) is part of a run's fixed RSS,
    imported before its first connect; over Python's ssl neither is imported at all (the
    scenario parsed, the step kinds it uses with it)."""
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ntarget: {kind: local, tls_backend: " + backend + "}\n"
                    "fleets: [{name: f, prefix: p, count: 2}]\n"
                    "steps: [{provision: f}, {connect: f}, {disconnect: f}]\n")
    code = ("import json, sys, fleetsim.cli; fleetsim.cli.build_parser(); "
            "from fleetsim.commands.run import _load_tls_backend; "
            "from fleetsim.engine.labs import load_run; "
            f"_load_tls_backend(load_run(__import__('pathlib').Path({str(path)!r}))); "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} "
            "& {'OpenSSL', 'cryptography'})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120, cwd=ROOT)
    assert json.loads(out.stdout) == (["OpenSSL", "cryptography"] if backend == "openssl"
                                      else [])
