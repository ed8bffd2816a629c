"""Local core's process runs with `PYTHONMALLOC=malloc` (issue 8: the memory of abandoned TLS
handshakes goes back to the OS; why: `fleetsim/localcore/allocator.py`), whether a run or
`fleetsim local start` launches it or a user runs `fleetsim local serve` by hand; a value the
user set is kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetsim.localcore.arguments import INFO_FILE
from fleetsim.localcore.broker import memory
from tests.conftest import start_core

pytestmark = [pytest.mark.timeout(90),
              pytest.mark.skipif(not memory.can_release(), reason="glibc only")]

FLEETSIM = str(Path(sys.executable).parent / "fleetsim")  # the console script users run


def environment_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        pairs = (item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
        return {k.decode(): v.decode(errors="replace") for k, v in pairs}


def without_allocator() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONMALLOC"}


@pytest.fixture
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[int, int]]:
    """`fleetsim local serve` run by hand (the environment given by the test's param): the
    pid started and the pid that wrote the info file."""
    state = tmp_path / "core"
    process = subprocess.Popen(
        [FLEETSIM, "local", "serve", "--state-dir", str(state), "--api-port", "0",
         "--mqtt-port", "0"], env=request.param, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        info = state / INFO_FILE
        for _ in range(600):
            if info.exists() or process.poll() is not None:
                break
            time.sleep(0.1)
        assert info.exists(), "local core did not start"
        yield process.pid, int(json.loads(info.read_text())["pid"])
    finally:
        process.terminate()
        process.wait(30)


def test_a_launched_local_core_runs_on_malloc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    monkeypatch.delenv("PYTHONMALLOC", raising=False)
    core = start_core(tmp_path / "core")
    try:
        assert environment_of(core.pid).get("PYTHONMALLOC") == "malloc"
    finally:
        core.stop()


@pytest.mark.parametrize("served", [without_allocator()], indirect=True)
def test_local_serve_by_hand_reexecutes_itself_on_malloc(served: tuple[int, int]) -> None:
    started, serving = served
    assert serving == started  # the same process, executed anew
    assert environment_of(serving).get("PYTHONMALLOC") == "malloc"


@pytest.mark.parametrize("served", [{**without_allocator(), "PYTHONMALLOC": "pymalloc"}],
                         indirect=True)
def test_an_allocator_the_user_chose_is_kept(served: tuple[int, int]) -> None:
    assert environment_of(served[1]).get("PYTHONMALLOC") == "pymalloc"
