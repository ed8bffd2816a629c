"""`bench.fd_table`: sockets up to the descriptor limit, and connections held outside it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.fd_table import native_hold, parse_native

ROOT = Path(__file__).resolve().parents[2]

# What uring_hold prints for 3 connections (this machine: hard limit 20,000).
OUTPUT = """rlimit_nofile_soft=20000
rlimit_nofile_hard=20000
wanted=3
connected_pairs=3
fds_in_table_connected=8
round_trips=3
failures=0
fds_in_table_end=8
"""


def test_sockets_fill_the_descriptor_numbers_left_below_the_soft_limit() -> None:
    # A process of its own: the limit is lowered for it alone.
    code = ("import json, resource\n"
            "from bench.fd_table import fd_table_sockets\n"
            "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))\n"
            "print(json.dumps(fd_table_sockets()))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    result = json.loads(out)
    assert result["rlimit_nofile"] == 64
    assert 3 <= result["fds_before"] < 20
    assert result["sockets"] == 64 - result["fds_before"]


def test_the_native_output_is_read_as_numbers() -> None:
    parsed = parse_native(OUTPUT)
    assert parsed["connected_pairs"] == 3 and parsed["fds_in_table_end"] == 8
    assert parsed["failures"] == 0


def test_output_cut_short_is_an_error_that_shows_it() -> None:
    cut = OUTPUT.split("round_trips")[0] + "io_uring_wait_cqe: Interrupted system call\n"
    with pytest.raises(ValueError, match=r"round_trips.*Interrupted system call"):
        parse_native(cut)


@pytest.mark.skipif(not Path("/usr/include/liburing.h").exists(),
                    reason="liburing-dev is not installed (make test and make bench install it)")
def test_one_process_holds_connections_outside_its_descriptor_table() -> None:
    held = native_hold(300)
    assert held["exit_code"] == 0 and held["failures"] == 0
    assert held["connected_pairs"] == held["round_trips"] == 300
    # 600 sockets, and the table holds only stdio, two rings and the listener (and a few more).
    assert held["fds_in_table_end"] < 20
