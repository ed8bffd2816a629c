"""Local core in its own process for a benchmark: temp state dir, ephemeral ports, optionally
pinned to one CPU with `taskset`, killed at the end."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.system import taskset_prefix
from fleetsim.localcore.launcher import RunningLocalCore, spawn_local_core

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 30.0


@dataclass
class CoreProcess:
    cpu: int | None = None
    tmp: tempfile.TemporaryDirectory[str] = field(
        default_factory=lambda: tempfile.TemporaryDirectory(prefix="fleetsim-bench-"))
    core: RunningLocalCore | None = None

    @property
    def workdir(self) -> Path:
        return Path(self.tmp.name)

    @property
    def state_dir(self) -> Path:
        return self.workdir / "core"

    @property
    def log_path(self) -> Path:
        return self.workdir / "localcore.log"

    @property
    def info(self) -> dict[str, Any]:
        assert self.core is not None, "local core is not started"
        return self.core.info

    @property
    def pid(self) -> int:
        return int(self.info["pid"])

    @property
    def api_url(self) -> str:
        return str(self.info["api_url"])

    @property
    def mqtt_port(self) -> int:
        return int(self.info["mqtt_port"])

    @property
    def root_ca(self) -> str:
        return str(self.info["root_ca"])

    def start(self) -> CoreProcess:
        # With taskset the pid we hold is local core's own (taskset execs).
        self.core = spawn_local_core(
            self.state_dir, self.log_path, api_port=0, mqtt_port=0,
            prefix=taskset_prefix(self.cpu), timeout=READY_TIMEOUT_S,
            # The create-keys-and-certificate target is for EC P-256 keys.
            extra_args=("--keys-and-certificate-key-type", "ec-p256"))
        return self

    def log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.core is not None:
            self.core.stop()
        self.tmp.cleanup()

    def __enter__(self) -> CoreProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
