"""What a benchmark needs to know about processes and the machine: CPU time, RSS, cores,
limits, and the environment a result was measured in."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class CpuWindow:
    """Wall-clock and CPU seconds of one process over a measured window."""

    pid: int
    wall0: float = 0.0
    cpu0: float = 0.0
    wall: float = 0.0
    cpu: float = 0.0

    def start(self, now: float) -> None:
        self.wall0, self.cpu0 = now, cpu_seconds(self.pid)

    def stop(self, now: float) -> None:
        self.wall, self.cpu = now - self.wall0, cpu_seconds(self.pid) - self.cpu0

    @property
    def utilisation(self) -> float:
        return self.cpu / self.wall if self.wall else 0.0


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pin_self(cpu: int | None) -> list[int]:
    """Pin this process to one CPU (None: leave as is); returns the affinity now in force."""
    if cpu is not None and cpu in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {cpu})
    return sorted(os.sched_getaffinity(0))


def taskset_prefix(cpu: int | None) -> list[str]:
    if cpu is None or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", str(cpu)]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    import ssl

    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), None)
    except OSError:
        model = None
    return {
        "hostname": platform.node(),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "uvloop": _version("uvloop"),
        "aiohttp": _version("aiohttp"),
        "cryptography": _version("cryptography"),
        "openssl": ssl.OPENSSL_VERSION,
        "rlimit_nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _cpu_ticks() -> list[int]:
    """/proc/stat's "cpu" line, every CPU together: user, nice, system, idle, iowait, irq,
    softirq, steal, ... in clock ticks since boot."""
    with open("/proc/stat") as f:
        return [int(v) for v in f.readline().split()[1:]]


def system_busy_seconds() -> float:
    """CPU seconds all CPUs spent not idle since boot (from /proc/stat): with our own
    processes' CPU subtracted, what other work on the machine took during a window."""
    values = _cpu_ticks()
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def steal_seconds() -> float:
    """CPU seconds the hypervisor gave other guests while this machine's CPUs wanted them,
    since boot (/proc/stat "steal"): a window with much of it measured a slower machine."""
    values = _cpu_ticks()
    return values[7] / CLOCK_TICKS if len(values) > 7 else 0.0


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def wait_for_quiet(max_wait_s: float, threshold: float = 0.3) -> float:
    """Wait (up to `max_wait_s`) until the machine's busy CPU, measured over a second, is below
    `threshold` cores: other engineers' test runs share it. Returns the last measurement."""
    import time

    deadline = time.monotonic() + max_wait_s
    while True:
        busy0 = system_busy_seconds()
        time.sleep(1.0)
        busy = system_busy_seconds() - busy0
        if busy < threshold or time.monotonic() >= deadline:
            return round(busy, 2)


def drive_worker(cmd: list[str], cwd: Path, on_mark: Callable[[str, dict[str, Any], int], None],
                 what: str, timeout: float = 120) -> dict[str, dict[str, Any]]:
    """Run a worker that prints one JSON line `{"mark": name, ...}` at each phase edge and
    waits for a line on its stdin: `on_mark(name, values, pid)` acts on each (read its RSS,
    steer callgrind) before the worker goes on. Returns the marks by name."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdin is not None and proc.stdout is not None
    marks: dict[str, dict[str, Any]] = {}
    try:
        for line in proc.stdout:
            if not line.startswith("{"):
                continue
            mark = json.loads(line)
            name = mark.pop("mark")
            marks[name] = mark
            on_mark(name, mark, proc.pid)
            proc.stdin.write("\n")
            proc.stdin.flush()
    finally:
        proc.stdin.close()
        if proc.wait(timeout=timeout) != 0:
            raise RuntimeError(f"worker {what} exited with {proc.returncode}")
    return marks


T = TypeVar("T")


def in_round(items: Iterable[T], r: int) -> list[T]:
    """`items` in round `r`'s order: as given in even rounds, reversed in odd ones, so that a
    ratio of two of them is one of a single run on a noisy machine."""
    ordered = list(items)
    return ordered if r % 2 == 0 else ordered[::-1]


def tree_record(benchmark: str, trees: dict[str, str], **fields: Any) -> dict[str, Any]:
    """The start of a results document comparing source trees round by round: what ran, when,
    where and on how loaded a machine; each round is appended to its `rounds`."""
    return {"benchmark": benchmark, "started": utc_now(), "machine": machine_info(),
            **fields, "trees": trees, "loadavg_before": os.getloadavg(), "rounds": []}


def source_trees(baseline: str | None) -> dict[str, str]:
    """The source trees a bench compares, by name: this one (""), and `baseline` before it
    when given (a directory holding another tree's `fleetsim/`)."""
    if not baseline:
        return {"this": ""}
    return {"baseline": str(Path(baseline).resolve()), "this": ""}
