"""`fleetsim run` talks to local core over sockets (in its own process): building the command
line and loading the run command import none of local core's own modules (its API, broker,
features and their dependencies cost ~40 MB of RSS before the first device)."""

from __future__ import annotations

import json
import subprocess
import sys

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
