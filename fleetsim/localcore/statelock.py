"""One local core per state directory: an exclusive `flock` on `localcore.lock`, held for the
life of the process (the kernel releases it when the process dies, however it dies)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

from fleetsim.errors import UserError

LOCK_FILE = "localcore.lock"


def hold_state_dir(state_dir: Path) -> IO[str]:
    """Lock `state_dir` for this process; keep the returned file open as long as it serves.
    Another local core holding it is refused in one sentence."""
    state_dir.mkdir(parents=True, exist_ok=True)
    lock = open(state_dir / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise UserError(f"another local core (pid {holder}) already uses the state dir "
                        f"{state_dir}: stop it with `fleetsim local stop --state-dir "
                        f"{state_dir}`, or choose another --state-dir") from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def state_dir_in_use(state_dir: Path) -> bool:
    """Whether a live local core holds `state_dir` (its lock cannot be taken)."""
    path = state_dir / LOCK_FILE
    if not path.exists():
        return False
    with open(path, encoding="utf-8") as probe:
        try:
            fcntl.flock(probe.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        with contextlib.suppress(OSError):
            fcntl.flock(probe.fileno(), fcntl.LOCK_UN)
    return False
