"""Local core on a port already taken: one sentence naming the port and the way out, which
`run` accepts as `local serve` does."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def on_a_busy_mqtt_port(*args: str, cwd: Path) -> tuple[int, subprocess.CompletedProcess[str]]:
    """`python -m fleetsim ARGS --api-port 0 --mqtt-port P` with P held by another socket."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETSIM_LOCAL_")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "fleetsim", *args, "--api-port", "0",
                              "--mqtt-port", str(port)], capture_output=True, text=True,
                             cwd=cwd, timeout=60, env={**env, "PYTHONPATH": str(ROOT)})
    return port, out


def test_busy_mqtt_port_is_named(tmp_path: Path) -> None:
    port, out = on_a_busy_mqtt_port("local", "serve", "--state-dir", str(tmp_path / "core"),
                                    cwd=ROOT)
    assert out.returncode == 1
    assert out.stderr.startswith(f"fleetsim: local core cannot listen on 127.0.0.1:{port} (")
    assert "choose another with --mqtt-port or $FLEETSIM_LOCAL_MQTT_PORT" in out.stderr
    assert "Traceback" not in out.stderr


def test_run_on_a_busy_mqtt_port_gets_a_hint_it_accepts(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("name: x\nsteps: [{wait: 0s}]\n")
    port, out = on_a_busy_mqtt_port("run", "s.yaml", "--state-dir", str(tmp_path / "state"),
                                    cwd=tmp_path)
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in lines[0]
    assert "--mqtt-port or $FLEETSIM_LOCAL_MQTT_PORT" in lines[0]
