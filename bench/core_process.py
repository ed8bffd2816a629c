"""Local core in its own process for a benchmark: temp state dir, ephemeral ports, optionally
pinned to one CPU with `taskset`, killed at the end."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.system import machine_info, pin_self, taskset_prefix, utc_now
from fleetsim.localcore.launcher import RunningLocalCore, spawn_local_core
from fleetsim.runtime import run_async

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


def measure_on_core(benchmark: str,
                    measure: Callable[[CoreProcess], Coroutine[Any, Any, dict[str, Any]]]
                    ) -> dict[str, Any]:
    """The JSON data of `benchmark`: `measure`'s results against local core (its own process,
    on CPU 0; this one on CPU 1), or, if it raised, the error and local core's last log lines,
    with the machine, the start time and the seconds it took."""
    placement = pin_self(1)
    started = time.perf_counter()
    data: dict[str, Any] = {"benchmark": benchmark, "started": utc_now(),
                            "machine": machine_info(), "client_cpus": placement}
    with CoreProcess(cpu=0) as core:
        try:
            data.update(run_async(measure(core)))
        except Exception as e:  # the JSON still says what failed and where
            data["errors"] = {benchmark: f"{type(e).__name__}: {e}; log: {core.log_tail()}"}
    data["elapsed_s"] = round(time.perf_counter() - started, 1)
    return data
