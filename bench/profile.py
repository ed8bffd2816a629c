"""Optional py-spy profile of local core during a part (`--profile`): collapsed stacks are
written next to the results, and the hottest frames (self and inclusive) go into the JSON."""

from __future__ import annotations

import collections
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


@contextmanager
def py_spy(pid: int, out: Path, enabled: bool, summary: dict[str, Any],
           native: bool = False) -> Iterator[None]:
    """Record `pid` while the block runs; fill `summary` with the top frames afterwards."""
    exe = _py_spy()
    if not enabled or exe is None:
        yield
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([exe, "record", "-p", str(pid), "-o", str(out), "--format", "raw",
                             "--rate", "200", "--nonblocking", *(["--native"] if native else [])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if out.exists():
            summary.update(top_frames(out))
            summary["collapsed_stacks"] = str(out)


# Frames every sample passes through on its way to the event loop: not worth listing.
_ENTRY_FRAMES = ("<frozen runpy>", "localcore/serve.py", "fleetsim/runtime.py",
                 "uvloop/__init__.py", "threading.py", "concurrent/futures/thread.py")


def top_frames(path: Path, limit: int = 15) -> dict[str, Any]:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def share(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        frames = [(f, n) for f, n in counter.most_common()
                  if not any(marker in f for marker in _ENTRY_FRAMES)]
        return [(f, round(100 * n / total, 1)) for f, n in frames[:limit]]

    return {"samples": total, "self_percent": share(own), "inclusive_percent": share(inclusive)}
