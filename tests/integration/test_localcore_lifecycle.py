"""Whose life a local core shares: one a run starts exits when that run is killed (kill -9);
one `fleetsim local start` starts outlives its caller, is reused by runs and stopped by
`fleetsim local stop`; two on one state dir are refused in one sentence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetsim.errors import UserError
from fleetsim.localcore.arguments import INFO_FILE
from fleetsim.localcore.launcher import running_info, spawn_local_core
from tests.conftest import ROOT, start_core

LONG_RUN = """\
name: lifecycle
fleets: [{name: f, prefix: life, count: 1}]
steps:
  - create_things: f
  - wait: 300s
"""


def env() -> dict[str, str]:
    return {**os.environ, "FLEETSIM_LOCAL_API_PORT": "0", "FLEETSIM_LOCAL_MQTT_PORT": "0",
            "PYTHONPATH": str(ROOT)}


def fleetsim(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleetsim", *args], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=120)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(condition: object, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_local_core_started_by_a_run_exits_when_the_run_is_killed(tmp_path: Path) -> None:
    scenario = tmp_path / "long.yaml"
    scenario.write_text(LONG_RUN)
    state = tmp_path / "state"
    run = subprocess.Popen([sys.executable, "-m", "fleetsim", "run", str(scenario),
                            "--state-dir", str(state)], cwd=tmp_path, env=env(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert run.stdout is not None
        line = run.stdout.readline()
        assert "(started for this run)" in line, line
        info = json.loads((state / "localcore" / INFO_FILE).read_text())
        assert alive(info["pid"])
    finally:
        run.send_signal(signal.SIGKILL)
        run.communicate(timeout=30)
    assert wait_until(lambda: not alive(info["pid"])), "local core outlived the killed run"
    # and the next run does not find a stale core: it starts one of its own
    assert running_info(state / "localcore") is None


def test_local_start_status_reuse_stop(tmp_path: Path) -> None:
    state = tmp_path / "state"
    out = fleetsim("local", "status", "--state-dir", str(state / "localcore"), cwd=tmp_path)
    assert out.returncode == 3 and "not running" in out.stdout
    out = fleetsim("local", "start", "--state-dir", str(state / "localcore"), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    info = running_info(state / "localcore")
    assert info is not None and f"API       {info['api_url']}" in out.stdout
    try:
        # the starter has exited: the core was not tied to it
        out = fleetsim("local", "status", "--state-dir", str(state / "localcore"),
                       cwd=tmp_path)
        assert out.returncode == 0 and f"pid       {info['pid']}" in out.stdout
        again = fleetsim("local", "start", "--state-dir", str(state / "localcore"),
                         cwd=tmp_path)
        assert again.returncode == 0 and "already running" in again.stdout
        scenario = tmp_path / "short.yaml"
        scenario.write_text(LONG_RUN.replace("300s", "0s"))
        out = fleetsim("run", str(scenario), "--state-dir", str(state), cwd=tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "(already running)" in out.stdout
        assert alive(info["pid"])  # the run left it running
    finally:
        out = fleetsim("local", "stop", "--state-dir", str(state / "localcore"), cwd=tmp_path)
    assert out.returncode == 0 and f"stopped (pid {info['pid']})" in out.stdout
    assert not alive(info["pid"])
    out = fleetsim("local", "stop", "--state-dir", str(state / "localcore"), cwd=tmp_path)
    assert out.returncode == 0 and "not running" in out.stdout


def test_second_local_core_on_one_state_dir_is_refused(tmp_path: Path) -> None:
    first = start_core(tmp_path / "core")
    try:
        with pytest.raises(UserError) as refused:
            spawn_local_core(tmp_path / "core", tmp_path / "second.log", api_port=0,
                             mqtt_port=0)
        assert str(refused.value) == (
            f"another local core (pid {first.pid}) already uses the state dir "
            f"{tmp_path / 'core'}: stop it with `fleetsim local stop --state-dir "
            f"{tmp_path / 'core'}`, or choose another --state-dir")
        # the first one is untouched, and still findable
        assert running_info(tmp_path / "core") == first.info
    finally:
        first.stop()
