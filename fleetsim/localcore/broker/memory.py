"""Giving memory freed by ended connections back to the operating system.

A TLS connection that never completes its handshake costs the broker nothing once the handshake
timeout closes it: no Python object of it survives (no `Connection`, no SSL protocol or
transport). But glibc's allocator keeps the freed heap pages of the TLS state (OpenSSL's and the
event loop's buffers, many small allocations interleaved with long-lived ones) instead of
returning them: measured on local core, 2,000 abandoned handshakes left ~50 MB of RSS each round,
growing round after round (issue 8), and `malloc_trim(0)` gave all of it back. So the broker
calls `malloc_trim`, in a thread, after connections have ended (see `Broker._trim_due`), right
after a `gc.collect()`: a full collection also empties CPython's free lists (tuples, floats,
dicts... kept for reuse), whose chunks would otherwise keep their pages resident. Local core
runs with `PYTHONMALLOC=malloc` (`localcore/allocator.py`) so that Python's objects are such
chunks too. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_malloc_trim = _load_malloc_trim()


def can_release() -> bool:
    """True where freed pages can be handed back (glibc's `malloc_trim` was found)."""
    return _malloc_trim is not None


def release_free_memory() -> bool:
    """Return the allocator's free pages to the OS; False where that is not possible.
    Releases the GIL while it runs (ctypes), so it can run in a worker thread."""
    if _malloc_trim is None:
        return False
    return bool(_malloc_trim(0))
