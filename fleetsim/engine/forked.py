"""Run a function in a forked child process and get its result back.

What the child imports and allocates goes away with it: a run's API steps import the AWS
client (aioboto3, aiobotocore, aiohttp, botocore's service models: ~45 MB, and the `iot`
client ~13 MB more) which the device process then never holds (engine/split.py).

The child is a fork, so it starts with everything the parent has (the scenario, the
devices, the journals) and nothing is passed in; its result (or its exception) comes back
pickled through a pipe. Call it outside any event loop: the child runs its own. The child
is killed (SIGKILL) if the parent dies, so a kill -9 of the run stops both at once, as it
stopped one process (the journals written ahead say what `fleetsim cleanup` removes); while
it runs, the parent hands it the SIGINT and SIGTERM it gets (a run's steps turn them into an
interruption they report).
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from fleetsim.errors import UserError
from fleetsim.runtime import die_with_parent

T = TypeVar("T")
# Signals the parent hands to the child while it runs: the child, in a process group of its
# own, gets a terminal's Ctrl-C once, from the parent, whichever of the two it was sent to.
FORWARDED = (signal.SIGINT, signal.SIGTERM)


class ChildDied(RuntimeError):
    """The child ended without handing back a result (killed, or crashed in C)."""


def in_child(work: Callable[[], T]) -> T:
    """`work()` run in a forked child: its return value, or its exception raised here
    (SystemExit included, so `sys.exit(130)` in the child exits the parent with 130)."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its outcome is what the tests check
        os.close(read_end)
        _child(work, write_end, parent)
    os.close(write_end)
    with contextlib.suppress(OSError):  # as the child does: whichever of the two runs first
        os.setpgid(pid, pid)

    def forward(signum: int, _frame: object) -> None:
        os.kill(pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not data:
        raise ChildDied(f"the run's child process {pid} ended without a result "
                        f"({_describe(status)})")
    kind, value = pickle.loads(data)
    if kind == "ok":
        return value
    raise value


def _child(work: Callable[[], Any], write_end: int, parent: int) -> None:  # pragma: no cover
    """Run `work`, write its outcome, and leave without running the parent's clean-up code
    (finally blocks and atexit handlers of the parent's stack are not the child's)."""
    code = 0
    # What the child inherits is the parent's, long-lived (the modules, the scenario, the
    # devices and their stored identities: engine/preloaded.py): its collector leaves it
    # alone, neither walking it (~0.25 s of a 10,000-device start-up's API child) nor
    # copying the pages it would write to.
    gc.freeze()
    try:
        os.setpgid(0, 0)
        if sys.platform == "linux":  # a kill -9 of the run kills both, as it did one process
            die_with_parent(signal.SIGKILL)
            if os.getppid() != parent:  # it died before that was set
                os._exit(1)
        try:
            outcome: tuple[str, Any] = ("ok", work())
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
            outcome = ("error", SystemExit(code))
        except BaseException as e:  # handed to the parent, which raises it
            outcome = ("error", e)
        data = _pickled(outcome)
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(data)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _pickled(outcome: tuple[str, Any]) -> bytes:  # pragma: no cover - in the child
    """The outcome as bytes the parent can load: an exception that does not survive pickling
    (one whose __init__ takes other arguments than its message) is handed over as a
    UserError with its message and exit code when it is one, else as a RuntimeError with the
    child's traceback."""
    try:
        data = pickle.dumps(outcome)
        pickle.loads(data)
        return data
    except Exception:  # whatever pickling refuses
        pass
    kind, value = outcome
    if kind == "error" and isinstance(value, UserError):
        error = UserError(str(value))
        error.exit_code = value.exit_code
        return pickle.dumps(("error", error))
    text = ("".join(traceback.format_exception(value)) if kind == "error"
            else f"a result that cannot be handed over: {type(value).__name__}")
    return pickle.dumps(("error", RuntimeError(f"the run's child process failed:\n{text}")))


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
