"""Process set-up shared by every entry point: the event loop and file-descriptor limits."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import resource
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

from fleetsim.collector import survivors_frozen

T = TypeVar("T")


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop where it is installed (smaller TLS buffers, epoll), stdlib otherwise;
    what survives a full collection meanwhile is frozen (`collector`)."""
    with survivors_frozen():
        try:
            import uvloop
        except ImportError:
            return asyncio.run(main)
        return uvloop.run(main)


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(sig: signal.Signals) -> None:
    """This process gets `sig` when its parent dies, however it dies (Linux
    PR_SET_PDEATHSIG; call it in the child, e.g. as a `preexec_fn`)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)


def raise_fd_limit() -> None:
    """Thousands of devices (and local core beside them) need tens of thousands of fds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has finished (its cancellation is not raised here)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
