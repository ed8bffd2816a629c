"""Local core on a port already taken: one sentence naming the port and the way out."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_busy_mqtt_port_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "fleetsim", "local", "serve", "--state-dir",
                              str(tmp_path / "core"), "--api-port", "0", "--mqtt-port",
                              str(port)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 1
    assert out.stderr.startswith(f"fleetsim: local core cannot listen on 127.0.0.1:{port} (")
    assert "choose another with --mqtt-port or $FLEETSIM_LOCAL_MQTT_PORT" in out.stderr
    assert "Traceback" not in out.stderr
