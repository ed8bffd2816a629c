"""Many sessions at once: connect with bounded concurrency (a device that cannot connect is
counted, not fatal) and close them all quickly (Ctrl-C with thousands connected)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from fleetsim.device.errors import DeviceError
from fleetsim.device.session import DeviceSession


async def connect_many(sessions: Sequence[DeviceSession],
                       concurrency: int = 200) -> list[DeviceSession]:
    """Enter every session, at most `concurrency` connecting at once; returns those connected,
    in order. Failures are in the metrics by kind."""
    limit = asyncio.Semaphore(concurrency)
    ok = [False] * len(sessions)

    async def one(i: int, session: DeviceSession) -> None:
        async with limit:
            try:
                await session.__aenter__()
                ok[i] = True
            except DeviceError:
                pass

    await asyncio.gather(*(one(i, s) for i, s in enumerate(sessions)))
    return [s for s, connected in zip(sessions, ok, strict=True) if connected]


async def close_many(sessions: Iterable[DeviceSession], timeout: float = 3.0) -> int:
    """Disconnect every session. DISCONNECT is written synchronously to each socket (no task
    per session); only sessions whose socket cannot take it at once are awaited, up to
    `timeout` seconds, and then dropped. Returns how many were dropped without a clean
    DISCONNECT."""
    pending = [s for s in sessions if not s.close()]
    if not pending:
        return 0
    tasks = [asyncio.ensure_future(s.__aexit__(None, None, None)) for s in pending]
    _, late = await asyncio.wait(tasks, timeout=timeout)
    for task in late:
        task.cancel()
    for session in pending:
        session.force_close()
    return len(late)
