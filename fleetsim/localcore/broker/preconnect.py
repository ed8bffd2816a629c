"""Small read buffers for a connection until its CONNECT is accepted.

A client dribbling one-byte TLS records costs the broker one record decryption per byte, and
uvloop's TLS protocol decrypts everything it has buffered in one callback: with the default
buffers (the kernel's autotuned receive buffer, megabytes on loopback, and 256 KiB of
encrypted data waiting in the TLS protocol) one callback decrypted ~11,000 records, and a
flat-out dribbler pushed its whole stream into the kernel before the broker read any of it:
one such client added 15-40 ms to the others' median latency and ~200 ms to their p99
(`python -m bench broker-hardening --hardening-parts dribbler --dribblers 1 --dribble-rate 0`).
So until the CONNECT is accepted, the socket's receive buffer and the TLS protocol's read
buffer are kept small (4 KiB): TCP back-pressure then holds the dribbler, and what one read
hands the broker is a few hundred records. A larger CONNECT takes several reads, read on at
once when each brings enough (`PRE_CONNECT_PROGRESS` in `connection.py`).
The buffers are given their usual sizes back when the CONNECT is accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

RECEIVE_BUFFER = 4 * 1024  # SO_RCVBUF before CONNECT (Linux doubles it for bookkeeping)
TLS_READ_BUFFER = 4 * 1024  # encrypted bytes the TLS protocol holds before it stops reading


def narrow(transport: asyncio.BaseTransport) -> int:
    """Shrink the buffers; the socket's receive buffer size before (0: not changed)."""
    sock: Any = transport.get_extra_info("socket")
    before = 0
    if sock is not None:
        try:
            before = int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        except (OSError, ValueError):
            before = 0
    limits: Any = getattr(transport, "set_read_buffer_limits", None)
    if limits is not None:
        limits(high=TLS_READ_BUFFER)
    return before


def widen(transport: asyncio.BaseTransport, before: int) -> None:
    """Give the buffers `narrow` shrank their sizes back."""
    sock: Any = transport.get_extra_info("socket")
    if sock is not None and before:
        # getsockopt reports the doubled size; setting half of it restores it.
        with contextlib.suppress(OSError, ValueError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, before // 2)
    limits: Any = getattr(transport, "set_read_buffer_limits", None)
    if limits is not None:
        limits()  # the transport's defaults
