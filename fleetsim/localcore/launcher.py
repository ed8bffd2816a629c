"""Start local core for a run when it is not already running, and stop only what we started.

A local core a run starts is tied to the run's life: it gets SIGTERM when the run's process
dies, even by kill -9 (Linux `PR_SET_PDEATHSIG`, set between fork and exec). One started by
`fleetsim local start` is not tied to anyone, and runs reuse it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetsim.errors import UserError
from fleetsim.localcore import allocator
from fleetsim.localcore.arguments import INFO_FILE
from fleetsim.localcore.statelock import state_dir_in_use
from fleetsim.runtime import die_with_parent
from fleetsim.target import Target

READY_TIMEOUT_S = 30.0


@dataclass
class RunningLocalCore:
    info: dict[str, Any]  # what local core wrote to its INFO_FILE
    process: subprocess.Popen | None  # None when it was already running
    state_dir: Path

    @property
    def pid(self) -> int:
        return int(self.info["pid"])

    @property
    def api_url(self) -> str:
        return str(self.info["api_url"])

    @property
    def mqtt_host(self) -> str:
        return str(self.info["mqtt_host"])

    @property
    def mqtt_port(self) -> int:
        return int(self.info["mqtt_port"])

    @property
    def root_ca(self) -> Path:
        return Path(self.info["root_ca"])

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (a clean stop) or, with `kill`, SIGKILL; only a core this process started."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _alive(info: dict[str, Any]) -> bool:
    try:
        os.kill(info["pid"], 0)
        host, port = info["api_url"].removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except (OSError, KeyError, ValueError):
        return False


def running_info(state_dir: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((state_dir / INFO_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return info if _alive(info) else None


def _exit_with(parent: int) -> Callable[[], None]:
    """A `preexec_fn`: the child gets SIGTERM when `parent` dies (checked once more after
    setting it, in case the parent died in between)."""
    def preexec() -> None:
        die_with_parent(signal.SIGTERM)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)
    return preexec


def spawn_local_core(state_dir: Path, log_path: Path, *, api_port: int | None = None,
                     mqtt_port: int | None = None, extra_args: Sequence[str] = (),
                     prefix: Sequence[str] = (), env: dict[str, str] | None = None,
                     new_session: bool = False, tied: bool = False,
                     timeout: float = READY_TIMEOUT_S) -> RunningLocalCore:
    """Start `python -m fleetsim.localcore.serve` (after `prefix`, e.g. taskset) and wait
    until it has written its endpoints; its output goes to `log_path`. With `tied` (Linux),
    it exits when this process dies."""
    state_dir.mkdir(parents=True, exist_ok=True)
    info_file = state_dir / INFO_FILE
    if not state_dir_in_use(state_dir):
        info_file.unlink(missing_ok=True)  # a kill -9 leaves the old one behind
    cmd = [*prefix, sys.executable, "-m", "fleetsim.localcore.serve", "--state-dir",
           str(state_dir)]
    if api_port is not None:
        cmd += ["--api-port", str(api_port)]
    if mqtt_port is not None:
        cmd += ["--mqtt-port", str(mqtt_port)]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [*cmd, *extra_args], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **allocator.environment(), **(env or {})},
            start_new_session=new_session,
            preexec_fn=_exit_with(os.getpid()) if tied and sys.platform == "linux" else None)
    deadline = time.monotonic() + timeout
    while not (info_file.exists() and _info_pid(info_file) == process.pid):
        if process.poll() is not None:
            tail = (log_path.read_text(errors="replace").strip().splitlines() or [""])[-1]
            if tail.startswith("fleetsim: "):  # local core's own one-sentence explanation
                raise UserError(tail.removeprefix("fleetsim: "))
            raise UserError(f"local core exited during start-up ({tail or 'no output'}); "
                            f"full log: {log_path}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise UserError(f"local core did not become ready within {timeout:.0f}s; "
                            f"see {log_path}")
        time.sleep(0.05)
    return RunningLocalCore(json.loads(info_file.read_text()), process, state_dir)


def _info_pid(info_file: Path) -> int | None:
    try:
        return int(json.loads(info_file.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ensure_local_core(state_dir: Path, *, api_port: int | None = None,
                      mqtt_port: int | None = None) -> RunningLocalCore:
    """The local core running in `state_dir` (e.g. from `fleetsim local start`), or a new one
    on these ports, stopped by `.stop()` and tied to this process's life."""
    info = running_info(state_dir)
    if info is not None:
        return RunningLocalCore(info, None, state_dir)
    # Its own session: Ctrl-C in the terminal reaches fleetsim, which then stops it cleanly.
    return spawn_local_core(state_dir, state_dir / "localcore.log", api_port=api_port,
                            mqtt_port=mqtt_port, new_session=True, tied=True)


def endpoints_text(info: dict[str, Any]) -> str:
    """Local core's endpoints, as `fleetsim local start/status` print them."""
    return (f"  API       {info['api_url']}   (AWS_ENDPOINT_URL)\n"
            f"  MQTT      {info['mqtt_host']}:{info['mqtt_port']}   (mutual TLS, region "
            f"{info.get('region', '?')})\n"
            f"  root CA   {info['root_ca']}\n"
            f"  pid       {info['pid']}")


def local_target(core: RunningLocalCore) -> Target:
    return Target.from_local_core(core.info)
