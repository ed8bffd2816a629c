"""How many connections one process can hold on this machine, through its file descriptor table
and outside it (issue 9's 20,000 devices in one process).

    .venv/bin/python -m bench fd-table [--fd-table-connections 20000]

Every connection aiomqtt makes is a socket with a descriptor of its own (paho hands the event
loop its `fileno()` to watch), and a process's descriptors are numbered below its
RLIMIT_NOFILE, whose hard limit only CAP_SYS_RESOURCE may raise. `fd_table_sockets` opens
sockets until the kernel refuses one (EMFILE): how many devices a process with aiomqtt could
hold at most, before its event loop's own descriptors are counted. `native_hold` builds and runs
`native/uring_hold.c`: one process that holds the connections, both ends, as io_uring direct
descriptors (fixed-file slots of a ring, limited per ring by RLIMIT_NOFILE, not numbered in the
table) and moves a byte each way on each. It needs a C compiler and liburing's headers
(Debian's liburing-dev; `make bench` installs it). Results: `bench/results/fd-table.json`.
"""

from __future__ import annotations

import argparse
import errno
import os
import resource
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import Row
from bench.system import machine_info, raise_fd_limit, utc_now

NATIVE_SOURCE = Path(__file__).resolve().parent / "native" / "uring_hold.c"
NATIVE_FIELDS = ("rlimit_nofile_hard", "wanted", "connected_pairs", "round_trips", "failures",
                 "fds_in_table_connected", "fds_in_table_end")


def fds_open() -> int:
    return len(os.listdir("/proc/self/fd")) - 1  # listing the directory opens one


def fd_table_sockets() -> dict[str, int]:
    """Opens sockets until the kernel refuses one for want of a descriptor (at the soft
    RLIMIT_NOFILE), then closes them."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    before = fds_open()
    held: list[socket.socket] = []
    try:
        while True:
            try:
                held.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            except OSError as e:
                if e.errno != errno.EMFILE:
                    raise
                break
    finally:
        for s in held:
            s.close()
    return {"rlimit_nofile": limit, "fds_before": before, "sockets": len(held)}


def parse_native(output: str) -> dict[str, int]:
    """`uring_hold`'s key=value lines; ValueError, with the output, when one is missing."""
    values = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    missing = [f for f in NATIVE_FIELDS if f not in values]
    if missing:
        raise ValueError(f"uring_hold printed no {', '.join(missing)}: {output[-300:]!r}")
    return {k: int(v) for k, v in values.items()}


def native_hold(connections: int) -> dict[str, Any]:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler (cc or gcc) on PATH")
    with tempfile.TemporaryDirectory(prefix="fleetsim-fd-table-") as tmp:
        binary = Path(tmp) / "uring_hold"
        built = subprocess.run([compiler, "-O2", "-o", str(binary), str(NATIVE_SOURCE),
                                "-luring"], capture_output=True, text=True, check=False)
        if built.returncode:
            raise RuntimeError(f"building {NATIVE_SOURCE.name} failed (liburing's headers come "
                               f"with Debian's liburing-dev): {built.stderr.strip()[-400:]}")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        ran = subprocess.run([str(binary), str(connections)], capture_output=True, text=True,
                             check=False, timeout=300)
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result: dict[str, Any] = parse_native(ran.stdout + ran.stderr)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    result.update(exit_code=ran.returncode, wall_s=round(wall, 2), cpu_s=round(cpu, 2))
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fd-table-connections", type=int, default=20000, metavar="N")


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    started = time.monotonic()
    report: dict[str, Any] = {"bench": "fd_table", "at": utc_now(), "machine": machine_info(),
                              "errors": {}}
    raise_fd_limit()
    report["fd_table"] = fd_table_sockets()
    try:
        report["io_uring"] = native_hold(args.fd_table_connections)
    except (RuntimeError, ValueError, OSError, subprocess.TimeoutExpired) as e:
        report["errors"]["io_uring"] = str(e)
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    report["_results"] = "fd-table"
    return report, rows(report, args.fd_table_connections)


def rows(report: dict[str, Any], wanted: int) -> list[Row]:
    table = report["fd_table"]
    out = [Row("sockets one process can open through its descriptor table",
               table["sockets"], "", f">= {wanted}", table["sockets"] >= wanted,
               f"RLIMIT_NOFILE {table['rlimit_nofile']}, {table['fds_before']} held before")]
    native = report.get("io_uring")
    if native:
        held = native["connected_pairs"] if native["failures"] == 0 else 0
        out += [Row("connections held as io_uring direct descriptors, both ends", held, "",
                    f">= {wanted}", held >= wanted,
                    f"a byte each way on each; {native['fds_in_table_end']} descriptors in "
                    f"the table")]
    return out
