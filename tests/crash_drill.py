"""Kill `fleetsim run` with SIGKILL in the middle of provisioning, run `fleetsim cleanup`, and
count what is left in local core. Used by tests/integration/test_crash_cleanup.py (a few
hundred devices, a handful of moments) and `python -m bench cleanup` (2,000 devices, 20)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from fleetsim.cli import main
from fleetsim.localcore.launcher import RunningLocalCore

ROOT = Path(__file__).resolve().parent.parent
# Per device: thing, certificate (before and after the call), policy attachment, principal.
ENTRIES_PER_DEVICE = 5
SCENARIO = """\
name: crash-drill
fleets:
  - {{name: d, prefix: drill, count: {count}, thing_name: "{{prefix}}-{{index:05d}}"}}
steps:
  - create_policy:
      policy: crash-drill
      document: {{Version: "2012-10-17", Statement: [{{Effect: Allow, Action: "iot:Connect",
                                                       Resource: "*"}}]}}
  - provision: {{fleet: d, policy: crash-drill, pacing: {{concurrency: 64}}}}
  - wait: 600s
"""


@dataclass
class Kill:
    at_entries: int  # the run was killed once its journal held this many entries
    seconds_into_run: float
    cleanup_exit: int
    left: dict[str, int]  # what remained in local core after cleanup, by kind

    @property
    def leftovers(self) -> int:
        return sum(self.left.values())

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "leftovers": self.leftovers}


def env_for(core: RunningLocalCore) -> dict[str, str]:
    return {**os.environ, "AWS_ENDPOINT_URL": core.api_url, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "PYTHONPATH": str(ROOT)}


def resources(core: RunningLocalCore) -> dict[str, int]:
    """Things, certificates and policies in local core (all of them: the drill owns it)."""
    iot = boto3.client("iot", endpoint_url=core.api_url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing",
                       config=Config(retries={"max_attempts": 3}))
    counts = {}
    for op, key in (("list_things", "things"), ("list_certificates", "certificates"),
                    ("list_policies", "policies")):
        pages = iot.get_paginator(op).paginate(PaginationConfig={"PageSize": 250})
        counts[key] = sum(len(p[key]) for p in pages)
    return counts


def kill_moments(devices: int, kills: int, seed: int) -> list[int]:
    """`kills` journal sizes at which to kill, drawn over the whole of provisioning."""
    rng = random.Random(seed)
    return sorted(rng.randrange(3, 3 + devices * ENTRIES_PER_DEVICE) for _ in range(kills))


class JournalWatch:
    """Counts the entries of the journal of the run that starts after it is made."""

    def __init__(self, runs: Path):
        self.runs = runs
        self.before = set(runs.iterdir()) if runs.exists() else set()
        self.path: Path | None = None
        self.offset = 0
        self.entries = -1  # not the header

    def count(self) -> int:
        if self.path is None:
            new = [d / "journal.jsonl" for d in (self.runs.iterdir() if self.runs.exists()
                                                 else []) if d not in self.before]
            self.path = next((p for p in new if p.exists()), None)
            if self.path is None:
                return 0
        with self.path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        self.offset += len(chunk)
        self.entries += chunk.count(b"\n")
        return max(self.entries, 0)


def kill_and_clean(core: RunningLocalCore, workdir: Path, devices: int,
                   at_entries: int, timeout: float = 600) -> Kill:
    """One drill: run, SIGKILL once the journal holds `at_entries` entries, clean up, count."""
    state = core.state_dir.parent  # runs find the core in <state>/localcore and reuse it
    scenario = workdir / "crash-drill.yaml"
    scenario.write_text(SCENARIO.format(count=devices))
    watch = JournalWatch(state / "runs")
    env = env_for(core)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "fleetsim", "run", str(scenario),
                             "--state-dir", str(state)], cwd=workdir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while watch.count() < at_entries:
            if proc.poll() is not None:
                raise AssertionError(f"the run ended (exit {proc.returncode}) before its "
                                     f"journal held {at_entries} entries")
            if time.monotonic() - started > timeout:
                raise AssertionError(f"the run's journal did not reach {at_entries} entries")
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.wait()
    killed_at = time.monotonic() - started
    # `fleetsim cleanup --state-dir STATE`, in this process (it finds the core in STATE)
    exit_code = main(["cleanup", "--state-dir", str(state)])
    return Kill(at_entries, round(killed_at, 2), exit_code, resources(core))


def summary(kills: list[Kill]) -> dict[str, Any]:
    return {"kills": [k.as_dict() for k in kills],
            "leftovers_total": sum(k.leftovers for k in kills),
            "cleanup_failures": sum(1 for k in kills if k.cleanup_exit != 0)}
