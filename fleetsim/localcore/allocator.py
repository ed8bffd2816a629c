"""Local core's process allocates Python objects with the C library's `malloc`.

Why (issue 8, measured with `python -m bench broker-hardening --hardening-parts handshakes`):
2,000 concurrent TLS handshakes make Python's small-object allocator (pymalloc) grow by about
ten 1 MiB arenas, and pymalloc gives an arena back only once every block in it is free. When
the handshakes have ended, a few hundred objects freed into uvloop's Cython free lists (250
handles, timer handles and write contexts per class, kept for reuse and never released) stay
scattered over those arenas: ~10 MB stayed resident after the connections were gone (88 -> 98
MB). With `PYTHONMALLOC=malloc` every object is a glibc chunk, and the broker's periodic
`gc.collect()` + `malloc_trim(0)` (`broker/memory.py`) hands back whole pages: 90 -> 93 MB.

`PYTHONMALLOC` is read when the interpreter starts, so a local core that `spawn_local_core`
starts gets it in its environment, and `fleetsim local serve` run by hand re-executes itself
with it (once, before anything is opened). A value the user set is kept.
"""

from __future__ import annotations

import os
import sys

VARIABLE = "PYTHONMALLOC"
VALUE = "malloc"


def wanted() -> bool:
    """True where the setting pays: unset by the user, and freed pages can be trimmed (glibc)."""
    # imported here: `fleetsim run` starts local core through the launcher, and must not load
    # the broker's modules for it (tests/unit/test_run_imports.py)
    from fleetsim.localcore.broker import memory
    return VARIABLE not in os.environ and memory.can_release()


def environment() -> dict[str, str]:
    """What to add to the environment of a local core process about to be started."""
    return {VARIABLE: VALUE} if wanted() else {}


def reexec_if_needed() -> None:
    """Replace this process with itself under `PYTHONMALLOC=malloc` (same pid, arguments and
    file descriptors) unless it already runs so or the setting would not pay."""
    if not wanted():
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]],
              {**os.environ, VARIABLE: VALUE})
